"""File and COS object sinks, the key layout, MultiSink and build_sinks."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest

from cijobs.deadline import Deadline
from cijobs.errors import SettingsError
from cijobs.models import ErrorInfo
from cijobs.settings import Settings
from cijobs.sinks import KeyLayout, MultiSink, ObjectSink, SinkConfigError, WriteResult, build_sinks, canonical_json
from cijobs.store import FileObjectStore, InvalidKeyError, parse_cos_url
from cijobs.store.cos import CosObjectStore
from cijobs_tools.emulator import Emulator
from fakes.cos import BUCKET, CREDS, REGION, WRONG_TOKEN_CREDS, cos_client, cos_methods, cos_objects, emulated_cos

pytestmark = pytest.mark.usefixtures("log_stream")  # each test logs to a private buffer


JOB_ID = "j8d121820f5e411ec926ef19d53ba9c6f"


def job(state: str = "Success", tag: Optional[str] = "Transcode", job_id: str = JOB_ID, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"JobId": job_id, "State": state, "Code": "Success", "Message": "", **extra}
    if tag is not None:
        out["Tag"] = tag
    return out


def file_sink(tmp_path: Path, template: str = "{prefix}/{Tag}/{JobId}.json") -> ObjectSink:
    sink = build_sinks(Settings(result_sink=f"file://{tmp_path}", result_key_template=template), lambda: CREDS)
    assert isinstance(sink, ObjectSink)
    return sink


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# -- canonical body and key layout ----------------------------------------------------------------
def test_canonical_json_is_stable_and_utf8() -> None:
    a = {"b": 1, "a": {"y": "中", "x": [1, 2]}}
    b = {"a": {"x": [1, 2], "y": "中"}, "b": 1}
    assert canonical_json(a) == canonical_json(b) == '{"a":{"x":[1,2],"y":"中"},"b":1}'.encode()


def test_key_layout_renders_and_refuses_unsafe_values() -> None:
    layout = KeyLayout()
    assert layout.render("results", JOB_ID, "Success", "Transcode") == f"results/Transcode/{JOB_ID}.json"
    assert layout.render("", JOB_ID, "Success", "Transcode") == f"Transcode/{JOB_ID}.json"
    for tag in ["../x", ".pending", "a/b", ""]:
        with pytest.raises(InvalidKeyError):
            layout.render("results", JOB_ID, "Success", tag)
    assert KeyLayout("{prefix}/{State}/{JobId}.json").render("p", JOB_ID, "Failed", "T") == f"p/Failed/{JOB_ID}.json"


@pytest.mark.parametrize("template", ["{prefix}/{Tag}.json", "{prefix}/{Bogus}/{JobId}", "{prefix}/.pending/{JobId}",
                                      "{prefix}/.hidden/{JobId}.json"])
def test_key_layout_rejects_bad_templates(template: str) -> None:
    with pytest.raises(SinkConfigError, match="RESULT_KEY_TEMPLATE"):
        KeyLayout(template)


# -- file sink ------------------------------------------------------------------------------------
def test_file_sink_writes_canonical_json_once_and_is_idempotent(tmp_path: Path) -> None:
    sink = file_sink(tmp_path)
    first = sink.write([job()])
    assert first == [WriteResult(JOB_ID, "Success", True, False)]
    path = tmp_path / "Transcode" / f"{JOB_ID}.json"
    assert path.read_bytes() == canonical_json(job())
    again = sink.write([job()])
    assert again == [WriteResult(JOB_ID, "Success", True, True)]
    assert files(tmp_path) == [f"Transcode/{JOB_ID}.json"]  # no temp files left behind


def test_file_sink_missing_tag_goes_to_unknown(tmp_path: Path) -> None:
    file_sink(tmp_path).write([job(tag=None)])
    assert files(tmp_path) == [f"Unknown/{JOB_ID}.json"]


def test_file_sink_refuses_non_terminal_and_bad_ids_without_stopping_others(tmp_path: Path) -> None:
    other = "j0000000000000000000000000000000a"
    results = file_sink(tmp_path).write([job(state="Running"), job(job_id="../../etc"), job(job_id=other), {}])
    assert [r.ok for r in results] == [False, False, True, False]
    assert results[0].error is not None and results[0].error.code == "NotTerminal" and not results[0].retryable
    assert results[1].error is not None and results[1].error.code == "InvalidJob"
    assert files(tmp_path) == [f"Transcode/{other}.json"]


def test_file_sink_second_different_result(tmp_path: Path, log_stream: io.StringIO) -> None:
    sink = file_sink(tmp_path)
    sink.write([job(Progress=100)])
    stored = (tmp_path / "Transcode" / f"{JOB_ID}.json").read_bytes()
    # same state, CI changed the document: first write kept, reported as already written, with a warning
    [r] = sink.write([job(Progress=100, NewField="x")])
    assert r.ok and r.already
    events = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    [differs] = [e for e in events if e["event"] == "result_differs"]
    assert differs["level"] == "warning" and differs["job_id"] == JOB_ID and differs["kept"] == "first"
    # a different terminal state for the same key: refused, not retryable, nothing overwritten
    [r] = sink.write([job(state="Failed")])
    assert not r.ok and r.error is not None and r.error.code == "ConflictingResult" and not r.retryable
    assert (tmp_path / "Transcode" / f"{JOB_ID}.json").read_bytes() == stored


def test_file_sink_with_state_in_template_keeps_both(tmp_path: Path) -> None:
    sink = file_sink(tmp_path, "{prefix}/{Tag}/{JobId}-{State}.json")
    assert all(r.ok and not r.already for r in sink.write([job(), job(state="Failed")]))
    assert len(files(tmp_path)) == 2


def test_file_sink_unwritable_dir_is_a_failure_not_an_exception(tmp_path: Path) -> None:
    (tmp_path / "Transcode").write_text("a file where a directory should be")
    [r] = file_sink(tmp_path).write([job()])
    assert not r.ok and r.error is not None and r.error.code == "LocalWriteError"


def test_file_store_create_is_exclusive(tmp_path: Path) -> None:
    store = FileObjectStore(str(tmp_path))
    assert store.create("a/b.json", b"1", "application/json", {})
    assert not store.create("a/b.json", b"2", "application/json", {})
    obj = store.get("a/b.json")
    assert obj is not None and obj.body == b"1"
    store.put("a/b.json", b"3", "application/json", {})
    assert store.get("a/b.json").body == b"3"  # type: ignore[union-attr]
    store.delete("a/b.json")
    store.delete("a/b.json")
    assert store.get("a/b.json") is None
    assert not [n for n in os.listdir(tmp_path / "a")]


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with emulated_cos() as e:
        yield e


# -- COS sink (on the emulator) -------------------------------------------------------------------
def cos_sink(emu: Emulator, prefix: str = "results", **settings: Any) -> ObjectSink:
    client, _ = cos_client(emu, **settings)
    return ObjectSink(CosObjectStore(client, parse_cos_url(f"cos://{BUCKET}.{REGION}/{prefix}")), KeyLayout(), 4)


def test_cos_sink_puts_with_metadata_and_is_idempotent(emu: Emulator) -> None:
    sink = cos_sink(emu)
    [r] = sink.write([job()])
    assert r.ok and not r.already
    key = f"results/Transcode/{JOB_ID}.json"
    body, meta = cos_objects(emu)[key].body, cos_objects(emu)[key].headers
    assert body == canonical_json(job())
    assert meta["x-cos-meta-jobid"] == JOB_ID and meta["x-cos-meta-state"] == "Success"
    assert meta["x-cos-meta-tag"] == "Transcode" and len(meta["x-cos-meta-sha256"]) == 64
    assert meta["content-type"] == "application/json"
    [r] = sink.write([job()])
    assert r.ok and r.already
    assert cos_methods(emu) == ["PUT", "PUT", "HEAD"]  # 409, then HEAD compares meta
    [r] = sink.write([job(state="Failed")])
    assert r.error is not None and r.error.code == "ConflictingResult"
    [r] = sink.write([job(Extra=1)])
    assert r.ok and r.already  # same state, different body: first kept
    assert cos_objects(emu)[key].body == body


def test_cos_sink_retries_5xx_and_slowdown_without_duplicates(emu: Emulator) -> None:
    emu.faults.inject_next("cos", "fail", "slowdown", "reset")
    [r] = cos_sink(emu).write([job()])
    assert r.ok and not r.already
    assert len(cos_objects(emu)) == 1 and cos_methods(emu) == ["PUT"]  # the fourth attempt
    assert emu.faults.injected == {"cos.fail": 1, "cos.slowdown": 1, "cos.reset": 1}


def test_cos_sink_failure_is_reported_retryable_and_a_later_retry_completes(emu: Emulator) -> None:
    emu.faults.inject_next("cos", "slowdown", "slowdown")
    [r] = cos_sink(emu, max_attempts=2).write([job()])
    assert not r.ok and r.retryable and r.error is not None and r.error.code == "SlowDown"
    assert cos_objects(emu) == {}
    [r] = cos_sink(emu, max_attempts=2).write([job()])
    assert r.ok and not r.already and len(cos_objects(emu)) == 1


def test_cos_sink_access_denied_is_not_retried_but_kept(emu: Emulator) -> None:
    [r] = cos_sink(emu, credentials=WRONG_TOKEN_CREDS).write([job()])  # 403 AccessDenied
    # a configuration failure: one request, not retried now; retryable: the job is kept until it is fixed
    assert not r.ok and r.retryable and r.error is not None and r.error.http_status == 403
    assert r.error.code == "AccessDenied" and len(cos_methods(emu)) == 1


def test_cos_sink_many_jobs_in_parallel_one_failing(emu: Emulator) -> None:
    ids = [f"j{i:032x}" for i in range(20)]
    jobs = [job(job_id=i) for i in ids]
    jobs[5]["State"] = "Submitted"
    results = cos_sink(emu).write(jobs)
    assert [r.job_id for r in results] == ids
    assert [r.ok for r in results].count(False) == 1 and not results[5].ok
    assert len(cos_objects(emu)) == 19


def test_cos_sink_expired_deadline_is_retryable(emu: Emulator) -> None:
    [r] = cos_sink(emu).write([job()], Deadline(0))
    assert not r.ok and r.retryable and cos_objects(emu) == {}


# -- several sinks --------------------------------------------------------------------------------
class Stub:
    def __init__(self, name: str, ok: bool, retryable: bool = False) -> None:
        self.name, self.ok, self.retryable = name, ok, retryable

    def write(self, jobs: Any, deadline: Any = None) -> list[WriteResult]:
        if self.ok:
            return [WriteResult.written(j["JobId"], j["State"], already=True) for j in jobs]
        return [WriteResult.from_error(j["JobId"], j["State"], ErrorInfo("Boom", "boom"), self.retryable)
                for j in jobs]


def test_multisink_written_only_when_every_sink_wrote() -> None:
    assert MultiSink([Stub("a", True), Stub("b", True)]).write([job()])[0].already
    [r] = MultiSink([Stub("a", True), Stub("b", False, True)]).write([job()])
    assert not r.ok and r.retryable and r.error is not None and r.error.message.startswith("b:")
    [r] = MultiSink([Stub("a", False, True), Stub("b", False, False)]).write([job()])
    assert not r.ok and not r.retryable  # one sink can never succeed: retrying does not help


def test_build_sinks_multiple_and_config_errors(tmp_path: Path) -> None:
    s = build_sinks(Settings(result_sink=f"file://{tmp_path}/a,cos://{BUCKET}.{REGION}/r",
                             cos_endpoint="http://127.0.0.1:1"), lambda: CREDS)
    assert isinstance(s, MultiSink) and len(s.sinks) == 2
    # every configuration problem is a SettingsError naming the setting, found when the settings are read
    with pytest.raises(SettingsError, match="CMQ_ENDPOINT"):
        build_sinks(Settings(result_sink="cmq-queue://ap-guangzhou/q1"), lambda: CREDS)
    with pytest.raises(SettingsError, match="RESULT_SINK"):
        build_sinks(Settings(result_sink="cos://nobucket.ap-guangzhou/x"), lambda: CREDS)
    with pytest.raises(SettingsError, match="twice"):
        build_sinks(Settings(result_sink=f"file://{tmp_path},file://{tmp_path}"), lambda: CREDS)
    with pytest.raises(SettingsError, match="';'"):
        Settings(result_sink=f"file://{tmp_path};file://{tmp_path}/b")
    with pytest.raises(SettingsError, match="RESULT_SINK"):
        build_sinks(Settings(result_sink="cmq-queue://ap-guangzhou/bad name", cmq_endpoint="http://x"),
                    lambda: CREDS)


def test_result_body_round_trips(tmp_path: Path) -> None:
    j = job(Operation={"Output": {"Object": "out/中文.mp4"}}, Progress=100)
    file_sink(tmp_path).write([j])
    assert json.loads((tmp_path / "Transcode" / f"{JOB_ID}.json").read_text("utf-8")) == j


# -- daily index (RESULT_INDEX=daily) -------------------------------------------------------------
def test_daily_index_entry_per_result_dated_by_end_time(tmp_path: Path) -> None:
    sink = build_sinks(Settings(result_sink=f"file://{tmp_path}", result_index="daily"), lambda: CREDS)
    assert isinstance(sink, ObjectSink) and sink.index
    done = job(EndTime="2026-11-29T23:59:42+08:00", CreationTime="2026-11-28T10:00:00+08:00")
    other = job(job_id="j" + "1" * 32, tag="Snapshot", state="Failed", EndTime=None,
                CreationTime="2026-11-28T10:00:00+08:00")
    undated = job(job_id="j" + "2" * 32, tag="Animation")
    assert all(r.ok for r in sink.write([done, other, undated]))
    assert files(tmp_path) == sorted([
        f"Transcode/{JOB_ID}.json", f"Snapshot/j{'1' * 32}.json", f"Animation/j{'2' * 32}.json",
        f"_index/2026-11-29/{JOB_ID}.json",            # the day of EndTime, as CI gives it (+08:00)
        f"_index/2026-11-28/j{'1' * 32}.json",          # no EndTime: CreationTime
        f"_index/undated/j{'2' * 32}.json",
    ])
    entry = json.loads((tmp_path / "_index" / "2026-11-29" / f"{JOB_ID}.json").read_bytes())
    assert entry == {"JobId": JOB_ID, "Tag": "Transcode", "State": "Success", "Key": f"Transcode/{JOB_ID}.json",
                     "EndTime": "2026-11-29T23:59:42+08:00"}
    before = {p: (tmp_path / p).read_bytes() for p in files(tmp_path)}
    assert all(r.ok and r.already for r in sink.write([done, other, undated]))  # a retry adds nothing
    assert {p: (tmp_path / p).read_bytes() for p in files(tmp_path)} == before


def test_no_index_by_default(tmp_path: Path) -> None:
    [r] = file_sink(tmp_path).write([job(EndTime="2026-11-29T23:59:42+08:00")])
    assert r.ok and files(tmp_path) == [f"Transcode/{JOB_ID}.json"]


def test_a_failed_index_write_fails_the_job_retryably_and_the_retry_completes_it(emu: Emulator) -> None:
    client, _ = cos_client(emu, max_attempts=1)

    class SlowDownOnSecondWrite(CosObjectStore):  # the result PUT goes through, the index PUT gets a 503 SlowDown
        writes = 0

        def create(self, *args: Any, **kwargs: Any) -> Any:
            SlowDownOnSecondWrite.writes += 1
            if SlowDownOnSecondWrite.writes == 2:
                emu.faults.inject_next("cos", "slowdown")
            return super().create(*args, **kwargs)

    sink = ObjectSink(SlowDownOnSecondWrite(client, parse_cos_url(f"cos://{BUCKET}.{REGION}/results")), KeyLayout(),
                      1, index=True)
    done = job(EndTime="2026-11-29T23:59:42+08:00")
    [r] = sink.write([done])
    assert not r.ok and r.retryable and r.error is not None and r.error.code == "SlowDown"
    assert list(cos_objects(emu)) == [f"results/Transcode/{JOB_ID}.json"]
    [r] = sink.write([done])
    assert r.ok and r.already  # the result was there; the entry is written now
    assert sorted(cos_objects(emu)) == [f"results/Transcode/{JOB_ID}.json", f"results/_index/2026-11-29/{JOB_ID}.json"]


def test_result_index_setting_is_validated() -> None:
    from cijobs.settings import SettingsError

    with pytest.raises(SettingsError, match="RESULT_INDEX must be one of none, daily"):
        Settings.from_env({"RESULT_INDEX": "weekly"})
