"""Each fault kind, observed from a plain ``requests`` client; faults never corrupt state."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from cijobs import signing
from cijobs.credentials import Credentials
from cijobs_tools.emulator import Emulator
from cijobs_tools.emulator.faults import FaultConfigError, Faults

SID, SKEY = "AKIDtest", "test-secret-key"
CREDS = Credentials(SID, SKEY)
CI_HOST = "examplebucket-1250000000.ci.ap-guangzhou.myqcloud.com"
COS_HOST = "examplebucket-1250000000.cos.ap-guangzhou.myqcloud.com"
JOB = "j" + "1" * 32


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(secret_id=SID, secret_key=SKEY, seed=7) as e:
        e.ci.add_job(JOB, state="Success")
        yield e


def ci_get(emu: Emulator) -> requests.Response:
    return requests.get(f"{emu.url}/jobs/{JOB}", headers={"Host": CI_HOST},
                        auth=signing.CosSigner(CREDS, "x-ci-security-token"), timeout=5)


def cos_put(emu: Emulator, key: str, body: bytes) -> requests.Response:
    return requests.put(f"{emu.url}/{key}", data=body, headers={"Host": COS_HOST},
                        auth=signing.CosSigner(CREDS), timeout=5)


def test_fail_rate_gives_5xx_error_xml(emu: Emulator) -> None:
    emu.faults.fail_rate = 1.0
    codes = set()
    for _ in range(8):
        r = ci_get(emu)
        assert r.status_code in (500, 503)
        assert b"<Error>" in r.content
        codes.add(r.status_code)
    assert codes == {500, 503}
    assert emu.faults.injected["ci.fail"] == 8


def test_failed_put_stores_nothing(emu: Emulator) -> None:
    emu.faults.cos.fail_rate = 1.0
    assert cos_put(emu, "a.json", b"1").status_code >= 500
    assert emu.cos.objects == {}
    emu.faults.cos.fail_rate = None  # back to the global value (0)
    assert cos_put(emu, "a.json", b"1").status_code == 200


def test_slowdown_is_cos_only(emu: Emulator) -> None:
    emu.faults.slowdown_rate = 1.0
    r = cos_put(emu, "a.json", b"1")
    assert r.status_code == 503
    assert b"<Code>SlowDown</Code>" in r.content
    assert emu.cos.objects == {}
    ci = ci_get(emu)
    assert ci.status_code in (500, 503)
    assert b"SlowDown" not in ci.content


def test_reset_is_a_connection_error(emu: Emulator) -> None:
    emu.faults.reset_rate = 1.0
    with pytest.raises(requests.ConnectionError):
        ci_get(emu)
    with pytest.raises(requests.ConnectionError):
        cos_put(emu, "a.json", b"1")
    assert emu.cos.objects == {}
    emu.faults.reset_rate = 0.0
    assert ci_get(emu).status_code == 200  # the server survived


def test_reset_after_processes_then_drops(emu: Emulator) -> None:
    emu.faults.cos.reset_after_rate = 1.0
    with pytest.raises(requests.ConnectionError):
        cos_put(emu, "a.json", b"1")
    assert emu.cos.objects[("examplebucket-1250000000", "a.json")].body == b"1"


def test_truncate_is_an_incomplete_read(emu: Emulator) -> None:
    emu.faults.truncate_rate = 1.0
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        ci_get(emu)
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        cos_put(emu, "a.json", b"1")
    assert emu.cos.objects == {}


def test_garbage_and_wrong_content_type(emu: Emulator) -> None:
    emu.faults.garbage_rate = 1.0
    for _ in range(4):
        r = ci_get(emu)
        assert r.status_code == 200
        assert b"<Response>" not in r.content
        assert r.headers["Content-Type"] != "application/xml"
    emu.faults.garbage_rate = 0.0
    emu.faults.wrong_content_type_rate = 1.0
    r = ci_get(emu)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    assert JOB.encode() in r.content


def test_slow_body(emu: Emulator) -> None:
    emu.faults.slow_body_ms = 80
    t0 = time.perf_counter()
    r = ci_get(emu)
    assert r.status_code == 200
    assert JOB.encode() in r.content
    assert time.perf_counter() - t0 >= 0.07


def test_latency_does_not_block_other_connections(emu: Emulator) -> None:
    emu.faults.ci.latency_ms = 300
    import threading

    slow_done = threading.Event()
    threading.Thread(target=lambda: (ci_get(emu), slow_done.set()), daemon=True).start()
    time.sleep(0.05)
    t0 = time.perf_counter()
    assert cos_put(emu, "a.json", b"1").status_code == 200  # COS has no latency configured
    assert time.perf_counter() - t0 < 0.15
    assert not slow_done.is_set()
    assert slow_done.wait(2)


def test_cmq_fail_is_code_6000(emu: Emulator) -> None:
    from cijobs import cmq_signing

    emu.faults.cmq.fail_rate = 1.0
    host = cmq_signing.host_of(emu.url)
    params = {**cmq_signing.common_params("SendMessage", SID, time.time(), 5), "queueName": "q", "msgBody": "m"}
    r = requests.post(emu.url + "/v2/index.php", data=cmq_signing.sign_params(params, SKEY, host), timeout=5)
    assert r.status_code == 200
    assert r.json()["code"] == 6000
    assert emu.cmq.messages == []


def test_decisions_are_deterministic_with_a_seed() -> None:
    def run(seed: int) -> list[object]:
        f = Faults(seed, fail_rate=0.3, reset_rate=0.2)
        return [f.decide("ci").kind for _ in range(50)]

    assert run(1) == run(1)
    assert run(1) != run(2)
    kinds = run(1)
    assert {"fail", "reset", None} <= set(kinds)


def test_fault_config_validation() -> None:
    f = Faults(1)
    with pytest.raises(FaultConfigError):
        f.update({"fail_rate": 2})
    with pytest.raises(FaultConfigError):
        f.update({"nonsense": 1})
    with pytest.raises(FaultConfigError):
        f.update({"fail_rate": 0.5}, side="kafka")
    f.update({"fail_rate": 0.5}, side="cos")
    assert f.effective("cos")["fail_rate"] == 0.5
    assert f.effective("ci")["fail_rate"] == 0.0


# -- scripted faults: deterministic fault injection for the soak tests (moved from the review-fixes file) ---
def test_scripted_faults_hit_the_next_requests_of_their_side_in_order():
    faults = Faults(seed=1)
    faults.inject_next("cmq", "fail", "reset")
    assert faults.decide("ci").kind is None  # other sides are untouched
    assert [faults.decide("cmq").kind for _ in range(3)] == ["fail", "reset", None]
    assert faults.injected == {"cmq.fail": 1, "cmq.reset": 1}
    faults.inject_next("cos", "slowdown")
    faults.reset()
    assert faults.decide("cos").kind is None
    with pytest.raises(FaultConfigError):
        faults.inject_next("cos", "explode")
    with pytest.raises(FaultConfigError):
        faults.inject_next("nowhere", "fail")
