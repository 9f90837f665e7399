"""The Aliyun OSS driver (``oss``) on oss2: how each operation meets the service.

Parameters keep the names of distribution's OSS driver, so an existing registry
configuration works unchanged; see ``docs/drivers/oss.md``. Uploads, resumable
writers, ``cat`` and large moves run on the shared multipart engine
(:mod:`blobdrivers.multipart`) over :mod:`.backend`; ``stream`` is :mod:`.reader`;
the oss2 client is built in :mod:`.client`; :mod:`.errors` says what a failure is.
Listing, stat, delete, moves and signed URLs are here.

Every request goes through the one :class:`RetryPolicy` (``retries`` attempts); oss2
retries nothing itself.
"""

from __future__ import annotations

import functools
import io
import logging
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import oss2

from ... import paths
from ...capabilities import Capability
from ...clients import ProcessLocal, tls_verify
from ...conditions import Conditions
from ...driver import StorageDriver
from ...errors import ConfigError, PathNotFoundError, StorageError
from ...listing import FileInfo, first_valid, visible_children, walk_flat
from ...multipart import MultipartEngine
from ...params import MiB, Params
from ...reader import RangeReader
from ...retry import RetryPolicy
from ...transfer import Source
from ...writer import WriterBackend
from .backend import MAX_PART, MIN_PART, OSSBackend
from .client import ENDPOINT_EXAMPLE, LOG_REDACTOR, make_bucket, paginate, region_endpoint
from .errors import is_invalid_range, is_not_found, is_transient, never_sent, translate
from .reader import open_stream

T = TypeVar("T")

log = logging.getLogger("blobdrivers.oss")

#: Moves of objects up to this size are one CopyObject; larger ones a parallel multipart copy.
MOVE_COPY_THRESHOLD = 256 * MiB
#: Part size of multipart copies (moves of large objects, appends to committed content).
COPY_CHUNK = 64 * MiB
#: Keys per listing page (the OSS maximum).
LIST_PAGE = 1000
#: Signed V1 URLs carry an absolute expiry; seven days matches OSS's V4 limit and S3's.
MAX_URL_EXPIRY = 7 * 24 * 3600

_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")


