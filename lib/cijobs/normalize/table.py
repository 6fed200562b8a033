"""Load ``paths.json`` (the declarative normalization table) and compile it into a
trie of dict lookups keyed by element name: ``{name: (is_array, kind, children)}``.

The walkers look each child up in its parent's ``children`` dict (one dict lookup
per element); an element with no entry is "unknown" and its whole subtree is
passed through untouched, so no path string is built for it.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any, Optional

from .scalars import KINDS, OBJECT

# (is_array, kind or None, children trie or None)
Spec = tuple[bool, Optional[str], Optional[dict[str, Any]]]
Trie = dict[str, Spec]

_BRACES = re.compile(r"\{([^{}]*)\}")


class TableError(ValueError):
    """The table file is inconsistent (raised at load time, caught by tests)."""


def expand(pattern: str) -> list[str]:
    """``"A.{B,C}.D"`` -> ``["A.B.D", "A.C.D"]`` (any number of brace groups)."""
    m = _BRACES.search(pattern)
    if m is None:
        return [pattern]
    head, tail = pattern[: m.start()], pattern[m.end() :]
    out: list[str] = []
    for alt in m.group(1).split(","):
        out.extend(expand(head + alt.strip() + tail))
    return out


def load_raw() -> dict[str, Any]:
    text = resources.files("cijobs.normalize").joinpath("paths.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


class _Node:
    __slots__ = ("array", "children", "kind")

    def __init__(self) -> None:
        self.array = False
        self.kind: Optional[str] = None
        self.children: dict[str, _Node] = {}


def _full(prefix: str, path: str) -> str:
    return f"{prefix}.{path}" if prefix else path


def _anchors(contexts: dict[str, Any], ctx: str) -> list[str]:
    """A context anchors its paths at one path, or at each path of a list."""
    anchor = contexts[ctx]
    return list(anchor) if isinstance(anchor, list) else [anchor]


def declared_paths(data: Optional[dict[str, Any]] = None) -> tuple[set[str], dict[str, str]]:
    """(array paths, {path: kind}) as full paths from the root, braces expanded."""
    data = data if data is not None else load_raw()
    contexts: dict[str, Any] = data["contexts"]
    arrays: set[str] = set()
    kinds: dict[str, str] = {}
    for ctx, paths in data["arrays"].items():
        for anchor in _anchors(contexts, ctx):
            for p in paths:
                arrays.update(_full(anchor, x) for x in expand(p))
    for ctx, by_kind in data["types"].items():
        for kind, paths in by_kind.items():
            if kind not in KINDS:
                raise TableError(f"unknown kind {kind!r} in context {ctx!r}")
            for anchor in _anchors(contexts, ctx):
                for p in paths:
                    for x in expand(p):
                        full = _full(anchor, x)
                        if kinds.get(full, kind) != kind:
                            raise TableError(f"{full}: declared both {kinds[full]} and {kind}")
                        kinds[full] = kind
    return arrays, kinds


def compile_table(data: Optional[dict[str, Any]] = None) -> Trie:
    arrays, kinds = declared_paths(data)
    root = _Node()
    for path in sorted(arrays | set(kinds)):
        node = root
        parts = path.split(".")
        for i, part in enumerate(parts):
            node = node.children.setdefault(part, _Node())
            if i < len(parts) - 1:  # ancestors of a declared path are containers
                if node.kind not in (None, OBJECT):
                    raise TableError(f"{'.'.join(parts[: i + 1])} is declared {node.kind} but has children")
                node.kind = OBJECT
        node.array = node.array or path in arrays
        if path in kinds:
            if node.children and kinds[path] != OBJECT:
                raise TableError(f"{path} is declared {kinds[path]} but has children")
            node.kind = kinds[path] if node.kind is None else node.kind
    return _freeze(root.children)


def _freeze(children: dict[str, _Node]) -> Trie:
    return {name: (n.array, n.kind, _freeze(n.children) if n.children else None) for name, n in children.items()}


def job_tags(data: Optional[dict[str, Any]] = None) -> list[str]:
    """The distinct job Tags of ``jobTypes`` (a template variant contributes its real Tag), sorted."""
    data = data if data is not None else load_raw()
    return sorted({info.get("tag", name) for name, info in data["jobTypes"].items()})


@functools.lru_cache(maxsize=1)
def root_trie() -> Trie:
    """The compiled table for a whole document (children of the root element)."""
    return compile_table()


def lookup(path: str) -> Optional[Spec]:
    """Spec of a full dotted path (``"JobsDetail.Operation.JobLevel"``), or None."""
    trie: Optional[Trie] = root_trie()
    spec: Optional[Spec] = None
    for part in path.split("."):
        if trie is None or part not in trie:
            return None
        spec = trie[part]
        trie = spec[2]
    return spec
