"""The oss2 calls behind :class:`~blobdrivers.multipart.MultipartEngine`: objects, multipart uploads, CRC-64 records.

OSS specifics that shape it:

* Parts are 100 KiB to 5 GiB, at most 10,000 per upload; CopyObject copies at most
  1 GB, so larger server-side copies go through UploadPartCopy.
* The only native write condition is ``x-oss-forbid-overwrite`` (``if_none_match="*"``).
  OSS has no conditional write on an etag, so the driver does not declare
  ``Capability.IF_MATCH`` (the base refuses it) rather than emulating it by a racy check.
* Requests that are not idempotent (conditional writes) are retried only when they
  surely never reached the server.
* oss2's CRC-64 checks stay on: uploads and parts are verified against the
  ``x-oss-hash-crc64ecma`` the server reports, and a completion against the parts'
  combined CRC when this instance knows them all. Single-request uploads also send
  Content-MD5, so a corrupted body is refused before it is published.

Messages name the caller's path (:meth:`OSSBackend.shown`), never the root-prefixed key.
"""

from __future__ import annotations

import base64
import collections
import functools
import hashlib
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import oss2
from oss2.exceptions import OssError
from oss2.models import PartInfo as OssPartInfo

from ... import paths
from ...conditions import Conditions
from ...errors import PreconditionFailedError, StorageError
from ...multipart import CopySource, NewUpload, ObjectInfo, PartInfo, UploadInfo
from ...params import GiB, KiB
from ...transfer import MAX_PARTS, ViewFile
from .client import paginate
from .errors import is_file_exists, is_no_such_upload, is_not_found, is_precondition
from .reader import read_exactly

if TYPE_CHECKING:
    from . import OSSDriver

T = TypeVar("T")

MIN_PART = 100 * KiB
MAX_PART = 5 * GiB
#: CopyObject copies objects of at most 1 GB; UploadPartCopy parts are kept within it too
#: (the engine has one limit for both).
MAX_COPY = 1000 * 1000 * 1000
#: DeleteMultipleObjects takes at most this many keys per request.
DELETE_BATCH = 1000
_HEX_MD5 = re.compile(r"[0-9A-Fa-f]{32}")
_FORBID_OVERWRITE = {"x-oss-forbid-overwrite": "true"}


def _quote(etag: str) -> str:
    return etag if etag.startswith('"') else f'"{etag}"'


