"""Hostile and wrong input, as a user meets it: a real `drift` process, one line on stderr.

No code runs from a model file (malicious pickles, guards and operator targets
inside a ``.pt2`` are refused before torch reads them), YAML alias bombs are
refused at config load, and wrong models, detectors, databases and reference
files fail with one line naming the thing instead of a traceback.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import time
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from drift.config import ConfigError, load_monitors
from drift.model_files import ModelFileError, read_export_archive

COLUMNS = ["x0", "x1", "x2", "x3"]
NIGHT = "2026-11-01"


class _Net(torch.nn.Module):
    def __init__(self, width: int = 4):
        super().__init__()
        self.body = torch.nn.Linear(width, 8)
        self.head = torch.nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = torch.relu(self.body(x))
        return features, self.head(features)


class _Marker:
    """Unpickling this touches a marker file: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _export(path: Path, width: int = 4) -> Path:
    torch.manual_seed(0)
    program = torch.export.export(
        _Net(width).eval(), (torch.randn(8, width),),
        dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
    )
    torch.export.save(program, str(path))
    return path


def _rewrite(
    source: Path,
    target: Path,
    change: Callable[[str, bytes], bytes] = lambda name, data: data,
    extra: dict[str, bytes] | None = None,
) -> Path:
    """Copy a torch archive, passing each record (name below the top folder) through
    ``change`` and adding the records ``extra``."""
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(target, "w") as out:
        top = archive.namelist()[0].split("/", 1)[0]
        for info in archive.infolist():
            out.writestr(info, change(info.filename.split("/", 1)[1], archive.read(info)))
        for name, data in (extra or {}).items():
            out.writestr(f"{top}/{name}", data)
    return target


def _record(archive: Path, name: str) -> bytes:
    with zipfile.ZipFile(archive) as opened:
        return opened.read(opened.namelist()[0].split("/", 1)[0] + "/" + name)


