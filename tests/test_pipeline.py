"""Pipeline outcome accounting with fakes: every ID leaves with exactly one outcome."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cijobs.deadline import Deadline
from cijobs.models import PendingEntry
from cijobs.pipeline import DuplicateOutcomeError, Outcome, Outcomes, Pipeline
from cijobs.settings import Settings
from fakes import JOB_A, JOB_B, JOB_C, JOB_D, FakeCI, FakeClock, FakePending, FakeSink, job_id

SETTINGS = Settings(ci_bucket="examplebucket-1250000000", ci_region="ap-guangzhou", pending_max_age_s=3600)


def make(jobs=None, clock=None, chunk_size=None, cost_s=0.0):
    clock = clock or FakeClock()
    ci, sink, pending = FakeCI(jobs, clock, cost_s), FakeSink(), FakePending()
    return Pipeline(SETTINGS, ci, sink, pending, clock=clock, chunk_size=chunk_size), ci, sink, pending, clock


def statuses(out: Outcomes) -> dict[str, str]:
    return {k: v.status for k, v in out.by_id.items()}


def test_one_off_ids_each_get_one_outcome():
    p, ci, sink, pending, _ = make({JOB_A: "Success", JOB_B: "Running", JOB_C: "Failed"})
    out = p.process([JOB_A, JOB_B, JOB_C, JOB_D, "bad id", JOB_A], "direct", Deadline.never())
    assert statuses(out) == {JOB_A: "written", JOB_B: "pending", JOB_C: "written", JOB_D: "nonexistent",
                             "bad id": "invalid"}
    assert set(sink.written) == {JOB_A, JOB_C}
    assert list(pending.entries) == [JOB_B]
    assert out.by_id[JOB_B].state == "Running" and pending.answered == {JOB_B}  # CI answered: marker
    assert ci.queried == [JOB_A, JOB_B, JOB_C, JOB_D]  # the invalid ID never reaches CI, duplicates dropped
    assert out.counts() == {"queried": 4, "written": 2, "pending": 1, "nonexistent": 1, "invalid": 1, "failed": 0}


def test_retryable_query_failure_is_parked_non_retryable_fails():
    p, ci, _sink, pending, _ = make({JOB_A: "Success", JOB_B: "Success"})
    ci.fail = {JOB_A: ("InternalError", True), JOB_B: ("InvalidParameter", False)}
    out = p.process([JOB_A, JOB_B], "callback", Deadline.never())
    assert out.by_id[JOB_A].status == "pending" and out.by_id[JOB_A].reason == "InternalError"
    assert out.by_id[JOB_B].status == "failed" and out.by_id[JOB_B].reason == "InvalidParameter"
    assert not out.by_id[JOB_B].retryable
    assert list(pending.entries) == [JOB_A]
    assert not out.retry_needed() and out.config_errors() == {}


@pytest.mark.parametrize("code", ["AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "NoSuchBucket",
                                  "CredentialsError", "CertificateVerifyFailed"])
def test_configuration_failures_park_one_off_ids_never_fail_them(code):
    p, ci, _sink, pending, _ = make({JOB_A: "Success", JOB_B: "Success"})
    ci.fail = {JOB_A: (code, False), JOB_B: (code, False)}
    for source in ("ckafka", "cmq", "timer", "direct"):
        out = p.process([JOB_A, JOB_B], source, Deadline.never())
        assert statuses(out) == {JOB_A: "pending", JOB_B: "pending"}
        assert all(o.configuration and o.reason == code for o in out.by_id.values())
        assert out.config_errors() == {code: 2} and not out.retry_needed()
    assert set(pending.entries) == {JOB_A, JOB_B} and pending.answered == set()
    ci.fail = {}  # the operator fixed the setting: the next tick writes them
    out = p.tick(Deadline.never())
    assert statuses(out) == {JOB_A: "written", JOB_B: "written"} and pending.entries == {}


def test_a_job_ci_never_answered_for_stays_pending_past_max_age_and_is_written_when_ci_recovers():
    p, ci, sink, pending, clock = make({JOB_A: "Success"})
    ci.fail = {JOB_A: ("InternalError", True)}
    p.process([JOB_A], "ckafka", Deadline.never())
    for _ in range(3):
        clock.advance(2 * 3600)  # way past PENDING_MAX_AGE_S=3600
        out = p.tick(Deadline.never())
        assert out.by_id[JOB_A].status == "pending" and out.registry["unanswered"] == 1
    ci.fail = {}
    out = p.tick(Deadline.never())
    assert out.by_id[JOB_A].status == "written" and JOB_A in sink.written and pending.entries == {}


def test_a_finished_job_whose_write_keeps_failing_never_expires():
    p, _ci, sink, _pending, clock = make({JOB_A: "Success"})
    p.track([JOB_A], "http")
    sink.fail = {JOB_A: ("AccessDenied", False)}
    for _ in range(3):
        clock.advance(2 * 3600)
        out = p.tick(Deadline.never())
        assert out.by_id[JOB_A].status == "pending" and out.by_id[JOB_A].configuration
    sink.fail = {}
    assert p.tick(Deadline.never()).by_id[JOB_A].status == "written"


def test_parking_is_one_registry_call_per_round():
    ids = [job_id(i) for i in range(1, 101)]
    p, _ci, _sink, pending, _ = make(dict.fromkeys(ids, "Running"))
    out = p.process(ids, "ckafka", Deadline.never())
    assert all(o.status == "pending" for o in out.by_id.values())
    assert len(pending.adds) == 1 and sorted(pending.adds[0]) == sorted(ids)


def test_tick_reports_the_registry_size_and_age_only_after_a_complete_listing():
    p, _ci, _sink, _pending, clock = make({JOB_A: "Running", JOB_B: "Running"})
    p.track([JOB_A], "http")
    clock.advance(100)
    p.track([JOB_B], "http")
    clock.advance(20)
    out = p.tick(Deadline.never())
    assert out.registry == {"pending_total": 2, "pending_oldest_s": 120, "unanswered": 2}
    p2, _ci2, _sink2, pending2, _clock2 = make({JOB_A: "Running"})
    p2.settings = dataclasses.replace(SETTINGS, pending_list_max=100)
    pending2.entries = {job_id(i): PendingEntry(job_id(i), 1.0, "http") for i in range(1, 151)}
    out2 = p2.tick(Deadline.never())
    assert out2.registry["pending_truncated"] is True and out2.registry["pending_listed"] == 100
    assert "pending_total" not in out2.registry


def test_query_exception_parks_every_id():
    p, ci, _sink, pending, _ = make({JOB_A: "Success"})
    ci.raise_exc = ConnectionError("down")
    out = p.process([JOB_A, JOB_B], "cmq", Deadline.never())
    assert statuses(out) == {JOB_A: "pending", JOB_B: "pending"}
    assert set(pending.entries) == {JOB_A, JOB_B}


def test_write_failure_retryable_parked_and_registry_failure_reported():
    p, _ci, sink, pending, _ = make({JOB_A: "Success", JOB_B: "Success", JOB_C: "Success"})
    sink.fail = {JOB_A: ("SlowDown", True), JOB_B: ("SlowDown", True), JOB_C: ("InvalidJob", False)}
    pending.fail_add = {JOB_B}
    out = p.process([JOB_A, JOB_B, JOB_C], "timer", Deadline.never())
    assert out.by_id[JOB_A].status == "pending"
    assert out.by_id[JOB_B].status == "failed" and out.by_id[JOB_B].retryable
    assert out.by_id[JOB_B].reason == "PendingStoreFailed"
    assert out.by_id[JOB_C].status == "failed" and not out.by_id[JOB_C].retryable
    assert out.retry_needed()  # JOB_B: retryable and not parked


def test_trusted_jobs_skip_the_query_only_when_trusted():
    body = [{"JobId": JOB_A, "State": "Success", "Source": "callback-body"}]
    p, ci, sink, _pending, _ = make({JOB_A: "Success"})
    p.process([JOB_A], "callback", Deadline.never(), jobs=body, trust_jobs=False)
    assert ci.queried == [JOB_A] and sink.written[JOB_A]["Source"] == "ci"
    p2, ci2, sink2, _pending2, _ = make({JOB_A: "Success"})
    p2.process([JOB_A], "callback", Deadline.never(), jobs=body, trust_jobs=True)
    assert ci2.queried == [] and sink2.written[JOB_A]["Source"] == "callback-body"


def test_lookup_writes_nothing():
    p, _ci, sink, pending, _ = make({JOB_A: "Success", JOB_B: "Running"})
    result = p.lookup([JOB_A, JOB_B, JOB_C])
    assert [j["JobId"] for j in result.jobs] == [JOB_A, JOB_B] and result.nonexistent == [JOB_C]
    assert sink.writes == 0 and pending.entries == {}


def test_track_registers_and_reports_invalid():
    p, ci, _sink, pending, _ = make()
    out = p.track([JOB_A, "nope"], "http")
    assert statuses(out) == {JOB_A: "pending", "nope": "invalid"}
    assert out.by_id[JOB_A].reason == "Tracked" and ci.calls == []
    assert pending.entries[JOB_A].source == "http"


def test_ticks_carry_jobs_until_they_finish():
    p, ci, sink, pending, clock = make({JOB_A: "Submitted", JOB_B: "Running"})
    p.track([JOB_A, JOB_B], "http")
    out1 = p.tick(Deadline.never())
    assert statuses(out1) == {JOB_A: "pending", JOB_B: "pending"}
    assert out1.by_id[JOB_A].state == "Submitted" and out1.by_id[JOB_A].reason == "NotFinished"
    registered = dict(pending.entries)
    clock.advance(60)
    ci.jobs[JOB_A] = "Success"
    out2 = p.tick(Deadline.never(), message_ids=[JOB_C])
    assert statuses(out2) == {JOB_C: "nonexistent", JOB_A: "written", JOB_B: "pending"}
    assert set(pending.entries) == {JOB_B} and set(sink.written) == {JOB_A}
    assert pending.entries[JOB_B] == registered[JOB_B]  # a tick does not rewrite registry entries
    ci.jobs[JOB_B] = "Cancel"
    out3 = p.tick(Deadline.never())
    assert statuses(out3) == {JOB_B: "written"} and pending.entries == {}


def test_registry_entry_is_removed_only_after_the_write_succeeded():
    p, _ci, sink, pending, _ = make({JOB_A: "Success"})
    p.track([JOB_A], "http")
    sink.fail = {JOB_A: ("SlowDown", True)}
    out = p.tick(Deadline.never())
    assert out.by_id[JOB_A].status == "pending" and JOB_A in pending.entries
    sink.fail = {}
    out = p.tick(Deadline.never())
    assert out.by_id[JOB_A].status == "written" and JOB_A not in pending.entries


def test_pending_expires_after_max_age_from_first_registration():
    p, ci, _sink, pending, clock = make({JOB_A: "Running", JOB_B: "Running"})
    p.track([JOB_A], "http")
    clock.advance(3000)
    p.track([JOB_B], "http")
    out = p.tick(Deadline.never())
    assert statuses(out) == {JOB_A: "pending", JOB_B: "pending"}
    clock.advance(700)  # JOB_A: 3700 s since first registered (> 3600); JOB_B: 700 s
    out = p.tick(Deadline.never())
    assert out.by_id[JOB_A].status == "failed" and out.by_id[JOB_A].reason == "PendingExpired"
    assert out.by_id[JOB_B].status == "pending"
    assert set(pending.entries) == {JOB_B}
    # an expired job that did finish is still written, not expired
    ci.jobs[JOB_B] = "Success"
    clock.advance(5000)
    assert p.tick(Deadline.never()).by_id[JOB_B].status == "written"


def test_deadline_mid_tick_leaves_the_rest_pending():
    clock = FakeClock()
    ids = [job_id(i) for i in range(1, 31)]
    p, ci, sink, pending, _ = make(dict.fromkeys(ids, "Success"), clock=clock, chunk_size=10, cost_s=4)
    p.track(ids, "http")
    deadline = Deadline(10, clock=clock)  # each round of 10 IDs costs 4 s: rounds start at 0, 4, 8
    out = p.tick(deadline)
    assert len(out) == 30
    written = [i for i, o in out.by_id.items() if o.status == "written"]
    left = [i for i, o in out.by_id.items() if o.status == "pending"]
    # round 3 starts at t=8 (< 10) but its query ends at t=12: its jobs are parked, not written
    assert len(written) == 20 and len(left) == 10 and len(ci.calls) == 3
    assert all(out.by_id[i].reason == "DeadlineReached" for i in left)
    assert set(pending.entries) == set(left) and set(sink.written) == set(written)
    # the next tick starts with the IDs the short tick did not reach
    clock.advance(1)
    out2 = p.tick(Deadline.never())
    assert ci.calls[-1] == left
    assert {i for i, o in out2.by_id.items() if o.status == "written"} == set(left)


def test_deadline_reached_between_query_and_write_parks_terminal_jobs():
    clock = FakeClock()
    p, _ci, sink, pending, _ = make({JOB_A: "Success"}, clock=clock, cost_s=5)
    out = p.process([JOB_A], "direct", Deadline(3, clock=clock))
    assert out.by_id[JOB_A].status == "pending" and out.by_id[JOB_A].reason == "DeadlineReached"
    assert sink.writes == 0 and JOB_A in pending.entries and out.by_id[JOB_A].state == "Success"


def test_unreadable_registry_still_does_the_message_ids_and_asks_for_a_retry():
    p, _ci, _sink, pending, _ = make({JOB_A: "Success"})
    pending.broken = True
    out = p.tick(Deadline.never(), message_ids=[JOB_A])
    assert out.by_id[JOB_A].status == "written" and out.errors and out.retry_needed()


def test_outcomes_refuse_a_second_outcome_for_an_id():
    out = Outcomes()
    out.set(Outcome(JOB_A, "written", "x"))
    with pytest.raises(DuplicateOutcomeError):
        out.set(Outcome(JOB_A, "pending", "x"))


STATES = st.sampled_from(["Success", "Failed", "Cancel", "Running", "Submitted", "Pause", None])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    plan=st.lists(st.tuples(STATES, st.sampled_from([None, "q-retry", "q-fatal", "w-retry", "w-fatal"]),
                            st.booleans(), st.booleans()), min_size=0, max_size=25),
    registered=st.booleans(), budget=st.integers(min_value=0, max_value=12),
)
def test_every_id_gets_exactly_one_outcome(plan, registered, budget):
    clock = FakeClock()
    ids = [job_id(i + 1) for i in range(len(plan))] + ["not-an-id"]
    jobs = {jid: s for jid, (s, *_rest) in zip(ids, plan) if s is not None}
    p, ci, sink, pending, _ = make(jobs, clock=clock, chunk_size=3, cost_s=2)
    for jid, (_s, fault, add_fails, _r) in zip(ids, plan):
        if fault == "q-retry":
            ci.fail[jid] = ("InternalError", True)
        elif fault == "q-fatal":
            ci.fail[jid] = ("InvalidParameter", False)
        elif fault == "w-retry":
            sink.fail[jid] = ("SlowDown", True)
        elif fault == "w-fatal":
            sink.fail[jid] = ("InvalidJob", False)
        if add_fails:
            pending.fail_add.add(jid)
    deadline = Deadline(budget, clock=clock)
    if registered:
        p.track([i for i, (_s, _f, add_fails, r) in zip(ids, plan) if r and not add_fails], "http")
        out = p.tick(deadline, message_ids=ids)
    else:
        out = p.process(ids, "direct", deadline)
    assert set(out.by_id) == set(ids)
    counts = out.counts()
    assert sum(v for k, v in counts.items() if k != "queried") == len(ids)
    for jid, o in out.by_id.items():
        if o.status == "written":
            assert jid in sink.written and jid not in pending.entries
        if o.status == "pending":
            assert jid in pending.entries  # pending always means: in the registry
        if o.status == "failed" and o.retryable:
            assert jid not in pending.entries


# -- a container State from CI; the age rule for permanent failures (moved from the review-fixes file) -----
ENV_SETTINGS = Settings.from_env({"CI_BUCKET": "examplebucket-1250000000", "CI_REGION": "ap-guangzhou"})


def test_pipeline_treats_a_container_state_as_not_finished():
    from cijobs.models import QueryResult

    class Client:
        def query(self, ids, deadline=None):
            return QueryResult(jobs=[{"JobId": ids[0], "State": {"x": "1"}, "Tag": "Transcode"}])

    class Sink:
        def write(self, jobs, deadline=None):
            raise AssertionError("a job with an unknown state must not be written")

    out = Pipeline(ENV_SETTINGS, Client(), Sink(), FakePending()).process(["jaaaaaaaaaaaaaaaaaaaa"], "direct",
                                                                          Deadline(10))
    [o] = out.by_id.values()
    assert (o.status, o.reason, o.state) == ("pending", "NotFinished", None)


@pytest.mark.parametrize(("age_s", "answered", "expected", "removed"), [
    (2 * 86400, True, ("failed", "PendingExpired"), ["jaaaaaaaaaaaaaaaaaaaa"]),
    (2 * 86400, False, ("failed", "InvalidParameter"), []),  # never answered: kept, not expired
    (60, True, ("failed", "InvalidParameter"), []),
])
def test_permanent_failure_of_a_registered_id_follows_the_age_rule(age_s, answered, expected, removed):
    from cijobs.models import ErrorInfo, JobFailure, PendingListing, QueryResult

    job_id, now = "jaaaaaaaaaaaaaaaaaaaa", 1_800_000_000.0

    class Client:
        def query(self, ids, deadline=None):
            return QueryResult(failed=[JobFailure(i, ErrorInfo("InvalidParameter", "no", 400, None), False)
                                       for i in ids])

    class Sink:
        def write(self, jobs, deadline=None):
            return []

    class Registry:
        def __init__(self) -> None:
            self.removed: list[str] = []

        def add(self, ids, **kw):
            raise AssertionError("a registered ID is not re-added")

        def listing(self, limit=50_000, deadline=None):
            return PendingListing([PendingEntry(job_id, now - age_s, "timer", answered)])

        def mark_answered(self, ids, deadline=None):
            return []

        def remove(self, ids, deadline=None):
            self.removed += list(ids)
            return []

    registry = Registry()
    out = Pipeline(ENV_SETTINGS, Client(), Sink(), registry, clock=lambda: now).tick(Deadline(10))
    [o] = out.by_id.values()
    assert (o.status, o.reason, o.retryable) == (*expected, False)
    assert registry.removed == removed
    if removed:
        assert "InvalidParameter" in (o.message or "")


def test_a_registered_job_too_large_to_fetch_fails_and_leaves_the_registry():
    p, ci, _sink, pending, _ = make({JOB_A: "Success", JOB_B: "Running"})
    p.track([JOB_A, JOB_B], "http")
    ci.fail = {JOB_A: ("DocumentTooLarge", False)}
    out = p.tick(Deadline.never())
    assert out.by_id[JOB_A].status == "failed" and not out.by_id[JOB_A].retryable
    assert set(pending.entries) == {JOB_B}  # not queried (and split) again on every tick
