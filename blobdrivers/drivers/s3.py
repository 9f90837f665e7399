"""The S3 driver (``s3``, alias ``s3aws``) on boto3: AWS S3 and compatible stores (MinIO, Ceph RGW, R2).

Parameters keep the names of distribution's S3 driver, so an existing registry
configuration works unchanged; see ``docs/drivers/s3.md`` for each one. Uploads,
resumable writers, ``cat`` and large moves run on the shared multipart engine
(:mod:`blobdrivers.multipart`); this module holds the boto3 calls behind it and
the S3-specific parts: listing, stat, delete, presigned URLs, conditions and the
translation of S3 errors.
"""

from __future__ import annotations

import base64
import io
import logging
import re
import zlib
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from urllib3.exceptions import HTTPError as URLLib3Error

from .. import paths
from ..clients import ProcessLocal
from ..conditions import Conditions
from ..driver import StorageDriver
from ..errors import ConfigError, PathNotFoundError, PreconditionFailedError, StorageError
from ..listing import FileInfo, first_valid, visible_children, walk_flat
from ..multipart import CopySource, MultipartEngine, NewUpload, ObjectInfo, PartInfo, UploadInfo
from ..params import GiB, MiB, Params
from ..reader import RangeReader
from ..redaction import LogRedactor
from ..retry import RetryPolicy
from ..transfer import MAX_PARTS, Source, ViewFile
from ..writer import WriterBackend

log = logging.getLogger("blobdrivers.s3")

MIN_PART = 5 * MiB
MAX_PART = 5 * GiB
#: Largest object (and part) one CopyObject / UploadPartCopy may copy.
MAX_COPY = 5 * GiB
#: DeleteObjects takes at most this many keys per request.
DELETE_BATCH = 1000

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
RETRY_MODES = ("legacy", "standard", "adaptive")

_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})
_PRECONDITION = frozenset({"PreconditionFailed", "412"})
#: Errors worth re-opening a streamed read for (the connection broke mid-body).
_STREAM_ERRORS = (
    ResponseStreamingError,
    IncompleteReadError,
    ReadTimeoutError,
    ConnectionClosedError,
    URLLib3Error,
    ConnectionError,
    TimeoutError,
)


def _quote(etag: str) -> str:
    return etag if etag.startswith('"') or etag == "*" else f'"{etag}"'


def _unquote(etag: str | None) -> str | None:
    return etag.strip('"') if etag else None


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and (_code(exc) in _NOT_FOUND or _status(exc) == 404)