def _torch_saved(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.fixture
def world(tmp_path: Path) -> dict:
    """A tiny monitor: 4-input model, a 300-row reference, one night, a config and a runner."""
    rng = np.random.default_rng(0)
    reference = pd.DataFrame(rng.normal(size=(300, 4)).astype(np.float32), columns=COLUMNS)
    reference["label"] = rng.integers(0, 3, size=300)
    reference.to_parquet(tmp_path / "reference.parquet")
    night = tmp_path / "landing" / f"ds={NIGHT}"
    night.mkdir(parents=True)
    reference[COLUMNS].head(100).to_parquet(night / "part-0.parquet")
    _export(tmp_path / "model.pt2")
    monitor = {
        "name": "tiny",
        "model": {"format": "export", "path": "model.pt2", "device": "cpu"},
        "source": {"landing": "landing", "input_columns": COLUMNS},
        "reference": {"path": "reference.parquet"},
        "detectors": [{"name": "knn", "params": {"k": 5}}, {"name": "energy"}],
    }
    config = tmp_path / "monitors.yaml"
    env = {
        **os.environ,
        "DRIFT_HOME": str(tmp_path / "home"),
        "DRIFT_DATABASE_URL": f"sqlite:///{tmp_path / 'drift.db'}",
        "DRIFT_CONFIG": str(config),
    }

    def configure(**changes: object) -> Path:
        document = json.loads(json.dumps(monitor))
        for dotted, value in changes.items():
            *parents, key = dotted.split("__")
            node = document
            for parent in parents:
                node = node[int(parent)] if parent.isdigit() else node[parent]
            node[key] = value
        config.write_text(yaml.safe_dump({"monitors": [document]}))
        return config

    def drift(*args: str, url: str | None = None) -> subprocess.CompletedProcess:
        run_env = env if url is None else {**env, "DRIFT_DATABASE_URL": url}
        return subprocess.run(
            [sys.executable, "-m", "drift.cli", *args],
            env=run_env, capture_output=True, text=True, timeout=300,
        )

    configure()
    return {"dir": tmp_path, "configure": configure, "drift": drift, "config": config}


def _one_line_error(result: subprocess.CompletedProcess, *needles: str, night: bool = False) -> str:
    """The one error line; a failed night also logs its recorded failure and alert (one line each)."""
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    if night:
        assert "Traceback" not in result.stderr, result.stderr
        lines = [line for line in lines if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# -- no code runs from a model file ------------------------------------------------------------------


def test_model_files_load_without_unpickling_arbitrary_objects(world):
    """The README's promise: a .pt2 whose sample inputs pickle runs code is refused at fit and run."""
    folder = world["dir"]
    marker = folder / "pwned"
    assert world["drift"]("init").returncode == 0
    assert world["drift"]("fit").returncode == 0  # the honest model

    evil = _torch_saved({"x": _Marker(marker)})
    _rewrite(folder / "model.pt2", folder / "evil.pt2",
             lambda name, data: evil if name == "data/sample_inputs/model.pt" else data)
    os.replace(folder / "evil.pt2", folder / "model.pt2")

    for command in (["fit"], ["run", "--date", NIGHT]):
        result = world["drift"](*command)
        _one_line_error(result, "model.pt2", "data/sample_inputs/model.pt", "posix.system",
                        night=command[0] == "run")
        assert not marker.exists(), f"`drift {command[0]}` ran code from the model file"


def _pickled_weight(honest: Path, payload: bytes) -> Callable[[str, bytes], bytes]:
    """Mark ``body.weight`` as a pickled payload and put ``payload`` in its record."""
    config = json.loads(_record(honest, "data/weights/model_weights_config.json"))
    config["config"]["body.weight"]["use_pickle"] = True
    record = "data/weights/" + config["config"]["body.weight"]["path_name"]

    def change(name: str, data: bytes) -> bytes:
        if name == "data/weights/model_weights_config.json":
            return json.dumps(config).encode()
        return payload if name == record else data

    return change


def _opaque_constant(name: str, data: bytes) -> bytes:
    if name == "data/constants/model_constants_config.json":
        config = {"config": {"evil": {"path_name": "opaque_obj_0", "is_param": False, "use_pickle": True}}}
        return json.dumps(config).encode()
    return data


def _guard(name: str, data: bytes, marker: Path) -> bytes:
    if name == "models/model.json":
        program = json.loads(data)
        program["guards_code"] = [f"__import__('os').system('touch {marker}') == 0"]
        return json.dumps(program).encode()
    return data


@pytest.mark.parametrize("attack", ["pickled_weight", "opaque_constant", "guard", "operator_target", "aotinductor"])
def test_every_way_a_pt2_runs_code_is_refused(tmp_path, attack):
    from drift.config import ModelSpec
    from drift.embed import Embedder

    marker = tmp_path / "pwned"
    honest = _export(tmp_path / "honest.pt2")
    change, extra = {
        "pickled_weight": (_pickled_weight(honest, _torch_saved(_Marker(marker))), None),
        "opaque_constant": (
            _opaque_constant, {"data/constants/opaque_obj_0": pickle.dumps(_Marker(marker))}
        ),
        "guard": (lambda n, d: _guard(n, d, marker), None),
        "operator_target": (
            lambda n, d: d.replace(b'"torch.ops.aten.relu.default"', b'"torch.os.system"'), None
        ),
        "aotinductor": (lambda n, d: d, {"data/aotinductor/model/model.so": b"\x7fELF"}),
    }[attack]
    model = _rewrite(honest, tmp_path / "model.pt2", change, extra)
    spec = ModelSpec(format="export", path=model, device="cpu")
    with pytest.raises(ModelFileError, match="model.pt2") as caught:
        Embedder(spec, COLUMNS).embed_array(np.zeros((2, 4), dtype=np.float32))
    assert "\n" not in str(caught.value)
    assert not marker.exists()


def test_the_guard_attack_runs_code_when_torch_loads_it_unchecked(tmp_path):
    """Why guards are checked: ``.module()`` compiles them with exec() and runs them on every call."""
    marker = tmp_path / "pwned"
    model = _rewrite(_export(tmp_path / "honest.pt2"), tmp_path / "model.pt2",
                     lambda n, d: _guard(n, d, marker))
    torch.export.load(str(model)).module()(torch.zeros(2, 4))
    assert marker.exists()


def test_honest_models_pass_the_check(tmp_path):
    """Static and dynamic batch dimensions (symbolic expressions, range constraints) both load."""
    static = torch.export.export(_Net().eval(), (torch.randn(2, 4),))
    torch.export.save(static, str(tmp_path / "static.pt2"))
    for model in (tmp_path / "static.pt2", _export(tmp_path / "dynamic.pt2")):
        assert read_export_archive(model) == model.read_bytes()


@pytest.mark.parametrize("given_as", ["export", "torchscript"])
def test_a_plain_pickle_as_a_model_runs_nothing(world, given_as):
    folder = world["dir"]
    marker = folder / "pwned"
    (folder / "model.bin").write_bytes(pickle.dumps(_Marker(marker)))
    world["configure"](model__format=given_as, model__path="model.bin")
    _one_line_error(world["drift"]("fit"), "model.bin")
    assert not marker.exists()


# -- one line instead of a traceback --------------------------------------------------------------------


def test_torchscript_given_as_export_and_export_as_torchscript(world):
    folder = world["dir"]
    torch.jit.save(torch.jit.script(_Net()), str(folder / "model.ts"))
    world["configure"](model__path="model.ts")
    _one_line_error(world["drift"]("fit"), "model.ts", "TorchScript", "format: torchscript")
    world["configure"](model__format="torchscript")
    _one_line_error(world["drift"]("fit"), "model.pt2", "torch.export", "format: export")


def test_model_of_the_wrong_input_width_fails_fit_in_one_line(world):
    _export(world["dir"] / "model.pt2", width=5)
    _one_line_error(world["drift"]("fit"), "tiny", "model.pt2", "4 input columns", "x0, x1, x2, x3")


@pytest.mark.parametrize(
    ("detectors", "needles"),
    [
        ([{"name": "knnn"}], ["detectors.0", "unknown detector 'knnn'", "known: energy"]),
        ([{"name": "knn", "params": {"k": "many"}}], ["detectors.0", "'k' must be int", "'many'"]),
        ([{"name": "knn", "params": {"kk": 5}}], ["detectors.0", "unknown parameter 'kk'"]),
        ([{"name": "mahalanobis", "params": {"normalise": [1, 2]}}], ["'normalise' must be bool"]),
    ],
)
def test_bad_detector_config_fails_at_load_in_one_line(world, detectors, needles):
    world["configure"](detectors=detectors)
    result = world["drift"]("fit")
    _one_line_error(result, "monitors.yaml", *needles)
    assert result.returncode == 2  # a config error


def test_k_larger_than_the_bank_fails_fit_in_one_line(world):
    world["configure"](detectors=[{"name": "knn", "params": {"k": 5000}}])
    _one_line_error(world["drift"]("fit"), "tiny", "k=5000", "bank size")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_fails_in_one_line(world):
    world["configure"](model__device="cuda")
    _one_line_error(world["drift"]("fit"), "model.device is 'cuda'", "no CUDA device")


def test_a_reference_that_is_not_parquet_fails_in_one_line(world):
    folder = world["dir"]
    pd.read_parquet(folder / "reference.parquet").to_csv(folder / "reference.csv")
    world["configure"](reference__path="reference.csv")
    _one_line_error(world["drift"]("fit"), "reference.csv", "not a readable parquet file")


def test_mysql_url_is_refused_in_one_line(world):
    result = world["drift"]("init", url="mysql://root@127.0.0.1:3306/drift")
    _one_line_error(result, "DRIFT_DATABASE_URL", "unsupported database 'mysql'", "PostgreSQL or SQLite")


@pytest.mark.postgres
def test_postgres_scheme_is_accepted_as_postgresql(world, postgres_url):
    from sqlalchemy.engine import make_url

    url = make_url(postgres_url).set(drivername="postgres").render_as_string(hide_password=False)
    assert url.startswith("postgres://")
    result = world["drift"]("init", url=url)
    assert result.returncode == 0, result.stderr
    assert world["drift"]("fit", url=url).returncode == 0


# -- YAML bombs -------------------------------------------------------------------------------------------

BOMB = """\
monitors:
  - name: tiny
    model: {format: export, path: model.pt2}
    source: {landing: landing, input_columns: [x0]}
    reference: {path: reference.parquet}
    detectors:
      - name: mahalanobis
        params:
          normalise: &j [&i [&h [&g [&f [&e [&d [&c [&b [&a [x,x,x,x,x,x,x,x,x],
            *a,*a,*a,*a,*a,*a,*a,*a],*b,*b,*b,*b,*b,*b,*b,*b],*c,*c,*c,*c,*c,*c,*c,*c],
            *d,*d,*d,*d,*d,*d,*d,*d],*e,*e,*e,*e,*e,*e,*e,*e],*f,*f,*f,*f,*f,*f,*f,*f],
            *g,*g,*g,*g,*g,*g,*g,*g],*h,*h,*h,*h,*h,*h,*h,*h],*i,*i,*i,*i,*i,*i,*i,*i]
"""


def test_yaml_bomb_fails_fast_with_little_memory(tmp_path):
    config = tmp_path / "bomb.yaml"
    config.write_text(BOMB)
    assert len(BOMB) < 1000  # 9^10 ≈ 3.5e9 scalars once expanded
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(ConfigError, match="expands to more than 100000 YAML nodes"):
        load_monitors(config)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert time.perf_counter() - started < 5
    assert peak < 50 * 2**20


def test_yaml_bomb_through_the_cli_is_one_line(world):
    world["config"].write_text(BOMB)
    result = world["drift"]("fit")
    _one_line_error(result, "monitors.yaml", "YAML nodes")
    assert result.returncode == 2


def test_recursive_alias_and_oversized_config_are_refused(tmp_path):
    recursive = tmp_path / "recursive.yaml"
    recursive.write_text("monitors: &m [*m]\n")
    with pytest.raises(ConfigError, match="recursive YAML alias at line 1"):
        load_monitors(recursive)
    big = tmp_path / "big.yaml"
    big.write_text("# padding\n" * 200_000)
    with pytest.raises(ConfigError, match="more than a monitor config may hold"):
        load_monitors(big)


def test_invalid_yaml_is_one_line_with_its_position(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("monitors:\n  - name: [unclosed\n")
    with pytest.raises(ConfigError) as caught:
        load_monitors(broken)
    assert "\n" not in str(caught.value)
    assert "not valid YAML at line" in str(caught.value)
