"""Monitor config: a wrong key or type is one clear line naming the key."""

from __future__ import annotations

import textwrap

import pytest

from drift.config import ConfigError, Settings, load_monitors

VALID = """
monitors:
  - name: fraud
    model: {format: torchscript, path: models/fraud.ts}
    source: {landing: landing/fraud, input_columns: [amount, age]}
    reference: {path: ref/fraud.parquet, label_column: label}
"""


def write(tmp_path, text):
    path = tmp_path / "monitors.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_valid_config_resolves_paths_against_its_folder(tmp_path):
    (monitor,) = load_monitors(write(tmp_path, VALID))
    assert monitor.model.path == tmp_path / "models/fraud.ts"
    assert monitor.source.landing == tmp_path / "landing/fraud"
    assert [d.name for d in monitor.detectors] == ["knn", "energy"]  # defaults
    assert monitor.tpr == 0.95


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("tpr: 0.95", "tpr: 0.95\n    thresold: 3"), "monitors.0.thresold: unknown key"),
        (("input_columns: [amount, age]", "input_columns: 7"), "monitors.0.source.input_columns"),
        (("format: torchscript, path: models/fraud.ts", "format: torchscript"), "needs 'path'"),
        (("name: fraud", "name: Fraud Model"), "monitors.0.name"),
        (("format: torchscript", "format: onnx"), "monitors.0.model.format"),
    ],
)
def test_invalid_config_names_the_key(tmp_path, edit, message):
    text = VALID.replace("reference:", "tpr: 0.95\n    reference:")
    old, new = edit
    assert old in text
    with pytest.raises(ConfigError) as info:
        load_monitors(write(tmp_path, text.replace(old, new)))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_config_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_monitors(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_monitors(write(tmp_path, "monitors: [\n"))


def test_settings_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DRIFT_HOME", str(tmp_path))
    monkeypatch.delenv("DRIFT_DATABASE_URL", raising=False)
    monkeypatch.delenv("DRIFT_CONFIG", raising=False)
    settings = Settings()
    assert settings.db_url == f"sqlite:///{tmp_path.resolve() / 'drift.db'}"
    assert settings.config_path.name == "demo_monitor.yaml"  # the shipped demo monitor
    monkeypatch.setenv("DRIFT_DATABASE_URL", "postgresql+psycopg2://u@h/db")
    assert Settings().db_url == "postgresql+psycopg2://u@h/db"


def test_shipped_demo_config_is_valid(monkeypatch, tmp_path):
    monkeypatch.setenv("DRIFT_HOME", str(tmp_path))
    (monitor,) = load_monitors(Settings().config_path)
    assert monitor.name == "digits_demo"
    assert monitor.model.path == tmp_path.resolve() / "demo" / "model.pt2"
    assert len(monitor.source.input_columns) == 64


def test_adaptation_default_follows_the_model_format(tmp_path):
    exported = VALID.replace("format: torchscript, path: models/fraud.ts", "format: export, path: m.pt2")
    (torchscript,) = load_monitors(write(tmp_path, VALID))
    (export,) = load_monitors(write(tmp_path, exported))
    assert torchscript.adaptation.enabled is False
    assert export.adaptation.enabled is True
    assert export.adaptation.method == "auto"
    text = VALID.replace("reference:", "adaptation: {enabled: false}\n    reference:")
    (off,) = load_monitors(write(tmp_path, text.replace("format: torchscript, path: models/fraud.ts",
                                                         "format: export, path: m.pt2")))
    assert off.adaptation.enabled is False


@pytest.mark.parametrize(
    ("model", "fix"),
    [
        ("format: torchscript, path: models/fraud.ts", "export the model with torch.export"),
        ("format: precomputed, feature_columns: [e0]", "precomputed features have no model"),
    ],
)
def test_enabling_adaptation_of_an_untrainable_model_is_refused(tmp_path, model, fix):
    text = VALID.replace("format: torchscript, path: models/fraud.ts", model)
    text = text.replace("reference:", "adaptation: {enabled: true}\n    reference:")
    with pytest.raises(ConfigError) as info:
        load_monitors(write(tmp_path, text))
    message = str(info.value)
    assert "adaptation.enabled" in message and fix in message and "\n" not in message


def test_unknown_adaptation_method_names_the_key(tmp_path):
    text = VALID.replace("reference:", "adaptation: {method: magic}\n    reference:")
    with pytest.raises(ConfigError, match="monitors.0.adaptation.method"):
        load_monitors(write(tmp_path, text))


TOKEN = "T0KEN-s3cr3t-9f8e7d"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"http://[::1/services/{TOKEN}", "not a valid URL (Invalid IPv6 URL)"),
        (f"https://hooks.example.org/services/T0\t{TOKEN}", "whitespace or a control character"),
        (f"hooks.example.org/services/{TOKEN}", "not an http(s) URL with a host"),
    ],
)
def test_a_malformed_webhook_url_fails_at_load_without_quoting_it(tmp_path, url, message):
    text = VALID + f"    alerts: {{webhook: {{url: {url!r}}}}}\n".replace("\t", "\\t")
    text = text.replace(f"url: {url!r}".replace("\t", "\\t"), f'url: "{url.encode("unicode_escape").decode()}"')
    with pytest.raises(ConfigError) as info:
        load_monitors(write(tmp_path, text))
    line = str(info.value)
    assert "monitors.0.alerts.webhook.url" in line and message in line
    assert "\n" not in line and TOKEN not in line


