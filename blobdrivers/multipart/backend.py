"""What a driver supplies to the multipart engine: the :class:`MultipartBackend` calls and their values."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..conditions import Conditions


@dataclass(frozen=True)
class CopySource:
    """What a part copies: all of ``key``, or ``byte_range`` (start, end exclusive), only while its etag is ``etag``."""

    key: str
    byte_range: tuple[int, int] | None = None
    etag: str | None = None


@dataclass(frozen=True)
class ObjectInfo:
    """Size and etag of a committed object, as a backend's HEAD reports them."""

    size: int
    etag: str | None


@dataclass(frozen=True)
class NewUpload:
    """What :meth:`MultipartBackend.create_upload` started."""

    upload_id: str
    #: Whether an earlier attempt of the request may have created an upload whose answer was lost.
    retried: bool = False


@dataclass(frozen=True)
class UploadInfo:
    """One upload in progress, as a listing reports it."""

    upload_id: str
    #: When the service initiated it: seconds since the epoch, on the service's clock.
    initiated: float


@dataclass(frozen=True)
class PartInfo:
    """One uploaded part of an upload in progress."""

    number: int
    #: The part's tag, as :meth:`MultipartBackend.upload_part` returns it.
    etag: str
    size: int


class TransferSettings(Protocol):
    """The driver settings the engine reads on every transfer (stored once, on the driver)."""

    #: The single-request limit and the part size (:attr:`StorageDriver.chunk_size`).
    chunk_size: int
    #: Parts in flight per transfer (the ``maxconcurrency`` parameter).
    concurrency: int


class MultipartBackend(Protocol):
    """The SDK calls of one S3-style service, on keys of one bucket.

    Missing objects are reported as ``None`` by :meth:`head_object`; every other
    method may raise the SDK's errors (the driver's ``_translate_error`` maps them),
    except that a false condition must raise
    :class:`~blobdrivers.errors.PreconditionFailedError` (including ``if_match`` on a
    missing key, which some services answer with 404). Byte ranges are half-open
    ``(start, end)`` tuples.
    """

    #: Smallest size of a part that is not the last one.
    min_part_size: int
    #: Largest size of an uploaded part.
    max_part_size: int
    #: Most parts in one upload.
    max_parts: int
    #: Largest byte range one ``copy_part`` (and ``copy_object``) may copy.
    copy_part_max: int
    #: Key prefix of hidden bookkeeping objects; must contain a character outside the path rule.
    hidden_prefix: str
    #: Most keys one ``delete_objects`` request takes; the engine never passes more.
    delete_batch_size: int

    def put_object(self, key: str, data: memoryview, conditions: Conditions) -> None:
        """Publish ``data`` at ``key`` in one request, under ``conditions``."""

    def copy_object(self, source_key: str, key: str, conditions: Conditions, *, source_etag: str | None) -> None:
        """Server-side copy of a whole object of at most ``copy_part_max`` bytes."""

    def head_object(self, key: str) -> ObjectInfo | None:
        """Size and etag of ``key``, or ``None`` when it does not exist."""

    def read_range(self, key: str, offset: int, buffer: memoryview, *, etag: str | None) -> None:
        """Fill ``buffer`` exactly with the bytes of ``key`` from ``offset`` (only if its etag is ``etag``)."""

    def list_keys(self, prefix: str) -> Iterator[str]:
        """Every key starting with ``prefix``."""

    def delete_objects(self, keys: Sequence[str]) -> None:
        """Delete ``keys`` (at most ``delete_batch_size``) in one request; missing ones are not an error."""

    def create_upload(self, key: str) -> NewUpload:
        """Initiate a multipart upload for ``key`` (retrying transient failures); say whether it retried."""

    def upload_part(self, key: str, upload_id: str, number: int, data: memoryview) -> str:
        """Upload part ``number`` (1-based); return its tag. Re-sending a number replaces the part.

        A tag is opaque to the engine and given back to :meth:`complete`: the part's
        etag, plus whatever else the service wants at completion (e.g. a checksum).
        """

    def copy_part(self, key: str, upload_id: str, number: int, source: CopySource) -> str:
        """Make part ``number`` a server-side copy of ``source``; return its tag."""

    def complete(self, key: str, upload_id: str, parts: Sequence[tuple[int, str]], conditions: Conditions) -> None:
        """Publish the upload from ``(number, tag)`` pairs in ascending order, under ``conditions``."""

    def abort(self, key: str, upload_id: str) -> None:
        """Drop the upload and its parts; an upload that no longer exists is not an error."""

    def list_uploads(self, key: str) -> list[UploadInfo]:
        """The uploads in progress for exactly ``key``, oldest first."""

    def uploads_below(self, prefix: str) -> list[tuple[str, str]]:
        """``(key, upload_id)`` of every upload in progress for a key starting with ``prefix``."""

    def list_parts(self, key: str, upload_id: str) -> list[PartInfo]:
        """The parts of an upload, by ascending number."""
