"""Every doc fixture and hand-made fixture through the normalizer: arrays, types,
timestamps, schema validity, and XML/JSON sibling equivalence."""

from __future__ import annotations

import glob
import json
import os
from typing import Any

import jsonschema
import pytest

from cijobs.normalize import (
    MalformedDocumentError,
    UnexpectedDocumentError,
    normalize_document,
    parse_error,
)
from cijobs.normalize.schema import build_schema, load_schema, render
from cijobs.normalize.table import load_raw
from fakes import FIXTURES

HANDMADE = os.path.join(FIXTURES, "handmade")
MALFORMED = {"seed-running.xml", "seed-success.xml", "VideoTag.xml", "callback-Translation.json"}
ERROR_BODIES = {"error-template.xml", "error-403.xml"}
DRIFT = "handmade/unknown-fields.xml"


def _read(name: str) -> bytes:
    path = (
        os.path.join(HANDMADE, name[len("handmade/") :])
        if name.startswith("handmade/")
        else os.path.join(FIXTURES, name)
    )
    with open(path, "rb") as fh:
        return fh.read()


def _norm(name: str, **kw: Any) -> dict[str, Any]:
    return normalize_document(_read(name), **kw)


def _all_fixtures() -> list[str]:
    names = [
        os.path.basename(p)
        for p in glob.glob(os.path.join(FIXTURES, "*.xml")) + glob.glob(os.path.join(FIXTURES, "*.json"))
    ]
    names += ["handmade/" + os.path.basename(p) for p in glob.glob(os.path.join(HANDMADE, "*")) if os.path.isfile(p)]
    return sorted(names)


WELL_FORMED = [n for n in _all_fixtures() if os.path.basename(n) not in MALFORMED | ERROR_BODIES]


def _job(name: str, **kw: Any) -> dict[str, Any]:
    doc = _norm(name, **kw)
    assert len(doc["JobsDetail"]) == 1
    job: dict[str, Any] = doc["JobsDetail"][0]
    return job


# ------------------------------------------------------------------ schema


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_committed_schema_matches_table() -> None:
    with open(
        os.path.join(os.path.dirname(FIXTURES), "..", "lib", "cijobs", "normalize", "schema.json"), encoding="utf-8"
    ) as fh:
        assert fh.read() == render(build_schema())


def test_fixture_inventory_is_what_the_tests_expect() -> None:
    assert len(WELL_FORMED) >= 45
    for name in MALFORMED | ERROR_BODIES - {"error-403.xml"}:
        assert os.path.exists(os.path.join(FIXTURES, name))


@pytest.mark.parametrize("name", WELL_FORMED)
def test_every_well_formed_fixture_normalizes_and_validates(
    name: str, validator: jsonschema.Draft202012Validator
) -> None:
    doc = _norm(name)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    messages = [f"{list(e.path)}: {e.message}" for e in errors]
    if name == DRIFT:  # values that failed their declared type stay strings: the schema flags exactly those
        assert messages == [
            "['JobsDetail', 0, 'Operation', 'JobLevel']: 'high' is not of type 'integer'",
            "['JobsDetail', 0, 'Operation', 'MediaInfo', 'Format', 'Duration']: 'N/A' is not of type 'number'",
        ]
    else:
        assert not errors, messages
    assert isinstance(doc["JobsDetail"], list)
    assert isinstance(doc["NonExistJobIds"], list)
    # deterministic bytes
    again = normalize_document(_read(name))
    assert json.dumps(doc, sort_keys=True) == json.dumps(again, sort_keys=True)


def test_schema_rejects_wrong_types(validator: jsonschema.Draft202012Validator) -> None:
    doc = _norm("MediaInfo.xml")
    doc["JobsDetail"][0]["Operation"]["MediaInfo"]["Format"]["Size"] = "1424687"
    assert list(validator.iter_errors(doc))
    doc = _norm("Tts.xml")
    doc["JobsDetail"][0]["Operation"]["MediaResult"]["OutputFile"]["Md5Info"] = {"Md5": "x"}
    assert list(validator.iter_errors(doc))
    doc = _norm("Snapshot.xml")
    doc["JobsDetail"][0]["EndTime"] = "2022-06-30T19:25:14+0800"  # not converted
    assert list(validator.iter_errors(doc))


