"""A detector from another package, found through the `driftwatch.detectors` entry point
group: a real ``.dist-info`` on ``sys.path``, looked up by importlib.metadata."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import drift.detectors
from drift.batch import FeatureBatch
from drift.config import ConfigError, load_monitors
from drift.detectors import ENTRY_POINT_GROUP, Detector, available_detectors, get_detector

PLUGIN = '''
from pathlib import Path

import numpy as np

from drift.detectors.base import Detector


class MeanDistanceDetector(Detector):
    """Distance of a row to the reference mean."""

    name = "mean_distance"

    def fit(self, reference):
        self.mean_ = reference.features.mean(axis=0)
        self._set_width(reference.features)
        return self

    def score(self, batch):
        self._check_fitted()
        return np.linalg.norm(self._check_width(batch.features) - self.mean_, axis=1).astype(np.float64)

    def _fitted_state(self, folder: Path):
        return {"mean_": self.mean_}, {}

    def _restore_state(self, arrays, scalars, folder: Path):
        self.mean_ = arrays["mean_"]
'''


def install(root: Path, module: str, entry_points: str) -> None:
    """A package as pip leaves it: the module plus its dist-info with entry_points.txt."""
    (root / f"{module}.py").write_text(PLUGIN)
    info = root / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{entry_points}\n")


@pytest.fixture
def plugin_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path; the detector registry is restored afterwards."""
    monkeypatch.setattr(drift.detectors, "_REGISTRY", dict(drift.detectors._REGISTRY))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for module in [m for m in sys.modules if m.startswith("driftwatch_plugin")]:
        del sys.modules[module]


def test_an_installed_package_adds_a_detector(plugin_path: Path, tmp_path: Path) -> None:
    assert "mean_distance" not in available_detectors()
    install(plugin_path, "driftwatch_plugin_mean", "mean_distance = driftwatch_plugin_mean:MeanDistanceDetector")
    assert "mean_distance" in available_detectors()

    rng = np.random.default_rng(0)
    reference = FeatureBatch(rng.normal(size=(200, 4)))
    detector = get_detector("mean_distance").fit(reference)
    far = FeatureBatch(rng.normal(size=(5, 4)) + 10)
    assert (detector.score(far) > detector.score(reference).max()).all()
    loaded = Detector.load(detector.save(tmp_path / "saved"))
    np.testing.assert_array_equal(loaded.score(far), detector.score(far))
    with pytest.raises(ValueError, match="mean_distance: expected 4 features, got 3"):
        loaded.score(FeatureBatch(rng.normal(size=(5, 3))))

    config = tmp_path / "monitors.yaml"
    config.write_text(textwrap.dedent("""
        monitors:
          - name: fraud
            model: {format: precomputed, feature_columns: [a, b]}
            source: {landing: landing, input_columns: [a, b]}
            reference: {path: ref.parquet}
            detectors: [{name: mean_distance}]
    """))
    (monitor,) = load_monitors(config)
    assert [d.name for d in monitor.detectors] == ["mean_distance"]


def test_an_entry_point_under_another_name_is_one_line(plugin_path: Path) -> None:
    install(plugin_path, "driftwatch_plugin_misnamed", "centroid = driftwatch_plugin_misnamed:MeanDistanceDetector")
    with pytest.raises(ValueError) as info:
        get_detector("centroid")
    assert str(info.value) == (
        "entry point 'centroid = driftwatch_plugin_misnamed:MeanDistanceDetector' "
        "(driftwatch.detectors): the class's name is 'mean_distance'"
    )


def test_an_unknown_detector_fails_at_config_load(tmp_path: Path) -> None:
    config = tmp_path / "monitors.yaml"
    config.write_text(textwrap.dedent("""
        monitors:
          - name: fraud
            model: {format: precomputed, feature_columns: [a]}
            source: {landing: landing, input_columns: [a]}
            reference: {path: ref.parquet}
            detectors: [{name: knm}]
    """))
    with pytest.raises(ConfigError) as info:
        load_monitors(config)
    line = str(info.value)
    assert "monitors.0.detectors.0.name" in line and "unknown detector 'knm' (known: " in line
    assert "\n" not in line
