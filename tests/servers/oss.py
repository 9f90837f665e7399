"""An in-memory Aliyun OSS protocol server for tests.

No OSS emulator exists, and moto silently misbehaves with ``oss2``, so the project keeps this one. It speaks the
subset of the OSS REST protocol that ``oss2`` (2.18/2.19) uses for object storage, over real HTTP/1.1 with
keep-alive, path-style addressing only (``/{bucket}/{url-encoded key}``), which is what ``oss2`` uses for an IP or
``localhost`` endpoint.

What it checks, like real OSS:

* V1 header signatures (``Authorization: OSS ak:sig``) including the sub-resource whitelist and the ``x-oss-*``
  headers, the ``Date`` clock skew (15 minutes), and V1 signed URLs (``OSSAccessKeyId``/``Expires``/``Signature``)
  including expiry. Anonymous requests are refused (the buckets are private).
* Content-MD5 on uploads and batch delete, part order/ETags and the part-size rule at CompleteMultipartUpload,
  ``x-oss-forbid-overwrite`` (409 FileAlreadyExists) on put, copy, multipart init and complete, read
  preconditions (If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since) and the copy-source ones.
* The OSS Range quirk: an invalid or unsatisfiable Range is ignored (200 with the whole object) unless the request
  sends ``x-oss-range-behavior: standard``, which gives RFC behaviour (clamped 206, or 416 InvalidRange).

Responses carry ``x-oss-request-id``, quoted upper-case MD5 ETags (``MD5(part MD5s)-N`` for multipart objects),
``x-oss-hash-crc64ecma`` (CRC-64/ECMA as OSS computes it) and OSS error XML; a failed HEAD carries the error in a
base64 ``x-oss-err`` header, as OSS does, so ``oss2`` can tell NoSuchKey from NoSuchBucket.

Objects are immutable buffers: a put replaces the object atomically under a lock, and a reader holding the old
object keeps seeing the old bytes. Request bodies are read outside the lock, into one preallocated buffer.

``OssServer.fault_hook`` (``callable(handler) -> bool``) runs before authentication for every request; when it
returns True it has answered (or dropped) the request itself. The handler offers ``oss_bucket``, ``oss_key``,
``oss_params``, ``read_body()``, ``drain_body()`` and ``send_oss_error()`` for it.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import collections
import email.utils
import hashlib
import hmac
import itertools
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qsl, quote, unquote, unquote_to_bytes
from xml.etree import ElementTree
from xml.sax.saxutils import escape as _xml_escape

__all__ = ["OssError", "OssRequestHandler", "OssServer", "crc64_combine", "crc64ecma"]

Buffer = bytes | bytearray | memoryview

MAX_PART_COUNT = 10_000
MAX_KEYS = 1000
MAX_OBJECT_SIZE = 5 * 1024**3
MAX_CLOCK_SKEW = 15 * 60
_READ_CHUNK = 1 << 20
OWNER_ID = "1234567890123456"

# Query keys that take part in the V1 signature (the "sub-resources"), as OSS and oss2 define them.
SUBRESOURCES = frozenset(
    """acl append asyncFetch bucketInfo callback callback-var cname comp continuation-token cors delete encryption
    endTime group inventory inventoryId lifecycle link live location logging metaQuery objectInfo objectMeta
    partNumber policy position qos qosInfo referer regionList replication replicationLocation replicationProgress
    requestPayment resourceGroup response-cache-control response-content-disposition response-content-encoding
    response-content-language response-content-type response-expires restore security-token sequential startTime
    stat status style styleName symlink tagging transferAcceleration uploadId uploads versionId versioning versions
    vod website worm wormExtend wormId x-oss-ac-forward-allow x-oss-ac-source-ip x-oss-ac-subnet-mask
    x-oss-ac-vpc-id x-oss-async-process x-oss-process x-oss-request-payer x-oss-traffic-limit
    x-oss-write-get-object-response""".split()  # noqa: SIM905
)

# Sub-resources this server implements; any other one is answered with NotImplemented.
_OBJECT_SUBRESOURCES = frozenset(
    {"uploadId", "uploads", "partNumber", "objectMeta", "security-token", "versionId"}
    | {k for k in SUBRESOURCES if k.startswith("response-")}
)
_BUCKET_SUBRESOURCES = frozenset(
    {"uploads", "delete", "bucketInfo", "location", "continuation-token", "security-token"}
)

# Standard headers that are stored with an object and returned on GET/HEAD.
_STORED_HEADERS = ("Cache-Control", "Content-Disposition", "Content-Encoding", "Content-Language", "Expires")
_RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}


# --------------------------------------------------------------------------------------------------------------
# CRC-64/ECMA (the variant OSS calls crc64ecma, also known as CRC-64/XZ): polynomial 0x42F0E1EBA9EA3693, reflected,
# initial value and final XOR all ones. crc64ecma(b"123456789") == 0x995DC9BBDF1939FA.

_CRC64_POLY_FULL = 0x142F0E1EBA9EA3693
_CRC64_POLY_REFLECTED = 0xC96C5795D7870F42
_MASK64 = 0xFFFFFFFFFFFFFFFF


def _build_crc64_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _CRC64_POLY_REFLECTED if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC64_TABLE = _build_crc64_table()


def _crc64_pure(data: Buffer, crc: int = 0) -> int:
    table = _CRC64_TABLE
    value = crc ^ _MASK64
    for byte in memoryview(data).cast("B"):
        value = table[(value ^ byte) & 0xFF] ^ (value >> 8)
    return value ^ _MASK64


_crc64_fast: Callable[[Buffer, int], int] | None
try:  # crcmod's C extension does ~350 MB/s; the pure-Python loop above ~10 MB/s.
    import crcmod

    _crc64_fast = crcmod.mkCrcFun(_CRC64_POLY_FULL, initCrc=0, rev=True, xorOut=_MASK64)
except ImportError:  # pragma: no cover - crcmod is a dependency of oss2
    _crc64_fast = None


def crc64ecma(data: Buffer, crc: int = 0) -> int:
    """CRC-64/ECMA of ``data``; pass a previous result as ``crc`` to continue a running checksum."""
    if _crc64_fast is not None:
        return _crc64_fast(data, crc)
    return _crc64_pure(data, crc)


def _gf2_mulmod(a: int, b: int) -> int:
    """Multiply two polynomials modulo the CRC polynomial, in the reflected bit order (bit 63 is x^0)."""
    product = 0
    bit = 1 << 63
    while bit:
        if a & bit:
            product ^= b
        b = (b >> 1) ^ _CRC64_POLY_REFLECTED if b & 1 else b >> 1
        bit >>= 1
    return product


def _build_x2n_table(count: int) -> list[int]:
    """Entry k is x^(2^k) modulo the polynomial."""
    table = [1 << 62]  # x^1
    for _ in range(count - 1):
        table.append(_gf2_mulmod(table[-1], table[-1]))
    return table


_X2N = _build_x2n_table(72)


def crc64_combine(crc1: int, crc2: int, len2: int) -> int:
    """The CRC of A+B from crc(A), crc(B) and len(B), without touching the data (zlib's method, for CRC-64)."""
    if len2 <= 0:
        return crc1
    op = 1 << 63  # x^0
    k = 3  # len2 bytes are 8 * len2 bits: multiply by x^(len2 * 2^3)
    n = len2
    while n:
        if n & 1:
            op = _gf2_mulmod(_X2N[k], op)
        n >>= 1
        k += 1
    return _gf2_mulmod(op, crc1) ^ crc2


# --------------------------------------------------------------------------------------------------------------
# Small helpers


def _iso8601(t: float) -> str:
    # Real OSS always sends ".000Z", and oss2's parser accepts nothing else.
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t))


