"""The Aliyun OSS driver (``oss``) on oss2.

Parameters keep the names of distribution's OSS driver, so an existing registry
configuration works unchanged; see ``docs/drivers/oss.md``. Uploads, resumable
writers, ``cat`` and large moves run on the shared multipart engine
(:mod:`blobdrivers.multipart`); this module holds the oss2 calls behind it and the
OSS-specific parts: listing, stat, delete, ranged reads, signed URLs, conditions,
retries, CRC-64 checks and the translation of OSS errors.

OSS specifics that shape the code:

* Parts are 100 KiB to 5 GiB, at most 10,000 per upload; CopyObject copies at most
  1 GB, so larger server-side copies go through UploadPartCopy.
* The only native write condition is ``x-oss-forbid-overwrite`` (``if_none_match="*"``).
  OSS has no conditional write on an etag, so ``if_match`` raises
  :class:`UnsupportedMethodError` rather than being emulated by a racy check.
* A Range that cannot be satisfied is silently ignored by OSS (200 with the whole
  object) unless the request says ``x-oss-range-behavior: standard``, which every
  ranged read here sends.
* oss2 has no retry of its own: every request goes through :class:`RetryPolicy`.
  Requests that are not idempotent (conditional writes, initiating an upload) are
  retried only when they surely never reached the server.
* oss2's CRC-64 checks stay on (uploads and parts are verified against the
  ``x-oss-hash-crc64ecma`` the server reports); whole-object reads are verified here,
  and single-request uploads also send Content-MD5 so a corrupted body is refused
  before it is published.
"""

from __future__ import annotations

import base64
import collections
import functools
import hashlib
import io
import logging
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import crcmod
import oss2
import requests
import urllib3
from oss2.exceptions import ClientError as OssClientError
from oss2.exceptions import InconsistentError, OssError, RequestError
from oss2.models import PartInfo as OssPartInfo

from .. import paths
from ..clients import ProcessLocal
from ..conditions import Conditions
from ..driver import StorageDriver
from ..errors import (
    ConfigError,
    PathNotFoundError,
    PreconditionFailedError,
    StorageError,
    UnsupportedMethodError,
)
from ..listing import FileInfo, first_valid, visible_children, walk_flat
from ..multipart import CopySource, MultipartEngine, NewUpload, ObjectInfo, PartInfo, UploadInfo
from ..params import GiB, KiB, MiB, Params
from ..reader import RangeReader, ReopeningReader
from ..redaction import LogRedactor
from ..retry import RetryPolicy
from ..transfer import MAX_PARTS, Source, ViewFile
from ..writer import WriterBackend

T = TypeVar("T")

log = logging.getLogger("blobdrivers.oss")

MIN_PART = 100 * KiB
MAX_PART = 5 * GiB
#: CopyObject copies objects of at most 1 GB; UploadPartCopy parts are kept within it too
#: (the engine has one limit for both; see the module docstring).
MAX_COPY = 1000 * 1000 * 1000
#: Moves of objects up to this size are one CopyObject; larger ones a parallel multipart copy.
MOVE_COPY_THRESHOLD = 256 * MiB
#: Part size of multipart copies (moves of large objects, appends to committed content).
COPY_CHUNK = 64 * MiB
#: DeleteMultipleObjects takes at most this many keys per request.
DELETE_BATCH = 1000
#: Keys per listing page (the OSS maximum).
LIST_PAGE = 1000
#: Largest read from a response body in one call (bounds the temporary copy urllib3 makes).
READ_BLOCK = 1 * MiB
#: Signed V1 URLs carry an absolute expiry; seven days matches OSS's V4 limit and S3's.
MAX_URL_EXPIRY = 7 * 24 * 3600

_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
_REGION = re.compile(r"[a-z0-9][a-z0-9-]*[a-z0-9]")
_HEX_MD5 = re.compile(r"[0-9A-Fa-f]{32}")
_FORBID_OVERWRITE = {"x-oss-forbid-overwrite": "true"}
_STANDARD_RANGE = {"x-oss-range-behavior": "standard"}
_NOT_FOUND_CODES = frozenset({"NoSuchKey", ""})
_TRANSIENT_CODES = frozenset({"RequestTimeout", "ServiceUnavailable", "InternalError", "SlowDown", "Throttling"})
#: Errors of a response body broken in the middle (connection reset, timeout, short body).
_BODY_ERRORS = (
    urllib3.exceptions.HTTPError,
    requests.exceptions.RequestException,
    ConnectionError,
    TimeoutError,
)


# --------------------------------------------------------------------------- error classification


def _status(exc: BaseException) -> int:
    return int(getattr(exc, "status", 0) or 0)


