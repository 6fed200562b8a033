"""Turn a parsed tree (ElementTree element or ``json.loads`` value) into plain
dicts/lists with the table's arrays and types applied.

Both walkers share the rules:

* declared array path -> always a list; empty occurrences (``<Md5Info/>``, ``{}``,
  ``""``) add nothing, so an all-empty array is ``[]``;
* declared non-array path repeated -> the first occurrence wins (drift reported);
* unknown element -> passed through unchanged (XML: text, or a dict for a
  container; repeated -> list in document order);
* declared scalar -> ``scalars.convert`` (typed, or original string on drift).
"""

from __future__ import annotations

import functools
from typing import Any, Optional
from xml.etree.ElementTree import Element

from .drift import DriftCallback, ignore_drift, report
from .errors import DocumentTooDeepError
from .scalars import OBJECT, STRING, Converter, convert, converter
from .table import Spec, Trie, root_trie

TEXT_KEY = "#text"
ATTR_PREFIX = "@"


def _too_deep(limit: int) -> DocumentTooDeepError:
    return DocumentTooDeepError(f"document nested deeper than {limit} levels", limit)


# --------------------------------------------------------------------------- XML
#
# The XML walk is the normalizer's hot loop (a 10-job response has ~600 elements), so
# it works on a copy of the table made for it (``_WalkTable``): every declared child
# carries its full dotted path and its "typed" kind precomputed, so no path string is
# built and no kind is re-tested per element. Undeclared subtrees take a separate,
# simpler function. Leaves are handled inline in the parent's loop.
#
# ``elem.keys()`` (not ``elem.attrib``) tests for attributes: on the C Element,
# reading ``.attrib`` allocates and keeps a dict for every element that has none,
# which cost ~10 % of the walk.

# (is_array, kind, children, path, converter of a typed kind or None, array-leaf path)
_WalkEntry = tuple[bool, Optional[str], Optional["_WalkTable"], str, Optional[Converter], str]
_WalkTable = dict[str, _WalkEntry]


def _compile_walk_table(trie: Trie, prefix: str) -> _WalkTable:
    table: _WalkTable = {}
    for name, (is_array, kind, children) in trie.items():
        path = f"{prefix}.{name}" if prefix else name
        typed = None if kind is None or kind == STRING else converter(kind)
        # drift paths of array leaves were always "<parent>.<name>", also at the root: kept
        table[name] = (is_array, kind, _compile_walk_table(children, path) if children else None, path, typed,
                       f"{prefix}.{name}")
    return table


@functools.lru_cache(maxsize=1)
def _root_walk_table() -> _WalkTable:
    return _compile_walk_table(root_trie(), "")


def xml_document_value(
    root: Element, max_depth: int, attributes: bool = True, on_drift: DriftCallback = ignore_drift
) -> Any:
    """Value of a document's root element (``Response``), typed by the whole table.

    ``attributes=False`` promises that no element has an attribute (the caller knows the raw document
    has no ``=``), which spares testing every element for them; the result is the same.
    """
    return _declared_value(root, OBJECT, _root_walk_table(), "", 1, max_depth, attributes, on_drift)


_NO_ENTRY: _WalkTable = {}


def _add_repeatable(out: dict[str, Any], tag: str, value: Any) -> None:
    """Undeclared element: a second occurrence turns the value into a list (document order)."""
    if tag in out:
        existing = out[tag]
        if isinstance(existing, list):
            existing.append(value)
        else:
            out[tag] = [existing, value]
    else:
        out[tag] = value


