"""The alert outbox: a real `drift run` killed while its webhook delivery hangs loses no alert
and, after recovery, the receiver acknowledges it exactly once.

The receiver is a socket on loopback that first accepts the POST and never answers
(the process is SIGKILLed while waiting), then a real HTTP server on the same port.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from sqlalchemy import create_engine, text

from tests.test_hostile_input import NIGHT, world  # noqa: F401  (the tiny monitor fixture)


class _Stall:
    """Accepts connections and reads the request, never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        try:
            while True:
                connection, _ = self.sock.accept()
                self.held.append(connection)
                self.requests.append(self._read(connection))
        except OSError:
            return  # closed

    @staticmethod
    def _read(connection: socket.socket) -> bytes:
        """The whole request: headers, then Content-Length bytes of body."""
        data = b""
        while b"\r\n\r\n" not in data:
            data += connection.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
        while len(body) < length:
            body += connection.recv(65536)
        return head + b"\r\n\r\n" + body

    def close(self) -> None:
        for connection in self.held:
            connection.close()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(), frees the port
        except OSError:
            pass  # already closed
        self.sock.close()


class _Receiver(BaseHTTPRequestHandler):
    acknowledged: list[bytes] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")
        type(self).acknowledged.append(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stall() -> Iterator[_Stall]:
    server = _Stall()
    yield server
    server.close()


def _alerts(world: dict) -> tuple[list[tuple], list[tuple]]:  # noqa: F811
    engine = create_engine(f"sqlite:///{world['dir'] / 'drift.db'}")
    with engine.connect() as connection:
        rows = connection.execute(text("select kind, status, attempts from alerts order by id")).all()
        batches = connection.execute(text("select status, verdict from batches")).all()
    engine.dispose()
    return [tuple(r) for r in rows], [tuple(b) for b in batches]


def test_an_alert_survives_a_kill_during_delivery_and_is_delivered_once(world, stall):  # noqa: F811
    hook = f"http://127.0.0.1:{stall.port}/services/T0/B0/token"
    # every flagged row is a surge: the night alerts whatever its verdict
    world["configure"](alerts={"ood_rate_ceiling": 0.001, "log": False, "webhook": {"url": hook, "timeout_seconds": 600}})
    assert world["drift"]("init").returncode == 0
    assert world["drift"]("fit").returncode == 0

    process = subprocess.Popen(
        [sys.executable, "-m", "drift.cli", "run", "--date", NIGHT],
        env=_env(world), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 240
    while not stall.requests and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
    assert stall.requests, process.communicate()
    assert b"OOD surge" in stall.requests[0]
    process.send_signal(signal.SIGKILL)
    process.wait()

    alerts, batches = _alerts(world)
    assert batches == [("succeeded", batches[0][1])] and batches[0][1] in {"ok", "warn", "confirm"}
    assert [(kind, status) for kind, status, _ in alerts] == [("ood_surge", "pending")]

    stall.close()  # the receiver recovers on the same port
    _Receiver.acknowledged = []
    receiver = HTTPServer(("127.0.0.1", stall.port), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        flushed = world["drift"]("alerts", "flush")
        assert flushed.returncode == 0, flushed.stderr
        assert "1 alert(s) delivered" in flushed.stdout
        assert len(_Receiver.acknowledged) == 1
        # a manual re-run of the night and another flush send nothing more
        again = world["drift"]("run", "--date", NIGHT)
        assert again.returncode == 0, again.stderr
        assert world["drift"]("alerts", "flush").returncode == 0
        assert len(_Receiver.acknowledged) == 1
    finally:
        receiver.shutdown()
        receiver.server_close()
    alerts, _ = _alerts(world)
    assert [(kind, status) for kind, status, _ in alerts] == [("ood_surge", "sent")]


def _env(tiny: dict) -> dict[str, str]:
    return {
        **os.environ,
        "DRIFT_HOME": str(tiny["dir"] / "home"),
        "DRIFT_DATABASE_URL": f"sqlite:///{tiny['dir'] / 'drift.db'}",
        "DRIFT_CONFIG": str(tiny["config"]),
    }