def _code(exc: BaseException) -> str:
    return str(getattr(exc, "code", "") or "")


def _is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, OssError) and _status(exc) == 404 and _code(exc) in _NOT_FOUND_CODES


def _is_no_such_upload(exc: BaseException) -> bool:
    return isinstance(exc, OssError) and _code(exc) == "NoSuchUpload"


def _is_precondition(exc: BaseException) -> bool:
    return isinstance(exc, OssError) and (_status(exc) == 412 or _code(exc) == "PreconditionFailed")


def _is_file_exists(exc: BaseException) -> bool:
    return isinstance(exc, OssError) and _code(exc) == "FileAlreadyExists"


def _is_transient(exc: BaseException) -> bool:
    """Worth retrying an idempotent request: no answer, a broken answer, or a server-side failure."""
    if isinstance(exc, RequestError | InconsistentError):
        return True
    if isinstance(exc, OssError):
        status = _status(exc)
        return status >= 500 or status == 429 or _code(exc) in _TRANSIENT_CODES
    return isinstance(exc, _BODY_ERRORS)


def _never_sent(exc: BaseException) -> bool:
    """Worth retrying a request that must not run twice: it surely did not reach the server.

    A connection that could not be opened, or a 503 (OSS throttles before doing
    anything). A timeout or reset after sending is ambiguous, so it is not retried.
    """
    if isinstance(exc, OssError) and _status(exc) == 503:
        return True
    if not isinstance(exc, RequestError):
        return False
    cause = getattr(exc, "exception", None)
    if isinstance(cause, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(cause, requests.exceptions.ConnectionError) and cause.args:
        reason = getattr(cause.args[0], "reason", None)
        return isinstance(reason, urllib3.exceptions.NewConnectionError)
    return False


def _is_body_error(exc: BaseException) -> bool:
    """Worth reopening a ranged read at the current offset."""
    return _is_transient(exc)


def _quote(etag: str) -> str:
    return etag if etag.startswith('"') else f'"{etag}"'


def _timestamp(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value or 0), UTC)


# --------------------------------------------------------------------------- log redaction

_REDACTIONS = (
    # Authorization headers in logged header dicts: 'Authorization': 'OSS ak:signature'
    re.compile(r"""((?i:authorization)['"]?\s*[:=]\s*['"]?)[^'",}\n]+"""),
    # Signed URL query parameters and STS tokens.
    re.compile(
        r"((?:OSSAccessKeyId|Signature|x-oss-signature|x-oss-credential|security-token|x-oss-security-token)=)"
        r"[^&\s'\"]+"
    ),
    # Error details OSS returns for a bad signature, as oss2 prints them (dict or XML).
    re.compile(r"""((?:SignatureProvided|OSSAccessKeyId|AccessKeyId)['"]?\s*[:=]\s*['"]?)[^'",}<\n]+"""),
    re.compile(r"(<(?:SignatureProvided|OSSAccessKeyId|AccessKeyId)>)[^<]*"),
    re.compile(r"(access_key_id: )\S+"),
)


# oss2 logs request headers (with the Authorization signature) at debug level and server
# errors (with the signature OSS echoes back) at info level.
_REDACTOR = LogRedactor(_REDACTIONS)
_REDACTOR.install("oss2", "oss2.api", "oss2.http", "oss2.auth", "oss2.utils", "oss2.resumable", "oss2.models")


# --------------------------------------------------------------------------- the driver


