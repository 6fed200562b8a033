"""The emulator's CI side, driven by a plain ``requests`` client signed with ``cijobs.signing``."""

from __future__ import annotations

import base64
import statistics
import time
from typing import Any, Optional

import defusedxml.ElementTree as DET
import pytest
import requests

from cijobs import signing
from cijobs.credentials import Credentials
from cijobs_tools.emulator import Emulator
from fakes import EMU_SECRET_ID, EMU_SECRET_KEY
from fakes import job_id as jid

SID, SKEY = EMU_SECRET_ID, EMU_SECRET_KEY  # the emu fixture's (conftest)
CREDS = Credentials(SID, SKEY)
HOST = "examplebucket-1250000000.ci.ap-guangzhou.myqcloud.com"


def get(
    emu: Emulator,
    session: requests.Session,
    path: str,
    creds: Credentials = CREDS,
    clock: Any = time.time,
    host: str = HOST,
    params: Optional[dict[str, str]] = None,
    token_header: str = "x-ci-security-token",
) -> requests.Response:
    return session.get(
        emu.url + path, params=params, headers={"Host": host},
        auth=signing.CosSigner(creds, token_header, clock=clock), allow_redirects=False, timeout=5,
    )


def error_code(resp: requests.Response) -> str:
    root = DET.fromstring(resp.content)
    assert root.tag == "Error"
    assert root.findtext("RequestId")
    return str(root.findtext("Code"))


def test_signed_query_returns_realistic_success_job(emu: Emulator, session: requests.Session) -> None:
    emu.ci.add_job(jid(1), tag="Transcode", state="Success")
    r = get(emu, session, f"/jobs/{jid(1)}")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/xml"
    assert r.headers["Server"] == "tencent-ci"
    base64.b64decode(r.headers["x-ci-request-id"], validate=True)
    root = DET.fromstring(r.content)
    assert root.tag == "Response"
    jobs = root.findall("JobsDetail")
    assert len(jobs) == 1
    job = jobs[0]
    assert job.findtext("JobId") == jid(1)
    assert job.findtext("State") == "Success"
    assert job.findtext("Tag") == "Transcode"
    assert job.findtext("Code") == "Success"
    assert job.findtext("Progress") == "100"
    assert job.findtext("EndTime") != "-"
    time.strptime(str(job.findtext("EndTime"))[:19], "%Y-%m-%dT%H:%M:%S")
    assert job.findtext("Operation/MediaInfo/Format/Duration") == "13.654000"
    assert job.findtext("Operation/MediaInfo/Stream/Video/CodecName") == "h264"
    assert job.findtext("Operation/MediaResult/OutputFile/ObjectName") == "output/out.mp4"
    assert root.find("NonExistJobIds") is None
    assert emu.ci.requests[-1].ids == [jid(1)]
    assert emu.ci.requests[-1].status == 200


def test_running_job_has_no_results_and_dash_end_time(emu: Emulator, session: requests.Session) -> None:
    emu.ci.add_job(jid(2), tag="Snapshot", state="Running")
    job = DET.fromstring(get(emu, session, f"/jobs/{jid(2)}").content).find("JobsDetail")
    assert job is not None
    assert job.findtext("State") == "Running"
    assert job.findtext("EndTime") == "-"
    assert job.findtext("Progress") == "50"
    assert job.find("Operation/MediaResult") is None
    assert job.findtext("Operation/TemplateName") == "template_snapshot"


@pytest.mark.parametrize("tag", ["SuperResolution", "SpeechRecognition", "PicProcess", "VideoTag", "Tts"])
def test_other_tags_render_their_samples(emu: Emulator, session: requests.Session, tag: str) -> None:
    emu.ci.add_job(jid(3), tag=tag, state="Success")
    job = DET.fromstring(get(emu, session, f"/jobs/{jid(3)}").content).find("JobsDetail")
    assert job is not None
    assert job.findtext("Tag") == tag
    op = job.find("Operation")
    assert op is not None
    assert any(c.tag.endswith("Result") for c in op)


def test_failed_job_has_code_and_message(emu: Emulator, session: requests.Session) -> None:
    emu.ci.add_job(jid(4))
    emu.ci.set_state(jid(4), "Failed", code="InvalidInput", message="bad input")
    job = DET.fromstring(get(emu, session, f"/jobs/{jid(4)}").content).find("JobsDetail")
    assert job is not None
    assert (job.findtext("State"), job.findtext("Code"), job.findtext("Message")) == ("Failed", "InvalidInput",
                                                                                     "bad input")
    assert job.find("Operation/MediaInfo") is None


