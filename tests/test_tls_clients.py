"""A refused TLS certificate has its own error code in every client (``CertificateVerifyFailed``, not a
bare ``ConnectionError``) and is a ``configuration`` failure: not retried now (one handshake), but retryable
(the jobs are kept pending until the endpoint or its certificate is fixed, never dropped).

The server is a TLS listener on 127.0.0.1 with the test-only self-signed certificate
(``tests/data/tls``); the clients verify against certifi's bundle, as in production.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator

import pytest

from cijobs.ci_client import JobClient
from cijobs.cmq_client import CmqError, CmqTarget, DataflowCmqClient
from cijobs.cos import CosClient, CosError
from cijobs.credentials import Credentials
from cijobs.settings import Settings
from fakes import Sleeps

TLS = os.path.join(os.path.dirname(__file__), "data", "tls")
CREDS = Credentials("AKIDtls", "tls-secret-key")
JOB = "j" + "0" * 31 + "1"


class TLSServer:
    def __init__(self, url: str, handshakes: list[str]) -> None:
        self.url, self.handshakes = url, handshakes

    def saw_only_refused_handshakes(self) -> bool:
        deadline = time.monotonic() + 2
        while not self.handshakes and time.monotonic() < deadline:
            time.sleep(0.01)
        return bool(self.handshakes) and set(self.handshakes) == {"refused by the client"}


@pytest.fixture
def tls() -> Iterator[TLSServer]:
    """A listener on 127.0.0.1 that completes TLS handshakes when the client lets it (it records each)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(TLS, "cert.pem"), os.path.join(TLS, "key.pem"))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stop = threading.Event()
    handshakes: list[str] = []

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(2)
            try:
                with ctx.wrap_socket(conn, server_side=True):
                    handshakes.append("ok")
            except (OSError, ssl.SSLError):
                handshakes.append("refused by the client")

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield TLSServer(f"https://127.0.0.1:{listener.getsockname()[1]}", handshakes)
    stop.set()
    thread.join(2)
    listener.close()


def test_ci_client(tls: TLSServer) -> None:
    sleeps = Sleeps()
    settings = Settings(ci_bucket="examplebucket-1250000000", ci_region="ap-guangzhou", ci_endpoint=tls.url)
    result = JobClient(settings, credentials=lambda: CREDS, sleep=sleeps).query([JOB])
    (failure,) = result.failed
    assert failure.error.code == "CertificateVerifyFailed" and failure.retryable
    assert "certificate refused" in failure.error.message and sleeps == []
    assert tls.saw_only_refused_handshakes()


def test_cos_client(tls: TLSServer) -> None:
    sleeps = Sleeps()
    cos = CosClient(Settings(cos_endpoint=tls.url), lambda: CREDS, sleep=sleeps)
    with pytest.raises(CosError) as info:
        cos.put_object("examplebucket-1250000000", "ap-guangzhou", "k.json", b"{}", "application/json")
    assert info.value.code == "CertificateVerifyFailed" and info.value.retryable and sleeps == []
    assert info.value.failure_class == "configuration" and "127.0.0.1:" in info.value.message
    assert tls.saw_only_refused_handshakes()


def test_cmq_client(tls: TLSServer) -> None:
    sleeps = Sleeps()
    cmq = DataflowCmqClient(Settings(cmq_endpoint=tls.url), lambda: CREDS, sleep=sleeps)
    with pytest.raises(CmqError) as info:
        cmq.send(CmqTarget("queue", "ap-guangzhou", "results"), ["{}"])
    assert info.value.code == "CertificateVerifyFailed" and info.value.retryable and sleeps == []
    assert info.value.failure_class == "configuration" and "127.0.0.1:" in info.value.message
    assert tls.saw_only_refused_handshakes()
