"""``cijobs.ci_list``: one signed page of ``GET /jobs?tag=...`` against the emulator."""

from __future__ import annotations

import random

import pytest

from cijobs.ci_client import CIError, JobClient
from cijobs.ci_list import (
    JobLister,
    ListQuery,
    encode_query,
    format_list_time,
    parse_job_time,
    queue_required,
)
from cijobs.credentials import Credentials
from cijobs.deadline import Deadline
from cijobs.settings import Settings
from cijobs_tools.emulator import Emulator
from fakes import EMU_SECRET_ID, EMU_SECRET_KEY
from fakes import job_id as jid

SID, SKEY = EMU_SECRET_ID, EMU_SECRET_KEY  # the emu fixture's (conftest)
T0 = 1_796_000_000


def lister(emu: Emulator) -> JobLister:
    return JobLister(JobClient(Settings.from_env(emu.env()), lambda: Credentials(SID, SKEY), sleep=lambda s: None,
                               rng=random.Random(1)))


def test_time_format_and_encoding() -> None:
    assert format_list_time(T0) == "2026-11-30T08:53:20+0800"
    q = ListQuery("Transcode", states=("Success", "Failed"), start=T0, end=T0 + 60, queue_id="p1", next_token="a+b")
    params = q.params()
    assert params == {
        "tag": "Transcode", "queueId": "p1", "states": "Success,Failed",
        "startCreationTime": "2026-11-30T08:53:20+0800", "endCreationTime": "2026-11-30T08:54:20+0800",
        "orderByTime": "Asc", "size": "100", "nextToken": "a+b",
    }
    encoded = encode_query(params)
    assert "startCreationTime=2026-11-30T08%3A53%3A20%2B0800" in encoded
    assert "+" not in encoded and "states=Success%2CFailed" in encoded
    assert parse_job_time("2026-11-30T08:53:20+0800") == T0
    assert parse_job_time("2026-11-30T08:53:20+08:00") == T0
    assert parse_job_time("-") is None and parse_job_time(None) is None and parse_job_time("soon") is None
    assert parse_job_time("2026-11-30T08:53:20") is None  # no offset: refuse to guess


@pytest.mark.parametrize("kwargs", [{"tag": ""}, {"size": 0}, {"size": 101}, {"order": "Up"}, {"states": ("Ok",)}])
def test_query_is_checked(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"tag": "Transcode", **kwargs}
    with pytest.raises(ValueError):
        ListQuery(**args)  # type: ignore[arg-type]


def test_pages_of_a_window_are_signed_and_follow_the_token(emu: Emulator) -> None:
    emu.load_catalog([{"job_id": jid(n), "created": T0 + n, "state": "Success"} for n in range(7)])
    emu.load_catalog([{"job_id": jid(50), "created": T0 + 3, "state": "Running"}])
    ls = lister(emu)
    seen: list[str] = []
    token = None
    for _ in range(10):
        p = ls.list_page(ListQuery("Transcode", start=T0 + 1, end=T0 + 6, size=2, next_token=token))
        seen += [j["JobId"] for j in p.jobs]
        assert p.request_id
        token = p.next_token
        if token is None:
            break
    assert seen == [jid(2), jid(3), jid(50), jid(4), jid(5)]  # exclusive bounds by default
    sent = emu.ci.requests[-1].query
    assert sent["startCreationTime"] == "2026-11-30T08:53:21+0800"  # the '+' arrived as '+' (sent as %2B)
    running = ls.list_page(ListQuery("Transcode", states=("Running",))).jobs
    assert [(j["JobId"], j["State"], parse_job_time(j["CreationTime"])) for j in running] == [(jid(50), "Running",
                                                                                               T0 + 3)]


def test_queue_required_error_is_recognised(emu: Emulator) -> None:
    emu.ci.list_requires_queue = True
    with pytest.raises(CIError) as info:
        lister(emu).list_page(ListQuery("Transcode"))
    assert info.value.status == 400 and info.value.code == "InvalidArgument"
    assert queue_required(info.value) and not info.value.retryable
    assert lister(emu).list_page(ListQuery("Transcode", queue_id="p" + "0" * 32)).jobs == []


def test_retries_a_5xx_then_succeeds(emu: Emulator) -> None:
    emu.load_catalog([{"job_id": jid(1), "created": T0, "state": "Success"}])
    emu.faults.inject_next("ci", "fail", "fail")
    p = lister(emu).list_page(ListQuery("Transcode"))
    assert [j["JobId"] for j in p.jobs] == [jid(1)] and p.attempts == 3


def test_expired_deadline_sends_nothing(emu: Emulator) -> None:
    with pytest.raises(CIError) as info:
        lister(emu).list_page(ListQuery("Transcode"), Deadline(0))
    assert info.value.code == "DeadlineExceeded" and info.value.retryable
    assert emu.ci.requests == []


def test_bad_token_is_not_retried(emu: Emulator) -> None:
    with pytest.raises(CIError) as info:
        lister(emu).list_page(ListQuery("Transcode", next_token="nonsense"))
    assert info.value.status == 400 and len(emu.ci.requests) == 1