def test_several_ids_and_nonexistent(emu: Emulator, session: requests.Session) -> None:
    emu.ci.add_job(jid(1), state="Success")
    emu.ci.add_job(jid(2), state="Submitted")
    r = get(emu, session, f"/jobs/{jid(1)},{jid(9)},{jid(2)},{jid(8)}")
    assert r.status_code == 200
    root = DET.fromstring(r.content)
    assert [j.findtext("JobId") for j in root.findall("JobsDetail")] == [jid(1), jid(2)]
    missing = root.findall("NonExistJobIds")
    assert len(missing) == 1
    assert missing[0].text == f"{jid(9)},{jid(8)}"


def test_eleven_ids_is_400_invalid_argument(emu: Emulator, session: requests.Session) -> None:
    ids = [jid(i) for i in range(11)]
    r = get(emu, session, "/jobs/" + ",".join(ids))
    assert r.status_code == 400
    assert error_code(r) == "InvalidArgument"
    assert "x-ci-trace-id" in r.headers
    assert get(emu, session, "/jobs/" + ",".join(ids[:10])).status_code == 200


def test_wrong_key_is_signature_mismatch(emu: Emulator, session: requests.Session) -> None:
    r = get(emu, session, f"/jobs/{jid(1)}", creds=Credentials(SID, "wrong"))
    assert r.status_code == 403
    assert error_code(r) == "SignatureDoesNotMatch"


def test_unknown_access_key(emu: Emulator, session: requests.Session) -> None:
    r = get(emu, session, f"/jobs/{jid(1)}", creds=Credentials("AKIDother", SKEY))
    assert r.status_code == 403
    assert error_code(r) == "InvalidAccessKeyId"


def test_missing_authorization(emu: Emulator, session: requests.Session) -> None:
    r = session.get(emu.url + f"/jobs/{jid(1)}", headers={"Host": HOST})
    assert r.status_code == 403
    assert error_code(r) == "AccessDenied"


def test_tampered_path_is_rejected(emu: Emulator, session: requests.Session) -> None:
    auth = signing.sign(CREDS, "GET", f"/jobs/{jid(1)}", {}, {"host": HOST}, time.time())
    ok = session.get(emu.url + f"/jobs/{jid(1)}", headers={"Host": HOST, "Authorization": auth})
    assert ok.status_code == 200
    bad = session.get(emu.url + f"/jobs/{jid(2)}", headers={"Host": HOST, "Authorization": auth})
    assert bad.status_code == 403
    assert error_code(bad) == "SignatureDoesNotMatch"


def test_expired_and_future_key_time(emu: Emulator, session: requests.Session) -> None:
    old = get(emu, session, f"/jobs/{jid(1)}", clock=lambda: time.time() - 3600)
    assert old.status_code == 403
    assert error_code(old) == "AccessDenied"
    assert b"expired" in old.content
    future = get(emu, session, f"/jobs/{jid(1)}", clock=lambda: time.time() + 3600)
    assert future.status_code == 403
    assert error_code(future) == "RequestTimeTooSkewed"


def test_missing_signed_header_and_unsigned_host(emu: Emulator, session: requests.Session) -> None:
    auth = signing.sign(CREDS, "GET", f"/jobs/{jid(1)}", {}, {"host": HOST, "x-ci-extra": "1"}, time.time())
    r = session.get(emu.url + f"/jobs/{jid(1)}", headers={"Host": HOST, "Authorization": auth})
    assert r.status_code == 403
    assert error_code(r) == "SignatureDoesNotMatch"
    assert b"x-ci-extra" in r.content
    no_host = signing.sign(CREDS, "GET", f"/jobs/{jid(1)}", {}, {}, time.time())
    r = session.get(emu.url + f"/jobs/{jid(1)}", headers={"Host": HOST, "Authorization": no_host})
    assert r.status_code == 403
    assert error_code(r) == "SignatureDoesNotMatch"


def test_session_token_required_when_configured(session: requests.Session) -> None:
    with Emulator(secret_id=SID, secret_key=SKEY, token="tok-123") as emu:
        emu.ci.add_job(jid(1), state="Success")
        missing = get(emu, session, f"/jobs/{jid(1)}")
        assert missing.status_code == 403
        assert error_code(missing) == "InvalidAccessKeyId"
        wrong = get(emu, session, f"/jobs/{jid(1)}", creds=Credentials(SID, SKEY, "tok-999"))
        assert wrong.status_code == 403
        assert error_code(wrong) == "AccessDenied"
        for header in ("x-ci-security-token", "x-cos-security-token"):
            ok = get(emu, session, f"/jobs/{jid(1)}", creds=Credentials(SID, SKEY, "tok-123"), token_header=header)
            assert ok.status_code == 200, ok.text


def test_invalid_host(emu: Emulator, session: requests.Session) -> None:
    r = get(emu, session, f"/jobs/{jid(1)}", host="example.com")
    assert r.status_code == 400
    assert error_code(r) == "InvalidHost"


