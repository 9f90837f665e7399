"""A fault-injecting HTTP proxy for driver tests: loopback, port 0, seeded, stdlib only.

Placed between a driver and its local server, it forwards each HTTP/1.1 request
to the upstream server (one upstream connection per request) and, at a
configurable rate, injects one of these faults instead:

* ``error``: answer 500 or 503 without forwarding, with the backend's own error
  body and headers (``error_body(status, method)``; see :func:`s3_error`,
  :func:`azure_error`, :func:`gcs_error` and :func:`oss_error`);
* ``reset_request``: read the head and a random part of the body (up to all of
  it), then reset the connection (RST): the upstream never sees the request;
* ``reset_response``: forward, relay a random part of the response (from
  ``cut_min`` up to ``cut_max`` bytes, head included), then reset: the upstream
  *did* the request;
* ``stall``: wait ``stall_seconds`` before forwarding.

The fault of each request is drawn from one ``random.Random(seed)`` in arrival
order: with one client thread a run is exactly reproducible; with parallel
requests the sequence of draws is, but which request meets which draw depends on
scheduling.

``Expect: 100-continue`` is answered by the proxy itself (and not forwarded), so
clients that wait for it (botocore) do not stall. ``Location`` headers naming the
upstream are rewritten to the proxy (GCS resumable session URIs). Counts are in
``stats`` (``requests`` seen with faults on, one entry per fault kind, ``quiet``
for requests forwarded with faults off) and the faulted requests in ``events``;
``enabled`` switches faults off for set-up and checks; ``select`` and ``limit``
aim faults at chosen requests (say, exactly one lost answer to a commit). ``refuse`` maps
path prefixes to a status the proxy answers itself for every request below them, whether
faults are on or not (a server without an endpoint: ``{"/batch/": 501}``); counted in
``stats["refused"]``. Loopback only; every connection and thread ends with ``stop()``.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import json
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO
from urllib.parse import urlsplit

#: ``(status, method) -> (body, content type, extra headers)``: a backend's own error answer.
ErrorBody = Callable[[int, str], tuple[bytes, str, dict[str, str]]]

MODES = ("error", "reset_request", "reset_response", "stall")

_REASONS = {
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}


def plain_error(status: int, method: str) -> tuple[bytes, str, dict[str, str]]:
    """A text body: for backends whose clients only look at the status."""
    return b"injected fault", "text/plain", {}


def _s3_style_body(code: str, message: str) -> bytes:
    """The XML error document of S3, which OSS copies."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        "<RequestId>FAULTPROXY</RequestId><HostId>faultproxy</HostId></Error>"
    ).encode()


def s3_error(status: int, method: str) -> tuple[bytes, str, dict[str, str]]:
    """S3's XML error: ``SlowDown`` for 503, ``InternalError`` for 500."""
    code, message = (
        ("SlowDown", "Please reduce your request rate.")
        if status == 503
        else ("InternalError", "We encountered an internal error. Please try again.")
    )
    return _s3_style_body(code, message), "application/xml", {"x-amz-request-id": "FAULTPROXY"}


def azure_error(status: int, method: str) -> tuple[bytes, str, dict[str, str]]:
    """Azure Storage's XML error with ``x-ms-error-code``: ``ServerBusy`` (503) or ``InternalError`` (500)."""
    code, message = (
        ("ServerBusy", "The server is currently unable to receive requests. Please retry your request.")
        if status == 503
        else ("InternalError", "The server encountered an internal error. Please retry the request.")
    )
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f"<Error><Code>{code}</Code><Message>{message}\nRequestId:faultproxy\nTime:2024-01-01T00:00:00Z"
        "</Message></Error>"
    ).encode()
    return body, "application/xml", {"x-ms-error-code": code, "x-ms-request-id": "faultproxy"}


def gcs_error(status: int, method: str) -> tuple[bytes, str, dict[str, str]]:
    """The GCS JSON API error: ``backendError`` (503) or ``internalError`` (500)."""
    reason = "backendError" if status == 503 else "internalError"
    message = "Backend Error" if status == 503 else "Internal Error"
    body = json.dumps(
        {
            "error": {
                "code": status,
                "message": message,
                "errors": [{"message": message, "domain": "global", "reason": reason}],
            }
        }
    ).encode()
    return body, "application/json; charset=UTF-8", {}


def oss_error(status: int, method: str) -> tuple[bytes, str, dict[str, str]]:
    """OSS's XML error (``ServiceUnavailable`` / ``InternalError``); for HEAD also in ``x-oss-err``, as OSS does."""
    code, message = (
        ("ServiceUnavailable", "Please reduce your request rate.")
        if status == 503
        else ("InternalError", "We encountered an internal error. Please try again.")
    )
    body = _s3_style_body(code, message)
    headers = {"x-oss-request-id": "FAULTPROXY"}
    if method == "HEAD":
        headers["x-oss-err"] = base64.b64encode(body).decode("ascii")
    return body, "application/xml", headers


