"""The wheel is self-contained: built, installed (not editable) into a fresh venv, `drift init` works.

The venv reuses the running interpreter's installed dependencies through a
``.pth`` line (no network, seconds instead of minutes). A ``.pth`` line only
appends a folder to ``sys.path``; the ``.pth`` files inside that folder (the
editable install's finder among them) are not run, so ``drift`` can come only
from the wheel. Commands run from an empty folder outside the source tree
without ``PYTHONPATH``: a file read beside the source tree (not shipped in the
package) would fail here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[1]
TABLES = {
    "monitored_models", "model_versions", "batches", "detector_scores", "drift_tests",
    "drift_events", "drift_event_batches", "adaptations", "alerts", "feedback_labels",
}
VIEWS = {"v_daily_ood_rate", "v_open_events"}
SHIPPED = {
    "drift/py.typed",
    "drift/demo_monitor.yaml",
    "drift/migrations/env.py",
    "drift/migrations/script.py.mako",
    "drift/migrations/versions/0001_initial_schema.py",
    "drift/migrations/versions/0002_dashboard_views.py",
}


def _run(*args: str | Path, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{args}: rc={done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """(bin folder of a fresh venv holding the driftwatch wheel, environment to run it in)."""
    root = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"} and not k.startswith("DRIFT_")}

    # Build from a copy holding only what the wheel is made of: nothing else of the repo can leak in.
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "drift", source / "drift", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--wheel-dir", root / "dist", source, cwd=root, env=env)
    (wheel,) = (root / "dist").glob("driftwatch-*.whl")
    assert SHIPPED <= set(zipfile.ZipFile(wheel).namelist())

    venv = root / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=root, env=env)
    site = Path(_run(venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                     cwd=root, env=env).strip())
    host = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "_host_dependencies.pth").write_text("\n".join(sorted(host)) + "\n")
    _run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--quiet", "--no-deps",
         "--no-index", wheel, cwd=root, env=env)

    origin = _run(venv / "bin" / "python", "-c", "import drift; print(drift.__file__)", cwd=root, env=env)
    assert Path(origin.strip()).is_relative_to(site), f"drift imported from {origin}, not the wheel"
    return venv / "bin", env


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """An empty working folder outside the source tree."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    assert not folder.resolve().is_relative_to(REPO)
    return folder


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_wheel_install_initialises_the_event_store(installed, outside, dialect, request):
    bin_dir, env = installed
    url = f"sqlite:///{outside / 'drift.db'}" if dialect == "sqlite" else request.getfixturevalue("empty_postgres_url")
    env = env | {"DRIFT_DATABASE_URL": url, "DRIFT_HOME": str(outside / "home")}

    assert "event store ready" in _run(bin_dir / "drift", "init", cwd=outside, env=env)

    engine = create_engine(url)
    try:
        inspector = inspect(engine)
        assert TABLES <= set(inspector.get_table_names())
        assert VIEWS <= set(inspector.get_view_names())
    finally:
        engine.dispose()

    # the monitor config shipped in the package (no DRIFT_CONFIG) is found and read
    assert "digits_demo" in _run(bin_dir / "drift", "status", cwd=outside, env=env)
