"""Settings from the environment and the monitor config (YAML).

``Settings`` says where driftwatch keeps things (``DRIFT_HOME``), which
database holds the event store (``DRIFT_DATABASE_URL``) and which monitor
config to read (``DRIFT_CONFIG``). A monitor config lists the models to watch;
each block names the model file, the reference data, the landing folder of the
nightly batches and the input columns. A wrong key or type fails with one line
naming it.
"""

from __future__ import annotations

import os
import re
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, Literal, overload

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from drift.alerts import AlertSettings
from drift.gate import GateSettings
from drift.safe_yaml import UnsafeYAMLError, read_yaml

DEMO_CONFIG = "demo_monitor.yaml"


class ConfigError(ValueError):
    """The monitor config is missing or invalid; the message names the key."""


class Settings(BaseSettings):
    """Process settings, read from ``DRIFT_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="DRIFT_", extra="ignore")

    home: Path = Path(".drift")
    database_url: str | None = None
    config: Path | None = None
    num_threads: int | None = None

    @property
    def db_url(self) -> str:
        from drift.store.db import normalise_url

        if not self.database_url:
            return f"sqlite:///{self.home.resolve() / 'drift.db'}"
        try:
            return normalise_url(self.database_url)
        except ValueError as exc:
            raise ConfigError(f"DRIFT_DATABASE_URL: {exc}") from None

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def config_path(self) -> Path:
        """``DRIFT_CONFIG``, else the demo monitor shipped with driftwatch."""
        if self.config is not None:
            return self.config
        return Path(str(resources.files("drift") / DEMO_CONFIG))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSpec(_Strict):
    """How to get ``(features, logits)`` for a batch.

    ``export``: a ``torch.export`` program (``.pt2``); ``torchscript``: a
    TorchScript file; ``entrypoint``: ``"package.module:function"`` returning a
    module; ``precomputed``: the batch already holds the embedding and logit
    columns (``feature_columns``, ``logit_columns``).
    """

    format: Literal["export", "torchscript", "entrypoint", "precomputed"]
    path: Path | None = None
    entrypoint: str | None = None
    feature_columns: list[str] | None = None
    logit_columns: list[str] | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch_size: int = Field(default=4096, gt=0)

    @model_validator(mode="after")
    def _needs_what_format_uses(self) -> ModelSpec:
        needed = {
            "export": ["path"],
            "torchscript": ["path"],
            "entrypoint": ["entrypoint"],
            "precomputed": ["feature_columns"],
        }[self.format]
        for key in needed:
            if getattr(self, key) is None:
                raise ValueError(f"format '{self.format}' needs '{key}'")
        if self.entrypoint is not None and not re.fullmatch(r"[\w.]+:\w+", self.entrypoint):
            raise ValueError(
                f"entrypoint must look like 'package.module:function', got {self.entrypoint!r}"
            )
        return self


class SourceSpec(_Strict):
    """Where the nightly rows come from: files under ``landing`` or a ``sql`` query.

    ``landing`` is a local folder or a URL that fsspec reads (``s3://``,
    ``gs://``, ``abfs://``, ``file://``; credentials and settings such as
    ``AWS_ENDPOINT_URL`` come from the environment); the night is every
    ``format`` file under ``<landing>/<partition>``, where ``partition`` formats
    the date (``ds={date}``, ``{date:%Y/%m/%d}``). ``sql`` takes ``:batch_date``
    and runs on ``url`` (a SQLAlchemy URL, ``${VAR}`` expanded at connect time),
    its rows ordered by ``order_by`` (default: ``id_column``), a unique key.
    """

    landing: Path | str | None = None
    format: Literal["parquet", "csv"] = "parquet"
    partition: str = "ds={date}"
    sql: str | None = None
    url: str | None = None
    order_by: str | None = None
    input_columns: list[str] = Field(min_length=1)
    #: string, integer or UUID; kept with the per-row scores and matched with feedback labels
    id_column: str | None = None
    #: inputs larger in magnitude fail the night: a finite float32 near its limit
    #: (1e38) overflows the model's sums and the detectors' distances
    max_abs_value: float = Field(1e15, gt=0)

    @model_validator(mode="after")
    def _one_kind_of_source(self) -> SourceSpec:
        if (self.landing is None) == (self.sql is None):
            raise ValueError(
                "give either 'landing' (files) or 'sql' (a query), not both or neither"
            )
        if self.sql is not None:
            if self.url is None:
                raise ValueError("'sql' needs 'url' (a SQLAlchemy URL)")
            if ":batch_date" not in self.sql:
                raise ValueError("'sql' must take the night as :batch_date")
            if (self.order_by or self.id_column) is None:
                raise ValueError("'sql' needs 'order_by' or 'id_column' (a unique key to shard on)")
        try:
            formatted = self.partition.format(date=date(2001, 2, 3))
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"partition {self.partition!r} is not a date pattern ({exc})"
            ) from None
        if formatted == self.partition:
            raise ValueError(
                f"partition {self.partition!r} must contain {{date}} or {{date:FORMAT}}"
            )
        return self


class CalibrationWindow(_Strict):
    """Landed production nights ``start``..``end`` (inclusive) that the user declares clean."""

    start: date
    end: date

    @model_validator(mode="after")
    def _ordered(self) -> CalibrationWindow:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self

    def label(self) -> str:
        """``2026-11-01..2026-11-10``"""
        return f"{self.start.isoformat()}..{self.end.isoformat()}"


class ReferenceSpec(_Strict):
    """The in-distribution reference: a parquet file with the input columns
    (and a label column for class-conditional detectors).

    Thresholds are fitted, in order of preference, on ``calibration_nights``
    (production nights declared clean; the whole reference is then the bank),
    on ``calibration_path`` (rows the model never trained on), or on a held-out
    share ``calibration_fraction`` of the reference.
    """

    #: a local path or an fsspec URL (``s3://bucket/reference.parquet``)
    path: Path | str
    label_column: str | None = None
    #: rows for thresholds only, in no detector bank; best: rows the model never trained on
    calibration_path: Path | str | None = None
    #: without calibration_path: share of reference rows held out of every bank for calibration
    calibration_fraction: float = Field(default=0.3, gt=0.0, lt=1.0)
    #: landed production nights, declared clean, whose rows fit the thresholds at `drift fit`
    calibration_nights: CalibrationWindow | None = None
    seed: int = 0

    @model_validator(mode="after")
    def _one_calibration_source(self) -> ReferenceSpec:
        if self.calibration_nights is not None and self.calibration_path is not None:
            raise ValueError("give either 'calibration_path' or 'calibration_nights', not both")
        return self


class DetectorSpec(_Strict):
    """A detector by its registered name (built-in or from a ``driftwatch.detectors`` entry point)."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        from drift.detectors import detector_class

        detector_class(name)  # one line naming the known detectors if not
        return name

    @model_validator(mode="after")
    def _valid_params(self) -> DetectorSpec:
        from drift.detectors.validation import validate_params

        self.params = validate_params(self.name, self.params)
        return self


