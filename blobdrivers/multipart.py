"""The backend-neutral multipart engine shared by the S3-style drivers (S3, OSS).

Services with the S3 multipart model (initiate, upload part, upload part copy with
a byte range, complete with a part list, abort, list uploads, list parts) differ
only in their SDK calls and limits. A driver implements :class:`MultipartBackend`
with its SDK and gets from :class:`MultipartEngine`:

* ``put``: one request up to the chunk size, else a parallel multipart upload whose
  parts grow so the object fits in ``max_parts``; any failure aborts the upload.
* ``writer``: the resumable :class:`ResumableWriter` (see its docstring for the
  on-store layout that lets another process resume at exactly ``size``).
* ``cat``: a multipart upload whose parts are server-side copies of the sources;
  small sources are merged through a bounded buffer (see :func:`plan_cat`).
* ``copy``: a parallel multipart copy (for ``move`` of large objects).

Hidden bookkeeping objects (writer session records and claims, intermediate ``cat`` objects) live under
the backend's ``hidden_prefix``, whose name contains ``~`` so that list and walk
never show it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import hashlib
import itertools
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from typing import Literal, Protocol

from . import paths
from .conditions import Conditions
from .errors import PathNotFoundError, PreconditionFailedError, StorageError
from .transfer import Source, part_size_for, plan_put, run_bounded, upload_parts

log = logging.getLogger("blobdrivers.multipart")

NO_CONDITIONS = Conditions()
#: Services report initiation times in whole seconds (OSS) or milliseconds (S3).
_CLOCK_RESOLUTION = 1.0
#: Keys per batch delete (the S3 and OSS limit).
_DELETE_BATCH = 1000
#: Name prefixes, in an upload's hidden folder, of a session record and of the claim on one.
_RECORD = "parked-"
_CLAIM = "claim-"


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
class ParkedSession:
    """A writer session parked by ``close()``: its upload and the record that describes it."""

    upload_id: str
    #: Key of the record object (see :class:`ResumableWriter`).
    record: str
    #: Parking time (nanoseconds since the epoch, on the parking client's clock).
    stamp: int

    @property
    def claim(self) -> str:
        """Key of the create-only object by which one writer takes this session over."""
        folder, _, name = self.record.rpartition("/")
        return f"{folder}/{_CLAIM}{name.removeprefix(_RECORD)}"


@dataclass(frozen=True)
class PartInfo:
    """One uploaded part of an upload in progress."""

    number: int
    #: The part's tag, as :meth:`MultipartBackend.upload_part` returns it.
    etag: str
    size: int


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


# --------------------------------------------------------------------------- cat planning


@dataclass(frozen=True)
class Piece:
    """Bytes ``[start, end)`` of source number ``source``."""

    source: int
    start: int
    end: int

    @property
    def size(self) -> int:
        """Length of the piece."""
        return self.end - self.start


@dataclass
class PlannedPart:
    """One part of the final upload of a ``cat``.

    * ``copy``: a server-side copy of one piece.
    * ``data``: pieces downloaded into one buffer and uploaded (small sources only,
      plus at most ``min_part_size`` bytes of one larger source when small sources
      come first and nothing precedes them that they could join).
    * ``fold``: a copy piece followed by small data pieces. It becomes an
      intermediate hidden object (an upload of the copy as part 1 and the data as
      the short last part 2), which is then copied as this part. It lets small
      sources follow a large one without any byte of the large one leaving the
      server.
    """

    kind: Literal["copy", "data", "fold"]
    pieces: list[Piece] = field(default_factory=list)

    @property
    def size(self) -> int:
        """Bytes this part contributes."""
        return sum(piece.size for piece in self.pieces)

    @property
    def data_pieces(self) -> list[Piece]:
        """Pieces whose bytes travel through the client."""
        return self.pieces if self.kind == "data" else self.pieces[1:] if self.kind == "fold" else []


def plan_cat(
    sizes: Sequence[int], *, min_part: int, max_copy: int, data_part: int, max_parts: int
) -> list[PlannedPart]:
    """Plan the parts of a ``cat`` of sources of ``sizes``.

    Every part but the last is at least ``min_part`` bytes. Sources of at least
    ``min_part`` bytes are copied server-side (in ranges of at most
    ``max_copy - min_part`` bytes, so a fold stays copyable). Smaller sources are
    merged into ``data`` parts of about ``data_part`` bytes (never more than
    ``data_part + 2 * min_part``); a run of small sources that is too short to stand
    alone joins the previous data part, or folds onto the previous copy, or, only
    when it opens the concatenation, is padded with the head of the next source
    (``min_part`` bytes at most, or all of that source when it is shorter than
    ``2 * min_part`` and not the last). No other byte of a source of ``min_part``
    bytes or more goes through the client. Raises ``ValueError`` when the plan
    needs more than ``max_parts`` parts.
    """
    if min_part <= 0 or data_part < min_part or max_copy <= 2 * min_part:
        raise ValueError("inconsistent part limits")
    parts: list[PlannedPart] = []
    pending: list[Piece] = []
    last = max((index for index, size in enumerate(sizes) if size > 0), default=-1)

    def pending_size() -> int:
        return sum(piece.size for piece in pending)

    def flush() -> None:
        parts.append(PlannedPart("data", list(pending)))
        pending.clear()

    for index, size in enumerate(sizes):
        if size <= 0:
            continue
        if size < min_part:
            if pending_size() >= min_part and pending_size() + size > data_part:
                flush()
            pending.append(Piece(index, 0, size))
            if pending_size() >= data_part:
                flush()
            continue
        start = 0
        if pending:
            previous = parts[-1] if parts else None
            if pending_size() >= min_part:
                flush()
            elif previous is not None and previous.kind == "data":
                previous.pieces.extend(pending)
                pending.clear()
            elif previous is not None and previous.kind == "copy":
                parts[-1] = PlannedPart("fold", [*previous.pieces, *pending])
                pending.clear()
            else:
                # Small sources open the concatenation: nothing before them to join, so
                # they borrow the head of this source to make a full first part. A rest
                # too short to be a part travels too, unless it is the very last part.
                start = min_part - pending_size()
                pending.append(Piece(index, 0, start))
                flush()
                if size - start < min_part and index != last:
                    pending.append(Piece(index, start, size))
                    continue
        parts.extend(PlannedPart("copy", [piece]) for piece in _split(index, start, size, max_copy - min_part))
    if pending:
        flush()
    if len(parts) > max_parts:
        raise ValueError(f"the concatenation needs {len(parts)} parts, more than the limit of {max_parts}")
    return parts


def _split(source: int, start: int, end: int, limit: int) -> list[Piece]:
    count = -(-(end - start) // limit)
    step = -(-(end - start) // count)
    return [Piece(source, offset, min(end, offset + step)) for offset in range(start, end, step)]


# --------------------------------------------------------------------------- engine


class MultipartEngine:
    """Put, cat, copy and resumable writers for one :class:`MultipartBackend`.

    ``chunk_size`` is the single-request limit and the part size (parts grow only
    when an object would not fit in ``max_parts``); ``concurrency`` bounds the parts
    in flight per transfer, so a transfer holds at most ``chunk_size * (concurrency
    + 1)`` bytes; ``copy_chunk_size`` is the part size of multipart copies.
    ``before_part(key, number)`` runs in the worker that is about to send part
    ``number`` of a put or writer (the driver's ``"part.upload"`` race point); what
    it raises fails that part.
    """

    def __init__(
        self,
        backend: MultipartBackend,
        *,
        chunk_size: int,
        concurrency: int,
        copy_chunk_size: int,
        before_part: Callable[[str, int], None] | None = None,
    ) -> None:
        if chunk_size < backend.min_part_size:
            raise ValueError(f"chunk size {chunk_size} is below the minimum part size {backend.min_part_size}")
        self.backend = backend
        self.before_part = before_part or _no_hook
        self.chunk_size = chunk_size
        self.concurrency = max(1, concurrency)
        self.copy_chunk_size = max(copy_chunk_size, backend.min_part_size)

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
            self._abort_quietly(key, upload_id)
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
            self._abort_quietly(key, upload_id)
            raise

    # ------------------------------------------------------------------ cat

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
            parked.update(_session_token(listed))
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
                if _upload_token(upload_id) in parked:
                    self._abort_quietly(upload_key, upload_id)
        return found

    def cat(self, key: str, sources: Sequence[str]) -> None:
        """Publish the concatenation of the objects ``sources`` at ``key`` (see :func:`plan_cat`).

        Sources are pinned by etag, so a source replaced during the ``cat`` fails it
        rather than mixing versions. Raises :class:`PathNotFoundError` for a missing
        source before anything is written.
        """
        backend = self.backend
        infos = run_bounded([functools.partial(backend.head_object, source) for source in sources], self.concurrency)
        found: list[ObjectInfo] = []
        for source, info in zip(sources, infos, strict=True):
            if info is None:
                raise PathNotFoundError(f"cat source /{source} does not exist")
            found.append(info)
        total = sum(info.size for info in found)
        data_part = max(
            backend.min_part_size,
            part_size_for(total, self.chunk_size, max_parts=backend.max_parts, max_part_size=backend.max_part_size),
        )
        plan = plan_cat(
            [info.size for info in found],
            min_part=backend.min_part_size,
            max_copy=backend.copy_part_max,
            data_part=data_part,
            max_parts=backend.max_parts,
        )
        if not plan:
            backend.put_object(key, memoryview(b""), NO_CONDITIONS)
            return
        if len(plan) == 1 and plan[0].kind == "data":
            backend.put_object(key, self._download(plan[0].pieces, sources, found), NO_CONDITIONS)
            return
        if len(plan) == 1 and plan[0].kind == "copy" and plan[0].size == found[plan[0].pieces[0].source].size:
            index = plan[0].pieces[0].source
            backend.copy_object(sources[index], key, NO_CONDITIONS, source_etag=found[index].etag)
            return
        scratch: list[str] = []
        scratch_lock = threading.Lock()
        upload_id = self.create_upload(key)
        try:
            tasks = [
                self._cat_part_task(key, upload_id, number, part, sources, found, scratch, scratch_lock)
                for number, part in enumerate(plan, start=1)
            ]
            etags = run_bounded(tasks, self.concurrency)
            backend.complete(key, upload_id, list(enumerate(etags, start=1)), NO_CONDITIONS)
        except BaseException:
            self._abort_quietly(key, upload_id)
            raise
        finally:
            if scratch:
                with contextlib.suppress(Exception):
                    self.delete_keys(scratch)

    def _cat_part_task(
        self,
        key: str,
        upload_id: str,
        number: int,
        part: PlannedPart,
        sources: Sequence[str],
        infos: Sequence[ObjectInfo],
        scratch: list[str],
        scratch_lock: threading.Lock,
    ) -> Callable[[], str]:
        backend = self.backend

        def copy() -> str:
            piece = part.pieces[0]
            info = infos[piece.source]
            whole = piece.start == 0 and piece.end == info.size
            byte_range = None if whole else (piece.start, piece.end)
            return backend.copy_part(key, upload_id, number, CopySource(sources[piece.source], byte_range, info.etag))

        def data() -> str:
            return backend.upload_part(key, upload_id, number, self._download(part.pieces, sources, infos))

        def fold() -> str:
            # An intermediate object: the copied piece as part 1, the small data as the
            # (short) last part 2; then this whole object is the part of the final upload.
            hidden = f"{backend.hidden_prefix}cat/{uuid.uuid4().hex}"
            with scratch_lock:
                scratch.append(hidden)
            inner = self.create_upload(hidden)
            try:
                piece = part.pieces[0]
                info = infos[piece.source]
                first = backend.copy_part(
                    hidden, inner, 1, CopySource(sources[piece.source], (piece.start, piece.end), info.etag)
                )
                second = backend.upload_part(hidden, inner, 2, self._download(part.data_pieces, sources, infos))
                backend.complete(hidden, inner, [(1, first), (2, second)], NO_CONDITIONS)
            except BaseException:
                self._abort_quietly(hidden, inner)
                raise
            return backend.copy_part(key, upload_id, number, CopySource(hidden))

        return {"copy": copy, "data": data, "fold": fold}[part.kind]

    def _download(self, pieces: Sequence[Piece], sources: Sequence[str], infos: Sequence[ObjectInfo]) -> memoryview:
        buffer = bytearray(sum(piece.size for piece in pieces))
        view = memoryview(buffer)
        offset = 0
        for piece in pieces:
            self.backend.read_range(
                sources[piece.source],
                piece.start,
                view[offset : offset + piece.size],
                etag=infos[piece.source].etag,
            )
            offset += piece.size
        return view

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
                if next(iter(backend.list_keys(self.upload_folder(key, upload.upload_id))), None) is not None:
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
        parked = self._parked(key)
        if not append:
            for session in parked:
                if self._claim(session):
                    self._abort_quietly(key, session.upload_id)
                    self._delete_prefix_quietly(self.upload_folder(key, session.upload_id))
            return ResumableWriter(self, key, part_size=self.chunk_size)
        for session in parked:
            if self._claim(session):
                resumed = self._resume(key, session)
                if resumed is not None:
                    return resumed
        info = self.backend.head_object(key)
        if info is None:
            raise PathNotFoundError(f"nothing to append to at /{key}")
        return self._seed(key, info)

    def _parked(self, key: str) -> list[ParkedSession]:
        """The parked, unclaimed sessions of ``key``, most recently parked first (one listing)."""
        base = self._sessions_folder(key)
        records: dict[str, ParkedSession] = {}
        claimed: set[str] = set()
        for listed in self.backend.list_keys(base):
            token, _, name = listed[len(base) :].partition("/")
            stamp = name.removeprefix(_RECORD).removeprefix(_CLAIM)
            if not stamp.isdigit() or "/" in stamp:
                continue
            if name.startswith(_CLAIM):
                claimed.add(f"{base}{token}/{_RECORD}{stamp}")
            elif name.startswith(_RECORD) and (upload_id := _upload_of(token)) is not None:
                records[listed] = ParkedSession(upload_id, listed, int(stamp))
        live = [session for record, session in records.items() if record not in claimed]
        return sorted(live, key=lambda session: session.stamp, reverse=True)

    def _claim(self, session: ParkedSession) -> bool:
        """Take a parked session for one writer: a create-only claim object, so two claimers never share it."""
        try:
            self.backend.put_object(session.claim, memoryview(b""), Conditions(if_none_match="*"))
        except PreconditionFailedError:
            return False
        return True

    def _resume(self, key: str, session: ParkedSession) -> ResumableWriter | None:
        """A writer continuing a claimed session from its record, or ``None`` when the record is gone."""
        backend = self.backend
        info = backend.head_object(session.record)
        if info is None:
            return None
        raw = bytearray(info.size)
        if info.size:
            backend.read_range(session.record, 0, memoryview(raw), etag=info.etag)
        header, _, tail = bytes(raw).partition(b"\n")
        try:
            state = json.loads(header)
            part_size = int(state["part_size"])
            tags = [str(tag) for tag in state["parts"]]
            if state.get("v") != 1 or state["upload"] != session.upload_id:
                raise ValueError("record of another version or upload")
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring an unreadable writer record under %s", self.upload_folder(key, session.upload_id))
            return None
        return ResumableWriter(
            self,
            key,
            part_size=part_size,
            upload_id=session.upload_id,
            parts=dict(enumerate(tags, start=1)),
            buffer=bytearray(tail),
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
                self._abort_quietly(key, upload_id)
                raise
            parts = dict(enumerate(etags, start=1))
        buffer = bytearray(info.size - whole * part_size)
        if buffer:
            backend.read_range(key, whole * part_size, memoryview(buffer), etag=info.etag)
        return ResumableWriter(self, key, part_size=part_size, upload_id=upload_id, parts=parts, buffer=buffer)

    def _sessions_folder(self, key: str) -> str:
        """Hidden folder of the writer sessions of ``key``."""
        return f"{self.backend.hidden_prefix}uploads/{hashlib.sha256(key.encode()).hexdigest()}/"

    def upload_folder(self, key: str, upload_id: str) -> str:
        """Hidden folder of one upload's bookkeeping (its records and claims), named after the upload id."""
        return f"{self._sessions_folder(key)}{_upload_token(upload_id)}/"

    def record_key(self, key: str, upload_id: str) -> str:
        """A new record key for a session of ``upload_id``, sorting after the earlier ones (parking time)."""
        return f"{self.upload_folder(key, upload_id)}{_RECORD}{time.time_ns():020d}"

    # ------------------------------------------------------------------ helpers

    def delete_keys(self, keys: Sequence[str]) -> None:
        """Delete ``keys`` in requests of at most the backend's ``delete_batch_size``."""
        size = self.backend.delete_batch_size
        for start in range(0, len(keys), size):
            self.backend.delete_objects(keys[start : start + size])

    def _abort_quietly(self, key: str, upload_id: str) -> None:
        try:
            self.backend.abort(key, upload_id)
        except Exception as exc:  # the original failure matters more; the abort is logged
            log.warning("could not abort the multipart upload of /%s: %s", key, type(exc).__name__)

    def _delete_prefix_quietly(self, prefix: str) -> None:
        try:
            keys = list(self.backend.list_keys(prefix))
            if keys:
                self.delete_keys(keys)
        except Exception as exc:
            log.warning("could not delete hidden objects under %s: %s", prefix, type(exc).__name__)


def _upload_of(token: str) -> str | None:
    """The upload id a folder name encodes (see :meth:`MultipartEngine.upload_folder`), or ``None``."""
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


def _no_hook(key: str, number: int) -> None:
    """The default ``before_part``: nothing to do."""


def _upload_token(upload_id: str) -> str:
    """An upload id as one key component (upload ids may hold any character)."""
    return base64.urlsafe_b64encode(upload_id.encode()).decode("ascii").rstrip("=")


def _session_token(key: str) -> list[str]:
    """The upload token of a session record or claim key (`.../~blobdrivers/uploads/<sha>/<token>/<name>`), or none."""
    parts = key.split("/")
    if (
        len(parts) >= 5
        and parts[-4] == "uploads"
        and parts[-5].startswith("~")
        and parts[-1].startswith((_RECORD, _CLAIM))
    ):
        return [parts[-2]]
    return []


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


# --------------------------------------------------------------------------- resumable writer


class ResumableWriter:
    """A :class:`~blobdrivers.writer.WriterBackend` on a multipart upload: one writer *session*.

    A session is one multipart upload that one writer at a time stages into.
    Every part is exactly ``part_size`` bytes (services such as R2 require equal
    parts), uploaded in the background with at most ``concurrency`` in flight, so
    a writer holds at most ``part_size * (concurrency + 1)`` bytes.

    ``close()`` *parks* the session: it writes a hidden *record* object,
    ``<hidden>uploads/<sha256 of key>/<upload id>/parked-<time>``, holding a JSON
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
        self._buffer = buffer if buffer is not None else bytearray()
        #: The record (claimed or written by this writer) that describes the session on the store.
        self._record = record
        self._slots = threading.BoundedSemaphore(engine.concurrency)
        self._lock = threading.Lock()
        self._pending: list[Future[None]] = []
        self._pool: ThreadPoolExecutor | None = None
        self._failure: BaseException | None = None
        self.size = len(self._parts) * part_size + len(self._buffer)

    @property
    def upload_id(self) -> str | None:
        """Id of the multipart upload, once one exists."""
        return self._upload_id

    # ------------------------------------------------------------------ WriterBackend

    def write(self, data: memoryview) -> None:
        """Buffer ``data``; every full part goes out in the background."""
        self._raise_failure()
        if len(self._buffer) >= self._part_size:
            self._flush_full()
        part_size = self._part_size
        while data:
            if not self._buffer and len(data) >= part_size:
                self._submit(data[:part_size], copy=True)
                data = data[part_size:]
                continue
            count = min(part_size - len(self._buffer), len(data))
            self._buffer += data[:count]
            data = data[count:]
            if len(self._buffer) == part_size:
                full, self._buffer = self._buffer, bytearray()
                self._submit(full)

    def close(self) -> None:
        """Park the session: wait for parts in flight, then write its record (see the class docstring).

        After a failed part it parks the parts before it and raises, so the caller
        knows that less than everything written was kept.
        """
        try:
            self._park()
        finally:
            self._shutdown()
        if self._failure is not None:
            raise StorageError(
                f"a part upload of /{self._key} failed ({type(self._failure).__name__}); close() kept only the "
                f"{len(self._parts) * self._part_size} bytes before it"
            ) from self._failure

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
            self._shutdown()

    def cancel(self) -> None:
        """Abort the upload and drop the session's record."""
        try:
            self._wait()
            self._end_session()
        finally:
            self._buffer = bytearray()
            self._shutdown()

    # ------------------------------------------------------------------ publishing

    def _publish_single(self, conditions: Conditions) -> None:
        self._backend.put_object(self._key, memoryview(self._buffer), conditions)
        # The upload (if any) anchored earlier progress only: nothing of it is published.
        self._end_session()

    def _complete(self, conditions: Conditions) -> None:
        assert self._upload_id is not None
        parts = sorted(self._parts.items())
        if self._buffer:
            number = len(parts) + 1
            parts.append((number, self._engine.send_part(self._key, self._upload_id, number, memoryview(self._buffer))))
        self._backend.complete(self._key, self._upload_id, parts, conditions)
        upload_id = self._upload_id
        self._upload_id = None  # completed: nothing left to abort
        self._drop_folder(upload_id)

    def _end_session(self) -> None:
        """Abort the upload and delete the session's hidden folder (best effort, logged)."""
        if self._upload_id is not None:
            self._engine._abort_quietly(self._key, self._upload_id)
            self._drop_folder(self._upload_id)

    def _drop_folder(self, upload_id: str) -> None:
        if self._record is not None:
            self._engine._delete_prefix_quietly(self._engine.upload_folder(self._key, upload_id))
            self._record = None

    def _park(self) -> None:
        """Write the session's record: its consistent prefix of parts, and the tail unless a part failed."""
        if self._failure is None:
            with contextlib.suppress(StorageError):  # a part failing now is handled like an earlier failure
                self._flush_full()
        self._settle()
        # After a failed part the bytes past it never became durable: the record keeps the prefix only.
        tail = memoryview(self._buffer) if self._failure is None else memoryview(b"")
        if self._upload_id is None:
            # Even an empty writer needs an upload: its record is what a resume finds.
            self._upload_id = self._engine.create_upload(self._key)
        state = {
            "v": 1,
            "upload": self._upload_id,
            "part_size": self._part_size,
            "parts": [self._parts[number] for number in range(1, len(self._parts) + 1)],
        }
        record = self._engine.record_key(self._key, self._upload_id)
        body = json.dumps(state).encode() + b"\n" + tail
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
        while len(self._buffer) >= self._part_size:
            if len(self._buffer) == self._part_size:
                full, self._buffer = self._buffer, bytearray()
            else:
                full = self._buffer[: self._part_size]
                del self._buffer[: self._part_size]
            self._submit(full)

    def _submit(self, data: bytearray | memoryview, *, copy: bool = False) -> None:
        """Upload ``data`` as the next part in the background (a copy of it when ``copy``: the caller's memory)."""
        # Take a slot before copying, so parts in memory never exceed concurrency + the buffer.
        self._slots.acquire()
        try:
            self._raise_failure()
            if self._upload_id is None:
                self._upload_id = self._engine.create_upload(self._key)
            part = bytes(data) if copy or isinstance(data, memoryview) else data
            number = self._next
            self._next += 1
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self._engine.concurrency, thread_name_prefix="blobdrivers-writer"
                )
            upload_id = self._upload_id
        except BaseException:
            self._slots.release()
            raise
        self._pending.append(self._pool.submit(self._upload, upload_id, number, part))

    def _upload(self, upload_id: str, number: int, part: bytes | bytearray) -> None:
        try:
            etag = self._engine.send_part(self._key, upload_id, number, memoryview(part))
            with self._lock:
                self._parts[number] = etag
        except BaseException as exc:
            with self._lock:
                if self._failure is None:
                    self._failure = exc
        finally:
            self._slots.release()

    def _wait(self) -> None:
        if self._pending:
            wait_futures(self._pending)
            self._pending.clear()

    def _settle(self) -> None:
        """Wait for parts in flight; after a failure keep only the consistent prefix of parts."""
        self._wait()
        if self._failure is not None:
            prefix: dict[int, str] = {}
            for number in itertools.count(1):
                if number not in self._parts:
                    break
                prefix[number] = self._parts[number]
            self._parts = prefix

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise StorageError(
                f"an earlier part upload of /{self._key} failed ({type(self._failure).__name__}); "
                "close() keeps the parts written before it for a resume"
            ) from self._failure

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