def test_every_job_type_has_a_fixture() -> None:
    tags = set()
    for name in WELL_FORMED:
        for job in _norm(name)["JobsDetail"]:
            tags.add(job.get("Tag"))
    table_types = load_raw()["jobTypes"]
    assert len(table_types) == 38  # the seed page's 30 and the 8 more the SDKs model
    missing = {info.get("tag", name) for name, info in table_types.items()} - tags
    # WordsGeneralize's doc sample has no Tag element; its JSON sibling neither
    assert missing <= {"WordsGeneralize"}
    assert "WordsGeneralizeResult" in _job("WordsGeneralize.xml")["Operation"]


# ------------------------------------------------------------------ malformed


@pytest.mark.parametrize(
    ("name", "line", "column"),
    [
        ("seed-running.xml", 4, 11),  # 1-based: inside the stray "        </Message>"
        ("seed-success.xml", 4, 11),
        ("VideoTag.xml", 178, 5),  # "    </JobsDetail>": where expat notices the unclosed <Tag>
        ("callback-Translation.json", 27, 9),
    ],
)
def test_malformed_fixtures_fail_with_position_and_raw(name: str, line: int, column: int) -> None:
    raw = _read(name)
    with pytest.raises(MalformedDocumentError) as info:
        normalize_document(raw)
    assert (info.value.line, info.value.column) == (line, column)
    assert info.value.raw == raw
    assert f"line {line}, column {column}" in str(info.value)


def test_seed_documents_with_opt_in_repair() -> None:
    job = _job("seed-success.xml", repair=("stray-close-tag",))
    assert job["Message"] == ""
    assert job["State"] == "Success" and job["Progress"] == 100
    assert job["Operation"]["WatermarkTemplateId"] == [
        "t1318c5f428d474afba1797f84091cbe22",
        "t1318c5f428d474afba1797f84091cbe23",
        "t1318c5f428d474afba1797f84091cbe24",
    ]
    assert job["Operation"]["RemoveWatermark"] == [{"Dx": "150", "Dy": "150", "Width": "75", "Height": "75"}]
    assert job["Operation"]["DigitalWatermark"]["IgnoreError"] is False
    running = _job("seed-running.xml", repair=("stray-close-tag",))
    assert running["State"] == "Running" and running["Progress"] == 30
    assert running["EndTime"] is None


def test_videotag_needs_its_own_repair_and_stray_repair_does_not_misfire() -> None:
    with pytest.raises(MalformedDocumentError):  # </JobsDetail> is not stray: must not be "fixed"
        _norm("VideoTag.xml", repair=("stray-close-tag",))
    job = _job("VideoTag.xml", repair=("unclosed-leaf-tag",))
    assert job["Tag"] == "VideoTag"
    assert job["StartTime"] is None and job["EndTime"] is None  # empty timestamps
    data = job["Operation"]["VideoTagResult"]["StreamData"]["Data"]
    assert [t["Confidence"] for t in data["Tags"]] == [0.939035, 0.884062, 0.345798, 0.997328, 0.997595]
    assert len(data["PersonTags"]) == 2
    assert data["PersonTags"][0]["Count"] == "3"  # Count is a string per spec
    assert isinstance(data["PersonTags"][1]["DetailPerSecond"][0]["BBox"], list)
    assert data["PersonTags"][0]["DetailPerSecond"][0]["Confidence"] == pytest.approx(0.8411815762519836)
    assert data["PlaceTags"][1]["ClipFrameResult"][0] == "Closeup: 0.23"
    assert "Tags" not in data["PlaceTags"][1]  # absent stays absent
    assert data["ObjectTags"][0]["Objects"][1]["BBox"][0]["X1"] == "0.06269711256027222"
    assert job["Operation"]["VideoTagResult"]["StreamData"]["SubErrCode"] == "0"


