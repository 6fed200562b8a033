"""The emulator's ``GET /jobs?tag=...`` list route: filters, creation window (both bound modes), keyset
paging with an opaque token, size bounds, queueId, signature over the query string, the catalog loader."""

from __future__ import annotations

import json
import time
from typing import Any, Optional

import defusedxml.ElementTree as DET
import pytest
import requests

from cijobs import signing
from cijobs.ci_list import encode_query, format_list_time
from cijobs.credentials import Credentials
from cijobs_tools.emulator import Emulator
from cijobs_tools.emulator.ci import JobStateError
from fakes import EMU_SECRET_ID, EMU_SECRET_KEY
from fakes import job_id as jid

SID, SKEY = EMU_SECRET_ID, EMU_SECRET_KEY  # the emu fixture's (conftest)
CREDS = Credentials(SID, SKEY)
HOST = "examplebucket-1250000000.ci.ap-guangzhou.myqcloud.com"
T0 = 1_796_000_000  # a whole second
QUEUE_A, QUEUE_B = "p" + "a" * 32, "p" + "b" * 32


def get(
    emu: Emulator, session: requests.Session, params: dict[str, str], sign_params: bool = True
) -> requests.Response:
    """A signed GET /jobs?...; with ``sign_params`` False the query is sent but left out of the signature."""
    url = f"{emu.url}/jobs?{encode_query(params)}"
    req = requests.Request("GET", url, headers={"Host": HOST}).prepare()
    signed = params if sign_params else {}
    req.headers["Authorization"] = signing.sign(CREDS, "GET", "/jobs", signed, {"host": HOST}, time.time())
    return session.send(req, timeout=5)


def page(emu: Emulator, session: requests.Session, **params: str) -> tuple[list[tuple[str, str]], str]:
    r = get(emu, session, params)
    assert r.status_code == 200, r.text
    root = DET.fromstring(r.content)
    jobs = [(str(j.findtext("JobId")), str(j.findtext("CreationTime"))) for j in root.findall("JobsDetail")]
    return jobs, root.findtext("NextToken") or ""


def ids(emu: Emulator, session: requests.Session, **params: str) -> list[str]:
    """Every ID of a listing, following nextToken."""
    out: list[str] = []
    token = ""
    for _ in range(100):
        q = dict(params, nextToken=token) if token else dict(params)
        jobs, token = page(emu, session, **q)
        out += [j for j, _ in jobs]
        if not token:
            return out
    raise AssertionError("listing does not end")


def error_code(r: requests.Response) -> str:
    return str(DET.fromstring(r.content).findtext("Code"))


def catalog(emu: Emulator, spec: list[tuple[int, int, str]], tag: str = "Transcode",
            queue: Optional[str] = None) -> None:
    emu.load_catalog([{"job_id": jid(n), "tag": tag, "created": T0 + off, "state": state,
                       **({"queue_id": queue} if queue else {})} for n, off, state in spec])


def test_catalog_jobs_carry_their_creation_time_tag_and_queue(emu: Emulator, session: requests.Session) -> None:
    emu.load_catalog([
        {"job_id": jid(1), "tag": "Snapshot", "created": "2026-12-04T20:00:00+0800", "state": "Running",
         "queue_id": QUEUE_A},
    ])
    r = get(emu, session, {"tag": "Snapshot"})
    job = DET.fromstring(r.content).find("JobsDetail")
    assert job is not None
    assert job.findtext("CreationTime") == "2026-12-04T20:00:00+0800"
    assert job.findtext("QueueId") == QUEUE_A
    assert job.findtext("State") == "Running"
    assert format_list_time(int(emu.ci.jobs[jid(1)].created)) == "2026-12-04T20:00:00+0800"


def test_catalog_file_for_the_emulator_command(tmp_path: Any) -> None:
    from cijobs_tools.cli.emulator import read_catalog

    rows = [{"job_id": jid(n), "created": T0 + n} for n in range(2)]
    (tmp_path / "a.json").write_text(json.dumps(rows))
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert read_catalog(str(tmp_path / "a.json")) == rows == read_catalog(str(tmp_path / "b.jsonl"))
    (tmp_path / "c.json").write_text("[1, 2]")
    with pytest.raises(ValueError):
        read_catalog(str(tmp_path / "c.json"))


def test_catalog_with_a_bad_entry_adds_nothing(emu: Emulator) -> None:
    with pytest.raises(JobStateError):
        emu.load_catalog([{"job_id": jid(1)}, {"job_id": jid(2), "state": "Done"}])
    with pytest.raises(JobStateError):
        emu.load_catalog([{"tag": "Transcode"}])
    assert emu.ci.jobs == {}


