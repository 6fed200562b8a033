"""The Go SDK's job model as a checked reference for ``paths.json``.

``tests/data/go-sdk-job-paths.tsv`` lists every XML path under ``JobsDetail`` that
tencentyun/cos-go-sdk-v5 (commit cc9846d, ci_media.go) models, with its kind (ARRAY =
Go slice, scalar, struct) and Go type. The table must declare every Go slice as an
array and type every Go int/float/bool alike, and it types a Go string as something
else only where ``DIVERGENCES`` says so. The fixtures must then come out with lists at
every Go slice path and numbers/booleans at Go's typed paths, even with one element.
"""

from __future__ import annotations

import fnmatch
import glob
import os
from collections.abc import Iterator
from typing import Any

import pytest

from cijobs.normalize import normalize_document
from cijobs.normalize.table import declared_paths, job_tags, lookup
from fakes import FIXTURES

TSV = os.path.join(os.path.dirname(__file__), "data", "go-sdk-job-paths.tsv")

# Where the table types a path that Go keeps as a string (Go models nearly every CI value
# as text). Each entry is a glob over the path under JobsDetail, and the reason we differ.
# They excuse only this direction: Go's slices and typed scalars are checked without exception.
DIVERGENCES: dict[str, str] = {
    # documented as 0..100; an int, so consumers can compare it
    "Progress": "int",
    # CI timestamps; normalized to ISO 8601 (null for "-")
    "CreationTime": "timestamp",
    "StartTime": "timestamp",
    "EndTime": "timestamp",
    # ffprobe figures: Go and Java keep MediaInfo numbers as strings, we type them per path
    # (Bitrate/Duration numbers, Width/Index ints; CodecTag, Timebase, Level stay text)
    "Operation.MediaInfo.*": "int/float",
    # Go models Stream.Subtitle as one string; CI sends a container per subtitle stream
    # ({Index, Language}, a list in the Android SDK): a list, Index an int like Audio/Video
    "Operation.MediaInfo.Stream.Subtitle": "list",
    # documented numeric results (scores, offsets, positions, durations) that Go leaves as text
    "Operation.QualityEstimate.Score": "float",
    "Operation.WordsGeneralizeResult.WordsGeneralizeToken.*": "int",
    "Operation.SplitVideoInfoResult.TimeInfo.*": "int/float",
    "Operation.VideoTargetRecResult.*": "int/float",
    "Operation.SpeechRecognitionResult.FlashResult.*": "int",
    "Operation.SpeechRecognitionResult.ResultDetail.*": "int/float",
}

_GO_KINDS = {"bool": "bool", "int": "int", "int32": "int", "int64": "int", "float32": "float", "float64": "float"}


def _rows() -> list[tuple[str, str, str]]:
    with open(TSV, encoding="utf-8") as fh:
        lines = [line.rstrip("\n").split("\t") for line in fh if line.strip() and not line.startswith("#")]
    return [(cols[0], cols[1], cols[2]) for cols in lines]


ROWS = _rows()
GO_SLICES = {path for path, kind, _ in ROWS if kind == "ARRAY"}
GO_TYPED = {path: _GO_KINDS[go] for path, kind, go in ROWS if kind == "scalar" and go in _GO_KINDS}
GO_STRINGS = {path for path, kind, go in ROWS if kind == "scalar" and go == "string"}


def _diverges(path: str) -> bool:
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in DIVERGENCES)


def test_reference_file_names_its_source() -> None:
    with open(TSV, encoding="utf-8") as fh:
        head = fh.readline()
    assert "tencentyun/cos-go-sdk-v5" in head and "cc9846d" in head
    assert len(ROWS) == 975 and len(GO_SLICES) == 66


def test_every_go_slice_is_an_array_path() -> None:
    arrays, _ = declared_paths()
    missing = sorted(p for p in GO_SLICES if f"JobsDetail.{p}" not in arrays)
    assert missing == []


def test_every_go_number_and_bool_is_typed_alike() -> None:
    _, kinds = declared_paths()
    wrong = {p: (go, kinds.get(f"JobsDetail.{p}")) for p, go in GO_TYPED.items() if kinds.get(f"JobsDetail.{p}") != go}
    assert wrong == {}


def test_go_strings_are_typed_otherwise_only_where_listed() -> None:
    arrays, kinds = declared_paths()
    typed = sorted(
        p for p in GO_STRINGS
        if (kinds.get(f"JobsDetail.{p}", "string") != "string" or f"JobsDetail.{p}" in arrays) and not _diverges(p)
    )
    assert typed == []
    # every listed divergence still matches something (no stale entries)
    for pattern in DIVERGENCES:
        assert any(fnmatch.fnmatchcase(p, pattern) for p in GO_STRINGS), pattern