def test_error_bodies() -> None:
    with pytest.raises(UnexpectedDocumentError) as info:
        _norm("handmade/error-403.xml")
    assert info.value.error is not None and info.value.error["Code"] == "SignatureDoesNotMatch"
    err = parse_error(_read("handmade/error-403.xml"))
    assert err is not None
    assert err["Code"] == "SignatureDoesNotMatch"
    assert err["RequestId"] == "NjVmMDAwMDBfMDAwMDAwMDBfMDAwMF8wMDAwMDAw"
    assert err["TraceId"].startswith("OGVmYzZi")
    assert err["Resource"].endswith("/jobs/j00000000000000000000000000000a01")
    assert parse_error(_read("error-template.xml")) == {
        "Code": "string",
        "Message": "string",
        "RequestId": "string",
        "TraceId": "string",
    }
    assert parse_error(_read("MediaInfo.xml")) is None
    assert parse_error(_read("callback-MediaInfo.json")) is None
    assert parse_error(b"<Error><Code>NoSuchKey</Code></Error>") == {
        "Code": "NoSuchKey",
        "Message": "",
        "RequestId": "",
        "TraceId": "",
    }
    assert parse_error(b"<html>502 Bad Gateway</html>") is None
    assert parse_error(b"garbage") is None
    assert parse_error(b"") is None


# ------------------------------------------------------------------ arrays


def test_tts_single_md5info_is_still_an_array() -> None:
    job = _job("Tts.xml")
    out = job["Operation"]["MediaResult"]["OutputFile"]
    assert isinstance(out["Md5Info"], list) and len(out["Md5Info"]) == 1
    assert isinstance(out["ObjectName"], list) and len(out["ObjectName"]) == 1
    assert isinstance(job["Operation"]["MediaInfo"]["Stream"]["Audio"], list)
    assert "Input" not in job  # the Tts callback has no Input block


def test_snapshot_empty_md5info_and_single_sprite_object_name() -> None:
    job = _job("Snapshot.xml")
    out = job["Operation"]["MediaResult"]["OutputFile"]
    assert out["Md5Info"] == []
    assert out["ObjectName"] == [f"{i}.jpg" for i in range(6)]
    assert out["SpriteOutputFile"]["ObjectName"] == ["0.jpg"]
    assert out["SpriteOutputFile"]["Md5Info"] == []
    stream = job["Operation"]["MediaInfo"]["Stream"]
    assert stream == {"Audio": [], "Subtitle": [], "Video": []}
    assert job["Operation"]["MediaInfo"]["Format"] == {}  # declared container, empty


def test_speech_recognition_duplicate_joblevel_stays_scalar() -> None:
    job = _job("SpeechRecognition-submitted.xml")
    assert job["Operation"]["JobLevel"] == 0
    assert job["StartTime"] is None and job["EndTime"] is None
    assert job["CreationTime"] == "2021-08-05T15:43:50+08:00"
    result = _job("SpeechRecognition.xml")["Operation"]["SpeechRecognitionResult"]
    assert result["AudioTime"] == 30.12
    assert result["ResultDetail"] == []
    assert len(result["Result"]) == 1 and result["Result"][0].startswith("[0:0.000,0:30.080]")  # Go: []string


def test_words_generalize_one_lable_five_tokens() -> None:
    result = _job("WordsGeneralize.xml")["Operation"]["WordsGeneralizeResult"]
    assert result["WordsGeneralizeLable"] == [{"Category": "Mobility", "Word": "Taxi"}]
    assert [t["Word"] for t in result["WordsGeneralizeToken"]] == ["Today", "Taxi", "Cost", "60", "CNY"]
    assert [t["Offset"] for t in result["WordsGeneralizeToken"]] == [0, 2, 4, 5, 7]
    assert result["WordsGeneralizeToken"][3]["Word"] == "60"  # a word, not a number


def test_stream_extract_arrays() -> None:
    op = _job("StreamExtract.xml")["Operation"]
    assert [s["Output"] for s in op["Output"]["StreamExtract"]] == [f"output/out{i}.mp4" for i in range(3)]
    assert op["Output"]["StreamExtract"][0]["Index"] == "0"  # Index is a string per spec
    assert len(op["MediaResult"]["OutputFile"]["Md5Info"]) == 2
    assert op["MediaResult"]["OutputFile"]["ObjectPrefix"] == ""