class OSSDriver(StorageDriver):
    """Objects in an Aliyun OSS bucket; parameters as distribution's OSS driver (see ``docs/drivers/oss.md``)."""

    name = "oss"
    #: OSS object names are at most 1,023 bytes of UTF-8; parked writer state and other bookkeeping keys need at most
    #: 160 bytes below the root (``~blobdrivers/uploads/<hashes>/tail-NNNNN`` and the like).
    max_key_bytes = 1023
    bookkeeping_key_bytes = 160
    secret_params = frozenset({"accesskeyid", "accesskeysecret"})
    max_url_expiry = MAX_URL_EXPIRY

    def __init__(self, **params: Any) -> None:
        reader = Params(self.name, params, secrets=self.secret_params)
        accesskeyid = reader.required_string("accesskeyid")
        accesskeysecret = reader.required_string("accesskeysecret")
        self.bucket = reader.required_string("bucket")
        region = reader.string("region")
        endpoint = reader.string("endpoint")
        internal = reader.boolean("internal", False)
        secure = reader.boolean("secure", True)
        encrypt = reader.boolean("encrypt", False)
        keyid = reader.string("encryptionkeyid")
        chunk_size = reader.size("chunksize", 10 * MiB, minimum=MIN_PART, maximum=MAX_PART)
        self.concurrency = reader.integer("maxconcurrency", 8, minimum=1, maximum=256)
        rootdirectory = reader.string("rootdirectory", "") or ""
        self.retry_attempts = reader.integer("retries", 5, minimum=1, maximum=20)
        self._skipverify = reader.boolean("skipverify", False)
        reader.done()

        if not _BUCKET_NAME.fullmatch(self.bucket):
            raise ConfigError(
                f"invalid value {self.bucket!r} for parameter 'bucket': 3 to 63 lowercase letters, digits or '-', "
                "starting and ending with a letter or digit",
                driver=self.name,
            )
        if keyid is not None and not encrypt:
            raise ConfigError("parameter 'encryptionkeyid' (a KMS key) needs 'encrypt' set to true", driver=self.name)
        self.endpoint = _endpoint(endpoint, region, internal, secure, self.name)
        self._credentials = (accesskeyid, accesskeysecret)
        if self._skipverify:
            log.warning("oss: skipverify is set: TLS certificates of %s are NOT verified", self.endpoint)

        super().__init__(params, rootdirectory=rootdirectory, chunk_size=chunk_size)
        #: Headers of every request that creates an object (not of parts: OSS takes them at initiation).
        self.create_headers: dict[str, str] = {}
        if encrypt:
            self.create_headers["x-oss-server-side-encryption"] = "KMS" if keyid else "AES256"
            if keyid:
                self.create_headers["x-oss-server-side-encryption-key-id"] = keyid
        self.retry = RetryPolicy.with_attempts(self.retry_attempts)
        self._client: ProcessLocal[oss2.Bucket] = ProcessLocal(self._make_client)
        # Reads are CRC-checked by _CrcCheckedReader (which also covers resumed ranges), so oss2
        # need not hash them a second time.
        self._read_client: ProcessLocal[oss2.Bucket] = ProcessLocal(lambda: self._make_client(enable_crc=False))
        self._backend = _OSSBackend(self)
        self.engine = MultipartEngine(
            self._backend,
            settings=self,
            copy_chunk_size=COPY_CHUNK,
            before_part=lambda key, number: self._race_point("part.upload", "/" + key, number),
        )

    # ------------------------------------------------------------------ client

    @property
    def client(self) -> oss2.Bucket:
        """The oss2 Bucket of this process (created on first use; recreated after ``fork``)."""
        return self._client.get()

    def _make_client(self, *, enable_crc: bool = True) -> oss2.Bucket:
        accesskeyid, accesskeysecret = self._credentials
        # Parallel parts of concurrent transfers share the pool: more connections than parts.
        session = oss2.Session(pool_size=max(10, 2 * self.concurrency))
        if self._skipverify:
            # requests lets REQUESTS_CA_BUNDLE override session.verify unless trust_env is off.
            session.session.trust_env = False
            session.session.proxies.update(requests.utils.get_environ_proxies(self.endpoint))
            session.session.verify = False
        return oss2.Bucket(
            oss2.Auth(accesskeyid, accesskeysecret),
            self.endpoint,
            self.bucket,
            session=session,
            connect_timeout=(10, 120),  # oss2 hands this to requests: (connect, read) seconds
            app_name="blobdrivers",
            enable_crc=enable_crc,
        )

    def _hidden_prefix(self) -> str:
        return paths.dir_key(self._root or paths.ROOT) + "~blobdrivers/"

    def call(self, fn: Callable[[], T], what: str, *, idempotent: bool = True) -> T:
        """Run one oss2 request under the retry policy.

        ``idempotent=False`` retries only failures that never reached the server.
        """
        return self.retry.call(fn, is_transient=_is_transient if idempotent else _never_sent, what=what)

    # ------------------------------------------------------------------ hooks

    def _put(self, full: str, source: Source, conditions: Conditions) -> None:
        _refuse_if_match(conditions)
        self.engine.put(paths.to_key(full), source, conditions)

    def _open(self, full: str, offset: int, length: int | None) -> tuple[RangeReader, int | None]:
        key = paths.to_key(full)
        if length == 0:
            if self._backend.head_object(key) is None:
                raise PathNotFoundError(f"no file at {full}")
            return io.BytesIO(b""), 0
        end = None if length is None else offset + length
        try:
            first = self.call(lambda: self._ranged_get(key, offset, end, None), f"GET {full}")
        except OssError as exc:
            if _status(exc) == 416 or _code(exc) == "InvalidRange":
                # Offsets at or past the end read as empty, once the file is known to exist.
                if self._backend.head_object(key) is None:
                    raise PathNotFoundError(f"no file at {full}") from exc
                return io.BytesIO(b""), 0
            raise
        etag = first.etag

        def reopen(start: int, count: int | None) -> RangeReader:
            return self._ranged_get(key, start, None if count is None else start + count, etag, reopening=True)

        reader: RangeReader = ReopeningReader(
            reopen, offset, first.count, retry=self.retry, is_transient=_is_body_error, first=first
        )
        if offset == 0 and length is None and first.crc is not None:
            # A whole-object read: verify it against the CRC-64 OSS keeps for the object.
            reader = _CrcCheckedReader(reader, key, first.crc, first.count)
        return reader, first.count

    def _ranged_get(self, key: str, start: int, end: int | None, etag: str | None, *, reopening: bool = False) -> _Body:
        """GET bytes ``[start, end)`` (``end=None``: to the end), pinned to ``etag`` when given.

        Always asks for standard Range behaviour, so a range OSS cannot satisfy is a
        416 rather than the whole object.
        """
        headers = dict(_STANDARD_RANGE)
        if etag is not None:
            headers["If-Match"] = _quote(etag)
        byte_range = None if start == 0 and end is None else (start, None if end is None else end - 1)
        try:
            result = self._read_client.get().get_object(key, byte_range=byte_range, headers=headers)
        except OssError as exc:
            if reopening and _is_precondition(exc):
                raise StorageError(f"/{key} was replaced while it was being read") from exc
            raise
        if byte_range is not None and result.status != 206:
            # Never splice a whole object into a range read (see the module docstring).
            result.close()
            raise StorageError(f"OSS answered a ranged read of /{key} with HTTP {result.status}, not 206")
        return _Body(result, key)

    def _writer(self, full: str, append: bool) -> WriterBackend:
        return self.engine.writer(paths.to_key(full), append)

    def _stat(self, full: str) -> FileInfo:
        if full != paths.ROOT:
            key = paths.to_key(full)
            try:
                head = self.call(lambda: self.client.head_object(key), f"HEAD {full}")
            except OssError as exc:
                if not _is_not_found(exc):
                    raise
            else:
                return FileInfo(full, int(head.content_length or 0), _timestamp(head.last_modified), etag=head.etag)
        first = self._first_valid_below(paths.dir_key(full))
        if first is None:
            raise PathNotFoundError(f"nothing at {full}")
        return FileInfo(full, 0, _timestamp(first.last_modified), is_dir=True)

    def _first_valid_below(self, prefix: str) -> Any:
        """The first object below ``prefix`` whose key is a valid path: one request when that is the first key."""

        def pages() -> Iterator[list[tuple[str, Any]]]:
            page = self.call(lambda: self.client.list_objects_v2(prefix=prefix, max_keys=1), f"LIST /{prefix}")
            yield [(item.key, item) for item in page.object_list]
            if page.object_list and page.is_truncated:
                # The first key is foreign or bookkeeping: scan on after it.
                for rest in self._pages(prefix, start_after=page.object_list[0].key):
                    yield [(item.key, item) for item in rest.object_list]

        return first_valid(pages())

    def _list(self, full: str) -> Iterator[str]:
        names: list[str] = []
        for page in self._pages(paths.dir_key(full), delimiter="/"):
            names += list(page.prefix_list) + [item.key for item in page.object_list]
        holds_valid = lambda prefix: self._first_valid_below(prefix) is not None  # noqa: E731
        return iter(visible_children(names, holds_valid, self.concurrency))

    def _pages(self, prefix: str, delimiter: str = "", start_after: str = "") -> Iterator[Any]:
        """Every page of a v2 listing of ``prefix``, each page fetched under the retry policy."""
        token = ""
        while True:
            page = self.call(
                functools.partial(
                    self.client.list_objects_v2,
                    prefix=prefix,
                    delimiter=delimiter,
                    continuation_token=token,
                    start_after=start_after,
                    max_keys=LIST_PAGE,
                ),
                f"LIST /{prefix}",
            )
            yield page
            if not page.is_truncated or not page.next_continuation_token:
                return
            token = page.next_continuation_token

    def _walk(self, full: str) -> Iterator[FileInfo]:
        return walk_flat(self._files_below(full), full)

    def _files_below(self, full: str) -> Iterator[FileInfo]:
        """Every valid file below ``full`` from one flat, paginated listing (key order is walk order)."""
        for page in self._pages(paths.dir_key(full)):
            for item in page.object_list:
                path = paths.from_key(item.key)
                if path is None:
                    continue  # hidden bookkeeping or a name outside the path rule: no file, no directory
                yield FileInfo(path, int(item.size), _timestamp(item.last_modified), etag=item.etag)

    def _move(self, src: str, dst: str, conditions: Conditions) -> None:
        _refuse_if_match(conditions)
        src_key, dst_key = paths.to_key(src), paths.to_key(dst)
        info = self._backend.head_object(src_key)
        if info is None:
            raise PathNotFoundError(f"no file at {src}")
        if info.size <= MOVE_COPY_THRESHOLD:
            self._backend.copy_object(src_key, dst_key, conditions, source_etag=info.etag)
        else:
            self.engine.copy(src_key, dst_key, info, conditions)
        self._race_point("move.copied", src)
        # OSS has no conditional DeleteObject: check the source is still the copied version right
        # before deleting it, so a put landing after the copy stays ("move, then put"). A put in the
        # one round trip between this check and the delete is still lost (see docs/drivers/oss.md).
        current = self._backend.head_object(src_key)
        if current is None or current.etag != info.etag:
            log.debug("oss: move left %s alone: it changed after the copy", src_key)
            return
        self._backend.delete_key(src_key)

    def _delete(self, full: str) -> None:
        if not self.engine.delete(paths.to_key(full), paths.dir_key(full)):
            raise PathNotFoundError(f"nothing at {full}")

    def _cat(self, full: str, sources: list[str]) -> None:
        self.engine.cat(paths.to_key(full), [paths.to_key(source) for source in sources])

    def _url_for(self, full: str, method: str, expires_in: int) -> str:
        # A signed PUT must be sent with exactly this Content-Type (it is part of the
        # signature); without it some clients (urllib) send a form content type.
        headers = {"Content-Type": "application/octet-stream"} if method == "PUT" else None
        url: str = self.client.sign_url(method, paths.to_key(full), expires_in, headers=headers, slash_safe=True)
        return url

    def redact(self, text: str) -> str:
        """``text`` without secrets: the base driver's masking, then the signatures and key ids OSS echoes."""
        return _REDACTOR.redact(super().redact(text))

    def _translate_error(self, exc: Exception, path: str) -> StorageError | None:
        if isinstance(exc, RequestError):
            # The wrapped requests error may quote URLs; its type says enough and leaks nothing.
            cause = getattr(exc, "exception", None)
            return StorageError(f"request for {path} failed: {type(cause or exc).__name__}")
        if isinstance(exc, InconsistentError):
            return StorageError(f"CRC-64 mismatch between client and OSS for {path} (InconsistentError)")
        if isinstance(exc, OssClientError):
            return StorageError(f"oss2 refused the request for {path} (ClientError)")
        if isinstance(exc, OssError):
            # The base driver masked the access key id and signature OSS echoes in ``exc``
            # (its details and body), which stays the cause; see redact().
            code, status = _code(exc) or "unknown", _status(exc)
            if _is_not_found(exc):
                return PathNotFoundError(f"no file at {path}")
            if _is_precondition(exc):
                return PreconditionFailedError(f"the condition on {path} does not hold ({code})")
            if _is_file_exists(exc):
                return PreconditionFailedError(f"{path} already exists ({code})")
            if code == "NoSuchBucket":
                return StorageError(f"bucket {self.bucket!r} does not exist ({code})")
            if code == "NoSuchUpload":
                return StorageError(f"the multipart upload of {path} no longer exists ({code})")
            if status == 403:
                return StorageError(f"access to {path} denied: {code} (HTTP 403); check the credentials")
            return StorageError(f"request for {path} failed: {code} (HTTP {status})")
        if isinstance(exc, _BODY_ERRORS):
            return StorageError(f"request for {path} failed: {type(exc).__name__}")
        return None