class OSSBackend:
    """The oss2 calls behind :class:`~blobdrivers.multipart.MultipartEngine`."""

    min_part_size = MIN_PART
    max_part_size = MAX_PART
    max_parts = MAX_PARTS
    copy_part_max = MAX_COPY
    delete_batch_size = DELETE_BATCH
    #: How many uploads' part CRCs are remembered (for oss2's check at completion).
    tracked_uploads = 256

    def __init__(self, driver: OSSDriver, *, root: str) -> None:
        self._driver = driver
        self._root = root
        self.bucket = driver.bucket
        self.hidden_prefix = paths.dir_key(root or paths.ROOT) + driver.bookkeeping_dir + "/"
        self._crc_lock = threading.Lock()
        #: upload id -> part number -> (etag, size, crc) of parts this instance uploaded or copied.
        self._part_crcs: collections.OrderedDict[str, dict[int, tuple[str, int, int]]] = collections.OrderedDict()

    @property
    def _client(self) -> oss2.Bucket:
        return self._driver.client

    def _call(self, fn: Callable[[], T], what: str, *, idempotent: bool = True) -> T:
        return self._driver.call(fn, what, idempotent=idempotent)

    def shown(self, key: str) -> str:
        """The caller's path of ``key`` (below the root), for messages."""
        return paths.strip(self._root, "/" + key)

    def _condition_headers(self, conditions: Conditions) -> dict[str, str]:
        return dict(_FORBID_OVERWRITE) if conditions.if_none_match else {}

    # ------------------------------------------------------------------ objects

    def put_object(self, key: str, data: memoryview, conditions: Conditions) -> None:
        """PutObject, with Content-MD5; ``if_none_match`` as x-oss-forbid-overwrite."""
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
            if is_file_exists(exc):
                raise PreconditionFailedError(f"{self.shown(key)} already exists") from exc
            raise

    def copy_object(self, source_key: str, key: str, conditions: Conditions, *, source_etag: str | None) -> None:
        """CopyObject (up to :data:`MAX_COPY` bytes), pinned to ``source_etag`` when given."""
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
            if is_file_exists(exc):
                raise PreconditionFailedError(f"{self.shown(key)} already exists") from exc
            if source_etag is not None and is_precondition(exc):
                raise StorageError(f"{self.shown(source_key)} changed during the copy") from exc
            raise

    def head_object(self, key: str) -> ObjectInfo | None:
        """Size and etag of ``key``; ``None`` when there is no such object."""
        try:
            head = self._call(lambda: self._client.head_object(key), f"HEAD /{key}")
        except OssError as exc:
            if is_not_found(exc):
                return None
            raise
        return ObjectInfo(int(head.content_length or 0), head.etag)

    def read_range(self, key: str, offset: int, buffer: memoryview, *, etag: str | None) -> None:
        """Fill ``buffer`` from ``offset`` of ``key`` (pinned to ``etag``), reopened where a body is cut."""
        if buffer:
            driver = self._driver
            read_exactly(driver.read_client, key, offset, buffer, etag, retry=driver.retry, path=self.shown(key))

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Every key starting with ``prefix``, in key order."""
        for page in self._driver.pages(prefix):
            for item in page.object_list:
                yield str(item.key)

    def delete_key(self, key: str) -> None:
        """Delete one object (a missing one is not an error, as on OSS)."""
        self._call(lambda: self._client.delete_object(key), f"DELETE /{key}")

    def delete_objects(self, keys: Sequence[str]) -> None:
        """DeleteMultipleObjects of up to :data:`DELETE_BATCH` keys."""
        self._call(functools.partial(self._client.batch_delete_objects, list(keys)), f"DELETE {len(keys)} keys")

    # ------------------------------------------------------------------ multipart

    def create_upload(self, key: str) -> NewUpload:
        """InitiateMultipartUpload with the create headers."""
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
        """UploadPart; its etag (its CRC-64 is recorded for the completion check)."""
        # Re-sending a part under its number replaces it: safe to retry. oss2 checks its CRC-64.
        result = self._call(
            lambda: self._client.upload_part(key, upload_id, number, ViewFile(data)),
            f"upload part {number} of /{key}",
        )
        etag = str(result.etag)
        self._remember(upload_id, number, etag, len(data), result.crc)
        return etag

    def copy_part(self, key: str, upload_id: str, number: int, source: CopySource) -> str:
        """UploadPartCopy of ``source``; its etag."""
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
            if source_etag is not None and is_precondition(exc):
                raise StorageError(f"{self.shown(source_key)} changed during the copy") from exc
            raise
        etag = str(result.etag)
        if byte_range is not None:
            self._remember(upload_id, number, etag, byte_range[1] - byte_range[0], result.crc)
        return etag

    def complete(self, key: str, upload_id: str, parts: Sequence[tuple[int, str]], conditions: Conditions) -> None:
        """CompleteMultipartUpload of ``parts``; a retry that finds its own result done succeeds."""
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
                if attempts > 1 and (is_no_such_upload(exc) or is_file_exists(exc)) and self._is_result(key, parts):
                    return
                raise

        try:
            self._call(send, f"complete upload /{key}")
        except OssError as exc:
            if is_file_exists(exc):
                raise PreconditionFailedError(f"{self.shown(key)} already exists") from exc
            raise
        self._forget(upload_id)

    def abort(self, key: str, upload_id: str) -> None:
        """AbortMultipartUpload (an upload already gone is not an error)."""
        try:
            self._call(lambda: self._client.abort_multipart_upload(key, upload_id), f"abort upload /{key}")
        except OssError as exc:
            if not is_no_such_upload(exc):
                raise
        self._forget(upload_id)

    def _uploads(self, prefix: str) -> Iterator[Any]:
        """Every upload in progress for a key starting with ``prefix``."""

        def fetch(markers: tuple[str, str]) -> Any:
            key_marker, upload_id_marker = markers
            list_page = functools.partial(
                self._client.list_multipart_uploads,
                prefix=prefix,
                key_marker=key_marker,
                upload_id_marker=upload_id_marker,
                max_uploads=1000,
            )
            return self._call(list_page, f"list uploads /{prefix}")

        def following(page: Any) -> tuple[str, str] | None:
            return (page.next_key_marker, page.next_upload_id_marker) if page.is_truncated else None

        for page in paginate(fetch, ("", ""), following):
            yield from page.upload_list

    def list_uploads(self, key: str) -> list[UploadInfo]:
        """The uploads in progress for exactly ``key``, oldest first."""
        # Initiation times are whole seconds: listing order breaks ties (oldest first).
        found = [
            (int(upload.initiation_date or 0), index, str(upload.upload_id))
            for index, upload in enumerate(self._uploads(key))
            if upload.key == key
        ]
        return [UploadInfo(upload_id, float(initiated)) for initiated, _, upload_id in sorted(found)]

    def uploads_below(self, prefix: str) -> list[tuple[str, str]]:
        """(key, upload id) of every upload in progress below ``prefix``."""
        return [(str(upload.key), str(upload.upload_id)) for upload in self._uploads(prefix)]

    def list_parts(self, key: str, upload_id: str) -> list[PartInfo]:
        """The parts of an upload, by number."""

        def fetch(marker: str) -> Any:
            list_page = functools.partial(self._client.list_parts, key, upload_id, marker=marker, max_parts=1000)
            return self._call(list_page, f"list parts /{key}")

        parts = [
            PartInfo(int(part.part_number), str(part.etag), int(part.size))
            for page in paginate(fetch, "", lambda page: (page.is_truncated and page.next_marker) or None)
            for part in page.parts
        ]
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
