"""Reading a YAML file without letting it grow: aliases make a few hundred bytes
expand to gigabytes once copied (a "billion laughs" bomb), so the node graph is
measured before any Python object is built.

Examples
--------
>>> import tempfile, pathlib
>>> bomb = pathlib.Path(tempfile.mkdtemp()) / "bomb.yaml"
>>> lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"] + [
...     f"{c}: &{c} [" + ", ".join([f"*{p}"] * 10) + "]" for p, c in zip("abcdef", "bcdefg")]
>>> _ = bomb.write_text(chr(10).join(lines))
>>> try:
...     read_yaml(bomb)
... except UnsafeYAMLError as exc:
...     print("expands to more than" in str(exc))
True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

#: a file larger than this is refused unread
MAX_YAML_BYTES = 1 << 20
#: nodes a document may hold once its aliases are expanded (a large monitor config has a few thousand)
MAX_YAML_NODES = 100_000


class UnsafeYAMLError(ValueError):
    """The file is not valid YAML, or too large once read or expanded; one line naming it."""


def _expanded_nodes(node: yaml.Node, path: Path, memo: dict[int, int], open_: set[int]) -> int:
    """Nodes of the document with every alias expanded (aliases share one node object)."""
    if id(node) in memo:
        return memo[id(node)]
    if id(node) in open_:
        raise UnsafeYAMLError(f"{path}: recursive YAML alias at line {node.start_mark.line + 1}")
    open_.add(id(node))
    children: list[yaml.Node] = []
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [item for pair in node.value for item in pair]
    total = 1
    for child in children:
        total += _expanded_nodes(child, path, memo, open_)
        if total > MAX_YAML_NODES:
            break  # enough to refuse; stop before counting a bomb to the end
    open_.discard(id(node))
    memo[id(node)] = total
    return total


def read_yaml(path: Path) -> Any:
    """The YAML document at ``path``, refused when large or expanding past ``MAX_YAML_NODES``.

    Aliases make a few hundred bytes expand to gigabytes once copied (a "billion
    laughs" bomb); the node graph is measured before any Python object is built.
    """
    size = path.stat().st_size
    if size > MAX_YAML_BYTES:
        raise UnsafeYAMLError(f"{path}: {size} bytes, more than a monitor config may hold ({MAX_YAML_BYTES})")
    loader = yaml.SafeLoader(path.read_text())
    try:
        node = loader.get_single_node()
        if node is None:
            return {}
        if _expanded_nodes(node, path, {}, set()) > MAX_YAML_NODES:
            raise UnsafeYAMLError(
                f"{path}: expands to more than {MAX_YAML_NODES} YAML nodes (aliases repeated too often)"
            )
        return loader.construct_document(node) or {}
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UnsafeYAMLError(f"{path}: not valid YAML{where}: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise UnsafeYAMLError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    finally:
        loader.dispose()