# ------------------------------------------------------------------ fixtures


def _fixtures() -> list[str]:
    paths = glob.glob(os.path.join(FIXTURES, "*.xml")) + glob.glob(os.path.join(FIXTURES, "handmade", "*.xml"))
    skip = {"seed-running.xml", "seed-success.xml", "VideoTag.xml", "error-template.xml", "error-403.xml"}
    return sorted(p for p in paths if os.path.basename(p) not in skip)


def _walk(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(path, value) for every member under a job; list items share their list's path."""
    if isinstance(value, dict):
        for key, child in value.items():
            child_path = f"{path}.{key}" if path else key
            yield child_path, child
            if isinstance(child, list):
                for item in child:
                    yield from _walk(item, child_path)
            else:
                yield from _walk(child, child_path)


_PY_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,)}


def _check_job(job: dict[str, Any]) -> tuple[list[str], set[str]]:
    problems, seen = [], set()
    for path, value in _walk(job, ""):
        if path in GO_SLICES:
            seen.add(path)
            if not isinstance(value, list):
                problems.append(f"{path}: {type(value).__name__}, not a list")
        elif path in GO_TYPED and value != "":
            seen.add(path)
            expected = _PY_TYPES[GO_TYPED[path]]
            if not isinstance(value, expected) or (GO_TYPED[path] != "bool" and isinstance(value, bool)):
                problems.append(f"{path}: {value!r} is not {GO_TYPED[path]}")
    return problems, seen


def test_fixtures_have_lists_at_go_slices_and_numbers_at_go_numbers() -> None:
    seen: set[str] = set()
    problems: list[str] = []
    for fixture in _fixtures():
        with open(fixture, "rb") as fh:
            doc = normalize_document(fh.read())
        if os.path.basename(fixture) == "unknown-fields.xml":
            continue  # holds values that fail their type on purpose
        for job in doc["JobsDetail"]:
            found, hit = _check_job(job)
            problems += [f"{os.path.basename(fixture)}: {p}" for p in found]
            seen |= hit
    assert problems == []
    # the new job types' slices and numbers are exercised (with one element where Go has a slice)
    for path in (
        "Workflow", "Operation.SpeechRecognitionResult.Result", "Operation.FillConcat.FillInput",
        "Operation.VideoSynthesis.SpliceInfo", "Operation.DnaResult.Detection.MatchDetail",
        "Operation.VocalScoreResult.PitchScore.SentenceScores",
        "Operation.VocalScoreResult.RhythemScore.SentenceScores",
        "Operation.Detection.TextDetections", "Operation.Detection.TextDetections.Polygon",
        "Operation.Detection.TextDetections.ItemPolygon", "Operation.Detection.TextDetections.Words",
        "Operation.Detection.TextDetections.Words.WordCoordPoint.WordCoordinate",
        "Operation.Detection.TextDetections.WordPolygon", "Operation.Detection.TextDetections.WordPolygon.LeftTop",
        "Operation.DnaResult.Duration", "Operation.DnaResult.Detection.MatchDetail.SrcEndTime",
        "Operation.VocalScoreResult.PitchScore.TotalScore", "Operation.ImageInspectResult.ProcessResult.PicSize",
        "Operation.Detection.TextDetections.Words.Confidence", "Operation.Detection.PdfPageSize",
    ):
        assert path in seen, path


def test_a_single_element_at_a_go_slice_is_a_list_in_xml_and_json() -> None:
    xml = (
        "<Response><JobsDetail><JobId>j1</JobId><Operation><VocalScoreResult>"
        "<PitchScore><SentenceScores><Score>1.5</Score></SentenceScores></PitchScore>"
        "<RhythemScore><SentenceScores><Score>2</Score></SentenceScores>"
        "<SentenceScores><Score>3</Score></SentenceScores></RhythemScore>"
        "</VocalScoreResult></Operation></JobsDetail></Response>"
    )
    json_body = (
        '{"JobsDetail": {"JobId": "j1", "Operation": {"VocalScoreResult": {'
        '"PitchScore": {"SentenceScores": {"Score": "1.5"}},'
        '"RhythemScore": {"SentenceScores": [{"Score": "2"}, {"Score": "3"}]}}}}}'
    )
    for body in (xml, json_body):
        vs = normalize_document(body)["JobsDetail"][0]["Operation"]["VocalScoreResult"]
        assert vs["PitchScore"]["SentenceScores"] == [{"Score": 1.5}]
        assert vs["RhythemScore"]["SentenceScores"] == [{"Score": 2.0}, {"Score": 3.0}]


