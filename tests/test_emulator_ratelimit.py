"""The emulator's per-account request caps (``--max-rps`` CI side, ``--cos-max-rps`` COS side), seen from
a plain signed ``requests`` client on 127.0.0.1."""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import requests

from cijobs import signing
from cijobs.credentials import Credentials
from cijobs.ratelimit import AdaptiveRateLimiter, is_throttle, retry_after_seconds
from cijobs_tools.cli import emulator as emulator_cli
from cijobs_tools.emulator import Emulator

SID, SKEY = "AKIDtest", "test-secret-key"
OTHER_SID, OTHER_SKEY = "AKIDother", "other-secret-key"
CREDS = Credentials(SID, SKEY)
CI_HOST = "examplebucket-1250000000.ci.ap-guangzhou.myqcloud.com"
COS_HOST = "examplebucket-1250000000.cos.ap-guangzhou.myqcloud.com"
JOB = "j" + "1" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def s() -> Iterator[requests.Session]:
    with requests.Session() as sess:
        yield sess


def ci_get(emu: Emulator, s: requests.Session, creds: Credentials = CREDS) -> requests.Response:
    return s.get(f"{emu.url}/jobs/{JOB}", headers={"Host": CI_HOST},
                 auth=signing.CosSigner(creds, "x-ci-security-token"), timeout=5)


def cos_put(emu: Emulator, s: requests.Session, key: str, body: bytes = b"1") -> requests.Response:
    return s.put(f"{emu.url}/{key}", data=body, headers={"Host": COS_HOST},
                 auth=signing.CosSigner(CREDS, "x-cos-security-token"), timeout=5)


def error_code(r: requests.Response) -> str:
    text = r.text
    return text.split("<Code>")[1].split("</Code>")[0]


def test_ci_cap_gives_a_burst_then_throttles_with_ci_error_xml(clock: Clock, s: requests.Session) -> None:
    with Emulator(secret_id=SID, secret_key=SKEY, seed=5, max_rps=20, throttle_clock=clock) as emu:
        emu.ci.add_job(JOB, state="Success")
        answers = [ci_get(emu, s) for _ in range(10)]
        statuses = [r.status_code for r in answers]
        assert statuses[:4] == [200] * 4  # burst: 200 ms of tokens at 20/s
        throttled = answers[4:]
        assert all(r.status_code in (429, 503) for r in throttled)
        for r in throttled:
            assert is_throttle(r.status_code, error_code(r))
            assert r.headers["x-ci-request-id"]
            assert "<Error>" in r.text
            assert {429: "RequestLimitExceeded", 503: "SlowDown"}[r.status_code] == error_code(r)
        assert emu.ci.jobs[JOB].queries == 4  # a throttled request is not processed
        clock.now += 0.11  # two tokens back (and a bit)
        again = [ci_get(emu, s).status_code for _ in range(3)]
        assert again[:2] == [200, 200]
        assert again[2] in (429, 503)
        stats = s.get(f"{emu.url}/_emu/stats", timeout=5).json()
        assert stats["ci.throttled"] == 7
        assert stats["ci.status.200"] == 6
        assert stats["limits"] == {"ci": 20.0, "cos": None}


def test_throttle_answers_are_mixed_evenly_and_seeded(clock: Clock, s: requests.Session) -> None:
    def run() -> list[tuple[int, str, bool]]:
        with Emulator(secret_id=SID, secret_key=SKEY, seed=11, max_rps=1, throttle_clock=clock) as emu:
            emu.ci.add_job(JOB, state="Success")
            out = []
            for _ in range(201):
                r = ci_get(emu, s)
                if r.status_code != 200:
                    out.append((r.status_code, error_code(r), "Retry-After" in r.headers))
            return out

    first = run()
    assert len(first) == 200
    assert run() == first  # same seed, same answers
    counts = Counter(first)
    assert set(counts) == {(503, "SlowDown", False), (503, "SlowDown", True),
                           (429, "RequestLimitExceeded", False), (429, "RequestLimitExceeded", True)}
    for n in counts.values():
        assert 30 <= n <= 70  # each of the four ~50 of 200


def test_retry_after_header_value(clock: Clock, s: requests.Session) -> None:
    with Emulator(secret_id=SID, secret_key=SKEY, seed=1, max_rps=1, throttle_clock=clock) as emu:
        emu.ci.add_job(JOB, state="Success")
        values = {r.headers.get("Retry-After") for r in (ci_get(emu, s) for _ in range(30)) if r.status_code != 200}
        assert values == {None, "1"}
        assert retry_after_seconds("1") == 1.0