class OSSDriver(StorageDriver):
    """Objects in an Aliyun OSS bucket; parameters as distribution's OSS driver (see ``docs/drivers/oss.md``)."""

    name = "oss"
    url_schemes = ("oss",)
    url_host_param = "bucket"
    declared_capabilities = frozenset(Capability) - {Capability.IF_MATCH}
    capability_notes = {
        Capability.IF_MATCH: "OSS has no conditional write on an etag (only x-oss-forbid-overwrite: if_none_match), "
        "and a check-then-write would race"
    }
    #: OSS object names are at most 1,023 bytes of UTF-8; parked writer state and other bookkeeping keys need at most
    #: 160 bytes below the root (``~blobdrivers/uploads/<hashes>/tail-NNNNN`` and the like).
    max_key_bytes = 1023
    bookkeeping_key_bytes = 160
    secret_params = frozenset({"accesskeyid", "accesskeysecret"})
    max_url_expiry = MAX_URL_EXPIRY

    def __init__(self, **params: Any) -> None:
        settings = Params(self.name, params, secrets=self.secret_params)
        credentials = (settings.required_string("accesskeyid"), settings.required_string("accesskeysecret"))
        self.bucket = settings.required_string("bucket")
        scheme = "https" if settings.boolean("secure", True) else "http"
        endpoint = settings.endpoint("endpoint", default_scheme=scheme, example=ENDPOINT_EXAMPLE)
        region = settings.string("region")
        internal = settings.boolean("internal", False)
        encrypt = settings.boolean("encrypt", False)
        keyid = settings.string("encryptionkeyid")
        chunk_size = settings.size("chunksize", 10 * MiB, minimum=MIN_PART, maximum=MAX_PART)
        self.concurrency = settings.integer("maxconcurrency", 8, minimum=1, maximum=256)
        rootdirectory = settings.string("rootdirectory", "") or ""
        self.retry_attempts = settings.attempts()
        skipverify = settings.boolean("skipverify", False)
        settings.done()

        if not _BUCKET_NAME.fullmatch(self.bucket):
            raise ConfigError(
                f"bucket name {self.bucket!r} is invalid: OSS bucket names are 3-63 characters of lowercase letters, "
                "digits and hyphens, starting and ending with a letter or digit",
                driver=self.name,
            )
        if keyid is not None and not encrypt:
            # As distribution, whose oss driver sends the key only when encrypt is true.
            log.warning("storage driver 'oss': parameter 'encryptionkeyid' is ignored: 'encrypt' is not true")
            keyid = None
        self.endpoint = endpoint or region_endpoint(region, internal=internal, scheme=scheme, driver=self.name)
        verify = tls_verify(self.name, self.endpoint, skipverify=skipverify)

        super().__init__(params, rootdirectory=rootdirectory, chunk_size=chunk_size)
        #: Headers of every request that creates an object (not of parts: OSS takes them at initiation).
        self.create_headers: dict[str, str] = {}
        if encrypt:
            self.create_headers["x-oss-server-side-encryption"] = "KMS" if keyid else "AES256"
            if keyid:
                self.create_headers["x-oss-server-side-encryption-key-id"] = keyid
        self.retry = RetryPolicy.with_attempts(self.retry_attempts)
        # Parallel parts of concurrent transfers share the pool: more connections than parts.
        bucket = functools.partial(
            make_bucket, credentials, self.endpoint, self.bucket, verify=verify, pool_size=max(10, 2 * self.concurrency)
        )
        self._client: ProcessLocal[oss2.Bucket] = ProcessLocal(lambda: bucket(enable_crc=True))
        # Reads are CRC-checked by the reader (resumed ranges included): oss2 need not hash them again.
        self._read_client: ProcessLocal[oss2.Bucket] = ProcessLocal(lambda: bucket(enable_crc=False))
        self._backend = OSSBackend(self, root=self._root)
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

    def read_client(self) -> oss2.Bucket:
        """The oss2 Bucket of this process for reads (no CRC-64 of its own: the reader checks it)."""
        return self._read_client.get()

    def call(self, fn: Callable[[], T], what: str, *, idempotent: bool = True) -> T:
        """Run one oss2 request under the retry policy.

        ``idempotent=False`` retries only failures that never reached the server.
        """
        return self.retry.call(fn, is_transient=is_transient if idempotent else never_sent, what=what)

    def pages(self, prefix: str, delimiter: str = "", start_after: str = "") -> Iterator[Any]:
        """Every page of a v2 listing of ``prefix``, each page fetched under the retry policy."""

        def fetch(token: str) -> Any:
            list_page = functools.partial(
                self.client.list_objects_v2,
                prefix=prefix,
                delimiter=delimiter,
                continuation_token=token,
                start_after=start_after,
                max_keys=LIST_PAGE,
            )
            return self.call(list_page, f"LIST /{prefix}")

        return paginate(fetch, "", lambda page: (page.is_truncated and page.next_continuation_token) or None)

    # ------------------------------------------------------------------ hooks

    def _put(self, full: str, source: Source, conditions: Conditions) -> None:
        self.engine.put(paths.to_key(full), source, conditions)

    def _open(self, full: str, offset: int, length: int | None) -> tuple[RangeReader, int | None]:
        key = paths.to_key(full)
        if length != 0:
            try:
                return open_stream(self.read_client, key, offset, length, retry=self.retry, path=full)
            except oss2.exceptions.OssError as exc:
                if not is_invalid_range(exc):
                    raise
        # Nothing to read (an empty range, or an offset at or past the end): once the file is known to exist.
        if self._backend.head_object(key) is None:
            raise PathNotFoundError(f"no file at {full}")
        return io.BytesIO(b""), 0

    def _writer(self, full: str, append: bool) -> WriterBackend:
        return self.engine.writer(paths.to_key(full), append)

    def _stat(self, full: str) -> FileInfo:
        if full != paths.ROOT:
            key = paths.to_key(full)
            try:
                head = self.call(lambda: self.client.head_object(key), f"HEAD {full}")
            except oss2.exceptions.OssError as exc:
                if not is_not_found(exc):
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
                for rest in self.pages(prefix, start_after=page.object_list[0].key):
                    yield [(item.key, item) for item in rest.object_list]

        return first_valid(pages())

    def _list(self, full: str) -> Iterator[str]:
        names: list[str] = []
        for page in self.pages(paths.dir_key(full), delimiter="/"):
            names += list(page.prefix_list) + [item.key for item in page.object_list]
        holds_valid = lambda prefix: self._first_valid_below(prefix) is not None  # noqa: E731
        return iter(visible_children(names, holds_valid, self.concurrency))

    def _walk(self, full: str) -> Iterator[FileInfo]:
        return walk_flat(self._files_below(full), full)

    def _files_below(self, full: str) -> Iterator[FileInfo]:
        """Every valid file below ``full`` from one flat, paginated listing (key order is walk order)."""
        for page in self.pages(paths.dir_key(full)):
            for item in page.object_list:
                path = paths.from_key(item.key)
                if path is None:
                    continue  # hidden bookkeeping or a name outside the path rule: no file, no directory
                yield FileInfo(path, int(item.size), _timestamp(item.last_modified), etag=item.etag)

    def _move(self, src: str, dst: str, conditions: Conditions) -> None:
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
        return LOG_REDACTOR.redact(super().redact(text))

    def _translate_error(self, exc: Exception, path: str) -> StorageError | None:
        return translate(exc, path, self.bucket, self.endpoint)


def _timestamp(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value or 0), UTC)
