"""Pending registry on both backends: FirstSeen kept, update, remove, list (paginated), no collision with results."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from cijobs.pending import PendingError, PendingStore, build_pending_store
from cijobs.settings import Settings
from cijobs.sinks import KeyLayout, ObjectSink
from cijobs.store import FileObjectStore, ObjectStore, parse_cos_url
from cijobs.store.cos import CosObjectStore
from cijobs_tools.emulator import Emulator
from fakes.cos import BUCKET, CREDS, REGION, WRONG_TOKEN_CREDS, cos_client, emulated_cos

pytestmark = pytest.mark.usefixtures("log_stream")  # each test logs to a private buffer


IDS = [f"j{i:032x}" for i in range(5)]


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with emulated_cos() as e:
        yield e


@pytest.fixture(params=["file", "cos"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    if request.param == "file":
        yield FileObjectStore(str(tmp_path))
        return
    with emulated_cos() as emu:
        client, _ = cos_client(emu)
        cos_store = CosObjectStore(client, parse_cos_url(f"cos://{BUCKET}.{REGION}/results"))
        cos_store.emulator = emu  # type: ignore[attr-defined]  # for tests that date objects on the server
        yield cos_store


def test_add_keeps_first_seen_and_source(store: ObjectStore) -> None:
    reg = PendingStore(store)
    assert reg.add(IDS[:2], now=100.0, source="callback") == []
    assert reg.add(IDS[:3], now=200.0, source="timer") == []
    entries = {e.job_id: e for e in reg.listing(resume=False).entries}
    assert set(entries) == set(IDS[:3])
    e0 = reg.get(IDS[0])  # written once: the second add changed nothing
    assert e0 is not None
    assert (e0.first_seen, e0.source, e0.answered) == (100.0, "callback", False)
    e2 = reg.get(IDS[2])
    assert e2 is not None and e2.first_seen == 200.0 and e2.source == "timer"
    assert entries[IDS[0]].first_seen <= entries[IDS[2]].first_seen


def test_answered_markers_and_remove(store: ObjectStore) -> None:
    reg = PendingStore(store)
    reg.add(IDS[:3], now=10.0, source="http")
    assert reg.mark_answered([IDS[0], IDS[0]]) == []  # create-if-absent: once per job
    assert reg.mark_answered([IDS[0]]) == []
    flags = {e.job_id: e.answered for e in reg.listing(resume=False).entries}
    assert flags == {IDS[0]: True, IDS[1]: False, IDS[2]: False}
    assert reg.get(IDS[0]).answered is True  # type: ignore[union-attr]
    assert reg.remove([IDS[0], IDS[0], IDS[3]]) == []  # absent and duplicate IDs are fine
    assert reg.list_ids() == sorted(IDS[1:3])
    assert reg.get(IDS[0]) is None
    reg.add([IDS[0]], now=20.0, source="http")  # registered again: the old marker went with the entry
    assert {e.job_id: e.answered for e in reg.listing(resume=False).entries}[IDS[0]] is False


def test_list_is_oldest_first_and_limited(store: ObjectStore) -> None:
    reg = PendingStore(store)
    for i, job_id in enumerate(IDS):
        reg.add([job_id], now=1000.0 - i, source="t")
    emu = getattr(store, "emulator", None)
    if emu is not None:  # COS dates an entry by the object's LastModified: the later adds are the older objects
        for (bucket, key), obj in list(emu.cos.objects.items()):
            emu.cos.objects[bucket, key] = dataclasses.replace(obj, last_modified=1000.0 - IDS.index(key[-38:-5]))
    assert [e.job_id for e in reg.listing(resume=False).entries] == list(reversed(IDS))
    assert len(reg.listing(limit=2, resume=False).entries) == 2


def test_bounded_listing_continues_where_the_last_one_stopped(store: ObjectStore) -> None:
    reg = PendingStore(store)
    ids = sorted(f"j{i:032x}" for i in range(25))
    reg.add(ids, now=5.0, source="t")
    seen: list[str] = []
    completes = []
    for _ in range(4):  # 25 entries, 10 a tick: every entry within ceil(25 / 10) = 3 ticks, then round again
        listing = reg.listing(limit=10)
        seen += [e.job_id for e in listing.entries]
        completes.append(listing.complete)
    assert sorted(seen[:25]) == ids and seen[25:] == ids[:10]
    assert completes == [False, False, False, False]
    rest = reg.listing(limit=100)  # the rest of the round: not the whole registry
    assert not rest.complete and len(rest.entries) == 15
    one = reg.listing(limit=100)  # from the start, everything at once: complete
    assert one.complete and len(one.entries) == 25


def test_invalid_ids_are_failures_not_exceptions(store: ObjectStore) -> None:
    reg = PendingStore(store)
    failures = reg.add(["../../etc/passwd", IDS[0]], now=1.0, source="x")
    assert [f.job_id for f in failures] == ["../../etc/passwd"] and not failures[0].retryable
    assert reg.list_ids() == [IDS[0]]


def test_no_collision_with_results_under_the_same_prefix(store: ObjectStore) -> None:
    reg = PendingStore(store)
    sink = ObjectSink(store, KeyLayout())
    reg.add([IDS[0]], now=1.0, source="x")
    [r] = sink.write([{"JobId": IDS[0], "State": "Success", "Tag": "Transcode"}])
    assert r.ok and not r.already
    assert reg.list_ids() == [IDS[0]]  # the result is not mistaken for an entry
    assert reg.key(IDS[0]) != sink.key_for({"JobId": IDS[0], "State": "Success", "Tag": "Transcode"})
    assert "/.pending/" in "/" + reg.key(IDS[0])


def test_unreadable_entry_is_still_listed(tmp_path: Path) -> None:
    reg = PendingStore(FileObjectStore(str(tmp_path)), clock=lambda: 42.0)
    reg.add([IDS[0]], now=1.0, source="x")
    (tmp_path / ".pending" / f"{IDS[0]}.json").write_bytes(b"{not json")
    [e] = reg.listing(resume=False).entries
    assert e.job_id == IDS[0] and e.first_seen == 42.0 and e.source == ""


def test_cos_list_paginates_past_1000(emu: Emulator) -> None:
    client, _ = cos_client(emu)
    reg = PendingStore(CosObjectStore(client, parse_cos_url(f"cos://{BUCKET}.{REGION}/p")))
    ids = [f"j{i:032x}" for i in range(1203)]
    for job_id in ids:  # seed directly: listing, not 1203 PUTs, is under test
        emu.cos.put(BUCKET, f"p/.pending/{job_id}.json", b'{"FirstSeen":1}')
    emu.cos.put(BUCKET, "p/Transcode/x.json", b"{}")
    assert reg.list_ids() == ids
    assert sum(1 for r in emu.cos.requests if r.method == "GET" and r.key == "") == 2


def test_cos_errors_are_reported(emu: Emulator) -> None:
    client, _ = cos_client(emu, max_attempts=1)
    reg = PendingStore(CosObjectStore(client, parse_cos_url(f"cos://{BUCKET}.{REGION}/p")))
    emu.faults.inject_next("cos", "slowdown")
    [f] = reg.add([IDS[0]], now=1.0, source="x")
    assert f.retryable and f.error is not None and f.error.code == "SlowDown"
    denied, _ = cos_client(emu, max_attempts=1, credentials=WRONG_TOKEN_CREDS)  # 403 AccessDenied on every request
    reg = PendingStore(CosObjectStore(denied, parse_cos_url(f"cos://{BUCKET}.{REGION}/p")))
    with pytest.raises(PendingError) as ei:
        reg.listing()
    assert ei.value.code == "AccessDenied" and ei.value.retryable  # configuration: kept for later, not retried now


def test_build_pending_store(tmp_path: Path) -> None:
    reg = build_pending_store(Settings(pending_store=f"file://{tmp_path}"), lambda: CREDS)
    assert isinstance(reg.store, FileObjectStore)
    reg2 = build_pending_store(Settings(pending_store=f"cos://{BUCKET}.{REGION}/jobs"), lambda: CREDS)
    assert isinstance(reg2.store, CosObjectStore) and reg2.list_prefix == "jobs/.pending/"
    with pytest.raises(ValueError, match="PENDING_STORE"):
        build_pending_store(Settings(pending_store="cos://bad.ap-guangzhou/x"), lambda: CREDS)