def test_smart_cover_and_montage() -> None:
    out = _job("SmartCover.xml")["Operation"]["MediaResult"]["OutputFile"]
    assert len(out["ObjectName"]) == 5 and out["Md5Info"] == []
    op = _job("VideoMontage.xml")["Operation"]
    assert isinstance(op["MediaInfo"]["Stream"]["Video"], list)


# ------------------------------------------------------------------ types


def test_media_info_numbers_and_strings() -> None:
    job = _job("MediaInfo.xml")
    fmt = job["Operation"]["MediaInfo"]["Format"]
    assert fmt["Bitrate"] == 834.736 and fmt["Duration"] == 13.654 and fmt["StartTime"] == 0.0
    assert fmt["Size"] == 1424687 and fmt["NumStream"] == 2 and fmt["NumProgram"] == 0
    assert fmt["FormatName"] == "mov,mp4,m4a,3gp,3g2,mj2"
    audio = job["Operation"]["MediaInfo"]["Stream"]["Audio"][0]
    assert audio["CodecTag"] == "0x6134706d"
    assert audio["CodecTimeBase"] == "1/44100" and audio["Timebase"] == "1/44100"
    assert audio["SampleRate"] == 44100 and audio["Channel"] == 2 and audio["Index"] == 1
    video = job["Operation"]["MediaInfo"]["Stream"]["Video"][0]
    assert video["Fps"] == 25.0 and isinstance(video["Fps"], float)
    assert video["Width"] == 544 and video["Height"] == 960
    assert video["Level"] == "10"  # units differ between sample families: left a string
    assert job["Message"] == ""
    assert job["CreationTime"] == "2022-06-30T18:45:14+08:00"
    assert "Progress" not in job


def test_fps_typed_per_path_not_per_name() -> None:
    job = _job("handmade/VideoEnhance.xml")
    assert job["Operation"]["VideoEnhance"]["Transcode"]["Video"]["Fps"] == "50/1"
    assert job["Operation"]["MediaInfo"]["Stream"]["Video"][0]["Fps"] == 25.0
    assert job["Operation"]["MediaInfo"]["Stream"]["Video"][0]["Dar"] == "17:30"
    assert job["Operation"]["VideoEnhance"]["Transcode"]["AudioMixArray"][0]["MixMode"] == "Repeat"
    assert job["Operation"]["VideoEnhance"]["ColorEnhance"]["Correction"] == ""


def test_pic_process_types() -> None:
    result = _job("PicProcess.xml")["Operation"]["PicProcessResult"]
    assert result["OriginalInfo"]["Etag"] == '"d5a491cd3d8d071e3212c3478e8e35a1"'
    assert result["OriginalInfo"]["ImageInfo"] == {
        "Ave": "0xc64847",
        "Format": "JPEG",
        "Height": 417,
        "Orientation": 0,
        "Quality": 68,
        "Width": 500,
    }
    assert result["ProcessResult"]["Etag"] == ""
    assert result["ProcessResult"]["Size"] == 24911


def test_workflow_callbacks() -> None:
    doc = _norm("callback-WorkflowFinish-doc.xml")
    assert doc["EventName"] == "WorkflowFinish"
    assert doc["JobsDetail"] == [] and doc["NonExistJobIds"] == []
    wf = doc["WorkflowExecution"]
    assert wf["CreateTime"] == "2022-08-09T14:54:17+08:00"
    assert [t["JobId"] for t in wf["Tasks"]] == [
        "j23c11e1e17b011edaab4ab15ec33d076",
        "j168668b217b011ed8efb27bb229e2d11",
    ]
    assert wf["Tasks"][0]["EndTime"] == "2022-08-09T14:54:42+08:00"
    assert len(wf["CosHeaders"]) == 2
    single = _norm("callback-WorkflowFinish.xml")["WorkflowExecution"]
    assert single["BucketId"] == "" and isinstance(single["Tasks"], list)
    one = _norm("handmade/callback-WorkflowFinish-single.json")["WorkflowExecution"]
    assert one["CosHeaders"] == [{"Key": "Content-Type", "Value": "video/mp4"}]
    assert [t["State"] for t in one["Tasks"]] == ["Failed"]