def test_finish_after_and_advance(emu: Emulator, session: requests.Session) -> None:
    emu.ci.add_job(jid(1), state="Running", finish_after=2)
    emu.ci.add_job(jid(2), state="Submitted")

    def state(n: int) -> Optional[str]:
        return DET.fromstring(get(emu, session, f"/jobs/{jid(n)}").content).findtext("JobsDetail/State")

    assert [state(1), state(1), state(1), state(1)] == ["Running", "Running", "Success", "Success"]
    assert state(2) == "Submitted"
    assert emu.ci.advance() == 1
    assert state(2) == "Running"
    emu.ci.advance()
    assert state(2) == "Success"
    assert emu.ci.advance() == 0


def test_auto_jobs(session: requests.Session) -> None:
    with Emulator(secret_id=SID, secret_key=SKEY, auto_jobs=True) as emu:
        ids = [jid(i) for i in range(8)] + [jid(1, "jnone")[:33], "x!"]
        r = get(emu, session, "/jobs/" + ",".join(ids))
        root = DET.fromstring(r.content)
        found = root.findall("JobsDetail")
        assert [j.findtext("JobId") for j in found] == ids[:8]
        assert all(j.findtext("State") == "Success" for j in found)
        assert str(root.findtext("NonExistJobIds")).split(",") == ids[8:]
        tags = {j.findtext("JobId"): j.findtext("Tag") for j in found}
        again = DET.fromstring(get(emu, session, "/jobs/" + ",".join(ids[:8])).content)
        assert {j.findtext("JobId"): j.findtext("Tag") for j in again.findall("JobsDetail")} == tags
        assert len(set(tags.values())) > 1


def test_list_jobs_with_next_token(emu: Emulator, session: requests.Session) -> None:
    for i in range(5):
        emu.ci.add_job(jid(i), tag="Transcode", state="Success")
    emu.ci.add_job(jid(99), tag="Snapshot", state="Success")
    seen: list[str] = []
    token = ""
    for _ in range(5):
        params = {"tag": "Transcode", "size": "2"}
        if token:
            params["nextToken"] = token
        r = get(emu, session, "/jobs", params=params)
        assert r.status_code == 200, r.text
        root = DET.fromstring(r.content)
        seen += [str(j.findtext("JobId")) for j in root.findall("JobsDetail")]
        token = root.findtext("NextToken") or ""
        if not token:
            break
    assert sorted(seen) == [jid(i) for i in range(5)]
    assert get(emu, session, "/jobs", params={"size": "2"}).status_code == 400


def test_keep_alive_requests_are_fast(emu: Emulator, session: requests.Session) -> None:
    """No ~40 ms Nagle/delayed-ACK stall per response: TCP_NODELAY and one write per response."""
    emu.ci.add_job(jid(1), state="Success")
    get(emu, session, f"/jobs/{jid(1)}")
    times = []
    for _ in range(15):
        t0 = time.perf_counter()
        assert get(emu, session, f"/jobs/{jid(1)}").status_code == 200
        times.append(time.perf_counter() - t0)
    assert statistics.median(times) < 0.010


def test_latency_is_added(emu: Emulator, session: requests.Session) -> None:
    emu.ci.add_job(jid(1), state="Success")
    emu.faults.latency_ms = 30
    get(emu, session, f"/jobs/{jid(1)}")
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        get(emu, session, f"/jobs/{jid(1)}")
        times.append(time.perf_counter() - t0)
    assert 0.028 <= statistics.median(times) < 0.045


def test_job_xml_is_compact_like_ci_and_pretty_on_request(emu: Emulator, session: requests.Session) -> None:
    """CI sends its XML without indentation (the byte-exact callbacks in the spec fixtures are one line);
    the docs print it indented. Both normalize to the same document."""
    from cijobs.normalize import normalize_document

    ids = [jid(1), jid(2), jid(3)]
    for n, tag in zip(ids, ["Transcode", "Snapshot", "SpeechRecognition"]):
        emu.ci.add_job(n, tag=tag, state="Success")
    path = "/jobs/" + ",".join(ids)
    compact = get(emu, session, path).content
    assert b">\n" not in compact and b">  " not in compact and compact.count(b"<JobsDetail>") == 3

    config = session.post(emu.url + "/_emu/ci/config", json={"pretty_xml": True}, timeout=5)
    assert config.status_code == 200 and config.json()["pretty_xml"] is True
    pretty = get(emu, session, path).content
    assert pretty.count(b"\n") > 100 and len(pretty) > len(compact) * 1.3
    assert normalize_document(pretty) == normalize_document(compact)

    session.post(emu.url + "/_emu/ci/config", json={"pretty_xml": False}, timeout=5)
    assert get(emu, session, path).content == compact
