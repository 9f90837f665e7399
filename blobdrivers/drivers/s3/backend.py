"""The boto3 calls behind the shared multipart engine (:class:`~blobdrivers.multipart.MultipartBackend`)."""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ...conditions import Conditions
from ...errors import PreconditionFailedError, StorageError
from ...multipart import CopySource, NewUpload, ObjectInfo, PartInfo, UploadInfo
from ...params import GiB, MiB
from ...transfer import MAX_PARTS, ViewFile
from . import reader
from .errors import code, is_not_found, is_precondition, status
from .reader import quote, unquote

if TYPE_CHECKING:
    from . import S3Driver

MIN_PART = 5 * MiB
MAX_PART = 5 * GiB
#: Largest object (and part) one CopyObject / UploadPartCopy may copy.
MAX_COPY = 5 * GiB
#: DeleteObjects takes at most this many keys per request.
DELETE_BATCH = 1000


class S3Backend:
    """The boto3 calls behind :class:`~blobdrivers.multipart.MultipartEngine`, on one bucket."""

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
            return {"IfMatch": quote(conditions.if_match)}
        return {}

    @staticmethod
    def _check_condition(conditions: Conditions, key: str, exc: ClientError) -> None:
        """S3 answers ``If-Match`` on a missing key with 404: for a conditional write that is a false condition."""
        if conditions.if_match is not None and is_not_found(exc):
            raise PreconditionFailedError(
                f"/{key} does not exist, so it cannot match etag {conditions.if_match!r}"
            ) from exc

    def put_object(self, key: str, data: memoryview, conditions: Conditions) -> None:
        """PutObject, with the part's CRC32 and the write arguments."""
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
        """CopyObject, the source pinned by ``CopySourceIfMatch``."""
        args: dict[str, Any] = {**self._driver.write_args, **self._condition_args(conditions)}
        if source_etag is not None:
            args["CopySourceIfMatch"] = quote(source_etag)
        try:
            self._client.copy_object(
                Bucket=self.bucket,
                Key=key,
                CopySource={"Bucket": self.bucket, "Key": source_key},
                MetadataDirective="COPY",
                **args,
            )
        except ClientError as exc:
            if source_etag is not None and is_precondition(exc) and not conditions:
                raise StorageError(f"/{source_key} changed during the copy") from exc
            self._check_condition(conditions, key, exc)
            raise

    def head_object(self, key: str) -> ObjectInfo | None:
        """HeadObject; a 404 is ``None``."""
        try:
            response = self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        return ObjectInfo(int(response["ContentLength"]), unquote(response.get("ETag")))

    def read_range(self, key: str, offset: int, buffer: memoryview, *, etag: str | None) -> None:
        """A ranged GET pinned by ``IfMatch``, reopened where a cut body stopped."""
        reader.read_range(self._driver, key, offset, buffer, etag=etag)

    def list_keys(self, prefix: str) -> Iterator[str]:
        """ListObjectsV2 pages."""
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents") or []:
                yield str(item["Key"])

    def delete_objects(self, keys: Sequence[str]) -> None:
        """One quiet DeleteObjects; any per-key error fails it."""
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
        """CreateMultipartUpload; botocore's retry count says whether it retried."""
        checksum = {"ChecksumAlgorithm": "CRC32"} if self._driver.checksums else {}
        response = self._client.create_multipart_upload(
            Bucket=self.bucket, Key=key, ContentType="application/octet-stream", **checksum, **self._driver.write_args
        )
        retries = response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
        return NewUpload(str(response["UploadId"]), retried=bool(retries))

    def upload_part(self, key: str, upload_id: str, number: int, data: memoryview) -> str:
        """UploadPart; the tag is the etag plus the part's CRC32."""
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
        """UploadPartCopy of a range, the source pinned by ``CopySourceIfMatch``."""
        source_key, byte_range, source_etag = source.key, source.byte_range, source.etag
        args: dict[str, Any] = {}
        if byte_range is not None:
            args["CopySourceRange"] = f"bytes={byte_range[0]}-{byte_range[1] - 1}"
        if source_etag is not None:
            args["CopySourceIfMatch"] = quote(source_etag)
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
            if source_etag is not None and is_precondition(exc):
                raise StorageError(f"/{source_key} changed during the copy") from exc
            raise
        result = response["CopyPartResult"]
        return _part_tag(result["ETag"], result.get("ChecksumCRC32"))

    def complete(self, key: str, upload_id: str, parts: Sequence[tuple[int, str]], conditions: Conditions) -> None:
        """CompleteMultipartUpload under the write conditions."""
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
        """AbortMultipartUpload; an upload already gone is not an error."""
        try:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if code(exc) != "NoSuchUpload" and status(exc) != 404:
                raise

    def list_uploads(self, key: str) -> list[UploadInfo]:
        """ListMultipartUploads of exactly ``key``, oldest first."""
        found: list[tuple[datetime, int, str]] = []
        paginator = self._client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=key):
            for upload in page.get("Uploads") or []:
                if upload["Key"] == key:
                    # Listing order breaks ties: S3 lists one key's uploads oldest first.
                    found.append((aware(upload["Initiated"]), len(found), str(upload["UploadId"])))
        return [UploadInfo(upload_id, initiated.timestamp()) for initiated, _, upload_id in sorted(found)]

    def uploads_below(self, prefix: str) -> list[tuple[str, str]]:
        """ListMultipartUploads below ``prefix``."""
        paginator = self._client.get_paginator("list_multipart_uploads")
        return [
            (str(upload["Key"]), str(upload["UploadId"]))
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix)
            for upload in page.get("Uploads") or []
        ]

    def list_parts(self, key: str, upload_id: str) -> list[PartInfo]:
        """ListParts pages, by part number."""
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


def aware(value: Any) -> datetime:
    """A timestamp S3 reported, as an aware UTC datetime."""
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value)).astimezone(UTC)
