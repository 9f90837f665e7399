"""Upload sessions: chunked, resumable from any process, verified and published atomically.

Every session has its own folder ``_uploads/<id>`` (``id`` is a random 128-bit
hex string), so no upload can touch another's bytes. The bytes go through the
driver's resumable writer to ``_uploads/<id>/data``, which publishes nothing until
``finish``; ``close`` keeps the writer's progress and saves the session's size and
hash states to ``_uploads/<id>/state``, so ``BlobStore.resume_upload(id)`` in any
process or driver instance continues where it stopped without re-reading the
bytes (see :mod:`.hashstate`). When the saved state does not match the writer's
progress (a process died between the two, or this process cannot restore the
hash), the resume re-reads the bytes once to rebuild the hash.

``finish(digest)`` checks the digest of exactly the bytes written and only then
publishes them at the blob's path, atomically (a move, conditional on the blob
not existing yet); if the blob is already there with the same size, the upload is
simply dropped. It returns once ``stat`` of the blob gives the full size.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from ..errors import PathNotFoundError, StorageError
from ..writer import Writer
from . import hashstate
from .digest import CANONICAL, Descriptor, parse_digest, validate_algorithm, validate_media_type
from .errors import DigestMismatchError, UploadClosedError, UploadNotFoundError
from .publish import BlobSpace, publish

log = logging.getLogger("blobdrivers.blobs")

_ID = re.compile(r"[0-9a-f]{32}")
STATE_VERSION = 1


class _State(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"
    FINISHED = "finished"
    CANCELLED = "cancelled"


class Upload:
    """One upload session; get it from ``BlobStore.start_upload()`` or ``resume_upload(id)``.

    ``write`` appends bytes; ``close`` keeps them for a later resume (from any
    process); ``finish(digest)`` verifies and publishes them; ``cancel`` drops them.
    Used as a context manager, it is closed (not finished) on exit unless finished
    or cancelled before. One process at a time should hold a session open, and an
    Upload object is not for concurrent use by several threads (like a file).
    """

    def __init__(
        self,
        store: BlobSpace,
        upload_id: str,
        started: datetime,
        *,
        hashes: dict[str, hashstate.ResumableHash],
        size: int,
        writer: Writer | None,
        committed: bool,
        hash_restored: bool,
    ) -> None:
        self._store = store
        self._id = upload_id
        self._started = started
        self._hashes = hashes
        self._writer = writer
        self._committed = committed
        self._state = _State.OPEN
        #: Bytes written so far, including those of earlier sessions.
        self.size = size
        #: True when a resume restored the hash states without re-reading any bytes.
        self.hash_restored = hash_restored

    @property
    def id(self) -> str:
        """The session id, to give to ``BlobStore.resume_upload``."""
        return self._id

    @property
    def started(self) -> datetime:
        """When the session started (aware UTC)."""
        return self._started

    @property
    def algorithms(self) -> tuple[str, ...]:
        """Digest algorithms computed while writing (others are computed at ``finish`` by re-reading)."""
        return tuple(self._hashes)

    @property
    def closed(self) -> bool:
        """True once closed, finished or cancelled."""
        return self._state is not _State.OPEN

    # ------------------------------------------------------------------ public

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append ``data`` to the upload; return its length."""
        self._require_open("write to")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"Upload.write() needs bytes-like data, not {type(data).__name__}")
        length = memoryview(data).nbytes
        if not length:
            return 0
        writer = self._ensure_writer()
        try:
            writer.write(data)
        except BaseException:
            # What the writer staged is unknown now: park it; a resume measures it and rehashes.
            self._writer = None
            self._state = _State.CLOSED
            with contextlib.suppress(Exception):
                writer.close()
            raise
        for hasher in self._hashes.values():
            hasher.update(data)
        self.size += length
        return length

    def close(self) -> None:
        """Keep the progress for ``BlobStore.resume_upload(id)``; publishes nothing. Idempotent."""
        if self._state is not _State.OPEN:
            return
        self._state = _State.CLOSED
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
        self._save_state()

    def finish(self, expected_digest: str, media_type: str | None = None) -> Descriptor:
        """Verify the bytes have ``expected_digest`` (sha256 or sha512) and publish them as that blob.

        A mismatch raises :class:`DigestMismatchError`, publishes nothing and leaves
        the upload open (to cancel it, or to write more). Concurrent finishes of the
        same digest all succeed. Returns once ``stat`` of the blob gives its full
        size; the session is then gone.
        """
        self._require_open("finish")
        algorithm, hex_digest = parse_digest(expected_digest)
        if media_type is not None:
            validate_media_type(media_type)
        actual = self._digest(algorithm)
        if actual != expected_digest:
            raise DigestMismatchError(
                f"upload {self._id}: the {self.size} bytes uploaded have digest {actual}, "
                f"not the expected {expected_digest}; nothing was published",
                driver=self._store.driver.name,
                path=self._store.layout.upload_data(self._id),
                expected=expected_digest,
                actual=actual,
                size=self.size,
            )
        source = self._store.layout.upload_data(self._id)
        target = self._store.layout.blob_data(algorithm, hex_digest)

        def move(conditional: bool) -> None:
            self._store.driver.move(source, target, if_none_match="*" if conditional else None)

        descriptor = publish(
            self._store, algorithm, hex_digest, expected_digest, self.size, media_type, move, prepare=self._commit_data
        )
        self._discard()
        self._state = _State.FINISHED
        return descriptor

    def cancel(self) -> None:
        """Drop every byte and the session itself. Idempotent; not allowed after ``finish``."""
        if self._state is _State.CANCELLED:
            return
        if self._state is _State.FINISHED:
            raise UploadClosedError(f"upload {self._id} is already finished", driver=self._store.driver.name)
        self._discard()
        self._state = _State.CANCELLED

    def __enter__(self) -> Upload:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Upload {self._id} size={self.size} {self._state.value}>"

    # ------------------------------------------------------------------ internals (used by BlobStore)

    def _require_open(self, action: str) -> None:
        if self._state is not _State.OPEN:
            hint = " (resume it with BlobStore.resume_upload)" if self._state is _State.CLOSED else ""
            raise UploadClosedError(
                f"cannot {action} upload {self._id}: it is {self._state.value}{hint}",
                driver=self._store.driver.name,
            )

    def _ensure_writer(self) -> Writer:
        if self._writer is None:
            driver = self._store.driver
            path = self._store.layout.upload_data(self._id)
            # size > 0 with no writer means the bytes are committed at the data path: append to them.
            writer = driver.writer(path, append=self._committed or self.size > 0)
            if writer.size != self.size:
                writer.close()
                self._state = _State.CLOSED
                raise StorageError(
                    f"upload {self._id}: the stored bytes ({writer.size}) no longer match this session "
                    f"({self.size}); resume it again",
                    driver=driver.name,
                    path=path,
                )
            self._writer = writer
            self._committed = False
        return self._writer

    def _digest(self, algorithm: str) -> str:
        hasher = self._hashes.get(algorithm)
        if hasher is not None:
            return hasher.digest()
        # Not computed while writing: commit the bytes at the upload's own path and read them back.
        self._commit_data()
        hashers = _read_into_hashes(self._store, self._id, [algorithm])
        return hashers[algorithm].digest()

    def _commit_data(self) -> None:
        """Make the bytes visible at ``_uploads/<id>/data`` (the upload's private path)."""
        driver = self._store.driver
        path = self._store.layout.upload_data(self._id)
        if self._writer is not None:
            writer, self._writer = self._writer, None
            try:
                writer.commit()
            except BaseException:
                self._state = _State.CLOSED  # the driver keeps the progress parked for a resume
                raise
            self._committed = True
        elif not self._committed:
            if self.size:
                raise StorageError(f"upload {self._id} has no writer for its {self.size} bytes", driver=driver.name)
            driver.put(path, b"")
            self._committed = True

    def _save_state(self) -> None:
        state = {
            "version": STATE_VERSION,
            "id": self._id,
            "started": self._started.isoformat(),
            "size": self.size,
            "algorithms": list(self._hashes),
            "hashes": {name: hasher.export() for name, hasher in self._hashes.items()},
        }
        self._store.driver.put(self._store.layout.upload_state(self._id), json.dumps(state).encode())

    def _discard(self) -> None:
        """Drop the writer's staging (if any) and the session folder."""
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.cancel()
        elif not self._committed:
            _drop_staging(self._store, self._id)
        _delete_folder(self._store, self._id)