def _refuse_if_match(conditions: Conditions) -> None:
    if conditions.if_match is not None:
        raise UnsupportedMethodError(
            "OSS has no conditional write on an etag (only x-oss-forbid-overwrite, i.e. if_none_match='*'); "
            "if_match is not emulated because a check-then-write would race"
        )


# --------------------------------------------------------------------------- the multipart backend


class _OSSBackend:
    """The oss2 calls behind :class:`~blobdrivers.multipart.MultipartEngine`."""

    min_part_size = MIN_PART
    max_part_size = MAX_PART
    max_parts = MAX_PARTS
    copy_part_max = MAX_COPY
    delete_batch_size = DELETE_BATCH
    #: How many uploads' part CRCs are remembered (for oss2's check at completion).
    tracked_uploads = 256

    def __init__(self, driver: OSSDriver) -> None:
        self._driver = driver
        self.bucket = driver.bucket
        self.hidden_prefix = driver._hidden_prefix()
        self._crc_lock = threading.Lock()
        #: upload id -> part number -> (etag, size, crc) of parts this instance uploaded or copied.
        self._part_crcs: collections.OrderedDict[str, dict[int, tuple[str, int, int]]] = collections.OrderedDict()

    @property
    def _client(self) -> oss2.Bucket:
        return self._driver.client

    def _call(self, fn: Callable[[], T], what: str, *, idempotent: bool = True) -> T:
        return self._driver.call(fn, what, idempotent=idempotent)

    @staticmethod
    def _condition_headers(conditions: Conditions) -> dict[str, str]:
        _refuse_if_match(conditions)
        return dict(_FORBID_OVERWRITE) if conditions.if_none_match else {}

    # ------------------------------------------------------------------ objects

    def put_object(self, key: str, data: memoryview, conditions: Conditions) -> None:
        headers = {
            "Content-Type": "application/octet-stream",
            # OSS refuses a body whose MD5 differs, so a corrupted upload is never published.
            "Content-MD5": base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode("ascii"),
            **self._driver.create_headers,
            **self._condition_headers(conditions),
        }
        try:
            self._call(
                lambda: self._client.put_object(key, ViewFile(data), headers=headers),
                f"PUT /{key}",
                idempotent=not conditions,
            )
        except OssError as exc:
            if _is_file_exists(exc):
                raise PreconditionFailedError(f"/{key} already exists") from exc
            raise

    def copy_object(self, source_key: str, key: str, conditions: Conditions, *, source_etag: str | None) -> None:
        headers = {
            "x-oss-metadata-directive": "COPY",
            **self._driver.create_headers,
            **self._condition_headers(conditions),
        }
        if source_etag is not None:
            headers["x-oss-copy-source-if-match"] = _quote(source_etag)
        try:
            self._call(
                lambda: self._client.copy_object(self.bucket, source_key, key, headers=headers),
                f"COPY /{source_key}",
                idempotent=not conditions,
            )
        except OssError as exc:
            if _is_file_exists(exc):
                raise PreconditionFailedError(f"/{key} already exists") from exc
            if source_etag is not None and _is_precondition(exc):
                raise StorageError(f"/{source_key} changed during the copy") from exc
            raise

    def head_object(self, key: str) -> ObjectInfo | None:
        try:
            head = self._call(lambda: self._client.head_object(key), f"HEAD /{key}")
        except OssError as exc:
            if _is_not_found(exc):
                return None
            raise
        return ObjectInfo(int(head.content_length or 0), head.etag)

    def read_range(self, key: str, offset: int, buffer: memoryview, *, etag: str | None) -> None:
        if not buffer:
            return

        def fetch() -> None:
            try:
                body = self._driver._ranged_get(key, offset, offset + len(buffer), etag)
            except OssError as exc:
                if etag is not None and _is_precondition(exc):
                    raise StorageError(f"/{key} changed while it was being read") from exc
                raise
            try:
                filled = 0
                while filled < len(buffer):
                    filled += body.readinto(buffer[filled:])
            finally:
                body.close()

        self._call(fetch, f"ranged GET /{key}")

    def list_keys(self, prefix: str) -> Iterator[str]:
        for page in self._driver._pages(prefix):
            for item in page.object_list:
                yield str(item.key)

    def delete_key(self, key: str) -> None:
        """Delete one object (a missing one is not an error, as on OSS)."""
        self._call(lambda: self._client.delete_object(key), f"DELETE /{key}")

    def delete_objects(self, keys: Sequence[str]) -> None:
        self._call(functools.partial(self._client.batch_delete_objects, list(keys)), f"DELETE {len(keys)} keys")

    # ------------------------------------------------------------------ multipart

    def create_upload(self, key: str) -> NewUpload:
        headers = {"Content-Type": "application/octet-stream", **self._driver.create_headers}
        attempts = 0

        def initiate() -> Any:
            nonlocal attempts
            attempts += 1
            return self._client.init_multipart_upload(key, headers=headers)

        # Retried like an idempotent request: the engine aborts what a lost answer orphaned.
        result = self._call(initiate, f"initiate upload /{key}")
        upload_id = str(result.upload_id)
        with self._crc_lock:
            self._part_crcs[upload_id] = {}
            while len(self._part_crcs) > self.tracked_uploads:
                self._part_crcs.popitem(last=False)
        return NewUpload(upload_id, retried=attempts > 1)

    def upload_part(self, key: str, upload_id: str, number: int, data: memoryview) -> str:
        # Re-sending a part under its number replaces it: safe to retry. oss2 checks its CRC-64.
        result = self._call(
            lambda: self._client.upload_part(key, upload_id, number, ViewFile(data)),
            f"upload part {number} of /{key}",
        )
        etag = str(result.etag)
        self._remember(upload_id, number, etag, len(data), result.crc)
        return etag

    def copy_part(self, key: str, upload_id: str, number: int, source: CopySource) -> str:
        source_key, byte_range, source_etag = source.key, source.byte_range, source.etag
        headers = {"x-oss-copy-source-if-match": _quote(source_etag)} if source_etag is not None else None
        oss_range = None if byte_range is None else (byte_range[0], byte_range[1] - 1)
        try:
            result = self._call(
                lambda: self._client.upload_part_copy(
                    self.bucket, source_key, oss_range, key, upload_id, number, headers=headers
                ),
                f"copy part {number} of /{key}",
            )
        except OssError as exc:
            if source_etag is not None and _is_precondition(exc):
                raise StorageError(f"/{source_key} changed during the copy") from exc
            raise
        etag = str(result.etag)
        if byte_range is not None:
            self._remember(upload_id, number, etag, byte_range[1] - byte_range[0], result.crc)
        return etag

    def complete(self, key: str, upload_id: str, parts: Sequence[tuple[int, str]], conditions: Conditions) -> None:
        headers = self._condition_headers(conditions)
        part_infos = self._part_infos(upload_id, parts)
        attempts = 0

        def send() -> None:
            nonlocal attempts
            attempts += 1
            try:
                self._client.complete_multipart_upload(key, upload_id, part_infos, headers=headers or None)
            except OssError as exc:
                # A retry after a lost answer finds the upload gone (or, with forbid-overwrite,
                # the object there): it succeeded if the object is exactly these parts.
                if attempts > 1 and (_is_no_such_upload(exc) or _is_file_exists(exc)) and self._is_result(key, parts):
                    return
                raise

        try:
            self._call(send, f"complete upload /{key}")
        except OssError as exc:
            if _is_file_exists(exc):
                raise PreconditionFailedError(f"/{key} already exists") from exc
            raise
        self._forget(upload_id)

    def abort(self, key: str, upload_id: str) -> None:
        try:
            self._call(lambda: self._client.abort_multipart_upload(key, upload_id), f"abort upload /{key}")
        except OssError as exc:
            if not _is_no_such_upload(exc):
                raise
        self._forget(upload_id)

    def _uploads(self, prefix: str) -> Iterator[Any]:
        """Every upload in progress for a key starting with ``prefix``, page by page."""
        key_marker = upload_id_marker = ""
        while True:
            page = self._call(
                functools.partial(
                    self._client.list_multipart_uploads,
                    prefix=prefix,
                    key_marker=key_marker,
                    upload_id_marker=upload_id_marker,
                    max_uploads=1000,
                ),
                f"list uploads /{prefix}",
            )
            yield from page.upload_list
            if not page.is_truncated:
                return
            key_marker, upload_id_marker = page.next_key_marker, page.next_upload_id_marker

    def list_uploads(self, key: str) -> list[UploadInfo]:
        # Initiation times are whole seconds: listing order breaks ties (oldest first).
        found = [
            (int(upload.initiation_date or 0), index, str(upload.upload_id))
            for index, upload in enumerate(self._uploads(key))
            if upload.key == key
        ]
        return [UploadInfo(upload_id, float(initiated)) for initiated, _, upload_id in sorted(found)]

    def uploads_below(self, prefix: str) -> list[tuple[str, str]]:
        return [(str(upload.key), str(upload.upload_id)) for upload in self._uploads(prefix)]

    def list_parts(self, key: str, upload_id: str) -> list[PartInfo]:
        parts: list[PartInfo] = []
        marker = ""
        while True:
            page = self._call(
                functools.partial(self._client.list_parts, key, upload_id, marker=marker, max_parts=1000),
                f"list parts /{key}",
            )
            parts.extend(PartInfo(int(part.part_number), str(part.etag), int(part.size)) for part in page.parts)
            if not page.is_truncated or not page.next_marker:
                break
            marker = page.next_marker
        return sorted(parts, key=lambda part: part.number)

    # ------------------------------------------------------------------ CRC bookkeeping

    def _remember(self, upload_id: str, number: int, etag: str, size: int, crc: int | None) -> None:
        with self._crc_lock:
            known = self._part_crcs.get(upload_id)
            if known is not None:
                if crc is None:
                    known.pop(number, None)
                else:
                    known[number] = (etag, size, crc)

    def _forget(self, upload_id: str) -> None:
        with self._crc_lock:
            self._part_crcs.pop(upload_id, None)

    def _part_infos(self, upload_id: str, parts: Sequence[tuple[int, str]]) -> list[OssPartInfo]:
        """oss2 part list; with every part's size and CRC-64 when this instance knows them all.

        oss2 then checks the CRC-64 of the completed object against the combination of
        the parts' CRCs. A part whose etag differs from the one recorded was replaced
        elsewhere (another process resumed the upload), so the check is skipped then.
        """
        with self._crc_lock:
            known = dict(self._part_crcs.get(upload_id) or {})
        infos: list[OssPartInfo] = []
        complete_knowledge = True
        for number, etag in parts:
            record = known.get(number)
            if record is None or record[0].strip('"').upper() != etag.strip('"').upper():
                complete_knowledge = False
                break
        for number, etag in parts:
            if complete_knowledge:
                _, size, crc = known[number]
                infos.append(OssPartInfo(number, etag.strip('"'), size=size, part_crc=crc))
            else:
                infos.append(OssPartInfo(number, etag.strip('"')))
        return infos

    def _is_result(self, key: str, parts: Sequence[tuple[int, str]]) -> bool:
        """Whether ``key`` now holds the completion of exactly ``parts`` (multipart etag: MD5 of part MD5s)."""
        etags = [etag.strip('"') for _, etag in parts]
        if not all(_HEX_MD5.fullmatch(etag) for etag in etags):
            return False
        digest = hashlib.md5(b"".join(bytes.fromhex(etag) for etag in etags), usedforsecurity=False).hexdigest()
        info = self.head_object(key)
        return info is not None and (info.etag or "").upper() == f"{digest.upper()}-{len(etags)}"