def _http_date(t: float) -> str:
    return email.utils.formatdate(t, usegmt=True)


def _parse_http_date(value: str) -> float | None:
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _x(tag: str, text: object) -> str:
    return f"<{tag}>{_xml_escape(str(text))}</{tag}>"


def _xml_doc(*parts: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + "".join(parts)).encode("utf-8")


def _url_encode(value: str) -> str:
    return quote(value, safe="")


def _new_request_id() -> str:
    return uuid.uuid4().hex[:24].upper()


def _strip_etag(value: str) -> str:
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"')


def _etag_matches(header: str, etag: str) -> bool:
    for raw in header.split(","):
        candidate = raw.strip()
        if candidate == "*" or _strip_etag(candidate) == etag:
            return True
    return False


def _is_true(value: str | None) -> bool:
    return value is not None and value.strip().lower() == "true"


class OssError(Exception):
    """An OSS error response: HTTP status, OSS error code, message and extra XML elements."""

    def __init__(self, status: int, code: str, message: str, **extra: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra
        self.headers: dict[str, str] = {}


class _NotModified(Exception):
    pass


def _no_such_key(key: str) -> OssError:
    return OssError(404, "NoSuchKey", "The specified key does not exist.", Key=key)


def _no_such_bucket(bucket: str) -> OssError:
    return OssError(404, "NoSuchBucket", "The specified bucket does not exist.", BucketName=bucket)


def _no_such_upload(upload_id: str) -> OssError:
    return OssError(
        404,
        "NoSuchUpload",
        "The specified upload does not exist. The upload ID may be invalid, "
        "or the upload may have been aborted or completed.",
        UploadId=upload_id,
    )


def _invalid_argument(message: str, name: str = "", value: str = "") -> OssError:
    extra = {"ArgumentName": name, "ArgumentValue": value} if name else {}
    return OssError(400, "InvalidArgument", message, **extra)


def _file_exists() -> OssError:
    return OssError(409, "FileAlreadyExists", "The object you specified already exists and can not be overwritten.")


def _parse_xml(body: Buffer) -> ElementTree.Element:
    try:
        return ElementTree.fromstring(bytes(body))
    except ElementTree.ParseError:
        raise OssError(400, "MalformedXML", "The XML you provided was not well-formed.") from None


def _resolve_range(header: str, size: int, standard: bool) -> tuple[int, int] | None:
    """Inclusive (first, last) for a Range header; None means ignore it and send the whole object (OSS default).

    Raises OssError(416 InvalidRange) only in ``standard`` mode, for an unsatisfiable range.
    """
    value = header.strip()
    if not value.startswith("bytes="):
        return None
    spec = value[len("bytes=") :].strip()
    if "," in spec:
        if standard:
            raise OssError(416, "InvalidRange", "Multiple ranges are not supported.")
        spec = spec.split(",", 1)[0].strip()  # OSS serves the first range only
    first_s, sep, last_s = (s.strip() for s in spec.partition("-"))
    if not sep:
        return None
    unsatisfiable = OssError(416, "InvalidRange", "The requested range cannot be satisfied.")
    if first_s == "":
        if not last_s.isdigit():
            return None
        n = int(last_s)
        if standard:
            if n == 0 or size == 0:
                raise unsatisfiable
            n = min(n, size)
        elif n == 0 or n > size:
            return None
        return size - n, size - 1
    if not first_s.isdigit() or (last_s and not last_s.isdigit()):
        return None
    first = int(first_s)
    last = int(last_s) if last_s else None
    if last is not None and last < first:
        return None  # syntactically invalid: ignored in both modes (RFC 7233)
    if first >= size:
        if standard:
            raise unsatisfiable
        return None
    if last is None:
        return first, size - 1
    if last >= size:
        if standard:
            return first, size - 1
        return None
    return first, last


# --------------------------------------------------------------------------------------------------------------
# State


@dataclass(frozen=True)
class _Object:
    data: Buffer  # never mutated once stored
    etag: str  # upper-case hex, without quotes
    crc64: int
    last_modified: float
    content_type: str
    headers: dict[str, str]  # stored standard headers and x-oss-meta-* (lower-cased names)
    object_type: str = "Normal"
    storage_class: str = "Standard"
    content_md5: str | None = None  # base64, for objects written by a simple put


@dataclass(frozen=True)
class _Part:
    number: int
    data: Buffer
    etag: str  # upper-case hex MD5, without quotes
    crc64: int
    last_modified: float

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass
class _Upload:
    key: str
    upload_id: str
    initiated: float
    content_type: str
    headers: dict[str, str]
    storage_class: str
    parts: dict[int, _Part] = field(default_factory=dict)


@dataclass
class _Bucket:
    name: str
    created: float
    objects: dict[str, _Object] = field(default_factory=dict)
    uploads: dict[str, _Upload] = field(default_factory=dict)
    _sorted_keys: list[str] | None = None

    def sorted_keys(self) -> list[str]:
        if self._sorted_keys is None:
            self._sorted_keys = sorted(self.objects)
        return self._sorted_keys

    def store(self, key: str, obj: _Object) -> None:
        if key not in self.objects:
            self._sorted_keys = None
        self.objects[key] = obj

    def remove(self, key: str) -> None:
        if self.objects.pop(key, None) is not None:
            self._sorted_keys = None

    def clear(self) -> None:
        self.objects.clear()
        self.uploads.clear()
        self._sorted_keys = None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, oss: OssServer) -> None:
        self.oss = oss
        super().__init__(("127.0.0.1", 0), OssRequestHandler)

    def handle_error(self, request: object, client_address: object) -> None:
        # A client resetting an idle keep-alive connection is normal; anything else is printed.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------------------
# Request handler


class OssRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AliyunOSS"
    sys_version = ""
    timeout = 300  # idle keep-alive connections are closed after this many seconds
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stalls
    server: _HTTPServer

    # Set per request, before the fault hook runs.
    request_id: str
    oss_bucket: str
    oss_key: str
    oss_params: dict[str, str]
    # Set by read_body().
    body_md5: bytes
    body_crc64: int

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: object) -> None:
        if self.server.oss.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_OPTIONS(self) -> None:
        self._handle()

    # ---- request body ----------------------------------------------------------------------------------------

    def _init_body(self) -> None:
        self._body: memoryview | None = None
        self._body_done = False
        self._responded = False
        self._chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        self._remaining = 0
        if self._chunked:
            return
        length = self.headers.get("Content-Length")
        if length is None:
            self._body_done = True
            return
        try:
            self._remaining = int(length)
            if self._remaining < 0:
                raise ValueError(length)
        except ValueError:
            self._body_done = True
            self.close_connection = True
            raise OssError(400, "InvalidArgument", "Invalid Content-Length.") from None
        self._body_done = self._remaining == 0

    def read_body(self) -> memoryview:
        """The whole request body as a read-only buffer (read once, then cached).

        The MD5 and CRC-64 of the body are computed chunk by chunk while it arrives (``body_md5``,
        ``body_crc64``), which overlaps the hashing with the transfer.
        """
        if self._body is not None:
            return self._body
        md5 = hashlib.md5()
        crc = 0
        buf: bytearray
        if self._body_done:
            buf = bytearray()
        elif self._chunked:
            buf = bytearray()
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("client closed the connection inside a chunked body")
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    self.close_connection = True
                    self._body_done = True
                    raise OssError(400, "InvalidArgument", "Malformed chunked encoding.") from None
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                if len(buf) + size > MAX_OBJECT_SIZE:
                    self.close_connection = True
                    self._body_done = True
                    raise OssError(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size.")
                chunk = self.rfile.read(size)
                if len(chunk) != size:
                    raise ConnectionError("client closed the connection inside a chunk")
                md5.update(chunk)
                crc = crc64ecma(chunk, crc)
                buf += chunk
                self.rfile.readline(3)  # CRLF after the chunk
        else:
            total = self._remaining
            if total > MAX_OBJECT_SIZE:
                self.close_connection = True
                self._body_done = True
                raise OssError(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size.")
            buf = bytearray(total)
            view = memoryview(buf)
            pos = 0
            while pos < total:
                # 1 MiB at a time (faster than one huge readinto), hashed while the next bytes arrive
                piece = view[pos : min(total, pos + _READ_CHUNK)]
                got = self.rfile.readinto(piece)
                if not got:
                    raise ConnectionError("client closed the connection inside the body")
                md5.update(piece[:got])
                crc = crc64ecma(piece[:got], crc)
                pos += got
                piece.release()
            view.release()
        self._body_done = True
        self._remaining = 0
        self.body_md5 = md5.digest()
        self.body_crc64 = crc
        self._body = memoryview(buf).toreadonly()
        return self._body

    def drain_body(self) -> None:
        """Read and discard whatever is left of the request body, so the connection can be reused."""
        if self._body_done:
            return
        if self._chunked:
            try:
                self.read_body()
            except OssError:  # a broken chunked body: give up on this connection
                self.close_connection = True
                self._body_done = True
            return
        while self._remaining > 0:
            chunk = self.rfile.read(min(self._remaining, 1 << 20))
            if not chunk:
                self.close_connection = True
                break
            self._remaining -= len(chunk)
        self._body_done = True

    # ---- responses -------------------------------------------------------------------------------------------

    def send_response(self, code: int, message: str | None = None) -> None:
        self._responded = True  # also when a fault hook answers with the raw BaseHTTPRequestHandler calls
        super().send_response(code, message)

    def _respond(
        self,
        status: int,
        headers: dict[str, str] | None = None,
        body: Buffer = b"",
        content_length: int | None = None,
    ) -> None:
        self.drain_body()
        self.send_response(status)
        self.send_header("x-oss-request-id", self.request_id)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body) if content_length is None else content_length))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _respond_xml(self, body: bytes, headers: dict[str, str] | None = None, status: int = 200) -> None:
        all_headers = {"Content-Type": "application/xml"}
        all_headers.update(headers or {})
        self._respond(status, all_headers, body)

    def send_oss_error(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: str
    ) -> None:
        """Answer with an OSS error (XML body, or an x-oss-err header for HEAD)."""
        parts = [_x("Code", code), _x("Message", message), _x("RequestId", self.request_id)]
        parts.append(_x("HostId", self.headers.get("Host", "127.0.0.1")))
        parts.extend(_x(k, v) for k, v in extra.items())
        body = _xml_doc("<Error>", *parts, "</Error>")
        all_headers = {"Content-Type": "application/xml"}
        all_headers.update(headers or {})
        if self.command == "HEAD":
            all_headers["x-oss-err"] = base64.b64encode(body).decode("ascii")
            self._respond(status, all_headers, b"", content_length=0)
        else:
            self._respond(status, all_headers, body)

    # ---- dispatch --------------------------------------------------------------------------------------------

    def _handle(self) -> None:
        oss = self.server.oss
        self.request_id = _new_request_id()
        self.oss_bucket = ""
        self.oss_key = ""
        self.oss_params = {}
        self._body = None
        self._body_done = True
        self._responded = False
        oss._log_request(self.command, self.path)
        try:
            self._init_body()
            self._parse_target()
            hook = oss.fault_hook
            if hook is not None and hook(self):
                if not self._responded:
                    self.close_connection = True
                self.drain_body()
                return
            self._authenticate()
            self._dispatch()
            if not self._responded:  # pragma: no cover - every branch answers
                raise RuntimeError(f"no response for {self.command} {self.path}")
        except OssError as err:
            if self._responded:
                self.close_connection = True
            else:
                self.send_oss_error(err.status, err.code, err.message, headers=err.headers, **err.extra)
        except _NotModified:
            self._respond(304)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception as exc:  # a bug in this server: report it to the client and on stderr
            traceback.print_exc(file=sys.stderr)
            if self._responded:
                self.close_connection = True
            else:
                self.close_connection = True
                self.send_oss_error(500, "InternalError", f"test server bug: {exc!r}")

    def _parse_target(self) -> None:
        target = self.path
        if "://" in target.split("?", 1)[0]:  # absolute-form request target
            target = "/" + target.split("://", 1)[1].partition("/")[2]
        path, _, query = target.partition("?")
        if not path.startswith("/"):
            raise OssError(400, "InvalidURI", "Could not parse the specified URI.")
        bucket_raw, _, key_raw = path[1:].partition("/")
        try:
            self.oss_bucket = unquote(bucket_raw, errors="strict")
            self.oss_key = unquote_to_bytes(key_raw.encode("latin-1")).decode("utf-8")
            query = query.encode("latin-1").decode("utf-8")
        except (UnicodeError, ValueError):
            raise OssError(400, "InvalidURI", "Could not parse the specified URI.") from None
        self.oss_params = dict(parse_qsl(query, keep_blank_values=True))

    def _dispatch(self) -> None:
        oss = self.server.oss
        method = self.command
        bucket = self.oss_bucket
        key = self.oss_key
        params = self.oss_params
        if not bucket:
            if method == "GET":
                self._list_buckets()
                return
            raise OssError(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")
        if key == "":
            unknown = sorted(k for k in params if k in SUBRESOURCES and k not in _BUCKET_SUBRESOURCES)
            if unknown:
                raise OssError(400, "NotImplemented", f"This test server does not implement ?{unknown[0]}.")
            if method == "PUT":
                self._create_bucket(bucket)
                return
            oss._bucket(bucket)  # 404 NoSuchBucket
            if method == "GET":
                if "uploads" in params:
                    self._list_multipart_uploads(bucket)
                elif "bucketInfo" in params:
                    self._bucket_info(bucket)
                elif "location" in params:
                    self._respond_xml(_xml_doc(_x("LocationConstraint", oss.location)))
                elif params.get("list-type") == "2":
                    self._list_objects(bucket, v2=True)
                else:
                    self._list_objects(bucket, v2=False)
            elif method == "POST" and "delete" in params:
                self._batch_delete(bucket)
            elif method == "DELETE":
                self._delete_bucket(bucket)
            else:
                raise OssError(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")
            return

        unknown = sorted(k for k in params if k in SUBRESOURCES and k not in _OBJECT_SUBRESOURCES)
        if unknown:
            raise OssError(400, "NotImplemented", f"This test server does not implement ?{unknown[0]}.")
        oss._bucket(bucket)  # 404 NoSuchBucket before anything else
        if method in ("PUT", "POST") and ("If-Match" in self.headers or "If-None-Match" in self.headers):
            # Neither oss2 nor the OSS write APIs document conditional writes; refuse loudly rather than
            # silently overwrite, so a driver cannot come to rely on them.
            raise OssError(
                400,
                "NotImplemented",
                "If-Match/If-None-Match are not supported on writes; use x-oss-forbid-overwrite: true.",
            )
        if method == "PUT":
            if "uploadId" in params or "partNumber" in params:
                self._upload_part(bucket, key)
            elif "x-oss-copy-source" in self.headers:
                self._copy_object(bucket, key)
            else:
                self._put_object(bucket, key)
        elif method in ("GET", "HEAD"):
            if "uploadId" in params and method == "GET":
                self._list_parts(bucket, key)
            elif "objectMeta" in params:
                if method != "HEAD":
                    raise OssError(405, "MethodNotAllowed", "GetObjectMeta takes HEAD.")
                self._object_meta(bucket, key)
            else:
                self._get_object(bucket, key)
        elif method == "DELETE":
            if "uploadId" in params:
                self._abort_multipart(bucket, key)
            else:
                with oss._lock:
                    oss._bucket(bucket).remove(key)
                self._respond(204)
        elif method == "POST":
            if "uploads" in params:
                self._init_multipart(bucket, key)
            elif "uploadId" in params:
                self._complete_multipart(bucket, key)
            else:
                raise OssError(400, "NotImplemented", "This test server does not implement this POST.")
        else:
            raise OssError(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")

    # ---- authentication --------------------------------------------------------------------------------------

    def _string_to_sign(self, date: str) -> bytes:
        headers = self.headers
        oss_headers: dict[str, list[str]] = {}
        for name, value in headers.items():
            lower = name.lower()
            if lower.startswith("x-oss-"):
                oss_headers.setdefault(lower, []).append(value)
        canonical = b"".join(
            name.encode("latin-1") + b":" + ",".join(values).encode("latin-1") + b"\n"
            for name, values in sorted(oss_headers.items())
        )
        resource = "/" + self.oss_bucket + "/" + self.oss_key if self.oss_bucket else "/"
        sub = sorted((k, v) for k, v in self.oss_params.items() if k in SUBRESOURCES)
        if sub:
            resource += "?" + "&".join(k + "=" + v if v else k for k, v in sub)
        return b"\n".join(
            [
                self.command.encode("latin-1"),
                headers.get("Content-MD5", "").encode("latin-1"),
                headers.get("Content-Type", "").encode("latin-1"),
                date.encode("latin-1"),
                canonical + resource.encode("utf-8"),
            ]
        )

    def _check_signature(self, access_key_id: str, signature: str, date: str) -> None:
        oss = self.server.oss
        string_to_sign = self._string_to_sign(date)
        expected = base64.b64encode(
            hmac.new(oss.access_key_secret.encode("utf-8"), string_to_sign, hashlib.sha1).digest()
        ).decode("ascii")
        if not hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "replace")):
            raise OssError(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. "
                "Check your key and signing method.",
                OSSAccessKeyId=access_key_id,
                SignatureProvided=signature,
                StringToSign=string_to_sign.decode("utf-8", "replace"),
            )

    def _check_access_key(self, access_key_id: str) -> None:
        if access_key_id != self.server.oss.access_key_id:
            raise OssError(
                403,
                "InvalidAccessKeyId",
                "The OSS Access Key Id you provided does not exist in our records.",
                OSSAccessKeyId=access_key_id,
            )

    def _authenticate(self) -> None:
        params = self.oss_params
        auth = self.headers.get("Authorization")
        if auth is not None:
            if not auth.startswith("OSS "):
                raise OssError(
                    400, "InvalidArgument", "Authorization header is invalid (this test server speaks V1 only)."
                )
            access_key_id, sep, signature = auth[4:].strip().partition(":")
            if not sep:
                raise OssError(400, "InvalidArgument", "Authorization header is invalid.")
            self._check_access_key(access_key_id)
            date = self.headers.get("x-oss-date") or self.headers.get("Date") or ""
            when = _parse_http_date(date)
            if when is None:
                raise OssError(403, "AccessDenied", "Invalid or missing Date header.")
            if abs(time.time() - when) > MAX_CLOCK_SKEW:
                raise OssError(
                    403,
                    "RequestTimeTooSkewed",
                    "The difference between the request time and the current time is too large.",
                    RequestTime=date,
                    ServerTime=_iso8601(time.time()),
                )
            self._check_signature(access_key_id, signature, date)
            return
        if "OSSAccessKeyId" in params or "Signature" in params or "Expires" in params:
            access_key_id = params.get("OSSAccessKeyId", "")
            expires = params.get("Expires", "")
            signature = params.get("Signature", "")
            if not access_key_id or not expires or not signature:
                raise OssError(403, "AccessDenied", "Signed URL needs OSSAccessKeyId, Expires and Signature.")
            self._check_access_key(access_key_id)
            if not expires.isdigit():
                raise OssError(403, "AccessDenied", "Invalid Expires.")
            if time.time() > int(expires):
                raise OssError(
                    403,
                    "AccessDenied",
                    "Request has expired.",
                    Expires=_iso8601(int(expires)),
                    ServerTime=_iso8601(time.time()),
                )
            self._check_signature(access_key_id, signature, expires)
            return
        raise OssError(403, "AccessDenied", "You have no right to access this object because of bucket acl.")

    # ---- preconditions ---------------------------------------------------------------------------------------

    def _check_read_preconditions(self, obj: _Object) -> None:
        headers = self.headers
        mtime = int(obj.last_modified)
        if_match = headers.get("If-Match")
        if if_match is not None and not _etag_matches(if_match, obj.etag):
            raise OssError(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold.")
        if_unmodified = headers.get("If-Unmodified-Since")
        if if_match is None and if_unmodified is not None:
            since = _parse_http_date(if_unmodified)
            if since is not None and mtime > since:
                raise OssError(
                    412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold."
                )
        if_none_match = headers.get("If-None-Match")
        if if_none_match is not None and _etag_matches(if_none_match, obj.etag):
            raise _NotModified()
        if_modified = headers.get("If-Modified-Since")
        if if_none_match is None and if_modified is not None:
            since = _parse_http_date(if_modified)
            if since is not None and mtime <= since:
                raise _NotModified()

    def _check_copy_preconditions(self, obj: _Object) -> None:
        headers = self.headers
        failed = OssError(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold.")
        mtime = int(obj.last_modified)
        value = headers.get("x-oss-copy-source-if-match")
        if value is not None and not _etag_matches(value, obj.etag):
            raise failed
        value = headers.get("x-oss-copy-source-if-none-match")
        if value is not None and _etag_matches(value, obj.etag):
            raise failed
        value = headers.get("x-oss-copy-source-if-unmodified-since")
        since = _parse_http_date(value) if value else None
        if since is not None and mtime > since:
            raise failed
        value = headers.get("x-oss-copy-source-if-modified-since")
        since = _parse_http_date(value) if value else None
        if since is not None and mtime <= since:
            raise failed

    def _check_content_md5(self, digest: bytes) -> str:
        """Verify a Content-MD5 header against the body's MD5 digest; returns the digest in base64."""
        actual = base64.b64encode(digest).decode("ascii")
        claimed = self.headers.get("Content-MD5")
        if claimed is not None:
            try:
                claimed_digest = base64.b64decode(claimed.strip(), validate=True)
            except (binascii.Error, ValueError):
                claimed_digest = b""
            if len(claimed_digest) != 16:
                raise OssError(400, "InvalidDigest", "The Content-MD5 you specified was invalid.")
            if claimed_digest != digest:
                raise OssError(
                    400,
                    "InvalidDigest",
                    "The Content-MD5 you specified did not match what we received.",
                    CalculatedDigest=actual,
                )
        return actual

    def _object_settings(self) -> tuple[str, dict[str, str], str]:
        """Content-Type, stored headers and storage class from the request headers."""
        stored: dict[str, str] = {}
        for name in _STORED_HEADERS:
            value = self.headers.get(name)
            if value is not None:
                stored[name] = value
        for name, value in self.headers.items():
            if name.lower().startswith("x-oss-meta-"):
                stored[name.lower()] = value
        content_type = self.headers.get("Content-Type") or "application/octet-stream"
        storage_class = self.headers.get("x-oss-storage-class") or "Standard"
        return content_type, stored, storage_class

    # ---- objects ---------------------------------------------------------------------------------------------

    def _put_object(self, bucket: str, key: str) -> None:
        oss = self.server.oss
        if len(key.encode("utf-8")) > 1023:
            raise OssError(400, "InvalidObjectName", "The object name is too long.")
        data = self.read_body()
        content_md5 = self._check_content_md5(self.body_md5)
        etag = self.body_md5.hex().upper()
        crc = self.body_crc64
        content_type, stored, storage_class = self._object_settings()
        obj = _Object(data, etag, crc, time.time(), content_type, stored, "Normal", storage_class, content_md5)
        with oss._lock:
            b = oss._bucket(bucket)
            if _is_true(self.headers.get("x-oss-forbid-overwrite")) and key in b.objects:
                raise _file_exists()
            b.store(key, obj)
        headers = {"ETag": f'"{etag}"', "x-oss-hash-crc64ecma": str(crc)}
        if content_md5:
            headers["Content-MD5"] = content_md5
        self._respond(200, headers)

    def _lookup_object(self, bucket: str, key: str) -> _Object:
        oss = self.server.oss
        with oss._lock:
            obj = oss._bucket(bucket).objects.get(key)
        if obj is None:
            raise _no_such_key(key)
        return obj

    def _object_headers(self, obj: _Object) -> dict[str, str]:
        headers = {
            "Content-Type": obj.content_type,
            "ETag": f'"{obj.etag}"',
            "Last-Modified": _http_date(obj.last_modified),
            "Accept-Ranges": "bytes",
            "x-oss-object-type": obj.object_type,
            "x-oss-storage-class": obj.storage_class,
            "x-oss-hash-crc64ecma": str(obj.crc64),
        }
        headers.update(obj.headers)
        return headers

    def _get_object(self, bucket: str, key: str) -> None:
        obj = self._lookup_object(bucket, key)
        self._check_read_preconditions(obj)
        headers = self._object_headers(obj)
        for param, header in _RESPONSE_OVERRIDES.items():
            if param in self.oss_params and self.command == "GET":
                headers[header] = self.oss_params[param]
        size = len(obj.data)
        byte_range = None
        range_header = self.headers.get("Range")
        if range_header is not None:
            standard = self.headers.get("x-oss-range-behavior", "").strip().lower() == "standard"
            try:
                byte_range = _resolve_range(range_header, size, standard)
            except OssError as err:
                err.headers["Content-Range"] = f"bytes */{size}"
                raise
        if byte_range is None:
            if obj.content_md5:
                headers["Content-MD5"] = obj.content_md5
            self._respond(200, headers, obj.data)
            return
        first, last = byte_range
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        self._respond(206, headers, memoryview(obj.data)[first : last + 1])

    def _object_meta(self, bucket: str, key: str) -> None:
        obj = self._lookup_object(bucket, key)
        headers = {
            "ETag": f'"{obj.etag}"',
            "Last-Modified": _http_date(obj.last_modified),
            "x-oss-last-access-time": _http_date(obj.last_modified),
            "x-oss-hash-crc64ecma": str(obj.crc64),
        }
        self._respond(200, headers, b"", content_length=len(obj.data))

    def _parse_copy_source(self) -> tuple[str, str]:
        source = self.headers.get("x-oss-copy-source", "")
        source = source.split("?", 1)[0]  # ?versionId=: this server keeps no versions
        if not source.startswith("/") or "/" not in source[1:]:
            raise _invalid_argument(
                "Copy Source must mention the source bucket and key: /sourcebucket/sourcekey.",
                "x-oss-copy-source",
                source,
            )
        src_bucket, _, src_key = source[1:].partition("/")
        try:
            return unquote(src_bucket, errors="strict"), unquote(src_key, errors="strict")
        except UnicodeError:
            raise _invalid_argument("Invalid copy source encoding.", "x-oss-copy-source", source) from None

    def _source_object(self, src_bucket: str, src_key: str) -> _Object:
        oss = self.server.oss
        with oss._lock:
            obj = oss._bucket(src_bucket).objects.get(src_key)
        if obj is None:
            raise _no_such_key(src_key)
        self._check_copy_preconditions(obj)
        return obj

    def _copy_object(self, bucket: str, key: str) -> None:
        oss = self.server.oss
        src_bucket, src_key = self._parse_copy_source()
        self.drain_body()
        src = self._source_object(src_bucket, src_key)
        directive = self.headers.get("x-oss-metadata-directive", "COPY").strip().upper()
        if directive == "COPY":
            content_type, stored, storage_class = src.content_type, dict(src.headers), src.storage_class
            storage_class = self.headers.get("x-oss-storage-class") or storage_class
        elif directive == "REPLACE":
            content_type, stored, storage_class = self._object_settings()
        else:
            raise _invalid_argument("Invalid x-oss-metadata-directive.", "x-oss-metadata-directive", directive)
        now = time.time()
        # The bytes are immutable, so the copy shares the source's buffer; it keeps the source's ETag and CRC.
        obj = _Object(
            src.data, src.etag, src.crc64, now, content_type, stored, src.object_type, storage_class, src.content_md5
        )
        with oss._lock:
            b = oss._bucket(bucket)
            if _is_true(self.headers.get("x-oss-forbid-overwrite")) and key in b.objects:
                raise _file_exists()
            b.store(key, obj)
        body = _xml_doc(
            "<CopyObjectResult>", _x("ETag", f'"{obj.etag}"'), _x("LastModified", _iso8601(now)), "</CopyObjectResult>"
        )
        self._respond_xml(body, {"ETag": f'"{obj.etag}"', "x-oss-hash-crc64ecma": str(obj.crc64)})

    # ---- listing ---------------------------------------------------------------------------------------------

    def _int_param(self, name: str, default: int, maximum: int) -> int:
        raw = self.oss_params.get(name, "")
        if raw == "":
            return default
        if not raw.isdigit() or not 1 <= int(raw) <= maximum:
            raise _invalid_argument(f"Argument {name} must be an integer between 1 and {maximum}.", name, raw)
        return int(raw)

    def _list_objects(self, bucket: str, v2: bool) -> None:
        oss = self.server.oss
        params = self.oss_params
        prefix = params.get("prefix", "")
        delimiter = params.get("delimiter", "")
        encoding = params.get("encoding-type", "")
        if encoding not in ("", "url"):
            raise _invalid_argument("The encoding-type must be url.", "encoding-type", encoding)
        max_keys = self._int_param("max-keys", 100, MAX_KEYS)
        if v2:
            token = params.get("continuation-token", "")
            start_after = params.get("start-after", "")
            if token:
                try:
                    marker = base64.urlsafe_b64decode(token.encode("ascii")).decode("utf-8")
                except (binascii.Error, ValueError, UnicodeError):
                    raise _invalid_argument("The continuation token is invalid.", "continuation-token", token) from None
            else:
                marker = start_after
        else:
            marker = params.get("marker", "")

        url = encoding == "url"

        def enc(value: str) -> str:
            return _url_encode(value) if url else value

        entries: list[tuple[str, _Object | None]] = []
        truncated = False
        with oss._lock:
            b = oss._bucket(bucket)
            keys = b.sorted_keys()
            i = bisect.bisect_right(keys, marker) if marker else 0
            if prefix:
                i = max(i, bisect.bisect_left(keys, prefix))
            last_prefix = None
            while i < len(keys):
                key = keys[i]
                if prefix and not key.startswith(prefix):
                    break
                if delimiter:
                    pos = key.find(delimiter, len(prefix))
                    if pos >= 0:
                        common = key[: pos + len(delimiter)]
                        i += 1
                        if common == last_prefix or (marker and common <= marker):
                            continue
                        if len(entries) >= max_keys:
                            truncated = True
                            break
                        entries.append((common, None))
                        last_prefix = common
                        while i < len(keys) and keys[i].startswith(common):
                            i += 1
                        continue
                if len(entries) >= max_keys:
                    truncated = True
                    break
                entries.append((key, b.objects[key]))
                i += 1

        parts = [_x("Name", bucket), _x("Prefix", enc(prefix))]
        if v2:
            if params.get("continuation-token"):
                parts.append(_x("ContinuationToken", enc(params["continuation-token"])))
            if params.get("start-after"):
                parts.append(_x("StartAfter", enc(params["start-after"])))
        else:
            parts.append(_x("Marker", enc(marker)))
        parts += [_x("MaxKeys", max_keys), _x("Delimiter", enc(delimiter)), _x("IsTruncated", str(truncated).lower())]
        if truncated:
            last = entries[-1][0]
            if v2:
                next_token = base64.urlsafe_b64encode(last.encode("utf-8")).decode("ascii")
                parts.append(_x("NextContinuationToken", enc(next_token)))
            else:
                parts.append(_x("NextMarker", enc(last)))
        if v2:
            parts.append(_x("KeyCount", len(entries)))
        if url:
            parts.append(_x("EncodingType", "url"))
        owner = "<Owner>{}{}</Owner>".format(_x("ID", OWNER_ID), _x("DisplayName", OWNER_ID))
        with_owner = not v2 or params.get("fetch-owner", "").lower() == "true"
        for name, obj in entries:
            if obj is None:
                continue
            parts += [
                "<Contents>",
                _x("Key", enc(name)),
                _x("LastModified", _iso8601(obj.last_modified)),
                _x("ETag", f'"{obj.etag}"'),
                _x("Type", obj.object_type),
                _x("Size", len(obj.data)),
                _x("StorageClass", obj.storage_class),
                owner if with_owner else "",
                "</Contents>",
            ]
        for name, obj in entries:
            if obj is None:
                parts.append("<CommonPrefixes>{}</CommonPrefixes>".format(_x("Prefix", enc(name))))
        self._respond_xml(_xml_doc("<ListBucketResult>", *parts, "</ListBucketResult>"))

    def _batch_delete(self, bucket: str) -> None:
        oss = self.server.oss
        body = self.read_body()
        if self.headers.get("Content-MD5") is None:
            raise OssError(400, "InvalidDigest", "Content-MD5 is required for batch delete.")
        self._check_content_md5(self.body_md5)
        root = _parse_xml(body)
        if root.tag != "Delete":
            raise OssError(400, "MalformedXML", "The XML you provided was not well-formed.")
        quiet = (root.findtext("Quiet") or "false").strip().lower() == "true"
        keys = [node.findtext("Key") or "" for node in root.findall("Object")]
        if not keys or len(keys) > 1000:
            raise OssError(400, "MalformedXML", "A batch delete takes between 1 and 1000 keys.")
        with oss._lock:
            b = oss._bucket(bucket)
            for key in keys:
                b.remove(key)
        url = self.oss_params.get("encoding-type") == "url"
        parts = ["<DeleteResult>"]
        if url:
            parts.append(_x("EncodingType", "url"))
        if not quiet:
            parts += ["<Deleted>{}</Deleted>".format(_x("Key", _url_encode(k) if url else k)) for k in keys]
        parts.append("</DeleteResult>")
        self._respond_xml(_xml_doc(*parts))

    # ---- buckets ---------------------------------------------------------------------------------------------

    def _bucket_xml(self, b: _Bucket) -> list[str]:
        oss = self.server.oss
        host = oss.endpoint.split("://", 1)[1]
        return [
            _x("CreationDate", _iso8601(b.created)),
            _x("ExtranetEndpoint", host),
            _x("IntranetEndpoint", host),
            _x("Location", oss.location),
            _x("Name", b.name),
            _x("Region", oss.location[len("oss-") :]),
            _x("StorageClass", "Standard"),
        ]

    def _list_buckets(self) -> None:
        oss = self.server.oss
        with oss._lock:
            buckets = sorted(oss._buckets.values(), key=lambda b: b.name)
        parts = [
            "<ListAllMyBucketsResult>",
            "<Owner>",
            _x("ID", OWNER_ID),
            _x("DisplayName", OWNER_ID),
            "</Owner>",
            "<Buckets>",
        ]
        for b in buckets:
            parts += ["<Bucket>", *self._bucket_xml(b), "</Bucket>"]
        parts += ["</Buckets>", "</ListAllMyBucketsResult>"]
        self._respond_xml(_xml_doc(*parts))

    def _bucket_info(self, bucket: str) -> None:
        oss = self.server.oss
        with oss._lock:
            b = oss._bucket(bucket)
        parts = ["<BucketInfo><Bucket>", *self._bucket_xml(b)]
        parts += [
            "<Owner>",
            _x("DisplayName", OWNER_ID),
            _x("ID", OWNER_ID),
            "</Owner>",
            "<AccessControlList>",
            _x("Grant", "private"),
            "</AccessControlList>",
            _x("DataRedundancyType", "LRS"),
            _x("Versioning", "Disabled"),
            "</Bucket></BucketInfo>",
        ]
        self._respond_xml(_xml_doc(*parts))

    def _create_bucket(self, bucket: str) -> None:
        oss = self.server.oss
        self.drain_body()
        if not (3 <= len(bucket) <= 63) or not all(c.islower() or c.isdigit() or c == "-" for c in bucket):
            raise OssError(400, "InvalidBucketName", "The specified bucket is not valid.", BucketName=bucket)
        with oss._lock:
            if bucket not in oss._buckets:
                oss._buckets[bucket] = _Bucket(bucket, time.time())
        self._respond(200, {"Location": "/" + bucket})

    def _delete_bucket(self, bucket: str) -> None:
        oss = self.server.oss
        with oss._lock:
            b = oss._bucket(bucket)
            if b.objects or b.uploads:
                raise OssError(409, "BucketNotEmpty", "The bucket you tried to delete is not empty.", BucketName=bucket)
            del oss._buckets[bucket]
        self._respond(204)

    # ---- multipart -------------------------------------------------------------------------------------------

    def _find_upload(self, b: _Bucket, key: str) -> _Upload:
        upload_id = self.oss_params.get("uploadId", "")
        upload = b.uploads.get(upload_id)
        if upload is None or upload.key != key:
            raise _no_such_upload(upload_id)
        return upload

    def _init_multipart(self, bucket: str, key: str) -> None:
        oss = self.server.oss
        self.drain_body()
        content_type, stored, storage_class = self._object_settings()
        with oss._lock:
            b = oss._bucket(bucket)
            if _is_true(self.headers.get("x-oss-forbid-overwrite")) and key in b.objects:
                raise _file_exists()
            # Upload IDs sort in the order the uploads were initiated, which list_multipart_uploads relies on.
            upload_id = f"{next(oss._upload_counter):016X}{uuid.uuid4().hex[:16].upper()}"
            b.uploads[upload_id] = _Upload(key, upload_id, time.time(), content_type, stored, storage_class)
        url = self.oss_params.get("encoding-type") == "url"
        parts = [
            "<InitiateMultipartUploadResult>",
            _x("Bucket", bucket),
            _x("Key", _url_encode(key) if url else key),
            _x("UploadId", upload_id),
        ]
        if url:
            parts.append(_x("EncodingType", "url"))
        parts.append("</InitiateMultipartUploadResult>")
        self._respond_xml(_xml_doc(*parts))

    def _part_number(self) -> int:
        raw = self.oss_params.get("partNumber", "")
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_PART_COUNT:
            raise _invalid_argument(
                f"Part number must be an integer between 1 and {MAX_PART_COUNT}.", "partNumber", raw
            )
        return int(raw)

    def _upload_part(self, bucket: str, key: str) -> None:
        oss = self.server.oss
        number = self._part_number()
        with oss._lock:
            self._find_upload(oss._bucket(bucket), key)  # 404 before reading a body
        copy = "x-oss-copy-source" in self.headers
        if copy:
            self.drain_body()
            src_bucket, src_key = self._parse_copy_source()
            src = self._source_object(src_bucket, src_key)
            size = len(src.data)
            range_header = self.headers.get("x-oss-copy-source-range")
            if range_header is None:
                first, last = 0, size - 1
            else:
                spec = range_header.strip()
                first_s, sep, last_s = spec.removeprefix("bytes=").partition("-")
                if not spec.startswith("bytes="):
                    sep = ""
                if not (sep and first_s.strip().isdigit() and last_s.strip().isdigit()):
                    raise _invalid_argument(
                        "The x-oss-copy-source-range is invalid.", "x-oss-copy-source-range", range_header
                    )
                first, last = int(first_s), int(last_s)
                if first > last or last >= size:
                    raise _invalid_argument(
                        "The x-oss-copy-source-range is out of the source object.",
                        "x-oss-copy-source-range",
                        range_header,
                    )
            data: Buffer = memoryview(src.data)[first : last + 1]
            etag = hashlib.md5(data).hexdigest().upper()
            crc = crc64ecma(data)
        else:
            data = self.read_body()
            self._check_content_md5(self.body_md5)
            etag = self.body_md5.hex().upper()
            crc = self.body_crc64
        now = time.time()
        part = _Part(number, data, etag, crc, now)
        with oss._lock:
            upload = self._find_upload(oss._bucket(bucket), key)  # may have been aborted meanwhile
            upload.parts[number] = part
        headers = {"ETag": f'"{etag}"', "x-oss-hash-crc64ecma": str(part.crc64)}
        if copy:
            body = _xml_doc(
                "<CopyPartResult>", _x("LastModified", _iso8601(now)), _x("ETag", f'"{etag}"'), "</CopyPartResult>"
            )
            self._respond_xml(body, headers)
        else:
            headers["Content-MD5"] = base64.b64encode(bytes.fromhex(etag)).decode("ascii")
            self._respond(200, headers)

    def _complete_multipart(self, bucket: str, key: str) -> None:
        oss = self.server.oss
        complete_all = self.headers.get("x-oss-complete-all", "").strip().lower() == "yes"
        body = self.read_body()
        with oss._lock:
            upload = self._find_upload(oss._bucket(bucket), key)
            uploaded = dict(upload.parts)
        requested: list[tuple[int, str | None]]
        if complete_all:
            if len(body):
                raise _invalid_argument("x-oss-complete-all takes no body.", "x-oss-complete-all", "yes")
            requested = [(n, None) for n in sorted(uploaded)]
            if not requested:
                raise _invalid_argument("The upload has no parts.", "x-oss-complete-all", "yes")
        else:
            root = _parse_xml(body)
            if root.tag != "CompleteMultipartUpload":
                raise OssError(400, "MalformedXML", "The XML you provided was not well-formed.")
            requested = []
            for node in root.findall("Part"):
                number_s = (node.findtext("PartNumber") or "").strip()
                if not number_s.isdigit():
                    raise OssError(400, "MalformedXML", "The XML you provided was not well-formed.")
                requested.append((int(number_s), _strip_etag(node.findtext("ETag") or "")))
            if not requested:
                raise OssError(400, "MalformedXML", "The XML you provided was not well-formed.")
        if len(requested) > MAX_PART_COUNT:
            raise _invalid_argument("Too many parts.", "Part", str(len(requested)))
        previous = 0
        for number, _ in requested:
            if number <= previous:
                raise OssError(
                    400,
                    "InvalidPartOrder",
                    "The list of parts was not in ascending order. Parts must be ordered by part number.",
                )
            previous = number
        chosen: list[_Part] = []
        for number, etag in requested:
            part = uploaded.get(number)
            if part is None or (etag is not None and etag.upper() != part.etag):
                raise OssError(
                    400,
                    "InvalidPart",
                    "One or more of the specified parts could not be found or the specified entity tag might not "
                    "have matched the part's entity tag.",
                    PartNumber=str(number),
                    ETag=etag or "",
                )
            chosen.append(part)
        for part in chosen[:-1]:
            if part.size < oss.min_part_size:
                raise OssError(
                    400,
                    "EntityTooSmall",
                    "Your proposed upload is smaller than the minimum allowed size.",
                    PartNumber=str(part.number),
                    ProposedSize=str(part.size),
                    MinSizeAllowed=str(oss.min_part_size),
                )
        data = b"".join(part.data for part in chosen)
        crc = 0
        for part in chosen:
            crc = crc64_combine(crc, part.crc64, part.size)
        md5_of_md5s = hashlib.md5(b"".join(bytes.fromhex(p.etag) for p in chosen)).hexdigest().upper()
        etag = f"{md5_of_md5s}-{len(chosen)}"
        now = time.time()
        with oss._lock:
            b = oss._bucket(bucket)
            upload = self._find_upload(b, key)  # a concurrent abort or complete wins
            if _is_true(self.headers.get("x-oss-forbid-overwrite")) and key in b.objects:
                raise _file_exists()
            obj = _Object(
                data, etag, crc, now, upload.content_type, dict(upload.headers), "Multipart", upload.storage_class
            )
            del b.uploads[upload.upload_id]
            b.store(key, obj)
        url = self.oss_params.get("encoding-type") == "url"
        parts = ["<CompleteMultipartUploadResult>"]
        if url:
            parts.append(_x("EncodingType", "url"))
        parts += [
            _x("Location", "{}/{}/{}".format(oss.endpoint, bucket, quote(key, safe=""))),
            _x("Bucket", bucket),
            _x("Key", _url_encode(key) if url else key),
            _x("ETag", f'"{etag}"'),
            "</CompleteMultipartUploadResult>",
        ]
        self._respond_xml(_xml_doc(*parts), {"ETag": f'"{etag}"', "x-oss-hash-crc64ecma": str(crc)})

    def _abort_multipart(self, bucket: str, key: str) -> None:
        oss = self.server.oss
        with oss._lock:
            b = oss._bucket(bucket)
            upload = self._find_upload(b, key)
            del b.uploads[upload.upload_id]
        self._respond(204)

    def _list_parts(self, bucket: str, key: str) -> None:
        oss = self.server.oss
        marker_s = self.oss_params.get("part-number-marker", "")
        if marker_s and not marker_s.isdigit():
            raise _invalid_argument("Invalid part-number-marker.", "part-number-marker", marker_s)
        marker = int(marker_s or 0)
        max_parts = self._int_param("max-parts", 1000, 1000)
        with oss._lock:
            upload = self._find_upload(oss._bucket(bucket), key)
            numbers = sorted(n for n in upload.parts if n > marker)
            page = [upload.parts[n] for n in numbers[:max_parts]]
            upload_id = upload.upload_id
        truncated = len(numbers) > max_parts
        next_marker = page[-1].number if page else marker
        parts = [
            "<ListPartsResult>",
            _x("Bucket", bucket),
            _x("Key", key),
            _x("UploadId", upload_id),
            _x("PartNumberMarker", marker),
            _x("NextPartNumberMarker", next_marker),
            _x("MaxParts", max_parts),
            _x("IsTruncated", str(truncated).lower()),
        ]
        for p in page:
            parts += [
                "<Part>",
                _x("PartNumber", p.number),
                _x("LastModified", _iso8601(p.last_modified)),
                _x("ETag", f'"{p.etag}"'),
                _x("HashCrc64ecma", p.crc64),
                _x("Size", p.size),
                "</Part>",
            ]
        parts.append("</ListPartsResult>")
        self._respond_xml(_xml_doc(*parts))

    def _list_multipart_uploads(self, bucket: str) -> None:
        oss = self.server.oss
        params = self.oss_params
        prefix = params.get("prefix", "")
        delimiter = params.get("delimiter", "")
        key_marker = params.get("key-marker", "")
        upload_id_marker = params.get("upload-id-marker", "")
        max_uploads = self._int_param("max-uploads", 1000, 1000)
        url = params.get("encoding-type") == "url"

        def enc(value: str) -> str:
            return _url_encode(value) if url else value

        entries: list[tuple[str, str, float]] = []  # (key or common prefix, upload id or "", initiated)
        truncated = False
        with oss._lock:
            b = oss._bucket(bucket)
            uploads = sorted((u.key, u.upload_id, u.initiated) for u in b.uploads.values())
        pairs = [(k, u) for k, u, _ in uploads]
        if key_marker and upload_id_marker:
            i = bisect.bisect_right(pairs, (key_marker, upload_id_marker))
        elif key_marker:
            i = bisect.bisect_right([k for k, _ in pairs], key_marker)
        else:
            i = 0
        last_prefix = None
        while i < len(uploads):
            key, upload_id, initiated = uploads[i]
            i += 1
            if prefix and not key.startswith(prefix):
                continue
            if delimiter:
                pos = key.find(delimiter, len(prefix))
                if pos >= 0:
                    common = key[: pos + len(delimiter)]
                    if common == last_prefix or (key_marker and common <= key_marker):
                        continue
                    if len(entries) >= max_uploads:
                        truncated = True
                        break
                    entries.append((common, "", 0.0))
                    last_prefix = common
                    continue
            if len(entries) >= max_uploads:
                truncated = True
                break
            entries.append((key, upload_id, initiated))

        next_key, next_upload = (entries[-1][0], entries[-1][1]) if entries else ("", "")
        parts = ["<ListMultipartUploadsResult>", _x("Bucket", bucket)]
        if url:
            parts.append(_x("EncodingType", "url"))
        parts += [
            _x("KeyMarker", enc(key_marker)),
            _x("UploadIdMarker", upload_id_marker),
            _x("NextKeyMarker", enc(next_key)),
            _x("NextUploadIdMarker", next_upload),
            _x("Delimiter", enc(delimiter)),
            _x("Prefix", enc(prefix)),
            _x("MaxUploads", max_uploads),
            _x("IsTruncated", str(truncated).lower()),
        ]
        for key, upload_id, initiated in entries:
            if upload_id:
                parts += [
                    "<Upload>",
                    _x("Key", enc(key)),
                    _x("UploadId", upload_id),
                    _x("StorageClass", "Standard"),
                    _x("Initiated", _iso8601(initiated)),
                    "</Upload>",
                ]
        for key, upload_id, _ in entries:
            if not upload_id:
                parts.append("<CommonPrefixes>{}</CommonPrefixes>".format(_x("Prefix", enc(key))))
        parts.append("</ListMultipartUploadsResult>")
        self._respond_xml(_xml_doc(*parts))


# --------------------------------------------------------------------------------------------------------------
# Public server object


class OssServer:
    """An in-memory OSS-protocol server on 127.0.0.1 (a free port), served from a daemon thread.

    >>> with OssServer() as server:
    ...     bucket = oss2.Bucket(oss2.Auth("test-ak", "test-sk"), server.endpoint, "test-bucket")
    """

    def __init__(
        self,
        access_key_id: str = "test-ak",
        access_key_secret: str = "test-sk",
        buckets: tuple[str, ...] | list[str] = ("test-bucket",),
        min_part_size: int = 100 * 1024,
        location: str = "oss-cn-hangzhou",
        verbose: bool = False,
    ) -> None:
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.min_part_size = min_part_size
        self.location = location
        self.verbose = verbose
        self.fault_hook: Callable[[OssRequestHandler], bool] | None = None
        self._initial_buckets = tuple(buckets)
        self._lock = threading.Lock()
        self._log_lock = threading.Lock()
        self._request_log: collections.deque[tuple[str, str]] = collections.deque(maxlen=10_000)
        self._upload_counter = itertools.count(int(time.time() * 1000) << 16)
        now = time.time()
        self._buckets: dict[str, _Bucket] = {name: _Bucket(name, now) for name in self._initial_buckets}
        self._httpd = _HTTPServer(self)
        self.endpoint = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> OssServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="oss-test-server", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> OssServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- state -----------------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Drop all objects and multipart uploads (buckets stay), clear the request log and the fault hook."""
        with self._lock:
            for b in self._buckets.values():
                b.clear()
            now = time.time()
            for name in self._initial_buckets:
                self._buckets.setdefault(name, _Bucket(name, now))
        with self._log_lock:
            self._request_log.clear()
        self.fault_hook = None

    def add_bucket(self, name: str) -> None:
        with self._lock:
            self._buckets.setdefault(name, _Bucket(name, time.time()))

    def multipart_uploads(self, bucket: str) -> list[tuple[str, str]]:
        """(key, upload_id) of the multipart uploads in progress in ``bucket``."""
        with self._lock:
            return sorted((u.key, u.upload_id) for u in self._bucket(bucket).uploads.values())

    def object_keys(self, bucket: str) -> list[str]:
        with self._lock:
            return list(self._bucket(bucket).sorted_keys())

    def object_bytes(self, bucket: str, key: str) -> bytes:
        with self._lock:
            obj = self._bucket(bucket).objects.get(key)
        if obj is None:
            raise KeyError(key)
        return bytes(obj.data)

    @property
    def request_log(self) -> list[tuple[str, str]]:
        """(method, path?query) of the most recent requests (at most 10,000), oldest first; a snapshot."""
        with self._log_lock:
            return list(self._request_log)

    def clear_request_log(self) -> None:
        with self._log_lock:
            self._request_log.clear()

    def _log_request(self, method: str, target: str) -> None:
        with self._log_lock:
            self._request_log.append((method, target))

    def _bucket(self, name: str) -> _Bucket:
        """The bucket (caller holds the lock where it matters); raises NoSuchBucket."""
        b = self._buckets.get(name)
        if b is None:
            raise _no_such_bucket(name)
        return b


if __name__ == "__main__":  # pragma: no cover - manual use: python -m tests.servers.oss
    with OssServer(verbose=bool(os.environ.get("OSS_VERBOSE"))) as _server:
        print(_server.endpoint, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