def _container_start(elem: Element, text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, attr_value in elem.items():
        out[ATTR_PREFIX + key] = attr_value
    if text:
        out[TEXT_KEY] = text
    return out


def _declared_value(
    elem: Element, kind: Optional[str], table: Optional[_WalkTable], path: str, depth: int, max_depth: int,
    attrs: bool, on_drift: DriftCallback,
) -> Any:
    """Value of an element the table declares (``kind``, ``table`` = its children, ``path`` = its full path).

    ``attrs`` False: no element of the document has attributes (see ``xml_document_value``)."""
    if depth > max_depth:
        raise _too_deep(max_depth)
    text = elem.text
    text = text.strip() if text else ""
    if not len(elem) and not (attrs and elem.keys()):
        return convert(kind, text, path, on_drift)

    out = _container_start(elem, text) if attrs or text else {}
    if kind not in (None, OBJECT):
        report(on_drift, path, f"container where a {kind} was expected")
    child_depth = depth + 1
    if child_depth > max_depth:
        raise _too_deep(max_depth)
    lookup = table.get if table is not None else _NO_ENTRY.get
    for child in elem:
        tag = child.tag
        entry = lookup(tag)
        if len(child) or (attrs and child.keys()):  # a container
            if entry is None:
                if isinstance(tag, str):  # comments / processing instructions: never produced by XMLParser
                    _add_repeatable(out, tag, _undeclared_value(child, child_depth, max_depth))
            elif entry[0]:
                items = out.get(tag)
                if items is None:
                    items = out[tag] = []
                items.append(
                    _declared_value(child, entry[1], entry[2], entry[3], child_depth, max_depth, attrs, on_drift)
                )
            elif tag in out:
                report(on_drift, entry[3], "repeated single element, first kept")
            else:
                out[tag] = _declared_value(child, entry[1], entry[2], entry[3], child_depth, max_depth, attrs, on_drift)
            continue
        value = child.text
        value = value.strip() if value else ""
        if entry is None:
            if isinstance(tag, str):
                _add_repeatable(out, tag, value)
        elif entry[0]:
            items = out.get(tag)
            if items is None:
                items = out[tag] = []
            if value:  # an empty occurrence adds nothing: <Md5Info/> -> []
                typed = entry[4]
                items.append(value if typed is None else typed(value, entry[5], on_drift))
        elif tag in out:
            report(on_drift, entry[3], "repeated single element, first kept")
        else:
            typed = entry[4]
            out[tag] = value if typed is None else typed(value, entry[3], on_drift)
    return out


def _undeclared_value(elem: Element, depth: int, max_depth: int) -> Any:
    """Value of an element outside the table: passed through (text, dict, list when repeated)."""
    if depth > max_depth:
        raise _too_deep(max_depth)
    text = elem.text
    text = text.strip() if text else ""
    if not len(elem) and not elem.keys():
        return text
    out = _container_start(elem, text)
    child_depth = depth + 1
    if child_depth > max_depth:
        raise _too_deep(max_depth)
    for child in elem:
        tag = child.tag
        if not isinstance(tag, str):  # comments / processing instructions: never produced by XMLParser
            continue
        if not len(child) and not child.keys():
            value = child.text
            _add_repeatable(out, tag, value.strip() if value else "")
        else:
            _add_repeatable(out, tag, _undeclared_value(child, child_depth, max_depth))
    return out


# -------------------------------------------------------------------------- JSON


def _json_is_empty(value: Any) -> bool:
    return value is None or value in ("", {}, [])


def _json_text(value: Any) -> Optional[str]:
    """CI's JSON scalars are strings, except the odd number (``"JobLevel": 0``)."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return None


def json_value(
    value: Any, spec: Optional[Spec], path: str, depth: int, max_depth: int, on_drift: DriftCallback = ignore_drift
) -> Any:
    if depth > max_depth:
        raise _too_deep(max_depth)
    if spec is None:
        _check_depth(value, depth, max_depth)
        return value
    if isinstance(value, dict):
        if spec[1] not in (None, OBJECT):
            report(on_drift, path, f"container where a {spec[1]} was expected")
        trie = spec[2]
        out: dict[str, Any] = {}
        child_depth = depth + 1
        for key, child in value.items():
            cspec = trie.get(key) if trie is not None else None
            if cspec is None:
                _check_depth(child, child_depth, max_depth)
                out[key] = child
                continue
            cpath = f"{path}.{key}" if path else key
            if cspec[0]:
                items = child if isinstance(child, list) else [child]
                out[key] = [
                    json_value(item, cspec, cpath, child_depth + 1, max_depth, on_drift)
                    for item in items
                    if not _json_is_empty(item)
                ]
            else:
                single = child
                if isinstance(child, list):
                    report(on_drift, cpath, "repeated single element, first kept")
                    single = child[0] if child else ""
                out[key] = json_value(single, cspec, cpath, child_depth, max_depth, on_drift)
        return out
    if isinstance(value, list):  # a list where the table expects one value: nested lists
        report(on_drift, path, "list where a single value was expected")
        _check_depth(value, depth, max_depth)
        return value
    text = _json_text(value)
    if text is None:  # JSON null
        return None
    return convert(spec[1], text, path, on_drift)


def _check_depth(value: Any, depth: int, max_depth: int) -> None:
    """Bound the depth of a pass-through JSON subtree without recursion."""
    stack = [(value, depth)]
    while stack:
        v, d = stack.pop()
        if d > max_depth:
            raise _too_deep(max_depth)
        if isinstance(v, dict):
            stack.extend((c, d + 1) for c in v.values())
        elif isinstance(v, list):
            stack.extend((c, d + 1) for c in v)