# --------------------------------------------------------------------------- streams


class _Body:
    """One GET response body as a RangeReader; a body that ends early raises (so it is reopened)."""

    def __init__(self, result: Any, key: str) -> None:
        self._result = result
        self._raw = result.resp.response.raw
        self._key = key
        self.count = int(result.content_length or 0)
        self.etag: str | None = result.etag
        self.crc: int | None = result.server_crc
        self._remaining = self.count

    def readinto(self, buffer: memoryview) -> int:
        want = min(len(buffer), self._remaining, READ_BLOCK)
        if want <= 0:
            return 0
        data = self._raw.read(want)
        if not data:
            raise ConnectionResetError(f"the body of /{self._key} ended {self._remaining} bytes early")
        buffer[: len(data)] = data
        self._remaining -= len(data)
        return len(data)

    def close(self) -> None:
        try:
            self._result.close()
        except Exception as exc:  # a broken connection may fail to close; it is discarded anyway
            log.debug("closing a response body failed: %s", type(exc).__name__)


# OSS's CRC-64 (ECMA-182, reflected), as oss2.utils.Crc64 defines it. Built once: building a
# crcmod function costs about as much as a small GET.
_CRC64 = crcmod.Crc(0x142F0E1EBA9EA3693, initCrc=0, rev=True, xorOut=0xFFFFFFFFFFFFFFFF)


