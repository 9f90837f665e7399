"""``stream``: ranged GETs streamed from the socket, reopened after a cut by :class:`ReopeningReader`.

The first answer's etag pins the version: every reopen carries If-Match on it, so a
blob rewritten mid-read fails the read (``StorageError``) instead of mixing two
versions.
"""

from __future__ import annotations

from typing import Any, Final

import requests
import urllib3
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobClient

# The generated layer's condition model: the streaming GET calls the generated operation directly.
from azure.storage.blob._generated.models import ModifiedAccessConditions

from ...errors import StorageError
from ...params import MiB
from ...reader import RangeReader, ReopeningReader, read_fully
from ...retry import RetryPolicy
from .errors import status

#: Widest read of the HTTP body per ``readinto`` (bounds the temporary buffer urllib3 allocates).
READ_SLICE: Final = 4 * MiB


class _Body:
    """The body of one ranged GET, read straight from the socket; a body that ends early raises."""

    def __init__(self, response: Any, remaining: int) -> None:
        self._response = response
        self._raw: Any = response.raw if response is not None else None
        self.remaining = remaining

    def readinto(self, buffer: memoryview) -> int:
        """Fill up to ``len(buffer)`` bytes (at most 4 MiB per call); 0 only at the end of the range."""
        if not self.remaining or self._raw is None:
            return 0
        got = int(self._raw.readinto(buffer[: min(len(buffer), self.remaining, READ_SLICE)]) or 0)
        if got == 0:
            raise urllib3.exceptions.ProtocolError("connection closed before the end of the range")
        self.remaining -= got
        return got

    def close(self) -> None:
        """Return the connection to the pool when the body was read to its end, else drop it."""
        raw, self._raw = self._raw, None
        if raw is None:
            return
        if self.remaining:
            self._response.close()  # an unfinished body: the connection cannot be reused
        else:
            raw.release_conn()


class BlobRanges:
    """Opens byte ranges of one version of a blob: the etag given, or the one the first answer names."""

    def __init__(self, blob: BlobClient, path: str, etag: str | None) -> None:
        self._blob = blob
        self._path = path
        self._etag = etag

    def open(self, offset: int, length: int | None) -> _Body:
        """One streaming GET of ``length`` bytes (``None``: to the end) from ``offset``; empty past the end."""
        if length == 0:
            return _Body(None, 0)
        if offset == 0 and length is None:
            header = None
        elif length is None:
            header = f"bytes={offset}-"
        else:
            header = f"bytes={offset}-{offset + length - 1}"
        conditions = ModifiedAccessConditions(if_match=self._etag) if self._etag else None
        try:
            # The generated operation streams the body (the public downloader buffers
            # whole ranges); the SDK pipeline still signs, retries and raises.
            pipeline_response = self._blob._client.blob.download(
                range=header, modified_access_conditions=conditions, cls=lambda response, _body, _headers: response
            )
        except HttpResponseError as exc:
            if status(exc) == 416:  # offset at or beyond the end: the blob exists, the range is empty
                return _Body(None, 0)
            if status(exc) == 412 and self._etag:
                raise StorageError(f"{self._path} changed while it was being read") from exc
            raise
        response = pipeline_response.http_response
        if self._etag is None:
            self._etag = response.headers.get("ETag")
        return _Body(response.internal_response, int(response.headers.get("Content-Length", "0")))


def _is_cut(exc: BaseException) -> bool:
    """A body cut mid-read; failures of a request itself were retried by the SDK pipeline already."""
    return isinstance(exc, urllib3.exceptions.HTTPError | requests.RequestException | OSError)


def open_range(
    blob: BlobClient, path: str, offset: int, length: int | None, *, etag: str | None, retry: RetryPolicy
) -> tuple[RangeReader, int]:
    """A reader of the range, opened now (so a missing blob fails here), and its length."""
    ranges = BlobRanges(blob, path, etag)
    first = ranges.open(offset, length)
    reader = ReopeningReader(ranges.open, offset, first.remaining, retry=retry, is_transient=_is_cut, first=first)
    return reader, first.remaining


def read_range(blob: BlobClient, path: str, offset: int, length: int, *, etag: str, retry: RetryPolicy) -> bytearray:
    """Exactly ``length`` bytes from ``offset`` of a blob whose etag must still be ``etag``."""
    buffer = bytearray(length)
    if not length:
        return buffer
    reader, _ = open_range(blob, path, offset, length, etag=etag, retry=retry)
    read_fully(reader, memoryview(buffer), path=path)
    return buffer
