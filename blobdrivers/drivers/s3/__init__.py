"""The S3 driver (``s3``, alias ``s3aws``) on boto3: AWS S3 and compatible stores (MinIO, Ceph RGW, R2).

Parameters keep the names of distribution's S3 driver, so an existing registry
configuration works unchanged; see ``docs/drivers/s3.md`` for each one. This module
is the driver's map: how each operation meets the service. Uploads, resumable
writers, ``cat`` and large moves run on the shared multipart engine
(:mod:`blobdrivers.multipart`) over the boto3 calls of :mod:`.backend`; the client
and its parameters are in :mod:`.client`, reads in :mod:`.reader`, the
classification and translation of S3 errors in :mod:`.errors`.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from ... import paths
from ...capabilities import Capability
from ...clients import ProcessLocal
from ...conditions import Conditions
from ...driver import StorageDriver
from ...errors import PathNotFoundError, StorageError
from ...listing import FileInfo, first_valid, visible_children, walk_flat
from ...multipart import MultipartEngine
from ...params import MiB, Params, check_bucket_name
from ...reader import RangeReader
from ...retry import RetryPolicy
from ...transfer import Source
from ...writer import WriterBackend
from .backend import MAX_COPY, MAX_PART, MIN_PART, S3Backend, aware
from .client import Connection, read_retries
from .errors import bucket_missing, code, is_not_found, is_precondition, is_stream_error, status, translate
from .reader import quote, ranged_get, reopening, unquote

log = logging.getLogger("blobdrivers.s3")

STORAGE_CLASSES = (
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "GLACIER_IR",
    "DEEP_ARCHIVE",
    "OUTPOSTS",
    "EXPRESS_ONEZONE",
    "NONE",
)
OBJECT_ACLS = (
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
    "log-delivery-write",
    "none",
)


class S3Driver(StorageDriver):
    """Objects in an S3 bucket; parameters as distribution's S3 driver (see ``docs/drivers/s3.md``)."""

    name = "s3"
    url_schemes = ("s3",)
    url_host_param = "bucket"
    declared_capabilities = frozenset(Capability)
    #: S3 keys are at most 1,024 bytes of UTF-8; parked writer state and other bookkeeping keys need at most
    #: 160 bytes below the root (``~blobdrivers/uploads/<hashes>/tail-NNNNN`` and the like).
    max_key_bytes = 1024
    bookkeeping_key_bytes = 160
    secret_params = frozenset({"accesskey", "secretkey", "sessiontoken"})
    #: SigV4 presigned URLs last at most seven days.
    max_url_expiry = 7 * 24 * 3600

    def __init__(self, **params: Any) -> None:
        reader = Params(self.name, params, secrets=self.secret_params)
        self.bucket = reader.required_string("bucket")
        rootdirectory = reader.string("rootdirectory", "") or ""
        chunk_size = reader.size("chunksize", 10 * MiB, minimum=MIN_PART, maximum=MAX_PART)
        self.copy_chunk_size = reader.size("multipartcopychunksize", 32 * MiB, minimum=MIN_PART, maximum=MAX_COPY)
        self.copy_threshold = reader.size("multipartcopythresholdsize", 32 * MiB, minimum=0, maximum=MAX_COPY)
        self.concurrency = reader.integer("maxconcurrency", 8, minimum=1, maximum=1000)
        self.storage_class = reader.choice(
            "storageclass", "STANDARD", {value.lower(): value for value in STORAGE_CLASSES}
        )
        encrypt = reader.boolean("encrypt", False)
        keyid = reader.string("keyid")
        self.object_acl = reader.choice("objectacl", "private", {value: value for value in OBJECT_ACLS})
        # CRC32 of every part and single put, checked by the service: S3 then stores composite part
        # checksums instead of hashing the whole object at completion. "none" for stores that reject them.
        self.checksums = reader.choice("checksum", True, {"crc32": True, "none": False})
        #: Region, endpoint, TLS and credentials.
        self.connection = Connection.read(reader, driver=self.name)
        #: botocore's retry mode and the attempts of every request, the first included (``retries``).
        self.retry_mode, self.retry_attempts = read_retries(reader, params, driver=self.name)
        reader.done()

        # Only names no S3-compatible service takes: the server judges the rest (errors.py says AWS's rule).
        check_bucket_name(self.bucket, driver=self.name, service="S3-compatible")
        if keyid is not None and not encrypt:
            # distribution's s3 docs: keyid "is ignored if encrypt is not true".
            log.warning("storage driver 's3': parameter 'keyid' is ignored: 'encrypt' is not true")
            keyid = None

        super().__init__(params, rootdirectory=rootdirectory, chunk_size=chunk_size)
        #: Extra arguments of every request that creates an object.
        self.write_args: dict[str, str] = {}
        if self.storage_class != "NONE":
            self.write_args["StorageClass"] = self.storage_class
        if encrypt:
            self.write_args["ServerSideEncryption"] = "aws:kms" if keyid else "AES256"
            if keyid:
                self.write_args["SSEKMSKeyId"] = keyid
        # "private" is every object's default ACL: sending it only breaks buckets with ACLs disabled.
        if self.object_acl not in ("private", "none"):
            self.write_args["ACL"] = self.object_acl
        #: The one retry policy: reopening cut bodies, re-reading a cut GET (attempts as botocore's).
        self.retry = RetryPolicy.with_attempts(self.retry_attempts)
        self._client: ProcessLocal[Any] = ProcessLocal(self._make_client)
        self._backend = S3Backend(self)
        self.engine = MultipartEngine(
            self._backend,
            settings=self,
            copy_chunk_size=self.copy_chunk_size,
            before_part=lambda key, number: self._race_point("part.upload", "/" + key, number),
        )

    # ------------------------------------------------------------------ client

    @property
    def endpoint(self) -> str | None:
        """The endpoint URL (``regionendpoint``), or ``None`` for AWS itself."""
        return self.connection.endpoint

    @property
    def region(self) -> str | None:
        """The region, when one was given."""
        return self.connection.region

    @property
    def client(self) -> Any:
        """The boto3 S3 client of this process (created on first use; recreated after ``fork``)."""
        return self._client.get()

    def _make_client(self) -> Any:
        # Parallel parts of concurrent transfers share the pool; more connections than parts.
        pool_size = max(10, 2 * self.concurrency)
        return self.connection.client(pool_size=pool_size, retry_mode=self.retry_mode, attempts=self.retry_attempts)

    def _hidden_prefix(self) -> str:
        return f"{paths.dir_key(self._root or paths.ROOT)}{self.bookkeeping_dir}/"

    # ------------------------------------------------------------------ hooks

    def _put(self, full: str, source: Source, conditions: Conditions) -> None:
        self.engine.put(paths.to_key(full), source, conditions)

    def _get(self, full: str) -> bytes:
        key = paths.to_key(full)

        def fetch() -> bytes:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            body = response["Body"]
            try:
                data: bytes = body.read()
            finally:
                body.close()
            return data

        # A cut body is read again whole: reopening at the offset would cost a copy of the object.
        return self.retry.call(fetch, is_transient=is_stream_error, what=f"GET {full}")

    def _open(self, full: str, offset: int, length: int | None) -> tuple[RangeReader, int | None]:
        key = paths.to_key(full)
        if length == 0:
            if self._backend.head_object(key) is None:
                raise self._not_found(f"no file at {full}")
            return io.BytesIO(b""), 0
        end = None if length is None else offset + length
        try:
            body, count, etag = ranged_get(self, key, offset, end, None)
        except ClientError as exc:
            if code(exc) == "InvalidRange" or status(exc) == 416:
                # Offsets at or past the end read as empty, once the file is known to exist.
                if self._backend.head_object(key) is None:
                    raise self._not_found(f"no file at {full}") from exc
                return io.BytesIO(b""), 0
            raise
        return reopening(self, key, offset, count, etag, first=body), count

    def _writer(self, full: str, append: bool) -> WriterBackend:
        return self.engine.writer(paths.to_key(full), append)

    def _stat(self, full: str) -> FileInfo:
        if full != paths.ROOT:
            try:
                response = self.client.head_object(Bucket=self.bucket, Key=paths.to_key(full))
            except ClientError as exc:
                if not is_not_found(exc):
                    raise
            else:
                return FileInfo(
                    full,
                    int(response["ContentLength"]),
                    aware(response["LastModified"]),
                    etag=unquote(response.get("ETag")),
                )
        first = self._first_valid_below(paths.dir_key(full))
        if first is None:
            raise PathNotFoundError(f"nothing at {full}")
        return FileInfo(full, 0, aware(first["LastModified"]), is_dir=True)

    def _first_valid_below(self, prefix: str) -> dict[str, Any] | None:
        """The first object below ``prefix`` whose key is a valid path: one request when that is the first key."""

        def pages() -> Iterator[list[tuple[str, dict[str, Any]]]]:
            response = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1)
            contents = response.get("Contents") or []
            yield [(item["Key"], item) for item in contents]
            if contents and response.get("IsTruncated"):
                # The first key is foreign or bookkeeping: scan on after it.
                paginator = self.client.get_paginator("list_objects_v2")
                for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, StartAfter=contents[0]["Key"]):
                    yield [(item["Key"], item) for item in page.get("Contents") or []]

        return first_valid(pages())

    def _list(self, full: str) -> Iterator[str]:
        names: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=paths.dir_key(full), Delimiter="/"):
            names += [common["Prefix"] for common in page.get("CommonPrefixes") or []]
            names += [item["Key"] for item in page.get("Contents") or []]
        holds_valid = lambda prefix: self._first_valid_below(prefix) is not None  # noqa: E731
        return iter(visible_children(names, holds_valid, self.concurrency))

    def _walk(self, full: str) -> Iterator[FileInfo]:
        return walk_flat(self._files_below(full), full)

    def _files_below(self, full: str) -> Iterator[FileInfo]:
        """Every valid file below ``full`` from one flat, paginated listing (key order is walk order)."""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=paths.dir_key(full)):
            for item in page.get("Contents") or []:
                path = paths.from_key(item["Key"])
                if path is None:
                    continue  # hidden bookkeeping or a name outside the path rule: no file, no directory
                yield FileInfo(path, int(item["Size"]), aware(item["LastModified"]), etag=unquote(item.get("ETag")))

    def _move(self, src: str, dst: str, conditions: Conditions) -> None:
        src_key, dst_key = paths.to_key(src), paths.to_key(dst)
        info = self._backend.head_object(src_key)
        if info is None:
            raise self._not_found(f"no file at {src}")
        if not conditions and info.size <= self.copy_threshold:
            self._backend.copy_object(src_key, dst_key, conditions, source_etag=info.etag)
        else:
            # Conditional moves complete a multipart copy: conditions on CompleteMultipartUpload
            # are honoured by more S3 implementations than conditions on CopyObject.
            self.engine.copy(src_key, dst_key, info, conditions)
        self._race_point("move.copied", src)
        # Only the version that was copied: a put landing after the copy stays ("move, then put").
        pinned = {"IfMatch": quote(info.etag)} if info.etag else {}
        try:
            self.client.delete_object(Bucket=self.bucket, Key=src_key, **pinned)
        except ClientError as exc:
            if not (is_precondition(exc) or is_not_found(exc) or code(exc) == "ConditionalRequestConflict"):
                raise
            log.debug("s3: move left %s alone: it changed after the copy (%s)", src_key, code(exc))

    def _delete(self, full: str) -> None:
        if not self.engine.delete(paths.to_key(full), paths.dir_key(full)):
            raise PathNotFoundError(f"nothing at {full}")

    def _cat(self, full: str, sources: list[str]) -> None:
        try:
            self.engine.cat(paths.to_key(full), [paths.to_key(source) for source in sources])
        except PathNotFoundError as exc:
            error = self._bucket_checked(exc)
            if error is exc:
                raise
            raise error from exc

    def _url_for(self, full: str, method: str, expires_in: int) -> str:
        operation = {"GET": "get_object", "HEAD": "head_object", "PUT": "put_object"}[method]
        url: str = self.client.generate_presigned_url(
            operation,
            Params={"Bucket": self.bucket, "Key": paths.to_key(full)},
            ExpiresIn=expires_in,
            HttpMethod=method,
        )
        return url

    def _translate_error(self, exc: Exception, path: str) -> StorageError | None:
        return translate(exc, path, self.bucket, self.endpoint)

    # ------------------------------------------------------------------ a missing bucket

    def _not_found(self, message: str) -> StorageError:
        """PathNotFoundError(message) after a HEAD's 404, unless the bucket itself is missing."""
        return self._bucket_checked(PathNotFoundError(message))

    def _bucket_checked(self, error: PathNotFoundError) -> StorageError:
        """``error``, or BucketNotFoundError when the bucket is missing: a HEAD's 404 cannot tell them apart.

        Costs one HeadBucket, only on this error path.
        """
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:  # anything but "no such bucket" leaves the bucket's state unknown: error stands
            if isinstance(exc, ClientError) and (status(exc) == 404 or code(exc) == "NoSuchBucket"):
                return bucket_missing(self.bucket)
        return error
