"""A fault-injecting HTTP proxy for tests: loopback, port 0, seeded.

Placed between a driver and its local server, it forwards each HTTP/1.1 request
to the upstream server (one upstream connection per request) and, at a
configurable rate, injects one of these faults instead:

* ``error``: answer 500 or 503 without forwarding, with the backend's own error
  body (``error_body(status)`` gives body and content type: S3 ``SlowDown``,
  Azure ``ServerBusy``, ...);
* ``reset_request``: read part of the request, then reset the connection (RST);
* ``reset_response``: forward, relay a random part of the response, then reset;
* ``stall``: wait ``stall_seconds`` before forwarding.

``Location`` headers naming the upstream are rewritten to the proxy (GCS resumable
session URIs). Faults are counted in ``stats``; ``enabled`` switches them off for
set-up and checks. Loopback only; every connection and thread ends with ``stop()``.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

ErrorBody = Callable[[int], tuple[bytes, str]]

MODES = ("error", "reset_request", "reset_response", "stall")


def _plain_error(status: int) -> tuple[bytes, str]:
    return b"injected fault", "text/plain"


@dataclass
class FaultProxy:
    """See the module docstring. ``rate`` is the fraction of requests that get a fault."""

    upstream: str
    rate: float = 0.05
    seed: int = 0
    modes: tuple[str, ...] = MODES
    error_body: ErrorBody = _plain_error
    stall_seconds: float = 0.3
    enabled: bool = True
    stats: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        parts = urlsplit(self.upstream)
        self._upstream_addr = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._upstream_netloc = parts.netloc
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: set[socket.socket] = set()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FaultProxy:
        thread = threading.Thread(target=self._accept_loop, name="faultproxy", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()
        with self._lock:
            for sock in list(self._sockets):
                _close(sock)
        for thread in list(self._threads):
            thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets.add(client)
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            thread.start()
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]

    # ------------------------------------------------------------------ requests

    def _choose(self) -> str | None:
        with self._lock:
            self.stats["requests"] += 1
            if not self.enabled or self._rng.random() >= self.rate:
                return None
            mode = self._rng.choice(self.modes)
            self.stats[mode] += 1
            return mode

    def _serve(self, client: socket.socket) -> None:
        reader = client.makefile("rb")
        try:
            while not self._stop.is_set():
                head = _read_head(reader)
                if head is None:
                    return
                if not self._handle(client, reader, head):
                    return
        except OSError:
            return
        finally:
            reader.close()
            with self._lock:
                self._sockets.discard(client)
            _close(client)

    def _handle(self, client: socket.socket, reader: object, head: bytes) -> bool:
        """Serve one request; return False when the client connection is finished."""
        request_line, headers = _parse_head(head)
        body = _read_body(reader, headers)
        mode = self._choose()
        if mode == "reset_request":
            _reset(client)
            return False
        if mode == "error":
            status = self._rng.choice((500, 503))
            payload, content_type = self.error_body(status)
            reason = "Internal Server Error" if status == 500 else "Service Unavailable"
            client.sendall(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            return False
        if mode == "stall":
            time.sleep(self.stall_seconds)
        cut = None
        if mode == "reset_response":
            cut = self._rng.randrange(0, 64 * 1024)
        return self._forward(client, request_line, headers, body, cut)

    def _forward(
        self,
        client: socket.socket,
        request_line: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        cut: int | None,
    ) -> bool:
        forwarded = [(k, v) for k, v in headers if k.lower() not in (b"connection", b"keep-alive")]
        forwarded.append((b"Connection", b"close"))
        raw = request_line + b"\r\n" + b"".join(k + b": " + v + b"\r\n" for k, v in forwarded) + b"\r\n" + body
        with socket.create_connection(self._upstream_addr, timeout=120) as upstream:
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            upstream.sendall(raw)
            upstream_reader = upstream.makefile("rb")
            response_head = _read_head(upstream_reader)
            if response_head is None:
                _reset(client)
                return False
            response_head = self._rewrite_location(response_head)
            keep_alive = b"connection: close" not in response_head.lower()
            sent = 0
            chunk = response_head
            while chunk:
                if cut is not None and sent + len(chunk) > cut:
                    client.sendall(chunk[: cut - sent])
                    _reset(client)
                    return False
                client.sendall(chunk)
                sent += len(chunk)
                chunk = upstream_reader.read1(256 * 1024)
            upstream_reader.close()
        # The upstream closed after its response (we asked it to); the response was
        # framed by its own headers, so the client connection can carry on.
        return keep_alive and not self._stop.is_set()

    def _rewrite_location(self, head: bytes) -> bytes:
        lines = head.split(b"\r\n")
        lower = head.lower()
        framed = b"content-length:" in lower or b"transfer-encoding: chunked" in lower
        for i, line in enumerate(lines):
            if line.lower().startswith(b"location:"):
                lines[i] = line.replace(self._upstream_netloc.encode(), f"127.0.0.1:{self.port}".encode())
            if line.lower().startswith(b"connection:") and framed:
                # We asked the upstream to close; the client may keep its connection
                # when the response carries its own framing.
                lines[i] = b"Connection: keep-alive"
        return b"\r\n".join(lines)


def _read_head(reader: object) -> bytes | None:
    lines = []
    while True:
        line = reader.readline(65537)  # type: ignore[attr-defined]
        if not line:
            return None
        if line in (b"\r\n", b"\n"):
            if not lines:
                continue
            return b"".join(lines) + b"\r\n"
        lines.append(line)


def _parse_head(head: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    lines = head.rstrip(b"\r\n").split(b"\r\n")
    headers = []
    for line in lines[1:]:
        key, _, value = line.partition(b":")
        headers.append((key.strip(), value.strip()))
    return lines[0], headers


def _read_body(reader: object, headers: list[tuple[bytes, bytes]]) -> bytes:
    fields = {k.lower(): v for k, v in headers}
    if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
        # Pass chunked bodies through as they are, framing included.
        out = bytearray()
        while True:
            size_line = reader.readline()  # type: ignore[attr-defined]
            out += size_line
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while True:
                    trailer = reader.readline()  # type: ignore[attr-defined]
                    out += trailer
                    if trailer in (b"\r\n", b"\n", b""):
                        return bytes(out)
            out += reader.read(size + 2)  # type: ignore[attr-defined]
    length = int(fields.get(b"content-length", b"0") or 0)
    return reader.read(length) if length else b""  # type: ignore[attr-defined]


def _reset(sock: socket.socket) -> None:
    """Close with RST rather than FIN, as a dropped connection looks to a client."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    _close(sock)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()
