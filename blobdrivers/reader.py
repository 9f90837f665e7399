"""The Reader returned by ``stream``: a binary file-like object over a byte range.

Drivers supply a :class:`RangeReader` (one method that fills a buffer, one that
releases the connection or file); this class adds the file-object protocol, reads
that fill the requested size, iteration by chunks, and error translation.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator
from typing import Protocol

from .errors import StorageError
from .retry import RetryPolicy

DEFAULT_CHUNK = 1024 * 1024


class RangeReader(Protocol):
    """What a driver implements for ``stream``: sequential reads of one byte range."""

    def readinto(self, buffer: memoryview) -> int:
        """Fill up to ``len(buffer)`` bytes; return 0 only at the end of the range."""

    def close(self) -> None:
        """Release the file handle or connection."""


class Reader(io.RawIOBase):
    """A read-only binary stream positioned at the requested offset.

    ``read(n)`` returns exactly ``n`` bytes unless the range ends first; ``read()``
    returns the rest. Iterating yields chunks of ``chunk_size`` bytes (not lines).
    Errors are raised as :class:`~blobdrivers.errors.StorageError` subclasses.
    """

    def __init__(
        self,
        backend: RangeReader,
        *,
        remaining: int | None,
        chunk_size: int = DEFAULT_CHUNK,
        translate: Callable[[Exception], Exception] = lambda exc: exc,
    ) -> None:
        super().__init__()
        self._backend = backend
        self._remaining = remaining
        self._translate = translate
        self.chunk_size = chunk_size

    def readable(self) -> bool:
        """Always true."""
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        """Fill ``buffer`` with up to ``len(buffer)`` bytes; 0 means end of range."""
        if self.closed:
            raise ValueError("I/O operation on closed Reader")
        target = memoryview(buffer).cast("B")
        if self._remaining is not None:
            target = target[: self._remaining]
        if not target:
            return 0
        try:
            got = self._backend.readinto(target)
        except Exception as exc:
            raise self._translate(exc) from exc
        if self._remaining is not None:
            self._remaining -= got
        return got

    def read(self, size: int | None = -1) -> bytes:
        """Read ``size`` bytes (fewer only at the end); all that is left when ``size`` is negative."""
        if size is None or size < 0:
            return self.readall()
        buffer = bytearray(size)
        view = memoryview(buffer)
        filled = 0
        while filled < size:
            got = self.readinto(view[filled:])
            if not got:
                break
            filled += got
        del view
        if filled < size:
            del buffer[filled:]
        return bytes(buffer)

    def readall(self) -> bytes:
        """The rest of the range, in one allocation when its length is known."""
        if self._remaining is not None:
            return self.read(self._remaining)
        parts = []
        while chunk := self.read(self.chunk_size):
            parts.append(chunk)
        return b"".join(parts)

    def __iter__(self) -> Iterator[bytes]:
        """Yield the rest of the range in chunks of ``chunk_size`` bytes."""
        while chunk := self.read(self.chunk_size):
            yield chunk

    def close(self) -> None:
        """Release the backend; further reads raise ``ValueError``."""
        if not self.closed:
            try:
                self._backend.close()
            finally:
                super().close()


class ReopeningReader:
    """A RangeReader over a network body that reopens at the current offset after a transient error.

    ``open_at(offset, length)`` opens the byte range ``[offset, offset + length)``
    (``length`` ``None``: to the end) and must read the same version of the object
    every time: a driver pins it with the etag or generation of its first response
    (``If-Match``), so a concurrent overwrite makes a reopen fail rather than splice
    two versions. A body cut in the middle (connection reset, timeout) is resumed
    from the last byte received, under the driver's retry policy.
    """

    def __init__(
        self,
        open_at: Callable[[int, int | None], RangeReader],
        offset: int,
        length: int | None,
        *,
        retry: RetryPolicy,
        is_transient: Callable[[BaseException], bool],
        first: RangeReader | None = None,
    ) -> None:
        self._open_at = open_at
        self._offset = offset
        self._remaining = length
        self._retry = retry
        self._is_transient = is_transient
        self._body: RangeReader | None = first

    def readinto(self, buffer: memoryview) -> int:
        """Fill up to ``len(buffer)`` bytes, reopening the range after a transient failure."""
        if self._remaining is not None:
            buffer = buffer[: self._remaining]
        if not buffer:
            return 0
        got = self._retry.call(lambda: self._read_some(buffer), is_transient=self._is_transient, what="ranged read")
        self._offset += got
        if self._remaining is not None:
            self._remaining -= got
        return got

    def _read_some(self, buffer: memoryview) -> int:
        try:
            if self._body is None:
                self._body = self._open_at(self._offset, self._remaining)
            return self._body.readinto(buffer)
        except BaseException:
            self._drop()
            raise

    def _drop(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            with contextlib.suppress(Exception):
                body.close()

    def close(self) -> None:
        """Release the current connection."""
        self._drop()


class ChecksumReader:
    """A RangeReader that checks a whole-object checksum once the object's last byte is delivered.

    ``extend(state, data)`` folds ``data`` into a running checksum that starts at
    ``initial`` (CRC-32C, CRC-64, ...). When ``size`` bytes have passed and the result
    differs from ``expected``, the read raises :class:`StorageError` naming ``what``
    and ``path``, so corrupted data never reaches the caller as if it were whole.
    """

    def __init__(
        self,
        inner: RangeReader,
        *,
        size: int,
        expected: int,
        extend: Callable[[int, memoryview], int],
        initial: int = 0,
        what: str,
        path: str,
    ) -> None:
        self._inner = inner
        self._size = size
        self._expected = expected
        self._extend = extend
        self._state = initial
        self._seen = 0
        self._what = what
        self._path = path

    def readinto(self, buffer: memoryview) -> int:
        """Fill up to ``len(buffer)`` bytes; at the last byte, raise if the checksum differs."""
        got = self._inner.readinto(buffer)
        if got:
            self._state = self._extend(self._state, buffer[:got])
            self._seen += got
            if self._seen == self._size and self._state != self._expected:
                raise StorageError(f"{self._what} mismatch reading {self._path}: the data was corrupted in transit")
        return got

    def close(self) -> None:
        """Release the inner reader."""
        self._inner.close()


def read_fully(source: RangeReader, buffer: memoryview, *, path: str) -> None:
    """Fill all of ``buffer`` from ``source``, then close it.

    Raises :class:`StorageError` naming ``path`` when ``source`` ends first.
    """
    try:
        filled = 0
        while filled < len(buffer):
            got = source.readinto(buffer[filled:])
            if not got:
                raise StorageError(f"{path} ended {len(buffer) - filled} bytes before the end of the range")
            filled += got
    finally:
        source.close()
