"""Reads: one ``alt=media`` GET per range, reopened at the current offset if the body breaks.

Every reopen is pinned to the generation the first response came from, so a
concurrent overwrite can never splice two contents; a whole-object read is checked
against the object's CRC32C (``X-Goog-Hash``).
"""

from __future__ import annotations

from typing import Any

import urllib3.exceptions
from urllib3.response import BaseHTTPResponse

from ...errors import StorageError
from ...reader import ChecksumReader, RangeReader, ReopeningReader
from . import crc
from .client import Api
from .errors import HTTPError, is_transient

#: What a failed whole-object check says (``get`` and ``stream`` alike).
CHECK = "integrity check: CRC32C"


class EmptyReader:
    """The reader of a zero-length range."""

    def readinto(self, buffer: memoryview) -> int:
        """Nothing, ever."""
        return 0

    def close(self) -> None:
        """Nothing to release."""


def open_range(api: Api, key: str, offset: int, length: int | None) -> tuple[RangeReader, int | None]:
    """A reader of ``length`` bytes (``None``: to the end) from ``offset``, and how many it will give.

    The first GET is made here, under the retry policy, so a missing object fails now
    and the length is known; later reopens happen inside the one ReopeningReader.
    """
    generation: list[str | None] = [None]
    last = _LastRead()

    def open_at(start: int, count: int | None) -> _MediaBody:
        body = _MediaBody.open(api, key, start, count, generation[0], last)
        generation[0] = generation[0] or body.generation
        return body

    first = api.retry.call(lambda: open_at(offset, length), is_transient=is_transient, what="stream")
    remaining = first.remaining
    reader: RangeReader = ReopeningReader(
        open_at, offset, remaining, retry=api.retry, is_transient=is_transient, first=first
    )
    if first.whole_crc is not None and remaining is not None:
        # google_crc32c takes only bytes: fold the bytes object the body just read (the same
        # bytes as the buffer it filled) rather than a copy of the buffer.
        reader = ChecksumReader(
            reader,
            size=remaining,
            expected=first.whole_crc,
            extend=lambda state, _view: crc.extend(state, last.take()),
            what=CHECK,
            path="/" + key,
        )
    return reader, remaining


class _LastRead:
    """The bytes the latest body read gave, shared by the bodies of one range."""

    data: bytes = b""

    def take(self) -> bytes:
        """The bytes of the latest read, let go of here (a large read's buffer is not kept alive)."""
        data, self.data = self.data, b""
        return data


class _MediaBody:
    """One streamed GET response: sequential reads until its range ends or the connection breaks."""

    def __init__(self, response: BaseHTTPResponse | None, remaining: int | None, last: _LastRead) -> None:
        self._response = response
        self._last = last
        self._left = remaining
        #: Bytes this body will give (``None``: unknown, to the end of the object).
        self.remaining = remaining
        self.generation: str | None = None
        #: The object's CRC32C when this body is the whole object, else ``None``.
        self.whole_crc: int | None = None

    @classmethod
    def open(
        cls, api: Api, key: str, start: int, count: int | None, generation: str | None, last: _LastRead
    ) -> _MediaBody:
        headers = {"Accept-Encoding": "identity"}
        whole = start == 0 and count is None
        if not whole:
            end = "" if count is None else str(start + count - 1)
            headers["Range"] = f"bytes={start}-{end}"
        params = {"alt": "media"}
        if generation:
            params["generation"] = generation
        try:
            response = api.send(
                "GET",
                api.media_url(key),
                what="stream",
                params=params,
                headers=headers,
                stream=True,
                expect=(200, 206, 416),
                retry=False,
            )
        except HTTPError as exc:
            if exc.status == 404 and generation and not exc.bucket_missing:
                raise StorageError(f"/{key} was replaced or deleted while being read") from None
            raise
        if response.status == 416:  # the offset is at or past the end
            response.read()
            response.release_conn()
            return cls(None, 0, last)
        length = response.headers.get("Content-Length")
        body = cls(response, None if length is None else int(length), last)
        body.generation = response.headers.get("x-goog-generation")
        if whole and response.status == 200:
            body.whole_crc = crc.from_hash_header(response.headers)
        return body

    def readinto(self, buffer: memoryview) -> int:
        response = self._response
        if response is None:
            return 0
        if self._left is not None:
            buffer = buffer[: self._left]
            if not buffer:
                self.close()
                return 0
        data = response.read(len(buffer), decode_content=False)
        if not data:
            if self._left:
                # The body ended early: a transient failure, so the range is reopened here.
                raise urllib3.exceptions.ProtocolError("the body ended before Content-Length")
            self.close()
            return 0
        got = len(data)
        buffer[:got] = data
        self._last.data = data
        if self._left is not None:
            self._left -= got
            if not self._left:
                self.close()  # read to its end: the connection goes back to the pool
        return got

    def close(self) -> None:
        response: Any
        response, self._response = self._response, None
        if response is not None:
            # A body read to its end goes back to the pool; an abandoned one closes its connection.
            if self._left is None or self._left > 0:
                response.close()
            response.release_conn()
