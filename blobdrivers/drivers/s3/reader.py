"""Reading objects: ranged GETs pinned by etag, and the streamed body that reopens where it was cut."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError, IncompleteReadError

from ...errors import StorageError
from ...reader import RangeReader, ReopeningReader, read_fully
from .errors import is_precondition, is_stream_error

if TYPE_CHECKING:
    from . import S3Driver


def quote(etag: str) -> str:
    """An etag as S3 conditions want it (quoted; ``*`` stays bare)."""
    return etag if etag.startswith('"') or etag == "*" else f'"{etag}"'


def unquote(etag: str | None) -> str | None:
    """An etag as S3 reports it, without its quotes."""
    return etag.strip('"') if etag else None


class Body:
    """A GET's body as a :class:`RangeReader`: a body that ends before its length raises, so it is reopened."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readinto(self, buffer: memoryview) -> int:
        """Fill up to ``len(buffer)`` bytes; never 0 for a non-empty buffer (the caller knows the length)."""
        got = int(self._body.readinto(buffer))
        if got == 0 and buffer:
            raise IncompleteReadError(actual_bytes=0, expected_bytes=len(buffer))
        return got

    def close(self) -> None:
        """Release the connection."""
        self._body.close()


def ranged_get(
    driver: S3Driver, key: str, start: int, end: int | None, etag: str | None
) -> tuple[Body, int, str | None]:
    """A GET of ``[start, end)`` (``end=None``: to the end), only of version ``etag`` when given.

    Returns the body, its byte count and the object's etag. A false ``etag`` means
    the object was replaced since it was first read: a :class:`StorageError`.
    """
    args: dict[str, Any] = {"Bucket": driver.bucket, "Key": key}
    if start or end is not None:
        args["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
    if etag is not None:
        args["IfMatch"] = quote(etag)
    try:
        response = driver.client.get_object(**args)
    except ClientError as exc:
        if etag is not None and is_precondition(exc):
            raise StorageError(f"/{key} changed while it was being read") from exc
        raise
    return Body(response["Body"]), int(response["ContentLength"]), unquote(response.get("ETag"))


def reopening(
    driver: S3Driver, key: str, start: int, count: int, etag: str | None, *, first: RangeReader | None = None
) -> ReopeningReader:
    """``count`` bytes of ``key`` from ``start``, reopened at the byte where a cut body stopped.

    Reopens are ranged GETs pinned to ``etag``, under the driver's retry policy
    (``retries`` attempts); ``first`` is a body already open at ``start``.
    """

    def open_at(offset: int, length: int | None) -> RangeReader:
        end = None if length is None else offset + length
        body, _, _ = ranged_get(driver, key, offset, end, etag)
        return body

    return ReopeningReader(open_at, start, count, retry=driver.retry, is_transient=is_stream_error, first=first)


def read_range(driver: S3Driver, key: str, offset: int, buffer: memoryview, *, etag: str | None) -> None:
    """Fill ``buffer`` with the bytes of ``key`` from ``offset`` (of version ``etag``), reopening a cut body."""
    if not buffer:
        return
    read_fully(reopening(driver, key, offset, len(buffer), etag), buffer, path="/" + key)