def _is_precondition(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and (_code(exc) in _PRECONDITION or _status(exc) == 412)


# --------------------------------------------------------------------------- log redaction

_REDACTIONS = (
    # The access key id in Authorization headers and presigned queries: Credential=AKID/date/...
    re.compile(r"(?i)(credential=)[^/\s'\",&]+"),
    # Session tokens: request headers (dict or canonical form) and presigned queries.
    re.compile(r"""(?i)(x-amz-security-token['"]?\s*[:=]\s*b?['"]?)[^'"&\s,}]+"""),
    # Request signatures (Authorization header, X-Amz-Signature, botocore.auth's "Signature:" line).
    re.compile(r"""(?i)((?:x-amz-)?signature['"]?\s*[:=]\s*b?['"]?)[0-9a-f]{16,}"""),
    # The access key id S3 echoes in some error bodies.
    re.compile(r"(<AWSAccessKeyId>)[^<]*"),
)


# Every logger that prints requests gets the filter (filters do not apply to child loggers).
LogRedactor(_REDACTIONS).install(
    "botocore.auth",
    "botocore.endpoint",
    "botocore.parsers",
    "botocore.awsrequest",
    "botocore.httpsession",
    "botocore.signers",
    "botocore.hooks",
    "botocore.utils",
    "botocore.retryhandler",
    "urllib3.connectionpool",
)


class S3Driver(StorageDriver):
    """Objects in an S3 bucket; parameters as distribution's S3 driver (see ``docs/drivers/s3.md``)."""

    name = "s3"
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
        self.region = reader.string("region")
        endpoint = reader.string("regionendpoint", aliases=("endpoint_url",))
        accesskey = reader.string("accesskey")
        secretkey = reader.string("secretkey")
        sessiontoken = reader.string("sessiontoken")
        forcepathstyle = reader.boolean("forcepathstyle", False)
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
        secure = reader.boolean("secure", True)
        skipverify = reader.boolean("skipverify", False)
        useragent = reader.string("useragent")
        self.object_acl = reader.choice("objectacl", "private", {value: value for value in OBJECT_ACLS})
        self.retry_mode, self.retry_attempts = _read_retries(reader, params)
        # CRC32 of every part and single put, checked by the service: S3 then stores composite part
        # checksums instead of hashing the whole object at completion. "none" for stores that reject them.
        self.checksums = reader.choice("checksum", True, {"crc32": True, "none": False})
        reader.done()

        if "/" in self.bucket or not self.bucket.strip():
            raise ConfigError(f"invalid value {self.bucket!r} for parameter 'bucket': a bucket name", driver=self.name)
        if (accesskey is None) != (secretkey is None):
            raise ConfigError("parameters 'accesskey' and 'secretkey' must be given together", driver=self.name)
        if sessiontoken is not None and accesskey is None:
            raise ConfigError("parameter 'sessiontoken' needs 'accesskey' and 'secretkey'", driver=self.name)
        if keyid is not None and not encrypt:
            raise ConfigError("parameter 'keyid' (a KMS key) needs 'encrypt' set to true", driver=self.name)
        self.endpoint = _endpoint(endpoint, secure, self.name)
        self._secure = secure
        self._verify = not skipverify
        if skipverify:
            log.warning("s3: skipverify is set: TLS certificates of %s are NOT verified", self.endpoint or "AWS")
        self._forcepathstyle = forcepathstyle
        self._useragent = useragent
        self._credentials = (accesskey, secretkey, sessiontoken)

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
        self.retry = RetryPolicy.with_attempts(self.retry_attempts)
        self._client: ProcessLocal[Any] = ProcessLocal(self._make_client)
        self._backend = _S3Backend(self)
        self.engine = MultipartEngine(
            self._backend,
            chunk_size=chunk_size,
            concurrency=self.concurrency,
            copy_chunk_size=self.copy_chunk_size,
            before_part=lambda key, number: self._race_point("part.upload", "/" + key, number),
        )

    # ------------------------------------------------------------------ client

    @property
    def client(self) -> Any:
        """The boto3 S3 client of this process (created on first use; recreated after ``fork``)."""
        return self._client.get()

    def _make_client(self) -> Any:
        accesskey, secretkey, sessiontoken = self._credentials
        session = boto3.session.Session(
            aws_access_key_id=accesskey,
            aws_secret_access_key=secretkey,
            aws_session_token=sessiontoken,
            region_name=self.region,
        )
        region = self.region or session.region_name or "us-east-1"
        config = Config(
            region_name=region,
            signature_version="s3v4",
            retries={"mode": self.retry_mode, "total_max_attempts": self.retry_attempts},
            # Parallel parts of concurrent transfers share the pool; more connections than parts.
            max_pool_connections=max(10, 2 * self.concurrency),
            s3={"addressing_style": "path" if self._forcepathstyle else "auto"},
            user_agent_extra=self._useragent,
            # Checksums only where S3 demands them (as distribution): TLS protects transfers,
            # and a registry verifies content digests itself.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            connect_timeout=10,
            read_timeout=60,
            tcp_keepalive=True,
        )
        return session.client(
            "s3",
            endpoint_url=self.endpoint,
            use_ssl=self._secure,
            verify=self._verify,
            config=config,
        )

    def _hidden_prefix(self) -> str:
        return paths.dir_key(self._root or paths.ROOT) + "~blobdrivers/"

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

        return self.retry.call(fetch, is_transient=_is_stream_error, what=f"GET {full}")

    def _open(self, full: str, offset: int, length: int | None) -> tuple[RangeReader, int | None]:
        key = paths.to_key(full)
        if length == 0:
            if self._backend.head_object(key) is None:
                raise PathNotFoundError(f"no file at {full}")
            return io.BytesIO(b""), 0
        end = None if length is None else offset + length
        try:
            body, count, etag = self._ranged_get(key, offset, end, None)
        except ClientError as exc:
            if _code(exc) == "InvalidRange" or _status(exc) == 416:
                # Offsets at or past the end read as empty, once the file is known to exist.
                if self._backend.head_object(key) is None:
                    raise PathNotFoundError(f"no file at {full}") from exc
                return io.BytesIO(b""), 0
            raise
        return _S3Reader(self, key, body, offset, count, etag), count

    def _ranged_get(self, key: str, start: int, end: int | None, etag: str | None) -> tuple[Any, int, str | None]:
        """A GET of ``[start, end)`` (``end=None``: to the end); returns body, byte count and etag."""
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if start or end is not None:
            args["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        if etag is not None:
            args["IfMatch"] = _quote(etag)
        response = self.client.get_object(**args)
        return response["Body"], int(response["ContentLength"]), _unquote(response.get("ETag"))

    def _writer(self, full: str, append: bool) -> WriterBackend:
        return self.engine.writer(paths.to_key(full), append)

    def _stat(self, full: str) -> FileInfo:
        if full != paths.ROOT:
            try:
                response = self.client.head_object(Bucket=self.bucket, Key=paths.to_key(full))
            except ClientError as exc:
                if not _is_not_found(exc):
                    raise
            else:
                return FileInfo(
                    full,
                    int(response["ContentLength"]),
                    _aware(response["LastModified"]),
                    etag=_unquote(response.get("ETag")),
                )
        first = self._first_valid_below(paths.dir_key(full))
        if first is None:
            raise PathNotFoundError(f"nothing at {full}")
        return FileInfo(full, 0, _aware(first["LastModified"]), is_dir=True)

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
                yield FileInfo(path, int(item["Size"]), _aware(item["LastModified"]), etag=_unquote(item.get("ETag")))

    def _move(self, src: str, dst: str, conditions: Conditions) -> None:
        src_key, dst_key = paths.to_key(src), paths.to_key(dst)
        info = self._backend.head_object(src_key)
        if info is None:
            raise PathNotFoundError(f"no file at {src}")
        if not conditions and info.size <= self.copy_threshold:
            self._backend.copy_object(src_key, dst_key, conditions, source_etag=info.etag)
        else:
            # Conditional moves complete a multipart copy: conditions on CompleteMultipartUpload
            # are honoured by more S3 implementations than conditions on CopyObject.
            self.engine.copy(src_key, dst_key, info, conditions)
        self._race_point("move.copied", src)
        # Only the version that was copied: a put landing after the copy stays ("move, then put").
        pinned = {"IfMatch": _quote(info.etag)} if info.etag else {}
        try:
            self.client.delete_object(Bucket=self.bucket, Key=src_key, **pinned)
        except ClientError as exc:
            if not (_is_precondition(exc) or _is_not_found(exc) or _code(exc) == "ConditionalRequestConflict"):
                raise
            log.debug("s3: move left %s alone: it changed after the copy (%s)", src_key, _code(exc))

    def _delete(self, full: str) -> None:
        if not self.engine.delete(paths.to_key(full), paths.dir_key(full)):
            raise PathNotFoundError(f"nothing at {full}")

    def _cat(self, full: str, sources: list[str]) -> None:
        self.engine.cat(paths.to_key(full), [paths.to_key(source) for source in sources])

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
        if isinstance(exc, ClientError):
            code, status = _code(exc) or "unknown", _status(exc)
            operation = getattr(exc, "operation_name", "request")
            if code in _NOT_FOUND or (status == 404 and code not in ("NoSuchBucket", "NoSuchUpload")):
                return PathNotFoundError(f"no file at {path}")
            if code in _PRECONDITION or status == 412:
                return PreconditionFailedError(f"the condition on {path} does not hold ({code})")
            if code == "ConditionalRequestConflict":
                return PreconditionFailedError(f"a concurrent conditional write to {path} won ({code})")
            if code == "NoSuchBucket":
                return StorageError(f"bucket {self.bucket!r} does not exist ({code})")
            if code == "NoSuchUpload":
                return StorageError(f"the multipart upload of {path} no longer exists ({code})")
            return StorageError(f"{operation} on {path} failed: {code} (HTTP {status})")
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return StorageError(
                "no usable AWS credentials: set 'accesskey' and 'secretkey', or configure the default chain "
                f"({type(exc).__name__})"
            )
        if isinstance(exc, BotoCoreError | URLLib3Error | ConnectionError | TimeoutError):
            # botocore messages may quote URLs; the error type says enough and leaks nothing.
            return StorageError(f"request for {path} failed: {type(exc).__name__}")
        return None


# --------------------------------------------------------------------------- the multipart backend


class _S3Backend:
    """The boto3 calls behind :class:`~blobdrivers.multipart.MultipartEngine`."""

    min_part_size = MIN_PART
    max_part_size = MAX_PART
    max_parts = MAX_PARTS
    copy_part_max = MAX_COPY
    delete_batch_size = DELETE_BATCH

    def __init__(self, driver: S3Driver) -> None:
        self._driver = driver
        self.bucket = driver.bucket
        self.hidden_prefix = driver._hidden_prefix()

    @property
    def _client(self) -> Any:
        return self._driver.client

    @staticmethod
    def _condition_args(conditions: Conditions) -> dict[str, str]:
        if conditions.if_none_match:
            return {"IfNoneMatch": "*"}
        if conditions.if_match is not None:
            return {"IfMatch": _quote(conditions.if_match)}
        return {}

    @staticmethod
    def _check_condition(conditions: Conditions, key: str, exc: ClientError) -> None:
        """S3 answers ``If-Match`` on a missing key with 404: for a conditional write that is a false condition."""
        if conditions.if_match is not None and _is_not_found(exc):
            raise PreconditionFailedError(
                f"/{key} does not exist, so it cannot match etag {conditions.if_match!r}"
            ) from exc

    def put_object(self, key: str, data: memoryview, conditions: Conditions) -> None:
        try:
            self._client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=ViewFile(data),
                ContentLength=len(data),
                ContentType="application/octet-stream",
                **self._checksum_args(data),
                **self._driver.write_args,
                **self._condition_args(conditions),
            )
        except ClientError as exc:
            self._check_condition(conditions, key, exc)
            raise

    def copy_object(self, source_key: str, key: str, conditions: Conditions, *, source_etag: str | None) -> None:
        args: dict[str, Any] = {**self._driver.write_args, **self._condition_args(conditions)}
        if source_etag is not None:
            args["CopySourceIfMatch"] = _quote(source_etag)
        try:
            self._client.copy_object(
                Bucket=self.bucket,
                Key=key,
                CopySource={"Bucket": self.bucket, "Key": source_key},
                MetadataDirective="COPY",
                **args,
            )
        except ClientError as exc:
            if source_etag is not None and _is_precondition(exc) and not conditions:
                raise StorageError(f"/{source_key} changed during the copy") from exc
            self._check_condition(conditions, key, exc)
            raise

    def head_object(self, key: str) -> ObjectInfo | None:
        try:
            response = self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _is_not_found(exc):
                return None
            raise
        return ObjectInfo(int(response["ContentLength"]), _unquote(response.get("ETag")))

    def read_range(self, key: str, offset: int, buffer: memoryview, *, etag: str | None) -> None:
        if not buffer:
            return

        def fetch() -> None:
            try:
                body, _, _ = self._driver._ranged_get(key, offset, offset + len(buffer), etag)
            except ClientError as exc:
                if etag is not None and _is_precondition(exc):
                    raise StorageError(f"/{key} changed while it was being read") from exc
                raise
            try:
                filled = 0
                while filled < len(buffer):
                    got = body.readinto(buffer[filled:])
                    if not got:
                        raise IncompleteReadError(actual_bytes=filled, expected_bytes=len(buffer))
                    filled += got
            finally:
                body.close()

        self._driver.retry.call(fetch, is_transient=_is_stream_error, what=f"ranged GET /{key}")

    def list_keys(self, prefix: str) -> Iterator[str]:
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents") or []:
                yield str(item["Key"])

    def delete_objects(self, keys: Sequence[str]) -> None:
        response = self._client.delete_objects(
            Bucket=self.bucket, Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True}
        )
        errors = response.get("Errors") or []
        if errors:
            codes = sorted({str(error.get("Code")) for error in errors})
            raise StorageError(f"could not delete {len(errors)} of {len(keys)} objects ({', '.join(codes)})")

    def _checksum_args(self, data: memoryview) -> dict[str, str]:
        if not self._driver.checksums:
            return {}
        # zlib releases the GIL for large buffers, so parts in flight are summed in parallel.
        return {"ChecksumCRC32": base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()}

    def create_upload(self, key: str) -> NewUpload:
        checksum = {"ChecksumAlgorithm": "CRC32"} if self._driver.checksums else {}
        response = self._client.create_multipart_upload(
            Bucket=self.bucket, Key=key, ContentType="application/octet-stream", **checksum, **self._driver.write_args
        )
        retries = response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
        return NewUpload(str(response["UploadId"]), retried=bool(retries))

    def upload_part(self, key: str, upload_id: str, number: int, data: memoryview) -> str:
        checksum = self._checksum_args(data)
        response = self._client.upload_part(
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=ViewFile(data),
            ContentLength=len(data),
            **checksum,
        )
        return _part_tag(response["ETag"], checksum.get("ChecksumCRC32"))

    def copy_part(self, key: str, upload_id: str, number: int, source: CopySource) -> str:
        source_key, byte_range, source_etag = source.key, source.byte_range, source.etag
        args: dict[str, Any] = {}
        if byte_range is not None:
            args["CopySourceRange"] = f"bytes={byte_range[0]}-{byte_range[1] - 1}"
        if source_etag is not None:
            args["CopySourceIfMatch"] = _quote(source_etag)
        try:
            response = self._client.upload_part_copy(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                CopySource={"Bucket": self.bucket, "Key": source_key},
                **args,
            )
        except ClientError as exc:
            if source_etag is not None and _is_precondition(exc):
                raise StorageError(f"/{source_key} changed during the copy") from exc
            raise
        result = response["CopyPartResult"]
        return _part_tag(result["ETag"], result.get("ChecksumCRC32"))

    def complete(self, key: str, upload_id: str, parts: Sequence[tuple[int, str]], conditions: Conditions) -> None:
        try:
            self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": [_complete_entry(number, tag) for number, tag in parts]},
                **self._condition_args(conditions),
            )
        except ClientError as exc:
            self._check_condition(conditions, key, exc)
            raise

    def abort(self, key: str, upload_id: str) -> None:
        try:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if _code(exc) != "NoSuchUpload" and _status(exc) != 404:
                raise

    def list_uploads(self, key: str) -> list[UploadInfo]:
        found: list[tuple[datetime, int, str]] = []
        paginator = self._client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=key):
            for upload in page.get("Uploads") or []:
                if upload["Key"] == key:
                    # Listing order breaks ties: S3 lists one key's uploads oldest first.
                    found.append((_aware(upload["Initiated"]), len(found), str(upload["UploadId"])))
        return [UploadInfo(upload_id, initiated.timestamp()) for initiated, _, upload_id in sorted(found)]

    def uploads_below(self, prefix: str) -> list[tuple[str, str]]:
        paginator = self._client.get_paginator("list_multipart_uploads")
        return [
            (str(upload["Key"]), str(upload["UploadId"]))
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix)
            for upload in page.get("Uploads") or []
        ]

    def list_parts(self, key: str, upload_id: str) -> list[PartInfo]:
        parts: list[PartInfo] = []
        paginator = self._client.get_paginator("list_parts")
        for page in paginator.paginate(Bucket=self.bucket, Key=key, UploadId=upload_id):
            for part in page.get("Parts") or []:
                tag = _part_tag(part["ETag"], part.get("ChecksumCRC32"))
                parts.append(PartInfo(int(part["PartNumber"]), tag, int(part["Size"])))
        return sorted(parts, key=lambda part: part.number)


