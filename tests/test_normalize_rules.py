"""Unit rules of the normalizer: scalar parsing, table compilation, envelope, JSON
shapes, drift logging and repairs (the `cijobs normalize` CLI: tests/test_cli_normalize.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from cijobs.normalize import (
    DriftReporter,
    MalformedDocumentError,
    UnexpectedDocumentError,
    normalize_document,
)
from cijobs.normalize.scalars import parse_bool, parse_float, parse_int, parse_timestamp
from cijobs.normalize.table import TableError, compile_table, expand, load_raw, lookup
from fakes import FIXTURES


def _job(xml_inner: str) -> dict[str, Any]:
    doc = normalize_document(f"<Response><JobsDetail>{xml_inner}</JobsDetail></Response>")
    job: dict[str, Any] = doc["JobsDetail"][0]
    return job


# ------------------------------------------------------------------ scalars


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", 0), ("100", 100), ("-99", -99), ("+5", 5), ("007", 7)],
)
def test_parse_int_accepts(text: str, expected: int) -> None:
    assert parse_int(text) == expected


@pytest.mark.parametrize("text", ["", "1.0", "1_000", " 1", "0x10", "١٢", "1e3", "-", "+", "abc", "9" * 5000])
def test_parse_int_rejects(text: str) -> None:
    assert parse_int(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [("834.736000", 834.736), ("0.000000", 0.0), ("25", 25.0), ("-1.5", -1.5), (".5", 0.5), ("1e3", 1000.0)],
)
def test_parse_float_accepts(text: str, expected: float) -> None:
    assert parse_float(text) == expected


@pytest.mark.parametrize("text", ["", "50/1", "nan", "inf", "Infinity", "1_0.0", "0x1p3", "1.0.0", "N/A", "１"])
def test_parse_float_rejects(text: str) -> None:
    assert parse_float(text) is None


def test_parse_bool() -> None:
    assert [parse_bool(t) for t in ("true", "True", "1", "false", "FALSE", "0")] == [
        True,
        True,
        True,
        False,
        False,
        False,
    ]
    assert parse_bool("yes") is None and parse_bool("") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2022-06-27T15:23:12+0800", "2022-06-27T15:23:12+08:00"),
        ("2022-08-09 14:54:17+0800", "2022-08-09T14:54:17+08:00"),
        ("2022-06-27T15:23:12-0530", "2022-06-27T15:23:12-05:30"),
        ("2022-06-27T15:23:12+08:00", "2022-06-27T15:23:12+08:00"),
        ("2022-06-27T15:23:12Z", "2022-06-27T15:23:12+00:00"),
        ("2022-06-27T15:23:12.5+0800", "2022-06-27T15:23:12.5+08:00"),
    ],
)
def test_parse_timestamp(text: str, expected: str) -> None:
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize(
    "text", ["2022-13-27T15:23:12+0800", "2022-06-27T25:00:00+0800", "2022-06-27T15:23:12", "yesterday"]
)
def test_parse_timestamp_rejects(text: str) -> None:
    assert parse_timestamp(text) is None


def test_timestamp_rules_in_documents() -> None:
    job = _job(
        "<JobId>j1</JobId><CreationTime>2022-06-27T15:23:12+0800</CreationTime><StartTime>-</StartTime><EndTime/>"
    )
    assert job == {"JobId": "j1", "CreationTime": "2022-06-27T15:23:12+08:00", "StartTime": None, "EndTime": None}


def test_empty_scalar_rule() -> None:
    job = _job("<JobId>j1</JobId><Message/><Code></Code><Progress/><Operation><UserData>  </UserData></Operation>")
    assert job["Message"] == "" and job["Code"] == "" and job["Operation"]["UserData"] == ""
    assert job["Progress"] == ""  # empty typed scalar: kept as the (empty) original, like any unparsable value


def test_text_is_stripped_and_unicode_kept() -> None:
    job = _job("<JobId>\n   j1\n </JobId><Message>  转码 完成 </Message>")
    assert job["JobId"] == "j1" and job["Message"] == "转码 完成"


# ------------------------------------------------------------------ drift


def _drift_job(xml_inner: str, on_drift: Any) -> dict[str, Any]:
    doc = normalize_document(f"<Response><JobsDetail>{xml_inner}</JobsDetail></Response>", on_drift=on_drift)
    job: dict[str, Any] = doc["JobsDetail"][0]
    return job


def test_drift_goes_to_the_callback_and_the_value_is_kept() -> None:
    calls: list[tuple[str, str, Any]] = []
    first = _drift_job("<JobId>j1</JobId><Progress>half</Progress>", lambda *a: calls.append(a))
    second = _drift_job("<JobId>j2</JobId><Progress>most</Progress>", lambda *a: calls.append(a))
    assert first["Progress"] == "half" and second["Progress"] == "most"
    # the normalizer does not deduplicate: one report per occurrence
    assert calls == [
        ("JobsDetail.Progress", "not a valid int", "half"),
        ("JobsDetail.Progress", "not a valid int", "most"),
    ]


def test_drift_sample_is_cut_to_80_characters() -> None:
    calls: list[tuple[str, str, Any]] = []
    _drift_job("<JobId>j1</JobId><Progress>" + "x" * 500 + "</Progress>", lambda *a: calls.append(a))
    assert calls == [("JobsDetail.Progress", "not a valid int", "x" * 80)]


def test_drift_reporter_forwards_each_path_and_problem_once() -> None:
    calls: list[tuple[str, str, Any]] = []
    reporter = DriftReporter(lambda *a: calls.append(a))
    _drift_job("<JobId>j1</JobId><Progress>half</Progress>", reporter)
    _drift_job("<JobId>j2</JobId><Progress>most</Progress>", reporter)
    _drift_job("<JobId>j3</JobId><Operation><JobLevel>x</JobLevel></Operation>", reporter)
    assert [c[0] for c in calls] == ["JobsDetail.Progress", "JobsDetail.Operation.JobLevel"]
    assert calls[0][2] == "half"
    reporter.reset()
    _drift_job("<JobId>j4</JobId><Progress>again</Progress>", reporter)
    assert calls[-1] == ("JobsDetail.Progress", "not a valid int", "again")


def test_no_callback_reports_nothing_and_changes_nothing() -> None:
    body = "<JobId>j1</JobId><Progress>half</Progress><State>a</State><State>b</State>"
    calls: list[tuple[str, str, Any]] = []
    assert _drift_job(body, None) == _drift_job(body, lambda *a: calls.append(a))
    assert len(calls) == 2


def test_json_drift_goes_to_the_callback() -> None:
    calls: list[tuple[str, str, Any]] = []
    body = json.dumps({"JobsDetail": {"JobId": "j1", "Progress": "x", "State": ["a", "b"]}})
    job = normalize_document(body, on_drift=lambda *a: calls.append(a))["JobsDetail"][0]
    assert job["Progress"] == "x" and job["State"] == "a"
    assert {c[:2] for c in calls} == {
        ("JobsDetail.Progress", "not a valid int"),
        ("JobsDetail.State", "repeated single element, first kept"),
    }


def test_normalize_package_imports_no_logging() -> None:
    code = (
        "import sys, cijobs.normalize; "
        "print(sorted(m for m in sys.modules if m.startswith(('structlog', 'cijobs.log'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_duplicate_declared_scalar_keeps_first_and_reports() -> None:
    calls: list[tuple[str, str, Any]] = []
    job = _drift_job("<JobId>j1</JobId><State>Running</State><State>Success</State>", lambda *a: calls.append(a))
    assert job["State"] == "Running"
    assert calls == [("JobsDetail.State", "repeated single element, first kept", None)]


# ------------------------------------------------------------------ table


def test_brace_expansion() -> None:
    assert expand("A.{B,C}.{D,E}") == ["A.B.D", "A.B.E", "A.C.D", "A.C.E"]
    assert expand("plain") == ["plain"]


def test_table_lookup_is_by_full_path() -> None:
    assert lookup("JobsDetail.Operation.MediaInfo.Stream.Video.Fps") == (False, "float", None)
    assert lookup("JobsDetail.Operation.Transcode.Video.Fps") is None
    spec = lookup("JobsDetail.Operation.MediaResult.OutputFile.Md5Info")
    assert spec is not None and spec[0] is True
    assert lookup("JobsDetail.Operation.JobLevel") == (False, "int", None)
    assert lookup("WorkflowExecution.Tasks.CreateTime") == (False, "timestamp", None)
    assert lookup("Fps") is None


def test_table_covers_spec_array_paths() -> None:
    # the element paths CI's job documentation lets repeat (provenance: tests/fixtures/README.md)
    with open(os.path.join(FIXTURES, "handmade", "spec", "ci-array-paths.json"), encoding="utf-8") as fh:
        spec = json.load(fh)
    prefixes = {"response": "", "jobsDetail": "JobsDetail.", "workflowExecution": "WorkflowExecution."}
    # the spec's "conflict -> treat as []" for Transcode.AudioMix is decided by the Go SDK instead
    # (*AudioMix at every parent; the list is AudioMixArray): one shape at Transcode, VideoEnhance.Transcode,
    # ConcatTemplate and VideoMontage
    decided_by_go = {"JobsDetail.Operation.Transcode.AudioMix"}
    for ctx, paths in spec.items():
        if ctx not in prefixes:
            continue
        for path in paths:
            for full in expand(prefixes[ctx] + path):
                entry = lookup(full)
                assert entry is not None, full
                assert entry[0] is (full not in decided_by_go), full


def test_table_rejects_inconsistent_declarations() -> None:
    data = load_raw()
    data["types"]["jobsDetail"]["int"].append("Operation.MediaInfo")  # a container declared int
    with pytest.raises(TableError):
        compile_table(data)
    data = load_raw()
    data["types"]["jobsDetail"]["string"].append("Progress")  # int and string at once
    with pytest.raises(TableError):
        compile_table(data)


# ------------------------------------------------------------------ envelope and JSON shapes


def test_json_top_level_variants_normalize_alike() -> None:
    job = {"JobId": "j1", "Progress": "5", "Operation": {"MediaResult": {"OutputFile": {"ObjectName": "a.mp4"}}}}
    variants = [
        {"EventName": "TaskFinish", "JobsDetail": job},
        {"EventName": "TaskFinish", "JobsDetail": [job]},
        {"Response": {"EventName": "TaskFinish", "JobsDetail": job}},
    ]
    outs = [normalize_document(json.dumps(v).encode()) for v in variants]
    assert outs[0] == outs[1] == outs[2]
    assert outs[0]["JobsDetail"][0]["Operation"]["MediaResult"]["OutputFile"]["ObjectName"] == ["a.mp4"]
    assert outs[0]["JobsDetail"][0]["Progress"] == 5


def test_json_empty_values_at_array_paths() -> None:
    doc = normalize_document(
        b'{"JobsDetail": {"JobId": "j1", "Operation": {"MediaResult": {"OutputFile": '
        b'{"Md5Info": {}, "ObjectName": ["", "a"]}}}}}'
    )
    out = doc["JobsDetail"][0]["Operation"]["MediaResult"]["OutputFile"]
    assert out == {"Md5Info": [], "ObjectName": ["a"]}


def test_json_non_string_scalars() -> None:
    doc = normalize_document(
        b'{"JobsDetail": {"JobId": "j1", "Progress": 7, "Operation": {"JobLevel": 0, '
        b'"Snapshot": {"IsCheckCount": true}}, "Unknown": 1.5, "Null": null}}'
    )
    job = doc["JobsDetail"][0]
    assert job["Progress"] == 7 and job["Operation"]["JobLevel"] == 0
    assert job["Operation"]["Snapshot"]["IsCheckCount"] is True
    assert job["Unknown"] == 1.5 and job["Null"] is None


def test_json_repeated_declared_scalar_keeps_first() -> None:
    doc = normalize_document(b'{"JobsDetail": {"JobId": "j1", "Operation": {"JobLevel": ["0", "0"]}}}')
    assert doc["JobsDetail"][0]["Operation"]["JobLevel"] == 0


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"[1, 2]", UnexpectedDocumentError),
        (b'"text"', MalformedDocumentError),
        (b"<Other/>", UnexpectedDocumentError),
        (b"<Response>just text</Response>", UnexpectedDocumentError),
        (b"<Response><JobsDetail>x</JobsDetail></Response>", UnexpectedDocumentError),
        (b"<Response><NonExistJobIds><Id>a</Id></NonExistJobIds></Response>", UnexpectedDocumentError),
        (b'{"JobsDetail": "x"}', UnexpectedDocumentError),
        (b'{"Error": {"Code": "AccessDenied"}}', UnexpectedDocumentError),
        (b"", MalformedDocumentError),
        (b"   \n  ", MalformedDocumentError),
        (b"hello", MalformedDocumentError),
        (b'{"a": NaN}', MalformedDocumentError),
        (b'{"a": 1' + b"1" * 5000 + b"}", MalformedDocumentError),
        (b"\xff\xfe<\x00", MalformedDocumentError),
        (b'<?xml version="1.0" encoding="no-such-codec"?><Response/>', MalformedDocumentError),
    ],
)
def test_bad_documents(body: bytes, error: type) -> None:
    with pytest.raises(error):
        normalize_document(body)


def test_unexpected_root_carries_error_dict() -> None:
    with pytest.raises(UnexpectedDocumentError) as info:
        normalize_document(b"<Error><Code>NoSuchBucket</Code><Message>m</Message></Error>")
    assert info.value.error == {"Code": "NoSuchBucket", "Message": "m", "RequestId": "", "TraceId": ""}


def test_str_bytes_bom_and_declaration_inputs_agree() -> None:
    xml = (
        '<?xml version="1.0" encoding="utf-8"?>'
        "<Response><JobsDetail><JobId>j1</JobId><Message>完成</Message></JobsDetail></Response>"
    )
    a = normalize_document(xml)
    b = normalize_document(xml.encode())
    c = normalize_document(b"\xef\xbb\xbf" + xml.encode())
    d = normalize_document(bytearray(xml.encode()))
    assert a == b == c == d
    assert a["JobsDetail"][0]["Message"] == "完成"


def test_nonexistent_ids_split_and_dedupe() -> None:
    doc = normalize_document(
        b"<Response><NonExistJobIds> a,b ,,c\n d </NonExistJobIds><NonExistJobIds>b</NonExistJobIds></Response>"
    )
    assert doc["NonExistJobIds"] == ["a", "b", "c", "d"]
    doc = normalize_document(b'{"NonExistJobIds": "x,y"}')
    assert doc == {"JobsDetail": [], "NonExistJobIds": ["x", "y"]}


def test_unknown_repair_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown repair"):
        normalize_document(b"<Response/>", repair=("everything",))


def test_repair_is_opt_in_and_named() -> None:
    body = b"<Response>\n  <JobsDetail>\n    <JobId>j1</JobId>\n    </Message>\n  </JobsDetail>\n</Response>\n"
    with pytest.raises(MalformedDocumentError):
        normalize_document(body)
    with pytest.raises(MalformedDocumentError):
        normalize_document(body, repair=("unclosed-leaf-tag",))
    assert normalize_document(body, repair=("stray-close-tag",))["JobsDetail"][0]["Message"] == ""
    # a repair never applies to a different problem
    other = b"<Response>\n  <JobsDetail>\n    <JobId>j1\n  </JobsDetail>\n</Response>\n"
    with pytest.raises(MalformedDocumentError) as info:
        normalize_document(other, repair=("stray-close-tag", "unclosed-leaf-tag"))
    assert info.value.raw == other


# The `cijobs normalize` tests live in tests/test_cli_normalize.py.