def test_tag_states_and_order(emu: Emulator, session: requests.Session) -> None:
    catalog(emu, [(1, 1, "Success"), (2, 2, "Running"), (3, 3, "Failed"), (4, 4, "Cancel")])
    catalog(emu, [(9, 0, "Success")], tag="Snapshot")
    assert ids(emu, session, tag="Transcode", orderByTime="Asc") == [jid(1), jid(2), jid(3), jid(4)]
    assert ids(emu, session, tag="Transcode") == [jid(4), jid(3), jid(2), jid(1)]  # Desc is the default
    assert ids(emu, session, tag="Transcode", states="Success,Failed", orderByTime="Asc") == [jid(1), jid(3)]
    assert ids(emu, session, tag="Transcode", states="All", orderByTime="Asc") == [jid(1), jid(2), jid(3), jid(4)]
    assert ids(emu, session, tag="Snapshot") == [jid(9)]
    assert error_code(get(emu, session, {"tag": "Transcode", "states": "Done"})) == "InvalidArgument"
    assert get(emu, session, {"tag": "Transcode", "orderByTime": "Up"}).status_code == 400
    assert get(emu, session, {"states": "All"}).status_code == 400  # tag is required


@pytest.mark.parametrize("bounds", ["exclusive", "inclusive"])
def test_creation_window_bounds(emu: Emulator, session: requests.Session, bounds: str) -> None:
    catalog(emu, [(n, n, "Success") for n in range(10)])
    emu.ci.list_bounds = bounds
    got = ids(emu, session, tag="Transcode", orderByTime="Asc", startCreationTime=format_list_time(T0 + 2),
              endCreationTime=format_list_time(T0 + 6))
    expected = range(2, 7) if bounds == "inclusive" else range(3, 6)
    assert got == [jid(n) for n in expected]
    only_start = ids(emu, session, tag="Transcode", orderByTime="Asc", startCreationTime=format_list_time(T0 + 8))
    assert only_start == [jid(n) for n in (range(8, 10) if bounds == "inclusive" else range(9, 10))]


