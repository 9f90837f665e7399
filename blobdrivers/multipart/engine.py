"""The multipart engine: put, copy, delete, cat and resumable writers on one :class:`MultipartBackend`."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence

from .. import paths
from ..conditions import Conditions
from ..errors import PathNotFoundError
from ..transfer import Source, part_size_for, plan_put, run_bounded, upload_parts
from .backend import CopySource, MultipartBackend, ObjectInfo, TransferSettings
from .cat import Concatenation
from .sessions import ParkedSession, Sessions, session_tokens, upload_token
from .writer import ResumableWriter

log = logging.getLogger("blobdrivers.multipart")

NO_CONDITIONS = Conditions()
#: Services report initiation times in whole seconds (OSS) or milliseconds (S3).
_CLOCK_RESOLUTION = 1.0


class MultipartEngine:
    """Put, cat, copy and resumable writers for one :class:`MultipartBackend`.

    ``settings`` (the driver) holds ``chunk_size``, the single-request limit and the
    part size (parts grow only when an object would not fit in ``max_parts``), and
    ``concurrency``, the parts in flight per transfer, so a transfer holds at most
    ``chunk_size * (concurrency + 1)`` bytes; the engine reads both from it on every
    transfer and keeps no copy. ``copy_chunk_size`` is the part size of multipart copies.
    ``before_part(key, number)`` runs in the worker that is about to send part
    ``number`` of a put or writer (the driver's ``"part.upload"`` race point); what
    it raises fails that part.
    """

    def __init__(
        self,
        backend: MultipartBackend,
        *,
        settings: TransferSettings,
        copy_chunk_size: int,
        before_part: Callable[[str, int], None] | None = None,
    ) -> None:
        if settings.chunk_size < backend.min_part_size:
            raise ValueError(f"chunk size {settings.chunk_size} is below the minimum part size {backend.min_part_size}")
        self.backend = backend
        self.settings = settings
        self.sessions = Sessions(backend)
        self.before_part = before_part or _no_hook
        self.copy_chunk_size = max(copy_chunk_size, backend.min_part_size)

    @property
    def chunk_size(self) -> int:
        """The driver's chunk size: the single-request limit and the part size."""
        return self.settings.chunk_size

    @property
    def concurrency(self) -> int:
        """The driver's parts in flight per transfer (at least 1)."""
        return max(1, self.settings.concurrency)

    # ------------------------------------------------------------------ put

    def put(self, key: str, source: Source, conditions: Conditions) -> None:
        """Publish ``source`` at ``key``: one request up to the chunk size, else a parallel multipart upload."""
        backend = self.backend
        plan = plan_put(source, self.chunk_size, max_parts=backend.max_parts, max_part_size=backend.max_part_size)
        if plan.whole is not None:
            backend.put_object(key, plan.whole, conditions)
            return
        source, sizes = plan.source, plan.part_sizes
        upload_id = self.create_upload(key)
        try:
            etags = upload_parts(
                source, sizes, functools.partial(self.send_part, key, upload_id), concurrency=self.concurrency
            )
            if source.read(1):
                raise ValueError(f"the data does not fit in {backend.max_parts} parts")
            backend.complete(key, upload_id, list(enumerate(etags, start=1)), conditions)
        except BaseException:
            self.abort_quietly(key, upload_id)
            raise

    def send_part(self, key: str, upload_id: str, number: int, data: memoryview) -> str:
        """Upload part ``number`` of a put or writer, after the ``before_part`` hook; return its tag."""
        self.before_part(key, number)
        return self.backend.upload_part(key, upload_id, number, data)

    # ------------------------------------------------------------------ copy

    def copy(self, source_key: str, key: str, source: ObjectInfo, conditions: Conditions) -> None:
        """Copy the object ``source_key`` (as described by ``source``) to ``key`` by a parallel multipart copy.

        Parts are ``copy_chunk_size`` ranges (grown to fit ``max_parts``), copied
        ``concurrency`` at a time; the completion carries ``conditions``. Any failure
        aborts the upload.
        """
        backend = self.backend
        if source.size == 0:
            backend.put_object(key, memoryview(b""), conditions)
            return
        part_size = part_size_for(
            source.size, self.copy_chunk_size, max_parts=backend.max_parts, max_part_size=backend.copy_part_max
        )
        upload_id = self.create_upload(key)
        try:
            tasks = [
                _bind_copy(
                    backend,
                    key,
                    upload_id,
                    number,
                    source_key,
                    (start, min(start + part_size, source.size)),
                    source.etag,
                )
                for number, start in enumerate(range(0, source.size, part_size), start=1)
            ]
            etags = run_bounded(tasks, self.concurrency)
            backend.complete(key, upload_id, list(enumerate(etags, start=1)), conditions)
        except BaseException:
            self.abort_quietly(key, upload_id)
            raise

    # ------------------------------------------------------------------ delete, cat

    def delete(self, key: str, prefix: str) -> bool:
        """Delete the object ``key`` and every object under ``prefix`` (its folder); say whether there was any.

        Everything under the folder goes, hidden bookkeeping and other tools' keys
        included, but only a valid path counts as "something there".

        Keys are deleted in batches of the backend's ``delete_batch_size`` while the
        listing goes on, so a folder of any size costs bounded memory.
        """
        backend = self.backend
        found = backend.head_object(key) is not None
        if found:
            backend.delete_objects([key])
        batch: list[str] = []
        parked: set[str] = set()  # upload tokens of the session records deleted here
        for listed in backend.list_keys(prefix):
            found = found or paths.from_key(listed) is not None
            parked.update(session_tokens(listed))
            batch.append(listed)
            if len(batch) == backend.delete_batch_size:
                backend.delete_objects(batch)
                batch = []
        if batch:
            backend.delete_objects(batch)
        # A child store rooted below the folder keeps its parked sessions' records there:
        # their uploads go with them. Sessions of this store's own paths (recorded in its
        # own bookkeeping) and live uploads are no files of the folder and stay.
        if parked:
            for upload_key, upload_id in backend.uploads_below(prefix):
                if upload_token(upload_id) in parked:
                    self.abort_quietly(upload_key, upload_id)
        return found

    def cat(self, key: str, sources: Sequence[str]) -> None:
        """Publish the concatenation of the objects ``sources`` at ``key`` (see :class:`Concatenation`)."""
        Concatenation(self, key, sources).run()

    # ------------------------------------------------------------------ uploads

    def create_upload(self, key: str) -> str:
        """Initiate an upload for ``key``; return its id.

        When the backend had to retry, an earlier attempt may have created an upload
        whose answer was lost: nobody knows its id, so nobody would ever abort it.
        Such orphans are looked for and aborted before this returns (see
        :meth:`_abort_orphans`).
        """
        started = time.monotonic()
        created = self.backend.create_upload(key)
        if created.retried:
            self._abort_orphans(key, created.upload_id, time.monotonic() - started)
        return created.upload_id

    def _abort_orphans(self, key: str, upload_id: str, elapsed: float) -> None:
        """Abort the uploads of ``key`` that lost attempts of the create of ``upload_id`` may have made.

        An orphan was initiated after the first attempt was sent and before the
        attempt that made ``upload_id``: within ``elapsed`` seconds before it, on the
        service's clock (so client clock skew does not matter). It has no parts and
        no parked tail yet. Another create for the same key in that same second
        cannot be told apart from an orphan and is aborted too; its upload then fails
        with a :class:`StorageError` before publishing anything, so no data is lost.
        A failure here is logged and leaves the orphan to the bucket's lifecycle rule.
        """
        backend = self.backend
        try:
            uploads = backend.list_uploads(key)
            mine = next((upload for upload in uploads if upload.upload_id == upload_id), None)
            if mine is None:
                return
            earliest = mine.initiated - elapsed - _CLOCK_RESOLUTION
            for upload in uploads:
                if upload.upload_id == upload_id or not earliest <= upload.initiated <= mine.initiated:
                    continue
                if backend.list_parts(key, upload.upload_id):
                    continue
                if next(iter(backend.list_keys(self.sessions.upload_folder(key, upload.upload_id))), None) is not None:
                    continue
                log.debug("aborting an upload of /%s orphaned by a retried create", key)
                backend.abort(key, upload.upload_id)
        except Exception as exc:
            log.debug("looking for uploads of /%s orphaned by a retried create failed: %s", key, type(exc).__name__)

    # ------------------------------------------------------------------ writer

    def writer(self, key: str, append: bool) -> ResumableWriter:
        """Open a resumable writer for ``key`` (see :class:`ResumableWriter` for sessions and their records).

        ``append=True`` claims the most recently parked session of ``key`` and resumes
        it at exactly the size its record holds; with none parked, it starts a session
        seeded with the committed object (server-side copies of its whole chunks, the
        short rest downloaded), and raises :class:`PathNotFoundError` when nothing is
        committed either. ``append=False`` claims and drops every parked session of
        ``key`` and starts a new one. Uploads without a record (live writers, puts,
        ``cat`` and copies in flight) are never adopted or aborted.
        """
        sessions = self.sessions
        parked = sessions.parked(key)
        if not append:
            for session in parked:
                if sessions.claim(session):
                    self.abort_quietly(key, session.upload_id)
                    self.delete_prefix_quietly(sessions.upload_folder(key, session.upload_id))
            return ResumableWriter(self, key, part_size=self.chunk_size)
        for session in parked:
            if sessions.claim(session):
                resumed = self._resume(key, session)
                if resumed is not None:
                    return resumed
        info = self.backend.head_object(key)
        if info is None:
            raise PathNotFoundError(f"nothing to append to at /{key}")
        return self._seed(key, info)

    def _resume(self, key: str, session: ParkedSession) -> ResumableWriter | None:
        """A writer continuing a claimed session from its record, or ``None`` when the record is gone."""
        saved = self.sessions.load(key, session)
        if saved is None:
            return None
        return ResumableWriter(
            self,
            key,
            part_size=saved.part_size,
            upload_id=session.upload_id,
            parts=dict(enumerate(saved.tags, start=1)),
            buffer=saved.tail,
            record=session.record,
        )

    def _seed(self, key: str, info: ObjectInfo) -> ResumableWriter:
        backend = self.backend
        part_size = self.chunk_size
        whole = info.size // part_size
        upload_id: str | None = None
        parts: dict[int, str] = {}
        if whole:
            upload_id = self.create_upload(key)
            try:
                tasks = [
                    _bind_copy(backend, key, upload_id, n + 1, key, (n * part_size, (n + 1) * part_size), info.etag)
                    for n in range(whole)
                ]
                etags = run_bounded(tasks, self.concurrency)
            except BaseException:
                self.abort_quietly(key, upload_id)
                raise
            parts = dict(enumerate(etags, start=1))
        buffer = bytearray(info.size - whole * part_size)
        if buffer:
            backend.read_range(key, whole * part_size, memoryview(buffer), etag=info.etag)
        return ResumableWriter(self, key, part_size=part_size, upload_id=upload_id, parts=parts, buffer=buffer)

    # ------------------------------------------------------------------ helpers

    def delete_keys(self, keys: Sequence[str]) -> None:
        """Delete ``keys`` in requests of at most the backend's ``delete_batch_size``."""
        size = self.backend.delete_batch_size
        for start in range(0, len(keys), size):
            self.backend.delete_objects(keys[start : start + size])

    def abort_quietly(self, key: str, upload_id: str) -> None:
        """Abort an upload after another failure, or when it is no longer wanted; a failure is only logged."""
        try:
            self.backend.abort(key, upload_id)
        except Exception as exc:  # the original failure matters more; the abort is logged
            log.warning("could not abort the multipart upload of /%s: %s", key, type(exc).__name__)

    def delete_prefix_quietly(self, prefix: str) -> None:
        """Delete every hidden object under ``prefix`` (best effort: a failure is only logged)."""
        try:
            keys = list(self.backend.list_keys(prefix))
            if keys:
                self.delete_keys(keys)
        except Exception as exc:
            log.warning("could not delete hidden objects under %s: %s", prefix, type(exc).__name__)


def _no_hook(key: str, number: int) -> None:
    """The default ``before_part``: nothing to do."""


def _bind_copy(
    backend: MultipartBackend,
    key: str,
    upload_id: str,
    number: int,
    source_key: str,
    byte_range: tuple[int, int],
    etag: str | None,
) -> Callable[[], str]:
    def task() -> str:
        return backend.copy_part(key, upload_id, number, CopySource(source_key, byte_range, etag))

    return task
