"""The resumable writer on a multipart upload (one writer *session*; see :class:`ResumableWriter`)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..conditions import Conditions
from ..errors import StorageError
from ..transfer import BackgroundParts, PartBuffer
from .sessions import ParkedSession, record_body

if TYPE_CHECKING:
    from .engine import MultipartEngine

log = logging.getLogger("blobdrivers.multipart")

NO_CONDITIONS = Conditions()


class ResumableWriter:
    """A :class:`~blobdrivers.writer.WriterBackend` on a multipart upload: one writer *session*.

    A session is one multipart upload that one writer at a time stages into.
    Every part is exactly ``part_size`` bytes (services such as R2 require equal
    parts), uploaded in the background with at most ``concurrency`` in flight, so
    a writer holds at most ``part_size * (concurrency + 1)`` bytes.

    ``close()`` *parks* the session: it writes a hidden *record* object
    (see :mod:`~blobdrivers.multipart.sessions` for the layout), holding a JSON
    line (the upload id, the part size and the tags of parts ``1..k``, the
    consistent prefix of full parts this session saw acknowledged) followed by the
    buffered rest (the *tail*, less than one part). The record is the session's
    whole durable state: a resume takes exactly ``k`` parts and the tail, never a
    part the record does not name (a stale part after a gap, another upload's
    parts). After a failed part, ``close()`` records only the parts before the
    first failure and no tail.

    A record is taken over by ``writer(key, append=True)`` with a create-only
    *claim* object beside it, so one parked session is resumed by one writer; the
    resumed writer re-parks under a new record (dropping the old record and its
    claim), and ``commit()`` or ``cancel()`` deletes the session's folder.
    Uploads with no record (a live writer that never parked, a put, cat or copy in
    flight) are never touched by other writers; an upload of a writer that dies
    before ``close()`` is left to the bucket's lifecycle rule.

    ``commit()`` uploads the buffered rest as the short last part and completes
    the upload with exactly the session's parts (a writer that never filled a part
    publishes with one request); two writers of one key complete two uploads, so
    both succeed and the later one is the content. A failed ``commit()`` parks.
    ``cancel()`` aborts. A failed part upload makes further writes and ``commit()``
    raise.
    """

    def __init__(
        self,
        engine: MultipartEngine,
        key: str,
        *,
        part_size: int,
        upload_id: str | None = None,
        parts: dict[int, str] | None = None,
        buffer: bytearray | None = None,
        record: str | None = None,
    ) -> None:
        self._engine = engine
        self._backend = engine.backend
        self._key = key
        self._part_size = part_size
        self._upload_id = upload_id
        self._parts: dict[int, str] = dict(parts or {})
        self._next = len(self._parts) + 1
        self._buffer = PartBuffer(part_size, buffer)
        #: The record (claimed or written by this writer) that describes the session on the store.
        self._record = record
        self._background = BackgroundParts(engine.concurrency, self._upload)
        self.size = len(self._parts) * part_size + len(self._buffer)

    @property
    def upload_id(self) -> str | None:
        """Id of the multipart upload, once one exists."""
        return self._upload_id

    # ------------------------------------------------------------------ WriterBackend

    def write(self, data: memoryview) -> None:
        """Buffer ``data``; every full part goes out in the background."""
        self._raise_failure()
        self._send(self._buffer.cut(data))

    def close(self) -> None:
        """Park the session: wait for parts in flight, then write its record (see the class docstring).

        After a failed part it parks the parts before it and raises, so the caller
        knows that less than everything written was kept.
        """
        try:
            self._park()
        finally:
            self._background.shutdown()
        failure = self._background.failure
        if failure is not None:
            raise StorageError(
                f"a part upload of /{self._key} failed ({type(failure).__name__}); close() kept only the "
                f"{len(self._parts) * self._part_size} bytes before it"
            ) from failure

    def commit(self, conditions: Conditions) -> None:
        """Publish: the buffered rest becomes the last part; on failure the session is parked."""
        try:
            self._settle()
            self._raise_failure()
            self._flush_full()
            self._settle()
            self._raise_failure()
            if self._upload_id is None or not self._parts:
                self._publish_single(conditions)
            else:
                self._complete(conditions)
        except BaseException:
            # The short last part (if it went out) is not in the record: a resume re-sends it.
            self._park_quietly()
            raise
        finally:
            self._background.shutdown()

    def cancel(self) -> None:
        """Abort the upload and drop the session's record."""
        try:
            self._background.drain()
            self._end_session()
        finally:
            self._buffer.clear()
            self._background.shutdown()

    # ------------------------------------------------------------------ publishing

    def _publish_single(self, conditions: Conditions) -> None:
        self._backend.put_object(self._key, self._buffer.rest, conditions)
        # The upload (if any) anchored earlier progress only: nothing of it is published.
        self._end_session()

    def _complete(self, conditions: Conditions) -> None:
        assert self._upload_id is not None
        parts = sorted(self._parts.items())
        if self._buffer:
            number = len(parts) + 1
            parts.append((number, self._engine.send_part(self._key, self._upload_id, number, self._buffer.rest)))
        self._backend.complete(self._key, self._upload_id, parts, conditions)
        upload_id = self._upload_id
        self._upload_id = None  # completed: nothing left to abort
        self._drop_folder(upload_id)

    def _end_session(self) -> None:
        """Abort the upload and delete the session's hidden folder (best effort, logged)."""
        if self._upload_id is not None:
            self._engine.abort_quietly(self._key, self._upload_id)
            self._drop_folder(self._upload_id)

    def _drop_folder(self, upload_id: str) -> None:
        if self._record is not None:
            self._engine.delete_prefix_quietly(self._engine.sessions.upload_folder(self._key, upload_id))
            self._record = None

    def _park(self) -> None:
        """Write the session's record: its consistent prefix of parts, and the tail unless a part failed."""
        if self._background.failure is None:
            with contextlib.suppress(StorageError):  # a part failing now is handled like an earlier failure
                self._flush_full()
        self._settle()
        # After a failed part the bytes past it never became durable: the record keeps the prefix only.
        tail = self._buffer.rest if self._background.failure is None else memoryview(b"")
        if self._upload_id is None:
            # Even an empty writer needs an upload: its record is what a resume finds.
            self._upload_id = self._engine.create_upload(self._key)
        tags = [self._parts[number] for number in range(1, len(self._parts) + 1)]
        body = record_body(self._upload_id, self._part_size, tags, tail)
        record = self._engine.sessions.record_key(self._key, self._upload_id)
        try:
            self._backend.put_object(record, memoryview(body), NO_CONDITIONS)
        except BaseException:
            # Without its record nobody could ever resume or drop the upload: end it (the caller sees the error).
            self._record = record
            self._end_session()
            self._upload_id = None
            raise
        previous, self._record = self._record, record
        if previous is not None:
            stale = ParkedSession(self._upload_id, previous, 0)
            with contextlib.suppress(Exception):  # a stale record is older: a resume prefers this one
                self._backend.delete_objects([previous, stale.claim])

    def _park_quietly(self) -> None:
        try:
            self._park()
        except Exception as exc:
            log.warning("could not park the progress of /%s: %s", self._key, type(exc).__name__)

    # ------------------------------------------------------------------ background parts

    def _flush_full(self) -> None:
        """Send full parts out of a buffer that holds more than one (after resuming a large tail)."""
        self._send(self._buffer.cut())

    def _send(self, parts: Iterator[bytearray | memoryview]) -> None:
        """Upload each full part in the background; the next part is cut only once this one has a slot."""
        for part in parts:
            self._background.send(part, self._number_part)

    def _number_part(self, size: int) -> int:
        """In the slot of the next part, before it is copied: its number (the first part makes the upload)."""
        self._raise_failure()
        if self._upload_id is None:
            self._upload_id = self._engine.create_upload(self._key)
        number = self._next
        self._next += 1
        return number

    def _upload(self, number: int, part: memoryview) -> None:
        upload_id = self._upload_id
        assert upload_id is not None  # made by the first part; replaced only once no part is in flight
        # One dict item set per part is atomic: the writer reads the parts only after a drain.
        self._parts[number] = self._engine.send_part(self._key, upload_id, number, part)

    def _settle(self) -> None:
        """Wait for parts in flight; after a failure keep only the consistent prefix of parts."""
        self._background.drain()
        failed = self._background.first_failed
        if failed is not None:
            self._parts = {number: tag for number, tag in self._parts.items() if number < failed}

    def _raise_failure(self) -> None:
        failure = self._background.failure
        if failure is not None:
            raise StorageError(
                f"an earlier part upload of /{self._key} failed ({type(failure).__name__}); "
                "close() keeps the parts written before it for a resume"
            ) from failure
