"""The ``/_emu`` control API, in-process and against ``python -m cijobs_tools emulator --port 0`` in another process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import defusedxml.ElementTree as DET
import pytest
import requests

from cijobs import signing
from cijobs.credentials import Credentials
from cijobs_tools.emulator import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, Emulator

LIB = Path(__file__).resolve().parent.parent / "lib"
CI_HOST = "examplebucket-1250000000.ci.ap-guangzhou.myqcloud.com"
COS_HOST = "examplebucket-1250000000.cos.ap-guangzhou.myqcloud.com"
JOB = "j" + "2" * 32


def test_control_api_in_process() -> None:
    with Emulator(seed=1) as emu:
        base = emu.url + "/_emu"
        assert requests.get(base + "/health", timeout=5).json() == {"ok": True}
        r = requests.post(base + "/ci/jobs", json={"jobs": [{"job_id": JOB, "tag": "Snapshot", "state": "Running"}]},
                          timeout=5)
        assert r.status_code == 200, r.text
        assert emu.ci.jobs[JOB].tag == "Snapshot"
        assert requests.post(base + "/ci/advance", json={}, timeout=5).json() == {"moved": 1}
        assert emu.ci.jobs[JOB].state == "Success"
        bad = requests.post(base + "/ci/state", json={"job_id": JOB, "state": "Weird"}, timeout=5)
        assert bad.status_code == 400
        assert "Weird" in bad.json()["error"]
        r = requests.post(base + "/faults/cos", json={"fail_rate": 0.25}, timeout=5)
        assert r.json()["cos"]["fail_rate"] == 0.25
        assert emu.faults.effective("cos")["fail_rate"] == 0.25
        assert requests.post(base + "/faults", json={"fail_rate": 3}, timeout=5).status_code == 400
        assert requests.get(base + "/nope", timeout=5).status_code == 404
        emu.cos.put("examplebucket-1250000000", "k.json", b"{}", "application/json")
        objs = requests.get(base + "/cos/objects", params={"prefix": "k"}, timeout=5).json()["objects"]
        assert [(o["key"], o["puts"]) for o in objs] == [("k.json", 1)]
        body = requests.get(base + "/cos/object", params={"bucket": "examplebucket-1250000000", "key": "k.json"},
                            timeout=5)
        assert body.content == b"{}"
        assert requests.post(base + "/reset", timeout=5).json() == {"ok": True}
        assert emu.ci.jobs == {}
        assert emu.cos.objects == {}


@pytest.fixture
def proc() -> Iterator[tuple[subprocess.Popen[str], str]]:
    env = dict(os.environ, PYTHONPATH=str(LIB))
    p = subprocess.Popen(
        [sys.executable, "-m", "cijobs_tools", "emulator", "--port", "0", "--seed", "3", "--auto-jobs"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    assert p.stdout is not None
    first = p.stdout.readline().strip()
    assert first.startswith("emulator: listening on http://127.0.0.1:"), first
    url = first.rsplit(" ", 1)[1]
    try:
        yield p, url
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


def test_cli_process_and_control_api(proc: tuple[subprocess.Popen[str], str]) -> None:
    p, url = proc
    creds = Credentials(DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY)
    base = url + "/_emu"
    assert requests.post(base + "/ci/jobs", json={"job_id": JOB, "state": "Running", "finish_after": 1},
                         timeout=5).status_code == 200
    states = []
    for _ in range(2):
        r = requests.get(f"{url}/jobs/{JOB},jnone{'0' * 28}", headers={"Host": CI_HOST},
                         auth=signing.CosSigner(creds, "x-ci-security-token"), timeout=5)
        assert r.status_code == 200, r.text
        root = DET.fromstring(r.content)
        states.append(root.findtext("JobsDetail/State"))
        assert root.findtext("NonExistJobIds") == f"jnone{'0' * 28}"
    assert states == ["Running", "Success"]
    put = requests.put(f"{url}/out/{JOB}.json", data=b'{"a": 1}', headers={"Host": COS_HOST},
                       auth=signing.CosSigner(creds), timeout=5)
    assert put.status_code == 200
    objs = requests.get(base + "/cos/objects", timeout=5).json()["objects"]
    assert [o["key"] for o in objs] == [f"out/{JOB}.json"]
    stats = requests.get(base + "/stats", timeout=5).json()
    assert stats["ci.requests"] == 2
    assert stats["cos.status.200"] == 1
    reqs = requests.get(base + "/ci/requests", params={"limit": "1"}, timeout=5).json()
    assert reqs["total"] == 2
    assert reqs["requests"][0]["ids"] == [JOB, f"jnone{'0' * 28}"]
    p.send_signal(signal.SIGINT)
    assert p.wait(10) == 0
    assert p.stdout is not None
    out = p.stdout.read()
    assert f"export CI_ENDPOINT={url}" in out
    assert "export TENCENTCLOUD_SECRETID=AKIDcijobsEMULATOR" in out
    t0 = time.time()
    with pytest.raises(requests.ConnectionError):
        requests.get(base + "/health", timeout=2)
    assert time.time() - t0 < 3
