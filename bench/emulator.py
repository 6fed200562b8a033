"""Emulator round-trip: sequential keep-alive signed CI queries, as shipped (TCP_NODELAY on every accepted
socket, headers + body in one write) against a baseline in the same run that behaves like a stock
``http.server`` (Nagle on, headers and body written separately).

    .venv/bin/python bench/emulator.py [N]
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))

import requests

from cijobs import signing
from cijobs.credentials import Credentials
from cijobs_tools.emulator import Emulator
from cijobs_tools.emulator import server as emu_server

HOST = "examplebucket-1250000000.ci.ap-guangzhou.myqcloud.com"
IDS = ",".join(f"j{i:032x}" for i in range(10))


def measure(n: int) -> list[float]:
    with Emulator(secret_id="AKIDbench", secret_key="k", auto_jobs=True) as emu, requests.Session() as s:
        auth = signing.CosSigner(Credentials("AKIDbench", "k"), "x-ci-security-token")
        url = f"{emu.url}/jobs/{IDS}"
        s.get(url, headers={"Host": HOST}, auth=auth)
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            r = s.get(url, headers={"Host": HOST}, auth=auth)
            out.append(time.perf_counter() - t0)
            assert r.status_code == 200
        return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    fast = measure(n)
    original = emu_server.EmulatorHTTPServer.get_request

    def nagle(self: Any) -> Any:
        sock, addr = original(self)
        sock.setsockopt(emu_server.socket.IPPROTO_TCP, emu_server.socket.TCP_NODELAY, 0)
        return sock, addr

    emu_server.EmulatorHTTPServer.get_request = nagle  # type: ignore[method-assign]
    emu_server.RequestHandler.single_write = False
    try:
        slow = measure(max(20, n // 10))
    finally:
        emu_server.EmulatorHTTPServer.get_request = original  # type: ignore[method-assign]
        emu_server.RequestHandler.single_write = True
    f50, s50 = statistics.median(fast) * 1000, statistics.median(slow) * 1000
    f99 = sorted(fast)[int(len(fast) * 0.99) - 1] * 1000
    print(f"emulator GET /jobs/<10 ids> keep-alive, n={n}")
    print(f"  shipped              : median {f50:.2f} ms  p99 {f99:.2f} ms  ({1000 / f50:.0f} req/s sequential)")
    print(f"  baseline (stock-like): median {s50:.2f} ms")
    print(f"  ratio baseline/shipped: {s50 / f50:.1f}x")


if __name__ == "__main__":
    main()
