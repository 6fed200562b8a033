"""Discovery cursor: positions over whole-second creation times (shared seconds, page boundaries, both
bound modes), windows, and sequence-named create-if-absent persistence under concurrent writers."""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from typing import Optional

import pytest

from cijobs.ci_client import JobClient
from cijobs.ci_list import JobLister, ListQuery, parse_job_time
from cijobs.credentials import Credentials
from cijobs.discovery_cursor import (
    CURSOR_DIR,
    CursorError,
    CursorStore,
    Position,
    Resume,
    StoredCursor,
    cursor_name,
    window,
)
from cijobs.settings import Settings
from cijobs.store import FileObjectStore
from cijobs_tools.emulator import Emulator
from fakes import job_id as jid
from fakes.discovery import MemoryStore

T0 = 1_796_000_000


def P(second: int, *ids: str) -> Position:
    return Position(second, frozenset(ids))


# -- positions --------------------------------------------------------------------------------------

def test_covers_earlier_seconds_and_handled_ids_of_the_cursor_second() -> None:
    p = P(T0, jid(1))
    assert p.covers(T0 - 1, jid(9))
    assert p.covers(T0, jid(1))
    assert not p.covers(T0, jid(2))
    assert not p.covers(T0 + 1, jid(1))
    assert not p.covers(None, jid(1))  # no usable creation time: never assumed handled


def test_merge_takes_the_later_second_or_unions_the_same_second() -> None:
    assert P(T0, jid(1)).merge(P(T0 + 1)) == P(T0 + 1)
    assert P(T0 + 1).merge(P(T0, jid(1))) == P(T0 + 1)
    assert P(T0, jid(1)).merge(P(T0, jid(2))) == P(T0, jid(1), jid(2))
    assert P(T0, jid(1), jid(2)).merge(P(T0, jid(1))) == P(T0, jid(1), jid(2))
    assert P(T0 + 1).ahead_of(P(T0, jid(1))) and not P(T0).ahead_of(P(T0))
    assert not P(T0, jid(1)).ahead_of(P(T0, jid(2)))  # neither covers the other


def test_after_page_moves_to_the_last_second_with_its_ids() -> None:
    p = P(T0)
    page = [(T0, jid(1)), (T0 + 2, jid(2)), (T0 + 2, jid(3)), (None, jid(4))]
    assert p.after_page(page) == P(T0 + 2, jid(2), jid(3))
    # the same second continues on the next page: the IDs accumulate
    assert P(T0 + 2, jid(2), jid(3)).after_page([(T0 + 2, jid(5))]) == P(T0 + 2, jid(2), jid(3), jid(5))
    # a page of earlier (inclusive lower bound) or untimed jobs moves nothing
    assert P(T0 + 2, jid(2)).after_page([(T0 + 1, jid(7)), (None, jid(8))]) == P(T0 + 2, jid(2))
    assert p.after_page([]) == p


def test_after_window_moves_to_the_end_unless_further() -> None:
    assert P(T0, jid(1)).after_window(T0 + 50) == P(T0 + 50)
    assert P(T0 + 60, jid(1)).after_window(T0 + 50) == P(T0 + 60, jid(1))
    assert P(T0 + 50, jid(1)).after_window(T0 + 50) == P(T0 + 50, jid(1))


def test_window_starts_one_second_before_the_cursor_and_ends_at_now_minus_settle() -> None:
    assert window(P(T0), T0 + 100.7, 10) == (T0 - 1, T0 + 90)
    assert window(P(T0), T0 + 10.9, 10) is None  # end == cursor second: nothing to list yet
    assert window(P(T0), T0 + 11.0, 10) == (T0 - 1, T0 + 1)
    assert window(P(T0), T0 + 5, 0) == (T0 - 1, T0 + 5)


def test_cursor_names() -> None:
    assert cursor_name("Transcode") == "Transcode"
    assert cursor_name("Transcode", "p" + "a" * 32) == "Transcode-p" + "a" * 32
    for bad in ("", "a/b", "../x", "x" * 65):
        with pytest.raises(ValueError):
            cursor_name(bad)


# -- the cursor over simulated listings (pure) -------------------------------------------------------

