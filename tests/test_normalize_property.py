"""Property tests: any input -> a dict or a NormalizeError subclass; deterministic;
idempotent shape rules hold for generated CI-like documents."""

from __future__ import annotations

import glob
import json
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cijobs.normalize import NormalizeError, normalize_document
from fakes import FIXTURES

SEEDS = [
    open(p, "rb").read()
    for p in sorted(glob.glob(os.path.join(FIXTURES, "*.xml")) + glob.glob(os.path.join(FIXTURES, "*.json")))
]


def _outcome(body: Any) -> Any:
    try:
        return ("ok", json.dumps(normalize_document(body), sort_keys=True))
    except NormalizeError as exc:
        return ("error", type(exc).__name__, str(exc))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_any_bytes_give_a_dict_or_a_normalize_error(body: bytes) -> None:
    first = _outcome(body)
    assert first == _outcome(body)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=512))
def test_any_text_gives_a_dict_or_a_normalize_error(body: str) -> None:
    assert _outcome(body) == _outcome(body)


@st.composite
def _mutated_fixture(draw: st.DrawFn) -> bytes:
    """Real documents with random byte edits: exercises deep parser/walker paths."""
    raw = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["flip", "delete", "insert", "truncate"]))
        pos = draw(st.integers(0, max(len(raw) - 1, 0)))
        if op == "flip" and raw:
            raw[pos] = draw(st.integers(0, 255))
        elif op == "delete" and raw:
            del raw[pos : pos + draw(st.integers(1, 20))]
        elif op == "insert":
            raw[pos:pos] = draw(
                st.sampled_from([b"<", b">", b"</", b"/>", b"&", b"{", b"}", b",", b'"', b"\x00", b"<Md5Info/>", b"-"])
            )
        elif op == "truncate":
            del raw[pos:]
    return bytes(raw)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated_fixture())
def test_mutated_fixtures_never_raise_anything_else(body: bytes) -> None:
    assert _outcome(body) == _outcome(body)


_NAMES = st.sampled_from(
    ["JobId", "State", "Progress", "Md5Info", "ObjectName", "Audio", "Video", "JobLevel", "Fps", "Tags", "X", "Y"]
)
_TEXT = st.sampled_from(["", "-", "0", "12", "1.5", "50/1", "true", "2022-06-27T15:23:12+0800", "x", "中"])


@st.composite
def _element(draw: st.DrawFn, depth: int = 0) -> str:
    name = draw(_NAMES)
    if depth >= 3 or draw(st.booleans()):
        return f"<{name}>{draw(_TEXT)}</{name}>"
    children = draw(st.lists(_element(depth + 1), max_size=4))
    return f"<{name}>{''.join(children)}</{name}>"


@st.composite
def _ci_like(draw: st.DrawFn) -> str:
    jobs = []
    for _ in range(draw(st.integers(0, 3))):
        mr = "".join(
            draw(
                st.lists(
                    st.sampled_from(["<Md5Info/>", "<ObjectName>a</ObjectName>", "<Md5Info><Md5>m</Md5></Md5Info>"]),
                    max_size=4,
                )
            )
        )
        stream = "".join(
            draw(st.lists(st.sampled_from(["<Audio/>", "<Video><Fps>25.0</Fps></Video>", "<Subtitle/>"]), max_size=4))
        )
        extra = "".join(draw(st.lists(_element(), max_size=3)))
        jobs.append(
            f"<JobsDetail><JobId>j1</JobId>{extra}<Operation><MediaResult><OutputFile>{mr}</OutputFile></MediaResult>"
            f"<MediaInfo><Stream>{stream}</Stream></MediaInfo></Operation></JobsDetail>"
        )
    return "<Response>" + "".join(jobs) + "</Response>"


@settings(max_examples=200, deadline=None)
@given(_ci_like())
def test_declared_arrays_are_always_lists(body: str) -> None:
    doc = normalize_document(body)
    assert isinstance(doc["JobsDetail"], list)
    for job in doc["JobsDetail"]:
        out = job["Operation"]["MediaResult"]["OutputFile"]
        for key in ("Md5Info", "ObjectName"):
            if key in out:
                assert isinstance(out[key], list)
                assert all(v not in ("", {}) for v in out[key])
        for key, items in job["Operation"]["MediaInfo"]["Stream"].items():
            assert isinstance(items, list), key
            for item in items:
                assert item["Fps"] == 25.0 if key == "Video" else True
        assert job["JobId"] == "j1"
    assert json.dumps(doc, sort_keys=True) == json.dumps(normalize_document(body.encode()), sort_keys=True)


_JSON_KEYS = st.sampled_from(
    [
        "JobsDetail",
        "NonExistJobIds",
        "EventName",
        "Response",
        "Operation",
        "MediaResult",
        "OutputFile",
        "Md5Info",
        "ObjectName",
        "JobLevel",
        "Progress",
        "CreationTime",
        "MediaInfo",
        "Stream",
        "Audio",
        "WorkflowExecution",
        "Tasks",
        "CreateTime",
        "Other",
    ]
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_JSON_KEYS, children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_JSON_KEYS, _JSON, max_size=5))
def test_arbitrary_json_structures_give_a_dict_or_a_normalize_error(value: dict[str, Any]) -> None:
    body = json.dumps(value).encode()
    first = _outcome(body)
    assert first == _outcome(body)
    if first[0] == "ok":
        doc = json.loads(first[1])
        assert isinstance(doc["JobsDetail"], list) and isinstance(doc["NonExistJobIds"], list)
        assert all(isinstance(i, str) and i for i in doc["NonExistJobIds"])
