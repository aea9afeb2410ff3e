"""The HTML report of a real demo-style run: content, size, self-containment, and how a
browser renders it (headless Chromium, when installed; required with CI=true)."""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from drift.report import MAX_DEMO_REPORT_BYTES, Report, ReportError, build_report

FIRST_NIGHT = date(2026, 11, 1)
#: the demo script's first 8 nights: 6 clean, 2 with 30% novel classes (confirmed on the first)
N_NIGHTS = 8
NOVEL_NIGHTS = {FIRST_NIGHT + timedelta(days=i) for i in (6, 7)}
SCREENSHOT_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "screenshot_report.sh"
DATA_URI = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture(scope="module")
def demo_run(demo_world: Path, tmp_path_factory: pytest.TempPathFactory):
    """Fit, run eight demo nights (one confirmed event, typed semantic by the labels of its
    first night), record one adaptation.

    The pipeline does not adapt to a semantic shift, so the adaptation row is written here,
    shaped as ``pipeline.validate_candidate`` and ``pipeline.promote_candidate`` store a
    rejected candidate: accuracies on the new and old domain before and after, the size of
    the validation split (before only), the status and the gate's reasons.

    Module-scoped so that every test here reads the same run: the session's demo world
    (``demo_world``) with its own DRIFT_HOME and SQLite event store.
    """
    from drift import pipeline
    from drift.config import Settings, get_monitor
    from drift.store.db import session_scope, upgrade
    from drift.store.models import Adaptation, DriftEvent

    home = tmp_path_factory.mktemp("report_home")
    settings = Settings(home=home, database_url=f"sqlite:///{home / 'drift.db'}")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("DRIFT_CONFIG", raising=False)
        patch.setenv("DRIFT_HOME", str(demo_world))  # the monitor's base_dir: ${DRIFT_HOME}/demo
        monitor = get_monitor("digits_demo")
    upgrade(settings.db_url)
    pipeline.fit_monitor(settings, monitor)
    decisions = [
        pipeline.run_night(settings, monitor, FIRST_NIGHT + timedelta(days=i))
        for i in range(N_NIGHTS)
    ]
    feedback = demo_world / "demo" / "feedback"
    for i in range(N_NIGHTS - 1):  # labels come one night late: the last night has none yet
        pipeline.import_feedback(
            settings, monitor, feedback / f"labels-{FIRST_NIGHT + timedelta(days=i)}.csv"
        )
    with session_scope(settings.db_url) as session:
        event = session.query(DriftEvent).one()
        session.add(
            Adaptation(
                monitor_id=event.monitor_id,
                event_id=event.id,
                method="finetune",
                status="rejected",
                reason="regresses on the old domain",
                metrics_before={
                    "new_domain_accuracy": 0.61,
                    "old_domain_accuracy": 0.98,
                    "n_validation": 40,
                },
                metrics_after={"new_domain_accuracy": 0.87, "old_domain_accuracy": 0.83},
            )
        )
    return settings, monitor, decisions


@pytest.fixture(scope="module")
def built(demo_run) -> Report:
    settings, monitor, _ = demo_run
    return build_report(settings, monitor)