class _CrcCheckedReader:
    """Verifies a whole-object read against the object's CRC-64 once its last byte is delivered."""

    def __init__(self, inner: RangeReader, key: str, expected: int, size: int) -> None:
        self._inner = inner
        self._key = key
        self._expected = expected
        self._size = size
        self._seen = 0
        self._crc = _CRC64.new()

    def readinto(self, buffer: memoryview) -> int:
        got = self._inner.readinto(buffer)
        if got:
            self._crc.update(buffer[:got])
            self._seen += got
            if self._seen == self._size and self._crc.crcValue != self._expected:
                raise StorageError(f"CRC-64 mismatch reading /{self._key}: the data was corrupted in transit")
        return got

    def close(self) -> None:
        self._inner.close()


# --------------------------------------------------------------------------- parameters


def _endpoint(endpoint: str | None, region: str | None, internal: bool, secure: bool, driver: str) -> str:
    """The endpoint URL: ``endpoint`` as given (scheme from ``secure`` when absent), else from ``region``."""
    scheme = "https" if secure else "http"
    if endpoint is not None:
        candidate = endpoint if "://" in endpoint else f"{scheme}://{endpoint}"
        parts = urlsplit(candidate)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
            raise ConfigError(
                f"invalid value {endpoint!r} for parameter 'endpoint': a host or http(s) URL such as "
                "oss-cn-hangzhou.aliyuncs.com",
                driver=driver,
            )
        return candidate.rstrip("/")
    if region is None:
        raise ConfigError("parameter 'region' or 'endpoint' is required", driver=driver)
    name = region.strip().lower()
    if not _REGION.fullmatch(name):
        raise ConfigError(
            f"invalid value {region!r} for parameter 'region': a region such as oss-cn-hangzhou", driver=driver
        )
    if not name.startswith("oss-"):
        name = "oss-" + name
    return f"{scheme}://{name}{'-internal' if internal else ''}.aliyuncs.com"
