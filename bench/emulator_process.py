"""Start ``python -m cijobs emulator`` in its own process for a benchmark (shared by the bench scripts)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_emulator(port: int, secret_id: str, secret_key: str, *extra: str) -> subprocess.Popen[bytes]:
    """The emulator on 127.0.0.1:``port`` with these test credentials; returns once it accepts connections."""
    cmd = [sys.executable, "-m", "cijobs_tools", "emulator", "--port", str(port),
           "--secret-id", secret_id, "--secret-key", secret_key, *extra]
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "lib"))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"emulator exited with {proc.returncode}: {' '.join(cmd)}") from None
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("emulator did not start within 15 s")