# A part's tag (opaque to the engine) is its etag, plus its CRC32 when the upload declares one: S3
# wants both back in CompleteMultipartUpload. An etag is a quoted string, so it never holds the separator.
_CHECKSUM_SEPARATOR = " crc32="


def _part_tag(etag: object, checksum: object) -> str:
    return f"{etag}{_CHECKSUM_SEPARATOR}{checksum}" if checksum else str(etag)


def _complete_entry(number: int, tag: str) -> dict[str, Any]:
    etag, _, checksum = tag.partition(_CHECKSUM_SEPARATOR)
    entry: dict[str, Any] = {"PartNumber": number, "ETag": etag}
    if checksum:
        entry["ChecksumCRC32"] = checksum
    return entry


# --------------------------------------------------------------------------- streams


class _S3Reader:
    """A streamed ranged GET that re-opens at the current offset (pinned by etag) if the connection breaks."""

    def __init__(self, driver: S3Driver, key: str, body: Any, start: int, count: int, etag: str | None) -> None:
        self._driver = driver
        self._key = key
        self._body: Any = body
        self._position = start
        self._end = start + count
        self._etag = etag

    def readinto(self, buffer: memoryview) -> int:
        if self._position >= self._end:
            return 0
        target = buffer[: self._end - self._position]
        attempts = 1
        while True:
            try:
                if self._body is None:
                    self._reopen()
                got = int(self._body.readinto(target))
                if got == 0:
                    raise IncompleteReadError(actual_bytes=0, expected_bytes=len(target))
                self._position += got
                return got
            except _STREAM_ERRORS as exc:
                if attempts >= self._driver.retry_attempts:
                    raise
                log.debug("re-opening the read of /%s at %d after %s", self._key, self._position, type(exc).__name__)
                self._drop_body()
                attempts += 1

    def _reopen(self) -> None:
        try:
            self._body, _, _ = self._driver._ranged_get(self._key, self._position, self._end, self._etag)
        except ClientError as exc:
            if _is_precondition(exc):
                raise StorageError(f"/{self._key} was replaced while it was being read") from exc
            raise

    def _drop_body(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            try:
                body.close()
            except Exception as exc:  # a broken connection may fail to close; it is discarded anyway
                log.debug("closing a broken body failed: %s", type(exc).__name__)

    def close(self) -> None:
        self._drop_body()


# --------------------------------------------------------------------------- parameters


def _read_retries(reader: Params, params: Mapping[str, Any]) -> tuple[str, int]:
    """``retries``: attempts (``5``), a mode (``adaptive``), both (``adaptive:5``) or ``{mode, max_attempts}``."""
    default_mode, default_attempts = "standard", 5
    raw = params.get("retries")
    allowed = "a retry mode (legacy, standard, adaptive), a number of attempts, 'mode:attempts' or a mapping"
    if isinstance(raw, Mapping):
        mapping = reader.mapping("retries") or {}
        unknown = set(mapping) - {"mode", "max_attempts", "total_max_attempts"}
        if unknown:
            raise ConfigError(f"unknown key(s) {sorted(unknown)} in parameter 'retries': {allowed}", driver="s3")
        mode = str(mapping.get("mode", default_mode)).lower()
        attempts_raw = mapping.get("max_attempts", mapping.get("total_max_attempts", default_attempts))
    elif isinstance(raw, int) and not isinstance(raw, bool):
        mode, attempts_raw = default_mode, reader.integer("retries", default_attempts)
    else:
        text = reader.string("retries")
        if text is None:
            return default_mode, default_attempts
        mode_text, _, attempts_text = text.strip().partition(":")
        if mode_text.isdigit() and not attempts_text:
            mode, attempts_raw = default_mode, mode_text
        else:
            mode, attempts_raw = mode_text.lower(), attempts_text or default_attempts
    try:
        attempts = int(attempts_raw)
    except (TypeError, ValueError):
        attempts = -1
    if mode not in RETRY_MODES or not 1 <= attempts <= 20:
        raise ConfigError(f"invalid value {raw!r} for parameter 'retries': {allowed}; attempts 1 to 20", driver="s3")
    return mode, attempts


def _endpoint(endpoint: str | None, secure: bool, driver: str) -> str | None:
    if endpoint is None:
        return None
    candidate = endpoint if "://" in endpoint else f"{'https' if secure else 'http'}://{endpoint}"
    parts = urlsplit(candidate)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"invalid value {endpoint!r} for parameter 'regionendpoint': an http(s) URL such as https://minio:9000",
            driver=driver,
        )
    return candidate


def _aware(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value)).astimezone(UTC)


def _is_stream_error(exc: BaseException) -> bool:
    return isinstance(exc, _STREAM_ERRORS)