# ---------------------------------------------------------------------- module functions used by BlobStore


def new_id() -> str:
    """A fresh upload id: 32 lowercase hex digits (128 random bits)."""
    return uuid.uuid4().hex


def valid_id(upload_id: object) -> bool:
    """True when ``upload_id`` has the form of an upload id."""
    return isinstance(upload_id, str) and _ID.fullmatch(upload_id) is not None


def start(store: BlobSpace, algorithms: Iterable[str] = (CANONICAL,)) -> Upload:
    """Start a session: record its start time, hash as it goes."""
    names = tuple(dict.fromkeys(validate_algorithm(name) for name in algorithms))
    if not names:
        raise ValueError("an upload needs at least one digest algorithm")
    upload_id = new_id()
    started = datetime.now(UTC)
    store.driver.put(store.layout.upload_started_at(upload_id), started.isoformat().encode())
    hashes = {name: hashstate.new(name) for name in names}
    return Upload(store, upload_id, started, hashes=hashes, size=0, writer=None, committed=False, hash_restored=True)


def resume(store: BlobSpace, upload_id: str) -> Upload:
    """Reopen session ``upload_id`` (from any process), restoring or rebuilding its hash states."""
    driver, layout = store.driver, store.layout
    if not valid_id(upload_id):
        raise UploadNotFoundError(f"no upload {upload_id!r}: not an upload id", driver=driver.name)
    state = _load_state(store, upload_id)
    started = _parse_time(state.get("started")) or datetime.now(UTC)
    algorithms = [name for name in state.get("algorithms", [CANONICAL]) if isinstance(name, str)] or [CANONICAL]
    saved_size = state.get("size", 0)
    exports = state.get("hashes") or {}
    restored = {name: hashstate.restore(exports.get(name)) for name in algorithms}
    path = layout.upload_data(upload_id)
    try:
        writer: Writer | None = driver.writer(path, append=True)
    except PathNotFoundError:
        writer = None  # nothing written yet (or the progress was lost: then the size is truly 0)
        if saved_size:
            log.warning("upload %s: its %s saved bytes are gone; it continues from 0", upload_id, saved_size)
    size = writer.size if writer is not None else 0
    hashes: dict[str, hashstate.ResumableHash]
    if size == saved_size and all(hasher is not None for hasher in restored.values()):
        hashes = {name: hasher for name, hasher in restored.items() if hasher is not None}
        return Upload(store, upload_id, started, hashes=hashes, size=size, writer=writer, committed=False,
                      hash_restored=True)  # fmt: skip
    if size == 0 or writer is None:
        hashes = {name: hashstate.new(name) for name in algorithms}
        return Upload(store, upload_id, started, hashes=hashes, size=0, writer=writer, committed=False,
                      hash_restored=size == 0)  # fmt: skip
    # The saved state does not describe these bytes (or cannot be restored here): read them once.
    log.info("upload %s: rebuilding the hash of %d bytes by reading them", upload_id, size)
    upload = Upload(store, upload_id, started, hashes={}, size=size, writer=writer, committed=False,
                    hash_restored=False)  # fmt: skip
    upload._commit_data()
    upload._hashes = _read_into_hashes(store, upload_id, algorithms)
    read = next(iter(upload._hashes.values())).size
    if read != size:
        raise StorageError(f"upload {upload_id}: read {read} bytes back, expected {size}", driver=driver.name)
    return upload