def test_window_times_in_another_offset_mean_the_same_instant(emu: Emulator, session: requests.Session) -> None:
    catalog(emu, [(n, n, "Success") for n in range(5)])
    from datetime import datetime, timezone

    utc = datetime.fromtimestamp(T0 + 2, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S%z")
    assert utc.endswith("+0000")
    assert ids(emu, session, tag="Transcode", orderByTime="Asc", startCreationTime=utc) == [jid(3), jid(4)]


def test_unencoded_plus_in_a_time_is_a_400(emu: Emulator, session: requests.Session) -> None:
    """A raw '+' reaches the server as a space: the client must send %2B."""
    t = format_list_time(T0)
    url = f"{emu.url}/jobs?tag=Transcode&startCreationTime={t}"
    req = requests.Request("GET", url, headers={"Host": HOST}).prepare()
    req.headers["Authorization"] = signing.sign(
        CREDS, "GET", "/jobs", {"tag": "Transcode", "startCreationTime": t.replace("+", " ")}, {"host": HOST},
        time.time())
    r = session.send(req, timeout=5)
    assert r.status_code == 400
    assert error_code(r) == "InvalidArgument"


def test_paging_across_a_shared_second(emu: Emulator, session: requests.Session) -> None:
    """30 jobs in one second straddle a page boundary: keyset paging returns each exactly once, in
    (second, JobId) order, even when jobs are added between pages."""
    catalog(emu, [(n, 5, "Success") for n in range(30)] + [(100 + n, n, "Success") for n in range(5)])
    first, token = page(emu, session, tag="Transcode", orderByTime="Asc", size="20")
    assert [j for j, _ in first] == [jid(100 + n) for n in range(5)] + [jid(n) for n in range(15)]
    catalog(emu, [(200, 1, "Success")])  # created earlier than the page end: not in this listing any more
    rest: list[str] = []
    while token:
        jobs, token = page(emu, session, tag="Transcode", orderByTime="Asc", size="20", nextToken=token)
        rest += [j for j, _ in jobs]
    assert rest == [jid(n) for n in range(15, 30)]


def test_size_bounds_and_default(emu: Emulator, session: requests.Session) -> None:
    catalog(emu, [(n, n, "Success") for n in range(120)])
    jobs, token = page(emu, session, tag="Transcode")
    assert len(jobs) == 10 and token
    jobs, token = page(emu, session, tag="Transcode", size="100")
    assert len(jobs) == 100 and token
    jobs, token = page(emu, session, tag="Transcode", size="1")
    assert len(jobs) == 1 and token
    for bad in ("0", "101", "x"):
        r = get(emu, session, {"tag": "Transcode", "size": bad})
        assert r.status_code == 400 and error_code(r) == "InvalidArgument"
    assert len(ids(emu, session, tag="Transcode", size="100")) == 120


def test_last_page_has_an_empty_token(emu: Emulator, session: requests.Session) -> None:
    catalog(emu, [(n, n, "Success") for n in range(4)])
    jobs, token = page(emu, session, tag="Transcode", size="4")
    assert len(jobs) == 4 and token == ""


def test_bad_or_foreign_token_is_a_400(emu: Emulator, session: requests.Session) -> None:
    catalog(emu, [(n, n, "Success") for n in range(5)])
    _, token = page(emu, session, tag="Transcode", size="2", orderByTime="Asc")
    assert token
    for bad in ("zzz", "1", token[:-2] + ("AA" if not token.endswith("AA") else "BB"), "%%%"):
        r = get(emu, session, {"tag": "Transcode", "size": "2", "orderByTime": "Asc", "nextToken": bad})
        assert r.status_code == 400, bad
        assert error_code(r) == "InvalidArgument"
    # a token is tied to its query: another filter set refuses it
    r = get(emu, session, {"tag": "Transcode", "size": "2", "orderByTime": "Desc", "nextToken": token})
    assert r.status_code == 400


def test_queue_filter_and_required_switch(emu: Emulator, session: requests.Session) -> None:
    catalog(emu, [(1, 1, "Success"), (2, 2, "Success")], queue=QUEUE_A)
    catalog(emu, [(3, 3, "Success")], queue=QUEUE_B)
    assert ids(emu, session, tag="Transcode", queueId=QUEUE_A, orderByTime="Asc") == [jid(1), jid(2)]
    assert ids(emu, session, tag="Transcode", queueId=QUEUE_B) == [jid(3)]
    assert len(ids(emu, session, tag="Transcode")) == 3
    emu.ci.list_requires_queue = True
    r = get(emu, session, {"tag": "Transcode"})
    assert r.status_code == 400
    assert "queueId is required" in str(DET.fromstring(r.content).findtext("Message"))
    assert ids(emu, session, tag="Transcode", queueId=QUEUE_B) == [jid(3)]


def test_query_parameters_must_be_signed(emu: Emulator, session: requests.Session) -> None:
    catalog(emu, [(1, 1, "Success")])
    r = get(emu, session, {"tag": "Transcode", "size": "5"}, sign_params=False)
    assert r.status_code == 403
    assert error_code(r) == "SignatureDoesNotMatch"
    # signed over other values than those sent: the signature does not match
    url = f"{emu.url}/jobs?{encode_query({'tag': 'Transcode'})}"
    req = requests.Request("GET", url, headers={"Host": HOST}).prepare()
    req.headers["Authorization"] = signing.sign(CREDS, "GET", "/jobs", {"tag": "Snapshot"}, {"host": HOST},
                                                time.time())
    r = session.send(req, timeout=5)
    assert r.status_code == 403 and error_code(r) == "SignatureDoesNotMatch"
    assert get(emu, session, {"tag": "Transcode", "size": "5"}).status_code == 200


def test_listing_does_not_count_as_a_query(emu: Emulator, session: requests.Session) -> None:
    emu.load_catalog([{"job_id": jid(1), "created": T0, "state": "Running", "finish_after": 1}])
    for _ in range(3):
        assert page(emu, session, tag="Transcode")[0] == [(jid(1), format_list_time(T0))]
    assert emu.ci.jobs[jid(1)].state == "Running" and emu.ci.jobs[jid(1)].queries == 0


def _control(emu: Emulator, session: requests.Session, path: str, body: dict[str, Any]) -> requests.Response:
    return session.post(emu.url + "/_emu/" + path, data=json.dumps(body), timeout=5)


def test_control_routes_load_a_catalog_and_switch_bounds(emu: Emulator, session: requests.Session) -> None:
    r = _control(emu, session, "ci/catalog", {"jobs": [
        {"job_id": jid(n), "tag": "Transcode", "created": T0 + n, "state": "Success"} for n in range(3)]})
    assert r.status_code == 200 and r.json() == {"added": 3}
    assert _control(emu, session, "ci/catalog", {"jobs": [{"job_id": jid(9), "state": "Nope"}]}).status_code == 400
    assert _control(emu, session, "ci/catalog", {"jobs": "x"}).status_code == 400
    r = _control(emu, session, "ci/config", {"list_bounds": "inclusive", "list_requires_queue": True})
    assert r.json()["list_bounds"] == "inclusive" and r.json()["list_requires_queue"] is True
    assert emu.ci.list_bounds == "inclusive"
    assert _control(emu, session, "ci/config", {"list_bounds": "sometimes"}).status_code == 400
    listed = session.get(emu.url + "/_emu/ci/jobs", timeout=5).json()["jobs"]
    assert {j["job_id"]: j["created"] for j in listed} == {jid(n): T0 + n for n in range(3)}
    emu.reset()
    assert emu.ci.list_bounds == "exclusive" and not emu.ci.list_requires_queue