PRECOMPUTED = """
monitors:
  - name: fraud
    model: {format: precomputed, feature_columns: [e0, e1]}
    source: {landing: landing/fraud, input_columns: [amount, age]}
    reference: {path: ref/fraud.parquet}
    detectors: [{name: DETECTOR}]
"""


@pytest.mark.parametrize(
    ("detector", "message"),
    [
        ("energy", "detector 'energy' needs logits: set model.logit_columns"),
        ("msp", "detector 'msp' needs logits: set model.logit_columns"),
        ("mahalanobis", "detector 'mahalanobis' needs labels: set reference.label_column"),
        ("hdc", "detector 'hdc' needs labels: set reference.label_column"),
    ],
)
def test_a_detector_without_what_it_needs_fails_at_load(tmp_path, detector, message):
    with pytest.raises(ConfigError) as info:
        load_monitors(write(tmp_path, PRECOMPUTED.replace("DETECTOR", detector)))
    line = str(info.value)
    assert "monitors.0" in line and f"monitor 'fraud': {message}" in line and "\n" not in line
    fixed = PRECOMPUTED.replace("DETECTOR", detector).replace(
        "feature_columns: [e0, e1]", "feature_columns: [e0, e1], logit_columns: [l0, l1]"
    ).replace("path: ref/fraud.parquet", "path: ref/fraud.parquet, label_column: label")
    (monitor,) = load_monitors(write(tmp_path, fixed))
    assert monitor.detectors[0].name == detector


def test_defaults_are_the_documented_ones(tmp_path):
    """The values README's config example and docs/methods.md's [brackets] give for a key
    left out: adaptation (README "Point it at your own model"), the gate's rules (§3.7, §4.1)."""
    exported = VALID.replace("format: torchscript, path: models/fraud.ts", "format: export, path: m.pt2")
    (monitor,) = load_monitors(write(tmp_path, exported))
    adaptation = monitor.adaptation
    assert (adaptation.method, adaptation.min_labels, adaptation.ear_max_params) == ("auto", 50, 50_000)
    assert adaptation.meta_shift == "drift.adapt.shifts:gaussian_noise"
    assert (adaptation.meta_iterations, adaptation.inner_steps, adaptation.inner_lr) == (150, 5, 0.02)
    assert adaptation.max_old_domain_drop == 0.02
    assert adaptation.feedback_landing is None  # no drift_feedback imports until it is set
    gate = monitor.gate
    assert gate.max_accuracy_drop == 0.05
    assert (gate.min_excess_rate, gate.min_deficit_rate, gate.step_z) == (0.01, 0.03, 4.0)
    assert (gate.recent_lag, gate.gradual_r, gate.gradual_w) == (7, 7, 14)
    assert gate.input_events is True and gate.input_share == 0.25
    # §4.1 item 4: the budget split at these defaults
    assert gate.persistence_false_rate() == pytest.approx(3e-4)
    assert gate.input_level() == pytest.approx(6.8e-4, abs=0.05e-4)