def upload_ids(store: BlobSpace) -> list[str]:
    """Ids of every session present (open, closed or abandoned)."""
    try:
        children = store.driver.list(store.layout.uploads)
    except PathNotFoundError:
        return []
    names = (child.rsplit("/", 1)[1] for child in children)
    return sorted(name for name in names if valid_id(name))


def purge(store: BlobSpace, older_than: timedelta | float) -> list[str]:
    """Remove every session whose last activity is ``older_than`` ago or more; return their ids.

    Last activity is the last ``close`` (the state file's modification time), else
    the start. ``older_than`` is a ``timedelta`` or seconds.
    """
    age = older_than if isinstance(older_than, timedelta) else timedelta(seconds=float(older_than))
    if age < timedelta(0):
        raise ValueError(f"older_than must not be negative, not {older_than!r}")
    cutoff = datetime.now(UTC) - age
    purged = []
    for upload_id in upload_ids(store):
        last = _last_activity(store, upload_id)
        if last is not None and last <= cutoff:
            _drop_staging(store, upload_id)
            _delete_folder(store, upload_id)
            purged.append(upload_id)
            log.info("purged upload %s (last active %s)", upload_id, last.isoformat())
    return purged


def _load_state(store: BlobSpace, upload_id: str) -> dict[str, Any]:
    driver, layout = store.driver, store.layout
    try:
        raw = driver.get(layout.upload_state(upload_id))
    except PathNotFoundError:
        # Never closed: only its start time exists.
        try:
            started = driver.get(layout.upload_started_at(upload_id)).decode("ascii", "replace")
        except PathNotFoundError as exc:
            raise UploadNotFoundError(f"no upload {upload_id}", driver=driver.name) from exc
        return {"started": started, "size": 0}
    try:
        state = json.loads(raw)
    except ValueError:
        state = None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        log.warning("upload %s: unreadable state file; its bytes will be re-read", upload_id)
        return {"size": -1}
    return state