@pytest.fixture(scope="module")
def report(built: Report, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built.write_html(tmp_path_factory.mktemp("report") / "report.html")


def _timeline_nights(document: str) -> list[str]:
    timeline = document.split("<h2>Verdict timeline</h2>", 1)[1]
    return re.findall(r"<tr[^>]*><td>(\d{4}-\d{2}-\d{2})</td>", timeline)


def test_demo_run_has_the_event_the_report_must_show(demo_run) -> None:
    _, _, decisions = demo_run
    assert any(d["event_status"] == "confirmed" for d in decisions)


def test_report_shows_events_with_evidence_and_adaptation(report: Path) -> None:
    document = report.read_text()
    assert "driftwatch report: digits_demo" in document
    assert "<h3>Event #1</h3>" in document and "semantic" in document
    events = document.split("<h2>Drift events</h2>", 1)[1].split("<h2>", 1)[0]
    assert "flag_count" in events and "score_distribution" in events  # decisive tests
    adaptations = document.split("<h2>Adaptations</h2>", 1)[1].split("<h2>", 1)[0]
    assert "finetune" in adaptations and '<span class="badge rejected">' in adaptations
    assert "regresses on the old domain" in adaptations
    rows = re.findall(r"<tr><td>(\w+)</td>((?:<td[^>]*>[^<]*</td>){3})</tr>", adaptations)
    cells = {metric: re.findall(r">([^<]*)</td>", rest) for metric, rest in rows}
    # metric: before, after, change (after - before)
    assert cells == {
        "n_validation": ["40", "–", "–"],
        "new_domain_accuracy": ["0.61", "0.87", "0.26"],
        "old_domain_accuracy": ["0.98", "0.83", "-0.15"],
    }


def test_report_timeline_has_every_night_with_its_ood_rates(report: Path) -> None:
    document = report.read_text()
    nights = [(FIRST_NIGHT + timedelta(days=i)).isoformat() for i in range(N_NIGHTS)]
    assert _timeline_nights(document) == nights
    assert "<th>OOD knn</th>" in document and "<th>OOD energy</th>" in document


def test_report_is_self_contained_and_small(report: Path) -> None:
    from PIL import Image

    document = report.read_text()
    images = DATA_URI.findall(document)
    assert len(images) == 5  # OOD rate, CUSUM, accuracy, score and column histograms
    for encoded in images:
        assert Image.open(io.BytesIO(base64.b64decode(encoded))).format == "PNG"
    assert not re.search(r"<script|<link|src=\"(?!data:)|url\(", document)
    assert report.stat().st_size < MAX_DEMO_REPORT_BYTES


def test_histograms_default_to_the_most_shifted_night(report: Path) -> None:
    document = report.read_text()
    shown = re.search(r"<h2>Score histograms: reference vs (\S+)</h2>", document).group(1)
    assert date.fromisoformat(shown) in NOVEL_NIGHTS
    assert "the most shifted night in range" in document


def test_quiet_range_says_no_events_and_no_adaptations(demo_run, tmp_path: Path) -> None:
    settings, monitor, _ = demo_run
    out = build_report(
        settings, monitor, FIRST_NIGHT, FIRST_NIGHT + timedelta(days=2), night=FIRST_NIGHT
    ).write_html(tmp_path / "quiet.html")
    document = out.read_text()
    assert "No drift events in this range." in document
    assert "No adaptations in this range." in document
    assert len(_timeline_nights(document)) == 3


def test_accuracy_per_night_estimated_every_night_realized_once_labels_arrived(built: Report) -> None:
    performance = built.data.performance.set_index(["night", "method"])
    nights = [FIRST_NIGHT + timedelta(days=i) for i in range(N_NIGHTS)]
    for night in nights:
        assert {(night, "cbpe"), (night, "atc")} <= set(performance.index)
    realized = {n for n, m in performance.index if m == "realized"}
    assert realized == set(nights[:-1])  # the last night's labels have not come back
    for night in nights[:-1]:
        row = performance.loc[(night, "realized")]
        assert row["low"] <= row["accuracy"] <= row["high"] and row["n_rows"] > 0
    # novel classes: the model cannot be right on them, and its confidence does not know it
    for night in NOVEL_NIGHTS & realized:
        assert performance.loc[(night, "realized"), "accuracy"] < performance.loc[(night, "cbpe"), "accuracy"]
    assert "Accuracy per night" in built.html


def test_a_night_outside_the_range_is_refused(demo_run) -> None:
    settings, monitor, _ = demo_run
    with pytest.raises(ReportError, match="not a scored night"):
        build_report(settings, monitor, FIRST_NIGHT, FIRST_NIGHT, night=date(2030, 1, 1))


def test_write_pngs_writes_the_figures_the_html_embeds(built: Report, tmp_path: Path) -> None:
    from PIL import Image

    paths = built.write_pngs(tmp_path)
    assert [p.name for p in paths] == [
        f"digits_demo-{name}.png"
        for name in ("ood_rate", "cusum", "performance", "scores", "columns")
    ]
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width > 300
    embedded = [base64.b64decode(encoded) for encoded in DATA_URI.findall(built.html)]
    assert [p.read_bytes() for p in paths] == embedded  # one drawing serves both


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "chromium not installed (apt-get install -y --no-install-recommends chromium fonts-dejavu-core)"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true: the browser check must run)")
        pytest.skip(message)
    return found


def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    from PIL import Image

    chromium = _chromium()
    screenshot = tmp_path / "report.png"
    subprocess.run(
        ["bash", str(SCREENSHOT_SCRIPT), str(report), str(screenshot), "1280x2400"],
        check=True,
        capture_output=True,
        timeout=120,
        env={**os.environ, "CHROMIUM": chromium},
    )
    with Image.open(screenshot) as image:
        pixels = np.asarray(image.convert("L"), dtype=float)
    assert pixels.shape == (2400, 1280)
    assert pixels.std() > 20  # not blank: text, plots and shading
    assert (pixels < 200).mean() > 0.02  # plots were decoded and drawn, not just a white page

    profile = tmp_path / "profile"
    dom = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--dump-dom",
            report.as_uri(),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert "digits_demo" in dom and "Event #1" in dom
    assert dom.count("data:image/png;base64,") == 5
