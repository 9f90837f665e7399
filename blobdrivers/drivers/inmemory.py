"""The in-memory driver: a thread-safe dict of immutable blobs, for tests and examples.

Instances with the same ``name`` share one store within a process (so a "new
instance" can resume another's upload, as with a real backend); without a name
each instance has a private store. A pickled instance refers to the same store.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import itertools
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote

from .. import paths
from ..capabilities import Capability
from ..conditions import Conditions
from ..driver import StorageDriver
from ..errors import PathNotFoundError, PreconditionFailedError
from ..listing import FileInfo, walk_flat
from ..params import MiB, Params
from ..reader import RangeReader
from ..transfer import Source
from ..writer import WriterBackend


@dataclass(frozen=True)
class _Blob:
    data: bytes
    modified: datetime
    etag: str


@dataclass
class _Store:
    lock: threading.Lock = field(default_factory=threading.Lock)
    blobs: dict[str, _Blob] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)  # sorted, for listings
    # Parked writer progress by (store root, path): like a real backend's bookkeeping, a
    # child store's sessions live under its own root and go when a parent deletes that folder.
    uploads: dict[tuple[str, str], bytes] = field(default_factory=dict)
    versions: Iterator[int] = field(default_factory=itertools.count)

    def publish(self, full: str, data: bytes, conditions: Conditions) -> None:
        with self.lock:
            current = self.blobs.get(full)
            if conditions.if_none_match and current is not None:
                raise PreconditionFailedError(f"{full} already exists")
            if conditions.if_match is not None and (current is None or current.etag != conditions.if_match):
                raise PreconditionFailedError(f"etag of {full} is not {conditions.if_match!r}")
            etag = f"{hashlib.md5(data, usedforsecurity=False).hexdigest()}-{next(self.versions)}"
            self.blobs[full] = _Blob(data, datetime.now(UTC), etag)
            if current is None:
                bisect.insort(self.keys, full)

    def blob(self, full: str) -> _Blob:
        blob = self.blobs.get(full)
        if blob is None:
            raise PathNotFoundError(f"no file at {full}")
        return blob

    def remove(self, full: str) -> None:
        del self.blobs[full]
        del self.keys[bisect.bisect_left(self.keys, full)]

    def below(self, full: str) -> list[str]:
        """Keys strictly below the directory ``full``, in key order."""
        prefix = "/" if full == paths.ROOT else full + "/"
        start = bisect.bisect_left(self.keys, prefix)
        end = bisect.bisect_left(self.keys, prefix[:-1] + "0")  # "0" is the character after "/"
        return self.keys[start:end]


class InMemoryDriver(StorageDriver):
    """Blobs held in process memory; ``name`` shares one store between instances."""

    name = "inmemory"
    url_schemes = ("memory",)
    url_host_param = "name"
    declared_capabilities = frozenset(Capability) - {Capability.SIGNED_READ_URLS, Capability.SIGNED_PUT_URLS}
    _stores: ClassVar[dict[str, _Store]] = {}
    _stores_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, **params: Any) -> None:
        reader = Params(self.name, params)
        store_name = reader.string("name")
        chunk_size = reader.size("chunksize", 1 * MiB, minimum=1, maximum=1024 * MiB)
        rootdirectory = reader.string("rootdirectory", "")
        reader.done()
        if store_name is None:
            # A private store, but one a pickled copy can find again.
            store_name = f"private-{uuid.uuid4().hex}"
            params = {**params, "name": store_name}
        super().__init__(params, rootdirectory=rootdirectory or "", chunk_size=chunk_size)
        self._store_name = store_name
        with self._stores_lock:
            self._store = self._stores.setdefault(store_name, _Store())

    def store_identity(self) -> str:
        """``inmemory://NAME``: instances with one ``name`` share one store."""
        return f"{self.name}://{quote(self._store_name, safe='')}"

    def _put(self, full: str, source: Source, conditions: Conditions) -> None:
        self._store.publish(full, _read_all(source), conditions)

    def _get(self, full: str) -> bytes:
        return self._store.blob(full).data

    def _open(self, full: str, offset: int, length: int | None) -> tuple[RangeReader, int | None]:
        data = self._store.blob(full).data
        view = memoryview(data)[offset:] if length is None else memoryview(data)[offset : offset + length]
        return io.BytesIO(view), len(view)

    def _stat(self, full: str) -> FileInfo:
        blob = self._store.blobs.get(full)
        if blob is not None:
            return FileInfo(full, len(blob.data), blob.modified, etag=blob.etag)
        with self._store.lock:
            # Keys another tool put in the store (``/a//b``) are no files, so no directory either.
            first = next((key for key in self._store.below(full) if paths.is_valid(key)), None)
            modified = None if first is None else self._store.blobs[first].modified
        if modified is None:
            raise PathNotFoundError(f"nothing at {full}")
        return FileInfo(full, 0, modified, is_dir=True)

    def _list(self, full: str) -> Iterator[str]:
        with self._store.lock:
            keys = self._store.below(full)
        depth = 1 if full == paths.ROOT else full.count("/") + 1
        children = dict.fromkeys("/".join(key.split("/")[: depth + 1]) for key in keys if paths.is_valid(key))
        return iter(children)

    def _walk(self, full: str) -> Iterator[FileInfo]:
        with self._store.lock:
            snapshot = [(key, self._store.blobs[key]) for key in self._store.below(full)]
        files = (FileInfo(key, len(blob.data), blob.modified, etag=blob.etag) for key, blob in snapshot)
        return walk_flat(files, full)

    def _move(self, src: str, dst: str, conditions: Conditions) -> None:
        store = self._store
        with store.lock:
            blob = store.blob(src)
            current = store.blobs.get(dst)
            if conditions.if_none_match and current is not None:
                raise PreconditionFailedError(f"{dst} already exists")
            if conditions.if_match is not None and (current is None or current.etag != conditions.if_match):
                raise PreconditionFailedError(f"etag of {dst} is not {conditions.if_match!r}")
            store.remove(src)
            store.blobs[dst] = blob
            if current is None:
                bisect.insort(store.keys, dst)

    def _delete(self, full: str) -> None:
        store = self._store
        with store.lock:
            directory = full not in store.blobs
            doomed = store.below(full) if directory else [full]
            if not any(paths.is_valid(key) for key in doomed):
                raise PathNotFoundError(f"nothing at {full}")
            for key in doomed:
                store.remove(key)
            if directory:
                # The bookkeeping of a store rooted at or below the folder goes with it; the
                # sessions parked for this store's own paths are no files and stay.
                for parked in [key for key in store.uploads if key[0] == full or key[0].startswith(full + "/")]:
                    del store.uploads[parked]

    def _cat(self, full: str, sources: list[str]) -> None:
        with self._store.lock:
            data = b"".join(self._store.blob(source).data for source in sources)
        self._store.publish(full, data, Conditions())

    def _writer(self, full: str, append: bool) -> WriterBackend:
        store = self._store
        session = (self._root, full)
        with store.lock:
            if not append:
                store.uploads.pop(session, None)
                staged = b""
            elif session in store.uploads:
                staged = store.uploads.pop(session)
            else:
                staged = store.blob(full).data
        return _MemoryWriter(store, session, staged)


class _MemoryWriter:
    def __init__(self, store: _Store, session: tuple[str, str], staged: bytes) -> None:
        self._store = store
        self._session = session
        self._full = session[1]
        self._buffer = bytearray(staged)
        self.size = len(staged)

    def write(self, data: memoryview) -> None:
        self._buffer += data

    def close(self) -> None:
        with self._store.lock:
            self._store.uploads[self._session] = bytes(self._buffer)

    def commit(self, conditions: Conditions) -> None:
        try:
            self._store.publish(self._full, bytes(self._buffer), conditions)
        except BaseException:
            self.close()
            raise

    def cancel(self) -> None:
        self._buffer.clear()


def _read_all(source: Source) -> bytes:
    if source.in_memory:
        return bytes(source.read(source.size or 0))
    parts = []
    while chunk := source.read(MiB):
        parts.append(bytes(chunk))
    return b"".join(parts)
