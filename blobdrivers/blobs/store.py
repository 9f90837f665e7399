"""BlobStore: blobs by digest on any storage driver, with upload sessions, repositories and a cache.

Everything goes through the public :class:`~blobdrivers.driver.StorageDriver` API,
so the store works on every driver. The layout is in :mod:`.layout` and
``docs/blobstore.md``; the guarantees are:

* a blob is published once, atomically, at its content address, and only after
  its digest was verified: ``stat`` of a blob gives its full size or nothing;
* concurrent publishes of one digest all succeed (the first move wins, the
  others find the blob in place and drop their bytes), and each returns only once
  ``stat`` gives the full size;
* the descriptor cache is never the source of truth: a miss or a cache failure
  falls through to the store, and deletes clear it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import TypeVar

from .. import paths
from ..driver import StorageDriver
from ..errors import PathNotFoundError
from ..listing import FileInfo
from ..reader import Reader
from ..transfer import Data, Source
from . import uploads
from .cache import DescriptorCache, RepositoryDescriptorCache
from .digest import (
    CANONICAL,
    DEFAULT_MEDIA_TYPE,
    Descriptor,
    parse_digest,
    validate_algorithm,
    validate_media_type,
    validate_repository_name,
)
from .errors import BlobNotFoundError, DigestMismatchError
from .layout import DATA, LAYERS, LINK, MEDIA_TYPE, Layout
from .publish import cached, publish, read_media_type, read_media_type_file
from .uploads import Upload

log = logging.getLogger("blobdrivers.blobs")

T = TypeVar("T")


class BlobStore:
    """Content-addressed blobs on ``driver``, below ``root`` (default: the driver's root).

    ``cache`` (optional) is a :class:`DescriptorCache` consulted by ``stat`` and kept
    up to date by every publish and delete. ``publish_timeout`` bounds how long a
    publish waits for ``stat`` to show the blob (immediate on every strongly
    consistent backend). Safe to share between threads.
    """

    def __init__(
        self,
        driver: StorageDriver,
        cache: DescriptorCache | None = None,
        root: str = paths.ROOT,
        *,
        publish_timeout: float = 30.0,
    ) -> None:
        #: The storage driver holding the blobs.
        self.driver = driver
        #: The descriptor cache, or None.
        self.cache = cache
        #: Where everything lives (see :mod:`.layout`).
        self.layout = Layout(root)
        self.publish_timeout = publish_timeout

    def __repr__(self) -> str:
        return f"BlobStore({self.driver!r}, cache={self.cache!r}, root={self.layout.prefix or '/'!r})"

    # ------------------------------------------------------------------ reading

    def stat(self, digest: str) -> Descriptor:
        """The descriptor of blob ``digest``: from the cache, else from the store (then cached).

        Raises :class:`BlobNotFoundError` when there is no such blob.
        """
        algorithm, hex_digest = parse_digest(digest)
        cache = self.cache
        generation = None
        if cache is not None:
            found = cached(cache.stat, digest)
            if found is not None:
                return found
            # Read before the store: a delete after it makes the fill below a no-op.
            generation = cached(cache.generation, digest)
        descriptor = self._stat_store(algorithm, hex_digest, digest)
        if cache is not None:
            cached(cache.fill, descriptor, generation)
        return descriptor

    def exists(self, digest: str) -> bool:
        """True when blob ``digest`` exists (through the cache, like :meth:`stat`)."""
        return _found(self.stat, digest)

    def get(self, digest: str, *, verify: bool = False) -> bytes:
        """The bytes of blob ``digest``; with ``verify=True`` their digest is checked too."""
        algorithm, hex_digest = parse_digest(digest)
        path = self.layout.blob_data(algorithm, hex_digest)
        data = self._blob_call(digest, path, lambda: self.driver.get(path))
        if verify:
            actual = f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
            if actual != digest:
                raise DigestMismatchError(
                    f"blob {digest} is corrupt: its bytes have digest {actual}",
                    driver=self.driver.name,
                    path=path,
                    expected=digest,
                    actual=actual,
                    size=len(data),
                )
        return data

    def stream(self, digest: str, offset: int = 0, length: int | None = None) -> Reader:
        """A reader over ``length`` bytes (default: to the end) of blob ``digest`` from ``offset``."""
        algorithm, hex_digest = parse_digest(digest)
        path = self.layout.blob_data(algorithm, hex_digest)
        return self._blob_call(digest, path, lambda: self.driver.stream(path, offset, length))

    def url_for(self, digest: str, method: str = "GET", expires_in: int = 1200) -> str:
        """A URL a plain HTTP client can fetch blob ``digest`` from (drivers without URLs raise)."""
        algorithm, hex_digest = parse_digest(digest)
        return self.driver.url_for(self.layout.blob_data(algorithm, hex_digest), method, expires_in)

    def walk(self) -> Iterator[Descriptor]:
        """Every blob, in digest order within each algorithm (reads each stored media type)."""
        pending: tuple[str, str, str, int] | None = None  # algorithm, hex, digest, size
        for info in self._walk_files(self.layout.blobs):
            parts = self.layout.relative(self.layout.blobs, info.path)
            if parts is None or len(parts) != 4 or parts[3] not in (DATA, MEDIA_TYPE):
                continue
            algorithm, fanout, hex_digest, name = parts
            if fanout != hex_digest[:2] or not _is_digest(f"{algorithm}:{hex_digest}"):
                continue
            if name == DATA:
                if pending is not None:
                    yield Descriptor(pending[2], pending[3], DEFAULT_MEDIA_TYPE)
                pending = (algorithm, hex_digest, f"{algorithm}:{hex_digest}", info.size)
            elif pending is not None and pending[:2] == (algorithm, hex_digest):
                # "data" sorts before "mediatype": the sidecar of the pending blob.
                yield Descriptor(pending[2], pending[3], read_media_type(self, algorithm, hex_digest))
                pending = None
        if pending is not None:
            yield Descriptor(pending[2], pending[3], DEFAULT_MEDIA_TYPE)

    # ------------------------------------------------------------------ writing

    def put(self, data: Data, media_type: str | None = None, *, algorithm: str = CANONICAL) -> Descriptor:
        """Store ``data`` (bytes-like, a binary file or an iterable of bytes) as a blob; return its descriptor.

        The digest (``algorithm``, sha256 by default) is computed while streaming:
        bytes-like data is hashed then put conditionally at its address; other data
        streams through an upload session, then is verified and moved into place.
        ``media_type`` (if given) becomes the blob's global media type.
        """
        validate_algorithm(algorithm)
        if media_type is not None:
            validate_media_type(media_type)
        if isinstance(data, bytes | bytearray | memoryview):
            view = memoryview(data).cast("B")
            hex_digest = hashlib.new(algorithm, view).hexdigest()
            digest = f"{algorithm}:{hex_digest}"
            path = self.layout.blob_data(algorithm, hex_digest)

            def write(conditional: bool) -> None:
                self.driver.put(path, view, if_none_match="*" if conditional else None)

            return publish(self, algorithm, hex_digest, digest, view.nbytes, media_type, write)
        upload = self.start_upload(algorithms=(algorithm,))
        try:
            source = Source(data)
            buffer = bytearray(self.driver.chunk_size)
            view = memoryview(buffer)
            while got := source.readinto(view):
                upload.write(view[:got])
            return upload.finish(upload._hashes[algorithm].digest(), media_type)
        except BaseException:
            with contextlib.suppress(Exception):
                upload.cancel()
            raise

    def delete(self, digest: str) -> None:
        """Delete blob ``digest`` and clear it from the cache; repositories' links are left (see GC).

        Raises :class:`BlobNotFoundError` when there is no such blob.
        """
        algorithm, hex_digest = parse_digest(digest)
        cache = self.cache
        # Cleared before (no hit while deleting) and after (a new generation: a stat or
        # publish that read the store before this point fills nothing).
        if cache is not None:
            cached(cache.clear, digest)
        data = self.layout.blob_data(algorithm, hex_digest)
        self._blob_call(digest, data, lambda: self.driver.delete(data))
        with contextlib.suppress(PathNotFoundError):
            self.driver.delete(self.layout.blob_dir(algorithm, hex_digest))
        if cache is not None:
            cached(cache.clear, digest)

    # ------------------------------------------------------------------ uploads

    def start_upload(self, *, algorithms: tuple[str, ...] = (CANONICAL,)) -> Upload:
        """Start an upload session computing the digests of ``algorithms`` while it is written.

        ``finish`` accepts any supported algorithm; one not in ``algorithms`` costs
        one read of the uploaded bytes at finish.
        """
        return uploads.start(self, algorithms)

    def resume_upload(self, upload_id: str) -> Upload:
        """Reopen upload ``upload_id`` from any process or driver instance.

        Its ``size`` is what was written; the hash states are restored without
        reading the bytes when possible (``hash_restored``), else rebuilt by reading
        them. Raises :class:`UploadNotFoundError` for an unknown id.
        """
        return uploads.resume(self, upload_id)

    def upload_ids(self) -> list[str]:
        """Ids of every upload session present (including abandoned ones)."""
        return uploads.upload_ids(self)

    def purge_uploads(self, older_than: timedelta | float) -> list[str]:
        """Remove upload sessions inactive for ``older_than`` (timedelta or seconds) or more; return their ids."""
        return uploads.purge(self, older_than)

    # ------------------------------------------------------------------ repositories and GC

    def repository(self, name: str) -> Repository:
        """The blobs of repository ``name`` (validated against the OCI grammar)."""
        return Repository(self, name)

    def repositories(self) -> list[str]:
        """Names of every repository with at least one linked blob, sorted."""
        names: set[str] = set()
        for info in self._walk_files(self.layout.repositories):
            parts = self.layout.relative(self.layout.repositories, info.path)
            if parts and LAYERS in parts:
                names.add("/".join(parts[: parts.index(LAYERS)]))
        return sorted(names)

    def referenced(self) -> set[str]:
        """Digests linked into at least one repository."""
        found: set[str] = set()
        for info in self._walk_files(self.layout.repositories):
            parts = self.layout.relative(self.layout.repositories, info.path)
            if parts and len(parts) >= 5 and parts[-1] == LINK and parts[-4] == LAYERS:
                digest = f"{parts[-3]}:{parts[-2]}"
                if _is_digest(digest):
                    found.add(digest)
        return found

    def unreferenced(self) -> Iterator[Descriptor]:
        """Blobs linked into no repository: what a garbage collector may delete.

        Run it while nothing is being pushed (as distribution's GC requires): a blob
        just uploaded is unreferenced until a repository links it.
        """
        referenced = self.referenced()
        for descriptor in self.walk():
            if descriptor.digest not in referenced:
                yield descriptor

    # ------------------------------------------------------------------ internals

    def _stat_store(self, algorithm: str, hex_digest: str, digest: str) -> Descriptor:
        path = self.layout.blob_data(algorithm, hex_digest)
        info = self._blob_call(digest, path, lambda: self.driver.stat(path))
        return Descriptor(digest, info.size, read_media_type(self, algorithm, hex_digest))

    def _blob_call(self, digest: str, path: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except PathNotFoundError as exc:
            raise BlobNotFoundError(
                f"blob {digest} not found", driver=self.driver.name, path=path, digest=digest
            ) from exc

    def _walk_files(self, base: str) -> Iterator[FileInfo]:
        try:
            for info in self.driver.walk(base):
                if not info.is_dir:
                    yield info
        except PathNotFoundError:
            return


class Repository:
    """The blobs linked into one repository, with the media types it gives them.

    ``stat`` answers only for linked blobs (through the cache's repository view when
    the store has a cache). Get it from :meth:`BlobStore.repository`.
    """

    def __init__(self, store: BlobStore, name: str) -> None:
        #: The repository name.
        self.name = validate_repository_name(name)
        self._store = store
        self._cache: RepositoryDescriptorCache | None = store.cache.repository(name) if store.cache else None

    def __repr__(self) -> str:
        return f"<Repository {self.name} of {self._store!r}>"

    def link(self, digest: str, media_type: str | None = None) -> Descriptor:
        """Make blob ``digest`` part of this repository, with ``media_type`` for it here (None: the global one).

        Raises :class:`BlobNotFoundError` when the blob does not exist. Linking again
        replaces the repository's media type (None removes it).
        """
        algorithm, hex_digest = parse_digest(digest)
        if media_type is not None:
            validate_media_type(media_type)
        blob = self._store.stat(digest)
        driver, layout = self._store.driver, self._store.layout
        own_type = layout.layer_media_type(self.name, algorithm, hex_digest)
        # The media type goes before the link, so a reader that sees the link sees its media type.
        if media_type is not None:
            driver.put(own_type, media_type.encode("ascii"))
        else:
            with contextlib.suppress(PathNotFoundError):
                driver.delete(own_type)
        driver.put(layout.link(self.name, algorithm, hex_digest), digest.encode("ascii"))
        descriptor = Descriptor(digest, blob.size, media_type or blob.media_type)
        if self._cache is not None:
            cached(self._cache.set, descriptor)
        return descriptor

    def unlink(self, digest: str) -> None:
        """Remove blob ``digest`` from this repository (the blob itself stays; see GC).

        Raises :class:`BlobNotFoundError` when it is not linked here.
        """
        algorithm, hex_digest = parse_digest(digest)
        driver, layout = self._store.driver, self._store.layout
        if self._cache is not None:
            cached(self._cache.clear, digest)
        link = layout.link(self.name, algorithm, hex_digest)
        self._not_linked_if_missing(digest, link, lambda: driver.delete(link))
        with contextlib.suppress(PathNotFoundError):
            driver.delete(layout.layer_dir(self.name, algorithm, hex_digest))
        if self._cache is not None:
            cached(self._cache.clear, digest)

    def stat(self, digest: str) -> Descriptor:
        """The descriptor of ``digest`` in this repository (its media type, else the global one).

        Raises :class:`BlobNotFoundError` when the blob is not linked here or is gone.
        """
        algorithm, hex_digest = parse_digest(digest)
        if self._cache is not None:
            found = cached(self._cache.stat, digest)
            if found is not None:
                return found
        driver, layout = self._store.driver, self._store.layout
        link = layout.link(self.name, algorithm, hex_digest)
        target = self._not_linked_if_missing(digest, link, lambda: driver.get(link))
        if target.strip() != digest.encode("ascii"):
            log.warning("repository %s: link of %s names %r; treated as not linked", self.name, digest, target[:200])
            raise BlobNotFoundError(
                f"blob {digest} is not linked into repository {self.name}",
                driver=driver.name,
                path=link,
                digest=digest,
            )
        blob = self._store.stat(digest)
        own_type = read_media_type_file(driver, layout.layer_media_type(self.name, algorithm, hex_digest))
        descriptor = Descriptor(digest, blob.size, own_type or blob.media_type)
        if self._cache is not None:
            cached(self._cache.set, descriptor)
        return descriptor

    def exists(self, digest: str) -> bool:
        """True when ``digest`` is linked here and the blob exists."""
        return _found(self.stat, digest)

    def digests(self) -> list[str]:
        """Digests linked into this repository, sorted."""
        layout = self._store.layout
        base = layout.layers(self.name)
        found = []
        for info in self._store._walk_files(base):
            parts = layout.relative(base, info.path)
            if parts is not None and len(parts) == 3 and parts[2] == LINK:
                digest = f"{parts[0]}:{parts[1]}"
                if _is_digest(digest):
                    found.append(digest)
        return sorted(found)

    def _not_linked_if_missing(self, digest: str, path: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except PathNotFoundError as exc:
            raise BlobNotFoundError(
                f"blob {digest} is not linked into repository {self.name}",
                driver=self._store.driver.name,
                path=path,
                digest=digest,
            ) from exc


def _found(stat: Callable[[str], Descriptor], digest: str) -> bool:
    """Whether ``stat(digest)`` finds the blob."""
    try:
        stat(digest)
    except BlobNotFoundError:
        return False
    return True


def _is_digest(digest: str) -> bool:
    try:
        parse_digest(digest)
    except ValueError:
        return False
    return True
