"""A raw-socket HTTP server on 127.0.0.1 for hostile-server tests: each connection runs a script that reads
requests and writes whatever bytes it likes (slowly, wrongly, forever)."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Optional


class Conn:
    """One accepted connection: read requests, send bytes; every send fails quietly once the client left."""

    def __init__(self, sock: socket.socket, server: RawServer) -> None:
        self.sock = sock
        self.server = server
        self.buf = b""
        sock.settimeout(5)

    def request(self) -> Optional[bytes]:
        """The next request's head + body (Content-Length only), or None when the client closed."""
        while b"\r\n\r\n" not in self.buf:
            data = self._recv()
            if data is None:
                return None
            self.buf += data
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(rest) < length:
            data = self._recv()
            if data is None:
                return None
            rest += data
        self.buf = rest[length:]
        with self.server.lock:
            self.server.requests.append(head)
        return head + b"\r\n\r\n" + rest[:length]

    def _recv(self) -> Optional[bytes]:
        """The next bytes from the client, or None when it closed or the socket failed."""
        try:
            data = self.sock.recv(65536)
        except OSError:
            return None
        return data or None

    def send(self, data: bytes) -> bool:
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def dribble(self, data: bytes, every_s: float, limit_s: float = 10.0) -> None:
        """Send ``data`` one byte at a time, ``every_s`` apart, until done, the client left or ``limit_s``."""
        end = time.monotonic() + limit_s
        for i in range(len(data)):
            if time.monotonic() > end or not self.send(data[i:i + 1]):
                return
            time.sleep(every_s)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


Script = Callable[[Conn], None]


class RawServer:
    def __init__(self, script: Script, tls: Optional[ssl.SSLContext] = None) -> None:
        self.script = script
        self.tls = tls
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self.requests: list[bytes] = []
        self.accepted = 0
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            t = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, sock: socket.socket) -> None:
        if self.tls is not None:
            try:
                sock = self.tls.wrap_socket(sock, server_side=True)
            except (OSError, ssl.SSLError):
                sock.close()
                return
        conn = Conn(sock, self)
        try:
            self.script(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
        self.thread.join(2)

    def __enter__(self) -> RawServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def response(body: bytes = b"", status: str = "200 OK", headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