#: model formats whose parameters adaptation can train and export again
TRAINABLE_FORMATS = ("export", "entrypoint")
#: what to do about a model format adaptation cannot train
UNTRAINABLE_FIX = {
    "torchscript": "export the model with torch.export (format: export) or give an entrypoint",
    "precomputed": "precomputed features have no model to train; give the model (export or entrypoint)",
}


class AdaptationSettings(_Strict):
    """What the adaptation DAG does with a confirmed shift (docs/methods.md §5)."""

    #: default: on where ``model.format`` can be trained (:data:`TRAINABLE_FORMATS`), else off
    enabled: bool | None = None
    #: candidates tried on a confirmed shift; ``auto`` trains every applicable one and
    #: promotes the best that passes the no-regression gate
    method: Literal["auto", "mol", "ear", "finetune"] = "auto"
    #: feedback-labelled rows of the shifted nights needed before an adaptation may run
    min_labels: int = Field(default=50, ge=1)
    #: "package.module:factory" returning shift_fn(rows, rng) that simulates shifts of the
    #: reference for MOL meta-training; default: Gaussian input noise of random strength
    meta_shift: str = "drift.adapt.shifts:gaussian_noise"
    meta_iterations: int = Field(default=150, ge=1)
    inner_steps: int = Field(default=5, ge=1)
    inner_lr: float = Field(default=0.02, gt=0)
    #: parameter budget of an EAR adaptor: the NAS proxy's best candidate within it is trained
    ear_max_params: int = Field(default=50_000, ge=1)
    #: the candidate may lose at most this much accuracy on old-domain rows
    max_old_domain_drop: float = Field(default=0.02, ge=0)
    #: labels files land in <feedback_landing>/<source.partition> (the day they land); the
    #: drift_feedback DAG imports them (docs/methods.md §4, shift typing)
    feedback_landing: Path | None = None