def test_cap_is_per_secret_id(clock: Clock, s: requests.Session) -> None:
    with Emulator(secret_id=SID, secret_key=SKEY, seed=5, max_rps=10, throttle_clock=clock) as emu:
        emu.add_key(OTHER_SID, OTHER_SKEY)
        emu.ci.add_job(JOB, state="Success")
        assert [ci_get(emu, s).status_code for _ in range(2)] == [200, 200]
        assert ci_get(emu, s).status_code in (429, 503)
        # another account has its own bucket
        other = Credentials(OTHER_SID, OTHER_SKEY)
        assert [ci_get(emu, s, other).status_code for _ in range(2)] == [200, 200]
        assert ci_get(emu, s, other).status_code in (429, 503)


def test_cos_cap_is_separate_and_throttled_puts_store_nothing(clock: Clock, s: requests.Session) -> None:
    with Emulator(secret_id=SID, secret_key=SKEY, seed=2, cos_max_rps=10, throttle_clock=clock) as emu:
        emu.ci.add_job(JOB, state="Success")
        assert [cos_put(emu, s, f"k{i}").status_code for i in range(2)] == [200, 200]
        r = cos_put(emu, s, "k2")
        assert r.status_code in (429, 503)
        assert r.headers["x-cos-request-id"]
        assert ("examplebucket-1250000000", "k2") not in emu.cos.objects
        assert [ci_get(emu, s).status_code for _ in range(5)] == [200] * 5  # no CI cap
        stats = emu.snapshot_stats()
        assert stats["cos.throttled"] == 1
        assert "ci.throttled" not in stats


def test_throttle_answer_comes_after_the_usual_latency(s: requests.Session) -> None:
    with Emulator(secret_id=SID, secret_key=SKEY, seed=3, max_rps=1, latency_ms=60) as emu:
        emu.ci.add_job(JOB, state="Success")
        assert ci_get(emu, s).status_code == 200
        t0 = time.monotonic()
        r = ci_get(emu, s)
        assert r.status_code in (429, 503)
        assert time.monotonic() - t0 >= 0.055


def test_limits_control_route_and_reset(clock: Clock, s: requests.Session) -> None:
    with Emulator(secret_id=SID, secret_key=SKEY, seed=4, throttle_clock=clock) as emu:
        emu.ci.add_job(JOB, state="Success")
        assert s.get(f"{emu.url}/_emu/limits", timeout=5).json() == {"ci_max_rps": None, "cos_max_rps": None}
        r = s.post(f"{emu.url}/_emu/limits", data=json.dumps({"ci_max_rps": 5}), timeout=5)
        assert r.json() == {"ci_max_rps": 5.0, "cos_max_rps": None}
        assert [ci_get(emu, s).status_code for _ in range(2)][1] in (429, 503)  # burst of 1
        for bad in ({"ci_max_rps": 0}, {"ci_max_rps": "fast"}, {"cmq_max_rps": 3}, {"ci_max_rps": True}):
            assert s.post(f"{emu.url}/_emu/limits", data=json.dumps(bad), timeout=5).status_code == 400
        s.post(f"{emu.url}/_emu/reset", timeout=5)  # refills the buckets, clears the counts
        emu.ci.add_job(JOB, state="Success")
        assert ci_get(emu, s).status_code == 200
        assert emu.snapshot_stats().get("ci.throttled") is None
        s.post(f"{emu.url}/_emu/limits", data=json.dumps({"ci_max_rps": None}), timeout=5)
        assert [ci_get(emu, s).status_code for _ in range(5)] == [200] * 5


def test_cli_flags() -> None:
    parser = argparse.ArgumentParser()
    emulator_cli.add_arguments(parser)
    args = parser.parse_args(["--max-rps", "200", "--cos-max-rps", "50"])
    assert (args.max_rps, args.cos_max_rps) == (200.0, 50.0)
    assert parser.parse_args([]).max_rps is None
    for bad in ("0", "-1", "nan", "x"):
        with pytest.raises(SystemExit):
            parser.parse_args(["--max-rps", bad])


def test_adaptive_limiter_settles_under_the_emulator_cap(s: requests.Session) -> None:
    """End to end on the real clock: one client thread through the limiter against a 50/s cap."""
    with Emulator(secret_id=SID, secret_key=SKEY, seed=9, max_rps=50) as emu:
        emu.ci.add_job(JOB, state="Success")
        lim = AdaptiveRateLimiter(200.0)
        t0 = time.monotonic()
        results = []
        while time.monotonic() - t0 < 2.0:
            assert lim.acquire(5.0)
            r = ci_get(emu, s)
            if is_throttle(r.status_code, error_code(r) if r.status_code != 200 else None):
                lim.on_throttle(retry_after_seconds(r.headers.get("Retry-After")))
                results.append(False)
            else:
                assert r.status_code == 200
                lim.on_success()
                results.append(True)
        assert lim.throttled >= 1
        assert lim.rate < 200
        assert sum(results) <= 50 * 2 + 10 + 1  # the server's cap holds (+ its burst)
