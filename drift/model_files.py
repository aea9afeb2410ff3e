"""Model files are checked before torch reads them: no code runs from a model file.

``torch.export.load`` unpickles parts of a ``.pt2`` archive and, when the
weights-only unpickler refuses one, retries with ``torch.load(weights_only=False)``
(``torch/_export/serde/serialize.py``, ``torch/export/pt2_archive/_package.py``);
opaque constants go through ``pickle.loads``, AOTInductor parts are native
libraries, and the program's JSON holds strings torch evaluates (guards are
compiled with ``exec`` and run on every call, symbolic expressions go through ``sympy.sympify``, node targets are
looked up as attributes of ``torch``). :func:`read_export_archive` reads the file once, proves every pickle
inside it loads under torch's weights-only unpickler (``torch.load(...,
weights_only=True)``: tensors, containers and the globals torch allows), refuses
the parts that are code (AOTInductor, opaque and TorchBind objects), allows in
the program only operator targets and plain arithmetic expressions, and returns
the checked bytes, so torch loads exactly what was checked.

TorchScript archives are read by the TorchScript unpickler, which resolves no
Python globals; :func:`check_torchscript` only makes sure the file is one.
"""

from __future__ import annotations

import ast
import io
import json
import posixpath
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

#: suffixes of records torch reads with ``torch.load``
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl")
#: record prefixes whose contents are code or arbitrary objects
REFUSED_PREFIXES = {
    "data/aotinductor/": "AOTInductor native code",
    "data/constants/custom_obj_": "a TorchBind object",
    "data/constants/opaque_obj_": "an opaque pickled object",
}


#: node targets a plain exported model uses: operators and symbolic-shape helpers
SAFE_TARGET = re.compile(r"torch\.ops\.[\w.]+|torch\._?sym_\w+|_operator\.\w+|math\.\w+")
#: names in expressions: shape symbols (s0, u12) and CamelCase sympy functions (Max, FloorDiv)
SAFE_NAME = re.compile(r"[a-z]+\d+|[A-Z][A-Za-z]*|True|False|oo|floor|ceiling|sqrt")
GUARD_ATTRIBUTES = {"size", "stride", "storage_offset", "dim", "numel", "shape", "isnan", "inf"}
EXPRESSION_NODES = (
    ast.Expression, ast.Call, ast.keyword, ast.Constant, ast.Tuple, ast.Load,
    ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.operator, ast.unaryop, ast.boolop, ast.cmpop,
)


class ModelFileError(ValueError):
    """A model file is missing, of another format, or holds something that could run code."""