def test_taskfinish_workflow_job() -> None:
    doc = _norm("callback-TaskFinish-workflow-SuperResolution.xml")
    assert doc["EventName"] == "TaskFinish"
    job = doc["JobsDetail"][0]
    assert job["SubTag"] == "DigitalWatermark" and job["Progress"] == 100
    assert [h["Key"] for h in job["Input"]["CosHeaders"]] == ["Content-Type", "x-cos-request-id", "EventName", "Size"]
    assert job["Input"]["CosHeaders"][3]["Value"] == "1424687"  # header values stay strings
    assert [w["RunId"] for w in job["Workflow"]] == ["ic90edd59f84f11ec9d4f525400a3c59f"]  # Go: a slice
    assert job["Operation"]["DigitalWatermark"]["State"] == "Failed"
    assert job["Operation"]["MediaResult"]["OutputFile"]["ObjectPrefix"] == ""


# ------------------------------------------------------------------ hand-made


def test_handmade_job_types() -> None:
    op = _job("handmade/Watermark.xml")["Operation"]
    assert [w["Type"] for w in op["Watermark"]] == ["Text", "Image"]
    assert op["WatermarkTemplateId"] == ["t1318c5f428d474afba1797f84091cbe22"]
    assert op["Watermark"][1]["Image"]["Height"] == ""
    assert _job("handmade/VideoProcess.xml")["Operation"]["WatermarkTemplateId"] == [
        "t143ae6e040af6431aa772c9ec3f0a3f36"
    ]
    dw = _job("handmade/DigitalWatermark.xml")["Operation"]["DigitalWatermark"]
    assert dw["IgnoreError"] is True and dw["State"] == "Failed"
    seg = _job("handmade/Segment.xml")["Operation"]
    assert seg["Segment"]["HlsEncrypt"]["IsHlsEncrypt"] is True
    assert len(seg["MediaResult"]["OutputFile"]["ObjectName"]) == 4
    assert _job("handmade/SDRtoHDR.xml")["Operation"]["SDRtoHDR"] == {"HdrMode": "HLG"}
    songs = _job("handmade/SoundHound.xml")["Operation"]["SoundHoundResult"]["SongList"]
    assert songs == [{"Inlier": 27, "SingerName": "Someone", "SongName": "Some song"}]
    vtr = _job("handmade/VideoTargetRec.xml")["Operation"]["VideoTargetRecResult"]
    assert [b["Time"] for b in vtr["BodyRecognition"]] == [1.206, 2.206, 3.206]
    assert vtr["BodyRecognition"][0]["BodyInfo"] == [
        {"Name": "body", "Score": 91, "Location": {"X": 101, "Y": 20, "Width": 300, "Height": 600}}
    ]
    assert [p["Name"] for p in vtr["PetRecognition"][0]["PetInfo"]] == ["cat", "dog"]
    assert vtr["CarRecognition"] == [] and "FaceRecognition" not in vtr
    assert vtr["Sensitive"] == "false"  # undeclared: passes through as text
    assert _job("handmade/SegmentVideoBody.xml")["Operation"]["SegmentVideoBody"]["BackgroundRed"] == "255"
    qe = _job("handmade/QualityEstimate.xml")["Operation"]["QualityEstimate"]
    assert qe["Score"] == 6.460358
    assert qe["VqaPlusResult"]["NoAudio"] is False
    items = qe["VqaPlusResult"]["DetailedResult"][0]["Items"]
    assert items[0]["AreaCoordSet"] == [10, 20, 110, 220] and items[0]["Confidence"] == 85
    assert items[0]["StartTimeOffset"] == 1.5 and items[1]["EndTimeOffset"] == 8.0
    assert "AreaCoordSet" not in items[1]
    concat = _job("handmade/Concat.xml")["Operation"]["ConcatTemplate"]
    assert [f["Mode"] for f in concat["ConcatFragment"]] == ["Start", "End"]
    assert len(concat["AudioMixArray"]) == 1
    vs = _job("handmade/VoiceSeparate.xml")["Operation"]
    assert [a["Bitrate"] for a in vs["MediaInfo"]["Stream"]["Audio"]] == [128.0, 96.0]
    assert vs["MediaInfo"]["Stream"]["Video"] == []
    assert _job("handmade/NoiseReduction.xml")["Operation"]["NoiseReduction"]["Samplerate"] == "16000"
    parts = _job("handmade/SplitVideoParts.xml")["Operation"]["SplitVideoInfoResult"]["TimeInfo"]
    assert parts == [{"Index": 1, "PartBegin": 0.0, "PartEnd": 4.52}]
    anim = _job("handmade/Animation.xml")["Operation"]["Animation"]
    assert anim["Video"]["Fps"] == "15"  # template parameter: not typed
    flash = _job("handmade/SpeechRecognition-flash.xml")["Operation"]["SpeechRecognitionResult"]
    assert flash["FlashResult"][0]["channel_id"] == 0
    assert flash["FlashResult"][0]["sentence_list"][0]["end_time"] == 4500
    assert flash["FlashResult"][0]["sentence_list"][0]["word_list"] == [
        {"word": "hello", "start_time": 0, "end_time": 2000}
    ]
    assert flash["ResultDetail"][0]["SpeechSpeed"] == 2.2
    assert [w["OffsetEndMs"] for w in flash["ResultDetail"][0]["Words"]] == [2000, 4500]