def test_java_spelling_of_the_dna_result_has_the_same_shape() -> None:
    body = (
        "<Response><JobsDetail><JobId>j1</JobId><Tag>DNA</Tag><Operation><DNAResult><Duration>30</Duration>"
        "<Detection><Similar>90</Similar><MatchDetail><SrcEndTime>7</SrcEndTime></MatchDetail></Detection>"
        "</DNAResult></Operation></JobsDetail></Response>"
    )
    dna = normalize_document(body)["JobsDetail"][0]["Operation"]["DNAResult"]
    assert dna == {"Duration": 30, "Detection": {"Similar": 90, "MatchDetail": [{"SrcEndTime": 7}]}}


def test_audio_mix_has_one_shape_at_every_parent() -> None:
    for parent in ("Transcode", "VideoEnhance.Transcode", "ConcatTemplate", "VideoMontage"):
        mix = lookup(f"JobsDetail.Operation.{parent}.AudioMix")
        mix_array = lookup(f"JobsDetail.Operation.{parent}.AudioMixArray")
        assert mix is not None and mix[:2] == (False, "object"), parent  # Go: *AudioMix
        assert mix_array is not None and mix_array[:2] == (True, "object"), parent  # Go: []AudioMix


def test_job_tags_are_real_tags_only() -> None:
    tags = job_tags()
    assert "HighSpeedHd" not in tags and "Transcode" in tags
    assert {"DNA", "VocalScore", "ImageInspect", "ImageOCR", "FillConcat", "VideoSynthesis", "PosterProduction",
            "GeneratePlayList"} <= set(tags)
    assert len(tags) == len(set(tags)) == 37


@pytest.mark.parametrize("name", ["callback-WorkflowFinish-extras.xml"])
def test_workflow_finish_extras_are_typed(name: str) -> None:
    with open(os.path.join(FIXTURES, "handmade", name), "rb") as fh:
        task = normalize_document(fh.read())["WorkflowExecution"]["Tasks"][0]
    judgement = task["JudgementInfo"]
    assert judgement["ObjectCount"] == 1 and task["ResultInfo"]["ObjectCount"] == 1
    assert isinstance(judgement["JudgementResult"], list) and judgement["JudgementResult"][0]["State"] == "Success"
    ocr = task["ResultInfo"]["ObjectInfo"][0]["ImageOcrResult"]
    assert ocr["TextDetections"] == [{"DetectedText": "万象", "Confidence": 97, "Polygon": [{"X": 4, "Y": 8}]}]
    assert ocr["PdfPageSize"] == 0


def test_transcode_extras_one_shape_per_path_and_no_drift() -> None:
    reports: list[tuple[str, str, Any]] = []
    with open(os.path.join(FIXTURES, "handmade", "Transcode-extras.xml"), "rb") as fh:
        job = normalize_document(fh.read(), on_drift=lambda *a: reports.append(a))["JobsDetail"][0]
    assert reports == []  # a second <Workflow> is an entry, not a dropped repeat
    assert [w["Name"] for w in job["Workflow"]] == ["Transcode_1", "Transcode_2"]
    op = job["Operation"]
    assert op["FreeTranscode"] == "true" and op["SnapshotPrefix"] == "snap/"
    assert op["Transcode"]["AudioMix"]["MixMode"] == "Once"
    assert [m["MixMode"] for m in op["Transcode"]["AudioMixArray"]] == ["Repeat"]
    assert op["SpeechRecognitionResult"]["Result"] == ["第一句。"]
    stream = op["MediaInfo"]["Stream"]
    assert [s["Index"] for s in stream["Audio"] + stream["Video"] + stream["Subtitle"]] == [1, 0, 2]


def test_a_repeated_audio_mix_keeps_the_first_and_reports() -> None:
    reports: list[tuple[str, str, Any]] = []
    body = (
        "<Response><JobsDetail><JobId>j1</JobId><Operation><VideoMontage>"
        "<AudioMix><MixMode>Once</MixMode></AudioMix><AudioMix><MixMode>Repeat</MixMode></AudioMix>"
        "</VideoMontage></Operation></JobsDetail></Response>"
    )
    job = normalize_document(body, on_drift=lambda *a: reports.append(a))["JobsDetail"][0]
    assert job["Operation"]["VideoMontage"]["AudioMix"] == {"MixMode": "Once"}
    assert reports == [("JobsDetail.Operation.VideoMontage.AudioMix", "repeated single element, first kept", None)]


def test_docs_list_every_job_type_and_cite_the_reference() -> None:
    from cijobs.normalize.table import load_raw

    with open(os.path.join(os.path.dirname(__file__), "..", "docs", "normalized-json.md"), encoding="utf-8") as fh:
        text = fh.read()
    assert "https://github.com/tencentyun/cos-go-sdk-v5/blob/cc9846d/ci_media.go" in text
    assert "shared/" not in text
    for name in load_raw()["jobTypes"]:
        assert f"| `{name}` |" in text, name