@dataclass
class FaultProxy:
    """See the module docstring. ``rate`` is the fraction of requests that get a fault."""

    upstream: str
    rate: float = 0.05
    seed: int = 0
    modes: tuple[str, ...] = MODES
    error_body: ErrorBody = plain_error
    stall_seconds: float = 0.3
    #: A ``reset_response`` relays at most this many bytes before the reset.
    cut_max: int = 1024 * 1024
    #: ... and at least this many (head included): above a head's size, every cut is mid-body.
    cut_min: int = 0
    enabled: bool = True
    #: Only requests whose request line (``"PUT /path?query HTTP/1.1"``) it accepts may get a fault.
    select: Callable[[str], bool] | None = None
    #: Inject at most this many faults (None: no limit).
    limit: int | None = None
    #: ``path prefix -> status``: always answered by the proxy with that status and a plain body.
    refuse: dict[str, int] = field(default_factory=dict)
    stats: Counter[str] = field(default_factory=Counter)
    #: ``(mode, request line)`` of the most recent faulted requests.
    events: collections.deque[tuple[str, str]] = field(default_factory=lambda: collections.deque(maxlen=10_000))

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
        """Start serving on a thread; returns the proxy."""
        thread = threading.Thread(target=self._accept_loop, name="faultproxy", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        """End every connection and thread of the proxy."""
        self._stop.set()
        self._listener.close()
        with self._lock:
            for sock in list(self._sockets):
                # shutdown() wakes a thread blocked reading the socket; close() alone does not.
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                _close(sock)
        for thread in list(self._threads):
            thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset_stats(self) -> None:
        """Zero the counters and forget the events (the random sequence goes on)."""
        with self._lock:
            self.stats.clear()
            self.events.clear()

    @property
    def faults(self) -> int:
        """Faults injected since the last :meth:`reset_stats`."""
        with self._lock:
            return sum(count for mode, count in self.stats.items() if mode in MODES)

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

    def _choose(self, request_line: bytes) -> str | None:
        with self._lock:
            if not self.enabled:
                self.stats["quiet"] += 1  # forwarded while faults were off
                return None
            self.stats["requests"] += 1
            line = request_line.decode("latin-1")
            if self.select is not None and not self.select(line):
                return None
            if self.limit is not None and sum(self.stats[mode] for mode in MODES) >= self.limit:
                return None
            if self._rng.random() >= self.rate:
                return None
            mode = self._rng.choice(self.modes)
            self.stats[mode] += 1
            self.events.append((mode, line))
            return mode

    def _draw(self, upper: int) -> int:
        with self._lock:
            return self._rng.randrange(0, max(1, upper))

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

    def _handle(self, client: socket.socket, reader: BinaryIO, head: bytes) -> bool:
        """Serve one request; return False when the client connection is finished."""
        request_line, headers = _parse_head(head)
        method = request_line.split(b" ", 1)[0].decode("latin-1").upper()
        refused = self._refused(request_line)
        mode = None if refused else self._choose(request_line)
        fields = {k.lower(): v for k, v in headers}
        if fields.get(b"expect", b"").lower() == b"100-continue":
            # Answer the interim response here: the upstream gets the body with the head.
            client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            headers = [(k, v) for k, v in headers if k.lower() != b"expect"]
        if mode == "reset_request":
            length = _content_length(fields)
            if length:
                reader.read(self._draw(length))
            _reset(client)
            return False
        body = _read_body(reader, fields)
        if refused:
            self._answer(client, method, refused, *plain_error(refused, method))
            return False
        if mode == "error":
            status = 500 if self._draw(2) == 0 else 503
            self._answer(client, method, status, *self.error_body(status, method))
            return False
        if mode == "stall":
            time.sleep(self.stall_seconds)
        cut = self.cut_min + self._draw(self.cut_max - self.cut_min) if mode == "reset_response" else None
        return self._forward(client, request_line, headers, body, cut)

    def _refused(self, request_line: bytes) -> int | None:
        """The status of the ``refuse`` rule matching the request's path, if any (counted)."""
        parts = request_line.decode("latin-1").split(" ")
        target = urlsplit(parts[1]).path if len(parts) > 1 else ""
        for prefix, status in self.refuse.items():
            if target.startswith(prefix):
                with self._lock:
                    self.stats["refused"] += 1
                    self.events.append(("refused", request_line.decode("latin-1")))
                return status
        return None

    @staticmethod
    def _answer(
        client: socket.socket, method: str, status: int, payload: bytes, content_type: str, extra: dict[str, str]
    ) -> None:
        """Send a whole error answer of the proxy's own and end the connection."""
        lines = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(payload)}",
            "Connection: close",
            *(f"{key}: {value}" for key, value in extra.items()),
        ]
        client.sendall("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + (b"" if method == "HEAD" else payload))

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
        raw = request_line + b"\r\n" + b"".join(k + b": " + v + b"\r\n" for k, v in forwarded) + b"\r\n"
        with socket.create_connection(self._upstream_addr, timeout=120) as upstream:
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            upstream.sendall(raw)
            if body:
                upstream.sendall(body)
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


def _read_head(reader: BinaryIO) -> bytes | None:
    lines: list[bytes] = []
    while True:
        line = reader.readline(65537)
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


def _content_length(fields: dict[bytes, bytes]) -> int:
    if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
        return 0
    return int(fields.get(b"content-length", b"0") or 0)


def _read_body(reader: BinaryIO, fields: dict[bytes, bytes]) -> bytes:
    if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
        # Pass chunked bodies through as they are, framing included.
        out = bytearray()
        while True:
            size_line = reader.readline()
            out += size_line
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while True:
                    trailer = reader.readline()
                    out += trailer
                    if trailer in (b"\r\n", b"\n", b""):
                        return bytes(out)
            out += reader.read(size + 2)
    length = _content_length(fields)
    return reader.read(length) if length else b""


def _reset(sock: socket.socket) -> None:
    """Close with RST rather than FIN, as a dropped connection looks to a client."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    _close(sock)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()