def test_multi_job_response_and_nonexistent_ids() -> None:
    doc = _norm("handmade/multi-job.xml")
    assert [j["State"] for j in doc["JobsDetail"]] == ["Success", "Running", "Failed"]
    assert doc["NonExistJobIds"] == [
        "j00000000000000000000000000000b01",
        "j00000000000000000000000000000b02",
        "j00000000000000000000000000000b03",
    ]
    running, failed = doc["JobsDetail"][1], doc["JobsDetail"][2]
    assert running["EndTime"] is None and running["Operation"]["JobLevel"] == 1
    assert running["Operation"]["Snapshot"]["IsCheckCount"] is True
    assert running["Operation"]["Snapshot"]["IsCheckBlack"] is False
    assert failed["Code"] == "InvalidParameter" and failed["Message"].startswith("The input file")
    assert failed["Operation"]["UserData"] == ""
    assert failed["Operation"]["MediaInfo"]["Stream"]["Audio"] == []


def test_failed_job() -> None:
    job = _job("handmade/failed.xml")
    assert job["State"] == "Failed" and job["Code"] == "ResourceDownloadFailed"
    assert job["Operation"]["MediaInfo"] == {} and job["Operation"]["MediaResult"] == {}
    assert "Progress" not in job


def test_list_responses() -> None:
    doc = _norm("handmade/list-nexttoken.xml")
    assert doc["NextToken"] == "31303030303030303030303030303030"
    assert [j["StartTime"] for j in doc["JobsDetail"]] == ["2024-03-01T09:00:01+08:00", None]
    last = _norm("handmade/list-last-page.xml")
    assert last == {"JobsDetail": [], "NonExistJobIds": [], "NextToken": ""}


def test_all_ids_missing() -> None:
    doc = _norm("handmade/nonexist-only.xml")
    assert doc == {
        "JobsDetail": [],
        "NonExistJobIds": ["j00000000000000000000000000000d01", "j00000000000000000000000000000d02"],
    }


def test_unknown_elements_pass_through_and_drift_keeps_strings() -> None:
    doc = _norm("handmade/unknown-fields.xml")
    assert doc["RequestId"] == "NjVmMDAwMDBfMDAwMDAwMDBfMDAwMF8wMDAwMDAx"
    job = doc["JobsDetail"][0]
    assert job["FutureField"] == "kept"
    assert job["FutureList"] == ["a", "b"]
    assert job["FutureBlock"] == {"Inner": ["1", "2"], "Width": "10"}  # unknown: never typed
    op = job["Operation"]
    assert op["Transcode"]["NewKnob"] == "on"
    assert op["Transcode"]["Video"]["Fps"] == "50/1"
    assert op["JobLevel"] == "high"  # drift: kept as the original string
    assert op["MediaInfo"]["Format"] == {"Duration": "N/A", "Size": 1424687}


