"""Hostile input: XML bombs, external entities, DTD retrieval, size and depth limits."""

from __future__ import annotations

import time
import tracemalloc
from typing import Callable

import pytest

from cijobs.normalize import (
    DocumentTooDeepError,
    DocumentTooLargeError,
    ForbiddenXMLError,
    LimitExceededError,
    MalformedDocumentError,
    NormalizeError,
    normalize_document,
    parse_error,
)

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE Response [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Response><JobsDetail><JobId>&lol9;</JobId></JobsDetail></Response>
"""

QUADRATIC_BLOWUP = (
    b'<?xml version="1.0"?>\n<!DOCTYPE Response [<!ENTITY a "'
    + b"x" * 50_000
    + b'">]>\n<Response><JobsDetail><Message>'
    + b"&a;" * 50_000
    + b"</Message></JobsDetail></Response>"
)

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE Response [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Response><JobsDetail><Message>&xxe;</Message></JobsDetail></Response>
"""

EXTERNAL_PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE Response [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote;]>
<Response/>
"""

DTD_RETRIEVAL = b"""<?xml version="1.0"?>
<!DOCTYPE Response SYSTEM "http://127.0.0.1:9/evil.dtd">
<Response><JobsDetail><JobId>j1</JobId></JobsDetail></Response>
"""

INTERNAL_DTD_ONLY = b"""<!DOCTYPE Response [<!ELEMENT Response ANY>]><Response/>"""


def _refused_quickly(payload: bytes, check: Callable[[], None]) -> None:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        check()
    finally:
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert elapsed < 1.0, f"took {elapsed:.2f}s"
    assert peak < 8 * len(payload) + 2_000_000, f"peak {peak} bytes for a {len(payload)}-byte payload"


@pytest.mark.parametrize(
    "payload",
    [BILLION_LAUGHS, QUADRATIC_BLOWUP, EXTERNAL_ENTITY, EXTERNAL_PARAMETER_ENTITY, DTD_RETRIEVAL, INTERNAL_DTD_ONLY],
    ids=["billion-laughs", "quadratic-blowup", "external-entity", "external-parameter-entity", "dtd-retrieval", "dtd"],
)
def test_dangerous_xml_is_refused_quickly_with_small_memory(payload: bytes) -> None:
    def check() -> None:
        with pytest.raises(ForbiddenXMLError) as info:
            normalize_document(payload)
        assert info.value.raw == payload
        assert "forbidden" in str(info.value)

    _refused_quickly(payload, check)
    assert parse_error(payload) is None


def test_forbidden_error_is_a_normalize_error_not_malformed() -> None:
    with pytest.raises(NormalizeError) as info:
        normalize_document(BILLION_LAUGHS)
    assert not isinstance(info.value, MalformedDocumentError)


def test_undeclared_entity_reference_is_malformed_not_expanded() -> None:
    with pytest.raises(MalformedDocumentError) as info:
        normalize_document(b"<Response><JobsDetail><JobId>&xxe;</JobId></JobsDetail></Response>")
    assert info.value.line == 1


def test_predefined_and_character_entities_still_work() -> None:
    doc = normalize_document(
        b"<Response><JobsDetail><JobId>j1</JobId><Message>a &amp; b &#20013;</Message></JobsDetail></Response>"
    )
    assert doc["JobsDetail"][0]["Message"] == "a & b 中"


def test_size_limit() -> None:
    body = b"<Response>" + b" " * 100 + b"</Response>"
    assert normalize_document(body, max_bytes=len(body)) == {"JobsDetail": [], "NonExistJobIds": []}
    with pytest.raises(DocumentTooLargeError) as info:
        normalize_document(body, max_bytes=len(body) - 1)
    assert info.value.limit == len(body) - 1
    assert isinstance(info.value, LimitExceededError)
    with pytest.raises(DocumentTooLargeError):  # str bodies are measured in UTF-8 bytes
        normalize_document("<Response>" + "中" * 10 + "</Response>", max_bytes=35)


def test_default_size_limit_is_8_mib() -> None:
    body = b"<Response>" + b" " * (8 * 1024 * 1024) + b"</Response>"
    with pytest.raises(DocumentTooLargeError):
        normalize_document(body)


def _nested_xml(depth: int) -> bytes:
    return b"<Response>" + b"<a>" * depth + b"x" + b"</a>" * depth + b"</Response>"


def test_xml_depth_limit() -> None:
    assert normalize_document(_nested_xml(10), max_depth=11)["a"]
    with pytest.raises(DocumentTooDeepError) as info:
        normalize_document(_nested_xml(10), max_depth=10)
    assert info.value.limit == 10
    with pytest.raises(DocumentTooDeepError):
        normalize_document(_nested_xml(200))  # default limit 64


def test_very_deep_xml_within_size_limit_is_refused_quickly() -> None:
    payload = _nested_xml(300_000)  # ~2 MB
    started = time.perf_counter()
    with pytest.raises(DocumentTooDeepError):
        normalize_document(payload)
    assert time.perf_counter() - started < 5.0


def test_json_depth_limits() -> None:
    shallow = b'{"JobsDetail": [{"JobId": "j1", "X": ' + b"[" * 10 + b"]" * 10 + b"}]}"
    assert normalize_document(shallow)["JobsDetail"][0]["JobId"] == "j1"
    with pytest.raises(DocumentTooDeepError):
        normalize_document(b'{"JobsDetail": [{"JobId": "j1", "X": ' + b"[" * 100 + b"]" * 100 + b"}]}")
    with pytest.raises(DocumentTooDeepError):  # deeper than json's own recursion limit
        normalize_document(b'{"a": ' + b"[" * 40_000 + b"]" * 40_000 + b"}")