def sim_list(catalog: list[tuple[int, str]], start: int, end: int, inclusive: bool, size: int,
             after: Optional[tuple[int, str]]) -> tuple[list[tuple[int, str]], Optional[tuple[int, str]]]:
    """One ascending page of a keyset listing with exclusive or inclusive creation bounds."""
    rows = sorted(c for c in catalog
                  if (start <= c[0] <= end if inclusive else start < c[0] < end) and (after is None or c > after))
    page = rows[:size]
    return page, (page[-1] if len(rows) > size else None)


Resumed = Optional[tuple[int, int, tuple[int, str]]]


def drain(catalog: list[tuple[int, str]], state: tuple[Position, Resumed], now: float, settle: float,
          inclusive: bool, size: int, max_pages: int, handled: list[str],
          crash_after: Optional[int] = None) -> tuple[Position, Resumed]:
    """One tick as the sweep does it: continue an unfinished listing (``Resume``) or open a window, handle
    new jobs, advance after each page; stop after ``max_pages`` (or "crash" after page ``crash_after``)."""
    pos, resume = state
    if resume is not None:
        start, end, token = resume
        after: Optional[tuple[int, str]] = token
    else:
        span = window(pos, now, settle)
        if span is None:
            return pos, None
        (start, end), after = span, None
    for n in range(max_pages):
        page, after = sim_list(catalog, start, end, inclusive, size, after)
        handled += [j for s, j in page if not pos.covers(s, j)]
        if crash_after is not None and n == crash_after:
            return pos, resume  # crashed after handling, before advancing
        pos = pos.after_page(page)
        if after is None:
            pos = pos.after_window(end)
            if resume is None:
                return pos, None
            span = window(pos, now, settle)  # the old listing is done: a fresh window
            if span is None:
                return pos, None
            (start, end), resume = span, None
        else:
            resume = (start, end, after)
    return pos, resume


@pytest.mark.parametrize("inclusive", [False, True])
@pytest.mark.parametrize("size", [1, 7, 10, 100])
def test_shared_seconds_across_page_boundaries_are_handled_exactly_once(inclusive: bool, size: int) -> None:
    # 30 jobs in one second, plus neighbours, with page sizes that cut that second
    catalog = [(T0 + 5, jid(n)) for n in range(30)] + [(T0 + s, jid(100 + s)) for s in range(12)]
    catalog += [(T0 - 1, jid(999))]  # before since
    handled: list[str] = []
    state: tuple[Position, Resumed] = (P(T0), None)
    for _ in range(200):
        state = drain(catalog, state, T0 + 40, 10, inclusive, size, max_pages=2, handled=handled)
    assert sorted(handled) == sorted(j for s, j in catalog if s >= T0)
    assert len(handled) == len(set(handled))
    assert state == (P(T0 + 30), None)


@pytest.mark.parametrize("inclusive", [False, True])
def test_without_resume_a_full_second_bigger_than_a_tick_repeats_forever(inclusive: bool) -> None:
    """Why the cursor keeps the unfinished listing: re-opening the window each tick re-lists the handled
    IDs of the cursor second first, and a tick of 2 one-job pages never gets past them."""
    catalog = [(T0 + 5, jid(n)) for n in range(30)]
    handled: list[str] = []
    state: tuple[Position, Resumed] = (P(T0), None)
    for _ in range(50):
        state = drain(catalog, (state[0], None), T0 + 40, 10, inclusive, 1, max_pages=2, handled=handled)
    assert len(set(handled)) < 30


@pytest.mark.parametrize("inclusive", [False, True])
def test_a_second_still_filling_is_picked_up_later(inclusive: bool) -> None:
    """With settle 0 the last second can gain jobs after it was listed: the IDs in the cursor skip the
    handled ones and the rest are found next tick."""
    catalog = [(T0 + 3, jid(n)) for n in range(3)]
    handled: list[str] = []
    state = drain(catalog, (P(T0), None), T0 + 3, 0, inclusive, 2, 10, handled)
    catalog += [(T0 + 3, jid(n)) for n in range(3, 6)]
    for _ in range(5):
        state = drain(catalog, state, T0 + 4, 0, inclusive, 2, 10, handled)
    assert sorted(handled) == [jid(n) for n in range(6)]