def _read_into_hashes(
    store: BlobSpace, upload_id: str, algorithms: Iterable[str]
) -> dict[str, hashstate.ResumableHash]:
    hashes = {name: hashstate.new(name) for name in algorithms}
    driver = store.driver
    buffer = bytearray(driver.chunk_size)
    view = memoryview(buffer)
    with driver.stream(store.layout.upload_data(upload_id)) as reader:
        while got := reader.readinto(view):
            for hasher in hashes.values():
                hasher.update(view[:got])
    return hashes


def _drop_staging(store: BlobSpace, upload_id: str) -> None:
    """Drop a writer's parked progress for the session (``writer(append=False)`` then ``cancel``)."""
    with contextlib.suppress(PathNotFoundError):
        store.driver.writer(store.layout.upload_data(upload_id), append=False).cancel()


def _delete_folder(store: BlobSpace, upload_id: str) -> None:
    with contextlib.suppress(PathNotFoundError):
        store.driver.delete(store.layout.upload_dir(upload_id))


def _last_activity(store: BlobSpace, upload_id: str) -> datetime | None:
    driver, layout = store.driver, store.layout
    with contextlib.suppress(PathNotFoundError):
        return driver.stat(layout.upload_state(upload_id)).modified
    with contextlib.suppress(PathNotFoundError):
        started = _parse_time(driver.get(layout.upload_started_at(upload_id)).decode("ascii", "replace"))
        if started is not None:
            return started
    with contextlib.suppress(PathNotFoundError):
        return driver.stat(layout.upload_dir(upload_id)).modified
    return None


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


__all__ = ["Upload"]
