"""Turn a parsed tree (ElementTree element or ``json.loads`` value) into plain
dicts/lists with the table's arrays and types applied.

Both walkers share the rules:

* declared array path -> always a list; empty occurrences (``<Md5Info/>``, ``{}``,
  ``""``) add nothing, so an all-empty array is ``[]``;
* declared non-array path repeated -> the first occurrence wins (drift logged);
* unknown element -> passed through unchanged (XML: text, or a dict for a
  container; repeated -> list in document order);
* declared scalar -> ``scalars.convert`` (typed, or original string on drift).
"""

from __future__ import annotations

from typing import Any, Optional
from xml.etree.ElementTree import Element

from .errors import DocumentTooDeepError
from .scalars import OBJECT, STRING, convert, report_drift
from .table import Spec, Trie

TEXT_KEY = "#text"
ATTR_PREFIX = "@"


def _too_deep(limit: int) -> DocumentTooDeepError:
    return DocumentTooDeepError(f"document nested deeper than {limit} levels", limit)


# --------------------------------------------------------------------------- XML


def xml_value(elem: Element, spec: Optional[Spec], path: str, depth: int, max_depth: int) -> Any:
    """Value of one element. ``spec`` is its table entry (None = unknown subtree)."""
    if depth > max_depth:
        raise _too_deep(max_depth)
    text = elem.text
    text = text.strip() if text else ""
    if not len(elem) and not elem.attrib:
        return text if spec is None else convert(spec[1], text, path)

    out: dict[str, Any] = {}
    for key, attr_value in elem.attrib.items():
        out[ATTR_PREFIX + key] = attr_value
    if text:
        out[TEXT_KEY] = text
    trie: Optional[Trie] = spec[2] if spec is not None else None
    if spec is not None and spec[1] not in (None, OBJECT):
        report_drift(path, f"container where a {spec[1]} was expected")
    value: Any = None
    child_depth = depth + 1
    if child_depth > max_depth:
        raise _too_deep(max_depth)
    for child in elem:
        tag = child.tag
        if not isinstance(tag, str):  # comments / processing instructions: never produced by XMLParser
            continue
        leaf = not len(child) and not child.attrib  # hot path: leaves handled inline, no call
        if leaf:
            child_text = child.text
            value = child_text.strip() if child_text else ""
        cspec = trie.get(tag) if trie is not None else None
        if cspec is None:
            if not leaf:
                value = xml_value(child, None, "", child_depth, max_depth)
            if tag in out:
                existing = out[tag]
                if isinstance(existing, list):
                    existing.append(value)
                else:
                    out[tag] = [existing, value]
            else:
                out[tag] = value
            continue
        kind = cspec[1]
        if cspec[0]:
            items = out.get(tag)
            if items is None:
                items = out[tag] = []
            if leaf:
                if value:  # an empty occurrence adds nothing: <Md5Info/> -> []
                    items.append(value if kind is None or kind == STRING else convert(kind, value, f"{path}.{tag}"))
            else:
                items.append(xml_value(child, cspec, f"{path}.{tag}" if path else tag, child_depth, max_depth))
        elif tag in out:
            report_drift(f"{path}.{tag}" if path else tag, "repeated single element, first kept")
        elif leaf:
            if kind is not None and kind != STRING:
                value = convert(kind, value, f"{path}.{tag}" if path else tag)
            out[tag] = value
        else:
            out[tag] = xml_value(child, cspec, f"{path}.{tag}" if path else tag, child_depth, max_depth)
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


def json_value(value: Any, spec: Optional[Spec], path: str, depth: int, max_depth: int) -> Any:
    if depth > max_depth:
        raise _too_deep(max_depth)
    if spec is None:
        _check_depth(value, depth, max_depth)
        return value
    if isinstance(value, dict):
        if spec[1] not in (None, OBJECT):
            report_drift(path, f"container where a {spec[1]} was expected")
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
                    json_value(item, cspec, cpath, child_depth + 1, max_depth)
                    for item in items
                    if not _json_is_empty(item)
                ]
            else:
                single = child
                if isinstance(child, list):
                    report_drift(cpath, "repeated single element, first kept")
                    single = child[0] if child else ""
                out[key] = json_value(single, cspec, cpath, child_depth, max_depth)
        return out
    if isinstance(value, list):  # a list where the table expects one value: nested lists
        report_drift(path, "list where a single value was expected")
        _check_depth(value, depth, max_depth)
        return value
    text = _json_text(value)
    if text is None:  # JSON null
        return None
    return convert(spec[1], text, path)


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