# ------------------------------------------------------------------ XML vs JSON


def _drop_empty(value: Any) -> Any:
    if isinstance(value, dict):
        out = {k: _drop_empty(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in ("", [], {}, None)}
    if isinstance(value, list):
        return [_drop_empty(v) for v in value]
    return value


@pytest.mark.parametrize(
    ("xml_name", "json_name"),
    [
        ("MediaInfo.xml", "callback-MediaInfo.json"),
        ("StreamExtract.xml", "callback-StreamExtract.json"),
        ("callback-TaskFinish-workflow-PicProcess.xml", "callback-TaskFinish-workflow-PicProcess.json"),
        ("WordsGeneralize.xml", "callback-WordsGeneralize.json"),
        ("callback-WorkflowFinish-doc.xml", "callback-WorkflowFinish.json"),
    ],
)
def test_json_callback_equals_xml_sibling_modulo_dropped_empties(xml_name: str, json_name: str) -> None:
    from_xml, from_json = _norm(xml_name), _norm(json_name)
    assert from_xml["JobsDetail"] or from_xml.get("WorkflowExecution")
    assert _drop_empty(from_xml) == _drop_empty(from_json)


def _shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return ["list"] + ([_shape(value[0])] if value else [])
    return type(value).__name__


def _common(a: Any, b: Any) -> tuple[Any, Any]:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(set(a) & set(b))
        pairs = [_common(a[k], b[k]) for k in keys]
        return dict(zip(keys, (p[0] for p in pairs))), dict(zip(keys, (p[1] for p in pairs)))
    if isinstance(a, list) and isinstance(b, list) and len(a) == 2 and len(b) == 2:
        x, y = _common(a[1], b[1])
        return ["list", x], ["list", y]
    return a, b


@pytest.mark.parametrize(
    ("xml_name", "json_name"),
    [
        ("Snapshot.xml", "callback-TaskFinish-workflow-Snapshot.json"),
        ("Tts.xml", "callback-TaskFinish-workflow-Tts.json"),
        ("PicProcess.xml", "callback-TaskFinish-workflow-PicProcess.json"),
    ],
)
def test_json_workflow_callback_has_same_shape_as_xml_callback(xml_name: str, json_name: str) -> None:
    x, j = _common(_shape(_drop_empty(_norm(xml_name))), _shape(_drop_empty(_norm(json_name))))
    assert x == j
    assert x["JobsDetail"][1]["Operation"]  # the comparison is not vacuous


def test_json_single_elements_become_arrays() -> None:
    snap = _job("callback-TaskFinish-workflow-Snapshot.json")
    assert snap["Operation"]["MediaResult"]["OutputFile"]["SpriteOutputFile"]["ObjectName"] == ["0.jpg"]
    tts = _job("callback-TaskFinish-workflow-Tts.json")
    out = tts["Operation"]["MediaResult"]["OutputFile"]
    assert out["ObjectName"] == ["/output/aixiaonan.mp3"]
    assert out["Md5Info"] == [{"Md5": "5b2ca33cd7357abb1e0ea29f57544df9", "ObjectName": "/output/aixiaonan.mp3"}]
    assert len(tts["Operation"]["Input"]["CosHeaders"]) == 4
    assert tts["Operation"]["MediaInfo"]["Stream"]["Audio"] == [{"CodecName": "mp3", "SampleRate": 16000}]
    words = _job("callback-WordsGeneralize.json")
    assert words["Operation"]["JobLevel"] == 0
    assert isinstance(words["Operation"]["WordsGeneralizeResult"]["WordsGeneralizeLable"], list)


def test_translation_json_with_trailing_comma_fixed_has_numeric_joblevel() -> None:
    raw = _read("callback-Translation.json")
    fixed = raw.replace(b'"JobLevel": 0,\n', b'"JobLevel": 0\n')
    assert fixed != raw
    job = normalize_document(fixed)["JobsDetail"][0]
    assert job["Operation"]["JobLevel"] == 0
    xml_job = _job("Translation.xml")
    assert _shape(_drop_empty(job)) == _shape(_drop_empty(xml_job))