class MonitorConfig(_Strict):
    """One monitored model: one nightly DAG, one row in ``monitored_models``."""

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    model: ModelSpec
    source: SourceSpec
    reference: ReferenceSpec
    detectors: list[DetectorSpec] = Field(
        default_factory=lambda: [DetectorSpec(name="knn"), DetectorSpec(name="energy")],
        min_length=1,
    )
    #: share of in-distribution rows each detector's threshold lets pass
    tpr: float = Field(default=0.95, gt=0.5, lt=1.0)
    #: cron expression of the nightly DAG
    schedule: str = "0 2 * * *"
    #: first night the nightly DAG runs (and catches up from); default: the DAG files' own
    start_date: date | None = None
    #: rows per mapped `score` task in Airflow
    shard_rows: int = Field(default=20_000, gt=0)
    gate: GateSettings = Field(default_factory=GateSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    adaptation: AdaptationSettings = Field(default_factory=AdaptationSettings)

    @model_validator(mode="after")
    def _adapt_only_trainable_formats(self) -> MonitorConfig:
        trainable = self.model.format in TRAINABLE_FORMATS
        if self.adaptation.enabled is None:
            self.adaptation.enabled = trainable
        elif self.adaptation.enabled and not trainable:
            raise ValueError(
                f"adaptation.enabled is true but a {self.model.format} model cannot be adapted: "
                f"{UNTRAINABLE_FIX[self.model.format]}"
            )
        return self

    @field_validator("detectors")
    @classmethod
    def _unique_detectors(cls, value: list[DetectorSpec]) -> list[DetectorSpec]:
        names = [d.name for d in value]
        if len(set(names)) != len(names):
            raise ValueError(f"detector names must be unique, got {names}")
        return value

    @model_validator(mode="after")
    def _detectors_get_what_they_need(self) -> MonitorConfig:
        from drift.detectors import detector_class

        for spec in self.detectors:
            for need in detector_class(spec.name).needs:
                missing = self._missing_input(need)
                if missing:
                    raise ValueError(f"monitor '{self.name}': detector '{spec.name}' needs {need}: {missing}")
        return self

    def _missing_input(self, need: str) -> str | None:
        """What to set so detectors get ``need``, or None when the config provides it."""
        if need == "logits" and self.model.format == "precomputed" and not self.model.logit_columns:
            return "set model.logit_columns (a precomputed model gives no logits without them)"
        if need == "labels" and self.reference.label_column is None:
            return "set reference.label_column"
        return None


class MonitorsFile(_Strict):
    #: folder that relative paths are resolved against (default: the config's folder);
    #: ``${VAR}`` environment references are expanded
    base_dir: str | None = None
    monitors: list[MonitorConfig] = Field(min_length=1)

    @field_validator("monitors")
    @classmethod
    def _unique_names(cls, monitors: list[MonitorConfig]) -> list[MonitorConfig]:
        # a monitor's name keys its rows, artifacts and DAG: two would share them
        seen: set[str] = set()
        for monitor in monitors:
            if monitor.name in seen:
                raise ValueError(f"two monitors are named '{monitor.name}'")
            seen.add(monitor.name)
        return monitors


def _describe(error: ValidationError) -> str:
    # an unknown key is usually a typo, and the cause of any "field required" beside it
    first = min(error.errors(), key=lambda e: e["type"] != "extra_forbidden")
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    kind = first["type"]
    message = "unknown key" if kind == "extra_forbidden" else first["msg"]
    return f"{where}: {message}"


def _resolve_paths(monitor: MonitorConfig, base: Path) -> MonitorConfig:
    @overload
    def resolve(path: None) -> None: ...
    @overload
    def resolve(path: Path | str) -> Path | str: ...
    def resolve(path: Path | str | None) -> Path | str | None:
        if path is None:
            return None
        if "://" in str(path):  # a URL, read through fsspec
            return os.path.expandvars(str(path))
        path = Path(os.path.expandvars(str(path)))
        return path if path.is_absolute() else base / path

    monitor.source.landing = resolve(monitor.source.landing)
    monitor.reference.path = resolve(monitor.reference.path)
    monitor.reference.calibration_path = resolve(monitor.reference.calibration_path)
    if monitor.adaptation.feedback_landing is not None:
        monitor.adaptation.feedback_landing = Path(resolve(monitor.adaptation.feedback_landing))
    if monitor.model.path is not None:  # a model file is local (it is checked before loading)
        monitor.model.path = Path(resolve(monitor.model.path))
    return monitor


def load_monitors(
    path: str | os.PathLike | None = None, settings: Settings | None = None
) -> list[MonitorConfig]:
    """Read and validate a monitor config; relative paths resolve against its ``base_dir``."""
    settings = settings or Settings()
    path = Path(path) if path is not None else settings.config_path
    if not path.is_file():
        raise ConfigError(f"{path}: monitor config not found")
    try:
        raw = read_yaml(path)
    except UnsafeYAMLError as exc:
        raise ConfigError(str(exc)) from None
    os.environ.setdefault("DRIFT_HOME", str(settings.home))
    try:
        parsed = MonitorsFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_describe(exc)}") from None
    base = Path(os.path.expandvars(parsed.base_dir)) if parsed.base_dir else path.parent
    return [_resolve_paths(m, base.resolve()) for m in parsed.monitors]


def get_monitor(
    name: str, path: str | os.PathLike | None = None, settings: Settings | None = None
) -> MonitorConfig:
    monitors = load_monitors(path, settings)
    for monitor in monitors:
        if monitor.name == name:
            return monitor
    known = ", ".join(m.name for m in monitors)
    raise ConfigError(f"no monitor named '{name}' (configured: {known})")
