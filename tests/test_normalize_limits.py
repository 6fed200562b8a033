"""Bounded parsing: hostile shapes near the limits are refused (or accepted) in bounded
time and memory, with the specific error class, and refused documents are not parsed
twice. Each case runs in a fresh interpreter, the body already built, and reports its
peak-RSS growth (``ru_maxrss`` after the call minus before it; memory freed earlier in the
process can hide part of the growth) and, from a second call, the tracemalloc peak
(every Python-level allocation, expat's and the tree builder's included)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from cijobs.normalize import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_ELEMENTS,
    DocumentTooDeepError,
    DocumentTooLargeError,
    LimitExceededError,
    MalformedDocumentError,
    TooManyElementsError,
    normalize_document,
)

MEMORY_BUDGET_MB = 64
TIME_BUDGET_S = 5.0  # generous for a shared 2-core machine; each case takes well under 1 s alone

_PROBE = r"""
import json, resource, sys, time, tracemalloc
from cijobs.normalize import normalize_document, DEFAULT_MAX_BYTES as B, DEFAULT_MAX_ELEMENTS as M
LATIN1 = b'<?xml version="1.0" encoding="ISO-8859-1"?>'  # routes the body through defusedxml
def fill(unit, prefix=b""):
    head = prefix + b"<Response>"
    return head + unit * ((B - len(head) - 11) // len(unit)) + b"</Response>"
def count(unit, n, prefix=b""):
    return prefix + b"<Response>" + unit * n + b"</Response>"
body = eval(sys.argv[1])
assert len(body) <= B
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
try:
    doc = normalize_document(body)
    result = "ok"
except Exception as exc:
    result = type(exc).__name__
elapsed = time.perf_counter() - started
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
doc = None
tracemalloc.start()
try:
    normalize_document(body)
except Exception:
    pass
peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
print(json.dumps({"result": result, "elapsed": elapsed, "rss_mb": grown / 1024, "traced_mb": peak / 2**20,
                  "bytes": len(body)}))
"""


def _probe(expr: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", _PROBE, expr], capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        # an unclosed nest just under the size limit (took 32 s and 1.8 GB when checked after the parse)
        ('b"<Response>" + b"<a>" * ((B - 10) // 3)', "DocumentTooDeepError"),
        ('LATIN1 + b"<Response>" + b"<a>" * ((B - 60) // 3)', "DocumentTooDeepError"),
        # the three flat shapes, filling the size limit: refused by the element limit
        ("fill(b'<a b=\"1\"/>')", "TooManyElementsError"),
        ('fill(b"<a/>")', "TooManyElementsError"),
        ('fill(b"<a>1</a>")', "TooManyElementsError"),
        ('fill(b"<a/>", LATIN1)', "TooManyElementsError"),
        ("fill(b'<a b=\"1\"/>', LATIN1)", "TooManyElementsError"),
        # the same shapes just under the element limit: accepted (the worst accepted documents)
        ("count(b'<a b=\"1\"/>', M // 2 - 1)", "ok"),
        ('count(b"<a/>", M - 1)', "ok"),
        ('count(b"<a>1</a>", M - 1)', "ok"),
        ('count(b"<a>" + b"x" * 70 + b"</a>", M - 1)', "ok"),
        ("count(b'<a b=\"1\"/>', M // 2 - 1, LATIN1)", "ok"),
        # a closed nest deeper than the limit, as a whole inside one parse chunk
        ('b"<Response>" + b"<a>" * 5000 + b"</a>" * 5000 + b"</Response>"', "DocumentTooDeepError"),
        # JSON: the flat shape that costs most per byte
        ("b'{\"a\": [' + b'{},' * ((B - 20) // 3) + b'{}]}'", "TooManyElementsError"),
    ],
)
def test_hostile_shapes_are_bounded(expr: str, expected: str) -> None:
    run = _probe(expr)
    assert run["result"] == expected, run
    assert run["elapsed"] < TIME_BUDGET_S, run
    assert run["rss_mb"] < MEMORY_BUDGET_MB, run
    assert run["traced_mb"] < MEMORY_BUDGET_MB, run


def test_limits_are_exact_at_the_boundary() -> None:
    def doc(n: int) -> bytes:
        return b"<Response>" + b"<a/>" * (n - 1) + b"</Response>"  # n elements with the root

    assert len(normalize_document(doc(50), max_elements=50)["a"]) == 49
    with pytest.raises(TooManyElementsError) as info:
        normalize_document(doc(51), max_elements=50)
    assert info.value.limit == 50
    # attributes count: 1 root + 10 elements + 10 attributes
    attrs = b"<Response>" + b'<a b="1"/>' * 10 + b"</Response>"
    assert len(normalize_document(attrs, max_elements=21)["a"]) == 10
    with pytest.raises(TooManyElementsError):
        normalize_document(attrs, max_elements=20)


def test_counting_applies_to_bodies_long_enough_to_go_over() -> None:
    # more than 3 bytes per allowed item: counted in chunks, across chunk boundaries
    body = b"<Response>" + b"<a>x</a>" * 20_000 + b"</Response>"
    assert len(normalize_document(body, max_elements=20_001)["a"]) == 20_000
    with pytest.raises(TooManyElementsError):
        normalize_document(body, max_elements=20_000)


def test_element_limit_error_is_a_size_refusal() -> None:
    assert issubclass(TooManyElementsError, DocumentTooLargeError)
    assert issubclass(DocumentTooLargeError, LimitExceededError)
    assert DEFAULT_MAX_ELEMENTS > 0 and DEFAULT_MAX_BYTES == 8 * 1024 * 1024


def test_refused_document_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from cijobs.normalize import parse

    calls: list[str] = []
    for name in ("_parse_fast", "_parse_defused"):
        real = getattr(parse, name)

        def counting(*args: Any, _real: Any = real, _name: str = name) -> Any:
            calls.append(_name)
            return _real(*args)

        monkeypatch.setattr(parse, name, counting)
    for body, error in (
        (b"<Response>" + b"<a>" * 1000, DocumentTooDeepError),
        (b"<Response><a></Response>", MalformedDocumentError),
        (b"<Response>" + b"<a/>" * 2000, TooManyElementsError),
    ):
        calls.clear()
        with pytest.raises(error):
            normalize_document(body, max_elements=1000)
        assert calls == ["_parse_fast"]


def test_a_closed_nest_followed_by_a_sibling_is_refused_by_the_walk() -> None:
    # between chunks only the chain of last children is checked; a nest that closed before a sibling
    # came is then off that chain, and the walk (which checks every element) refuses it
    body = b"<Response><x>" + b"<a>" * 20 + b"</a>" * 20 + b"</x><b/></Response>"
    with pytest.raises(DocumentTooDeepError) as info:
        normalize_document(body, max_depth=10)
    assert info.value.limit == 10
    assert normalize_document(body, max_depth=23)["b"] == ""