@pytest.mark.parametrize("inclusive", [False, True])
def test_a_crash_mid_window_repeats_only_that_page(inclusive: bool) -> None:
    catalog = [(T0 + s // 4, jid(s)) for s in range(40)]
    handled: list[str] = []
    state = drain(catalog, (P(T0), None), T0 + 30, 10, inclusive, 5, 50, handled, crash_after=2)
    assert len(handled) == 15
    # the crash came after page 3 was handled, before the cursor moved: it still says "after page 2"
    assert state[0] == P(T0 + 2, jid(8), jid(9)) and state[1] is not None
    for _ in range(20):
        state = drain(catalog, state, T0 + 30, 10, inclusive, 5, 50, handled)
    assert sorted(set(handled)) == sorted(j for s, j in catalog if s >= T0)
    repeated = sorted(j for j in set(handled) if handled.count(j) > 1)
    assert repeated == [jid(n) for n in range(10, 15)]  # exactly the crashed page, once more


@pytest.mark.parametrize("inclusive", [False, True])
def test_random_catalogs_pages_and_ticks(inclusive: bool) -> None:
    rng = random.Random(7)
    for _ in range(30):
        catalog = sorted({(T0 + rng.randrange(0, 20), jid(rng.randrange(10_000))) for _ in range(rng.randrange(1, 80))})
        # no ID in two seconds
        by_id: dict[str, int] = {}
        for s, j in catalog:
            by_id.setdefault(j, s)
        catalog = [(s, j) for j, s in by_id.items()]
        handled: list[str] = []
        state: tuple[Position, Resumed] = (P(T0), None)
        for tick in range(60):
            state = drain(catalog, state, T0 + 1 + tick, rng.choice([0, 1, 3]), inclusive, rng.randrange(1, 12),
                          rng.randrange(1, 4), handled)
        assert sorted(handled) == sorted(by_id)
        assert len(handled) == len(set(handled))


# -- persistence --------------------------------------------------------------------------------------

def test_advance_creates_sequence_objects_and_load_reads_the_highest() -> None:
    mem = MemoryStore("results")
    cs = CursorStore(mem, clock=lambda: 123.0, keep=3)
    assert cs.load("Transcode") is None
    c1 = cs.advance("Transcode", None, None, P(T0))
    assert c1.seq == 1
    key = f"results/{CURSOR_DIR}/Transcode/000000000001.json"
    assert json.loads(mem.objects[key]) == {
        "Tag": "Transcode", "QueueId": None, "Seq": 1, "Second": T0, "Time": "2026-11-30T08:53:20+0800",
        "Ids": [], "Resume": None, "Updated": 123.0}
    c2 = cs.advance("Transcode", None, c1, P(T0 + 5, jid(2), jid(1)))
    assert c2.seq == 2 and cs.load("Transcode") == c2
    assert json.loads(mem.objects[key.replace("1.json", "2.json")])["Ids"] == [jid(1), jid(2)]
    assert cs.advance("Transcode", None, c2, P(T0 + 5, jid(1))) is c2  # already covered: no write
    assert len(mem.objects) == 2
    c = c2
    for n in range(6):
        c = cs.advance("Transcode", None, c, P(T0 + 10 + n))
    assert c.seq == 8
    assert cs.load("Transcode") == c
    assert sorted(k.rsplit("/", 1)[1] for k in mem.objects) == [f"{s:012d}.json" for s in (6, 7, 8)]


def test_resume_is_stored_and_kept_only_with_its_own_position() -> None:
    mem = MemoryStore()
    cs = CursorStore(mem)
    c1 = cs.advance("Transcode", None, None, P(T0))
    r = Resume(T0 - 1, T0 + 90, "tok1")
    c2 = cs.advance("Transcode", None, c1, P(T0 + 5, jid(1)), resume=r)
    assert cs.load("Transcode") == c2 and c2.resume == r
    # same position, the listing moved on (a page of covered jobs): the new token is written
    c3 = cs.advance("Transcode", None, c2, P(T0 + 5, jid(1)), resume=Resume(T0 - 1, T0 + 90, "tok2"))
    assert c3.seq == 3 and c3.resume is not None and c3.resume.token == "tok2"
    # listing done: the resume is cleared even when the position does not move
    c4 = cs.advance("Transcode", None, c3, P(T0 + 5, jid(1)))
    assert c4.seq == 4 and c4.resume is None
    # a stale writer with a resume for an older position: the stored (ahead) cursor wins, with no resume
    assert cs.advance("Transcode", None, c1, P(T0 + 2), resume=Resume(T0 - 1, T0 + 9, "old")) == c4
    # same second, different IDs: merged, and neither resume is kept
    c5 = cs.advance("Transcode", None, c2, P(T0 + 5, jid(2)), resume=Resume(T0 - 1, T0 + 90, "tokB"))
    assert c5.position == P(T0 + 5, jid(1), jid(2)) and c5.resume is None


def test_queues_have_their_own_cursors_and_status_lists_them() -> None:
    mem = MemoryStore()
    cs = CursorStore(mem)
    cs.advance("Transcode", "pq1", None, P(T0 + 1))
    cs.advance("Transcode", "pq2", None, P(T0 + 2))
    c = cs.advance("Snapshot", None, None, P(T0 + 3))
    cs.advance("Snapshot", None, c, P(T0 + 4, jid(1)))
    status = {(s.tag, s.queue_id): (s.seq, s.position) for s in cs.status()}
    assert status == {("Transcode", "pq1"): (1, P(T0 + 1)), ("Transcode", "pq2"): (1, P(T0 + 2)),
                      ("Snapshot", None): (2, P(T0 + 4, jid(1)))}
    assert cs.load("Transcode") is None


def test_unreadable_newest_object_falls_back_and_is_stepped_over() -> None:
    mem = MemoryStore()
    cs = CursorStore(mem, keep=10)
    c1 = cs.advance("Transcode", None, None, P(T0))
    mem.objects[f"{CURSOR_DIR}/Transcode/000000000002.json"] = b"{not json"
    assert cs.load("Transcode") == c1
    c = cs.advance("Transcode", None, c1, P(T0 + 1))
    assert c.seq == 3 and cs.load("Transcode") == c


def test_store_failures_are_cursor_errors() -> None:
    mem = MemoryStore()
    cs = CursorStore(mem)
    mem.fail["list"] = 1
    with pytest.raises(CursorError) as info:
        cs.load("Transcode")
    assert info.value.retryable and info.value.code == "InternalError"
    mem.fail["create"] = 1
    with pytest.raises(CursorError):
        cs.advance("Transcode", None, None, P(T0))
    assert cs.load("Transcode") is None


def test_file_store_create_if_absent(tmp_path: object) -> None:
    store = FileObjectStore(str(tmp_path), "pending")
    a, b = CursorStore(store), CursorStore(store)
    ca = a.advance("Transcode", None, None, P(T0))
    cb = b.advance("Transcode", None, None, P(T0 + 9))  # collides with seq 1, merges into seq 2
    assert (ca.seq, cb.seq) == (1, 2) and cb.position == P(T0 + 9)
    assert a.load("Transcode") == StoredCursor("Transcode", None, 2, P(T0 + 9), cb.updated)


# -- concurrent writers ---------------------------------------------------------------------------------

def test_a_stale_writer_merges_and_never_moves_the_cursor_backwards() -> None:
    mem = MemoryStore()
    a, b = CursorStore(mem), CursorStore(mem)
    base = a.advance("Transcode", None, None, P(T0))
    ahead = a.advance("Transcode", None, base, P(T0 + 50, jid(1)))
    got = b.advance("Transcode", None, base, P(T0 + 20, jid(7)))  # b still knows seq 1
    assert got == ahead  # stored cursor already covers b's position: nothing written
    same_second = b.advance("Transcode", None, base, P(T0 + 50, jid(2)))
    assert same_second.position == P(T0 + 50, jid(1), jid(2)) and same_second.seq == 3
    assert a.load("Transcode") == same_second


def test_interleaved_creates_merge() -> None:
    """B's create is attempted right after A's succeeded for the same sequence number."""
    mem = MemoryStore()
    cs = CursorStore(mem)
    base = cs.advance("Transcode", None, None, P(T0))
    fired = []

    def sneak(key: str) -> None:
        if key.endswith("000000000002.json") and not fired:
            fired.append(key)
            mem.before_create = None
            cs.advance("Transcode", None, base, P(T0 + 30, jid(5)))

    mem.before_create = sneak
    got = cs.advance("Transcode", None, base, P(T0 + 30, jid(6)))
    assert fired and got.seq == 3 and got.position == P(T0 + 30, jid(5), jid(6))


def test_gc_cannot_let_a_stale_writer_win() -> None:
    mem = MemoryStore()
    cs = CursorStore(mem, keep=2)
    stale = cs.advance("Transcode", None, None, P(T0))
    c = stale
    for n in range(10):
        c = cs.advance("Transcode", None, c, P(T0 + 100 + n))
    cs.load("Transcode")  # deletes all but seq 10, 11
    s = stale
    for n in range(5):  # the stale writer walks up through the deleted range
        s = cs.advance("Transcode", None, s, P(T0 + 1 + n))
    assert cs.load("Transcode") is not None
    newest = cs.load("Transcode")
    assert newest is not None and newest.position.second >= T0 + 109


def test_threads_advancing_at_once_keep_every_position() -> None:
    """8 threads advance one cursor with random positions over a create-if-absent store: the cursor in
    force covers every position any of them recorded, and the sequence of cursors never goes back."""
    mem = MemoryStore()
    rng = random.Random(3)
    plans = [[P(T0 + rng.randrange(0, 40), *{jid(rng.randrange(6)) for _ in range(2)}) for _ in range(40)]
             for _ in range(8)]

    def worker(plan: list[Position]) -> None:
        cs = CursorStore(mem, keep=10_000)
        known = cs.load("Transcode")
        for pos in plan:
            known = cs.advance("Transcode", None, known, pos)
            time.sleep(0)

    threads = [threading.Thread(target=worker, args=(p,)) for p in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = CursorStore(mem).load("Transcode")
    assert final is not None
    for plan in plans:
        for pos in plan:
            assert final.position.merge(pos) == final.position
    ordered = [StoredCursor.decode(mem.objects[k]).position for k in sorted(mem.objects)]
    for earlier, later in itertools.pairwise(ordered):
        assert later.merge(earlier) == later
    assert any(not ok for _, ok in mem.creates) or len(ordered) == len(mem.creates)


# -- against the emulator, both bound modes -------------------------------------------------------------


@pytest.mark.parametrize("bounds", ["exclusive", "inclusive"])
def test_cursor_over_the_emulator_listing(emu: Emulator, bounds: str) -> None:
    emu.ci.list_bounds = bounds
    emu.load_catalog([{"job_id": jid(n), "created": T0 + 5, "state": "Success"} for n in range(30)]
                     + [{"job_id": jid(100 + s), "created": T0 + s, "state": "Running"} for s in range(-2, 12)])
    lister = JobLister(JobClient(Settings.from_env(emu.env()), lambda: Credentials("AKIDtest", "test-secret-key")))
    mem = MemoryStore()
    cs = CursorStore(mem)
    known = cs.advance("Transcode", None, None, P(T0))
    handled: list[str] = []
    for _ in range(12):  # ticks of at most 2 pages of 8, continuing an unfinished listing
        if known.resume is not None:
            start, end, token = known.resume.start, known.resume.end, known.resume.token
        else:
            span = window(known.position, T0 + 40, 10)
            if span is None:
                break
            (start, end), token = span, None
        for _ in range(2):
            page = lister.list_page(ListQuery("Transcode", start=start, end=end, size=8, next_token=token))
            keyed = [(parse_job_time(j["CreationTime"]), j["JobId"]) for j in page.jobs]
            handled += [j for s, j in keyed if not known.position.covers(s, j)]
            new = known.position.after_page(keyed)
            token = page.next_token
            if token is None:
                new = new.after_window(end)
            known = cs.advance("Transcode", None, known, new, resume=Resume(start, end, token) if token else None)
            if token is None:
                break
    expected = [jid(n) for n in range(30)] + [jid(100 + s) for s in range(0, 12)]
    assert sorted(handled) == sorted(expected)
    assert known.position == P(T0 + 30)