def first_line(exc: BaseException, prefer: str | None = None) -> str:
    """One line of an exception's message (torch's are often many): the first
    containing ``prefer`` if any, else the first; the type name if it is empty."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    preferred = [line for line in lines if prefer and prefer in line]
    return (preferred or lines or [type(exc).__name__])[0]


def _records(path: Path, archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """Records by the name torch's reader sees (below the archive's one top folder)."""
    infos = archive.infolist()
    tops = {info.filename.split("/", 1)[0] for info in infos}
    if len(tops) != 1 or any("/" not in info.filename for info in infos):
        raise ModelFileError(f"{path}: not a torch archive (expected one top-level folder)")
    records = {info.filename.split("/", 1)[1]: info for info in infos if not info.is_dir()}
    if len(records) != sum(not info.is_dir() for info in infos):
        raise ModelFileError(f"{path}: archive holds the same record twice")
    return records


def _open(path: Path, data: bytes) -> tuple[zipfile.ZipFile, dict[str, zipfile.ZipInfo]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ModelFileError(f"{path}: not a torch archive (not a zip file)") from None
    return archive, _records(path, archive)


def _is_torchscript(records: dict[str, zipfile.ZipInfo]) -> bool:
    return "data.pkl" in records and any(name.startswith("code/") for name in records)


def _pickled_payloads(archive: zipfile.ZipFile, records: dict[str, zipfile.ZipInfo]) -> set[str]:
    """Records the payload configs mark ``use_pickle`` (read with ``torch.load`` whatever their name)."""
    names = set()
    for name, info in records.items():
        if name.startswith("data/") and name.endswith("_config.json"):
            config = json.loads(archive.read(info)).get("config", {})
            folder = posixpath.dirname(name)
            names |= {
                posixpath.join(folder, meta["path_name"])
                for meta in config.values()
                if meta.get("use_pickle")
            }
    return names


def _graph_strings(document: object) -> Iterator[tuple[str, str]]:
    """``(kind, text)`` of every string in a serialized program that torch turns into code:
    node targets (resolved by attribute lookup on ``torch``), symbolic expressions
    (``sympy.sympify``, which evaluates them) and guards (compiled by ``.module()``)."""
    if isinstance(document, dict):
        if isinstance(document.get("target"), str) and "inputs" in document:
            yield "target", document["target"]
        if isinstance(document.get("expr_str"), str):
            yield "expression", document["expr_str"]
        for guard in document.get("guards_code") or []:
            yield "guard", guard
        children = list(document.values())
    elif isinstance(document, list):
        children = list(document)
    else:
        return
    for child in children:
        yield from _graph_strings(child)


def _allowed_expression(text: str, guard: bool) -> bool:
    """Whether ``text`` parses to arithmetic, comparisons, calls of sympy-style functions
    and, in guards, ``L['input'].size()[i]``-style reads: nothing that reaches a module."""
    from torch.fx.experimental.symbolic_shapes import SYMPY_INTERP

    if not isinstance(text, str):
        return False
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        return False
    names = set(SYMPY_INTERP) | {"L", "math", "inf"} if guard else set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if not (node.id in names or SAFE_NAME.fullmatch(node.id)):
                return False
        elif isinstance(node, ast.Attribute):
            if not guard or node.attr not in GUARD_ATTRIBUTES:
                return False
        elif isinstance(node, ast.Subscript):
            if not guard:
                return False
        elif not isinstance(node, EXPRESSION_NODES):
            return False
    return True


def _check_program(path: Path, name: str, text: bytes) -> None:
    try:
        document = json.loads(text)
    except ValueError:
        raise ModelFileError(f"{path}: record '{name}' is not valid JSON") from None
    for kind, value in _graph_strings(document):
        allowed = (
            SAFE_TARGET.fullmatch(value) is not None
            if kind == "target"
            else _allowed_expression(value, guard=kind == "guard")
        )
        if not allowed:
            shown = value if len(value) <= 60 else value[:57] + "..."
            raise ModelFileError(f"{path}: record '{name}' has a {kind} that is not allowed: {shown!r}")


def _check_weights_only(path: Path, name: str, payload: bytes) -> None:
    import torch

    try:
        torch.load(io.BytesIO(payload), weights_only=True, map_location="cpu")
    except Exception as exc:
        # the line of torch's message worth showing names the refused global
        raise ModelFileError(
            f"{path}: record '{name}' is not a weights-only pickle, refusing to load it "
            f"({first_line(exc, prefer='GLOBAL')})"
        ) from None


def read_export_archive(path: Path) -> bytes:
    """The bytes of the ``torch.export`` archive at ``path``, once every pickle in it is proven safe.

    Raises :class:`ModelFileError` (one line naming the file and the record) for
    anything else: not a zip, a TorchScript file, an archive with native code,
    opaque objects, or a pickle that needs globals beyond torch's weights-only set.
    """
    data = path.read_bytes()
    archive, records = _open(path, data)
    if _is_torchscript(records):
        raise ModelFileError(f"{path}: is a TorchScript file; set model.format: torchscript")
    archive_format = records.get("archive_format")
    if archive_format is None or archive.read(archive_format) != b"pt2":
        raise ModelFileError(f"{path}: not a torch.export archive (.pt2 saved by torch.export.save)")
    try:
        pickled = _pickled_payloads(archive, records)
    except (ValueError, KeyError, AttributeError, TypeError) as exc:
        raise ModelFileError(f"{path}: unreadable payload config ({exc})") from None
    missing = pickled - records.keys()
    if missing:
        raise ModelFileError(f"{path}: payload config names missing record '{sorted(missing)[0]}'")
    for name in sorted(records):
        for prefix, what in REFUSED_PREFIXES.items():
            if name.startswith(prefix):
                raise ModelFileError(f"{path}: record '{name}' is {what}, refusing to load it")
        if name.startswith("models/") and name.endswith(".json"):
            _check_program(path, name, archive.read(records[name]))
        if name in pickled or name.endswith(PICKLE_SUFFIXES):
            _check_weights_only(path, name, archive.read(records[name]))
    return data


def check_torchscript(path: Path) -> None:
    """Raise :class:`ModelFileError` unless ``path`` is a TorchScript archive."""
    archive, records = _open(path, path.read_bytes())
    if "archive_format" in records:
        raise ModelFileError(f"{path}: is a torch.export archive; set model.format: export")
    if not _is_torchscript(records):
        raise ModelFileError(f"{path}: not a TorchScript file (saved by torch.jit.save)")
