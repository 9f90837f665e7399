"""How verified bytes become a blob: one publish for ``BlobStore.put`` and ``Upload.finish`` alike.

A blob is published once, atomically, at its content address: its media-type
sidecar first (a reader that sees the blob sees its type too), then a conditional
write or move (the first publisher wins; the others find the blob in place), then
``stat`` until it shows the full size. The descriptor cache is filled only with a
generation read before the store was, so a delete racing the publish wins.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from ..driver import StorageDriver
from ..errors import PathNotFoundError, PreconditionFailedError, UnsupportedMethodError
from ..listing import FileInfo
from .cache import DescriptorCache
from .digest import DEFAULT_MEDIA_TYPE, Descriptor, validate_media_type
from .errors import BlobPublishError
from .layout import Layout

__all__ = ["BlobSpace", "cached", "file_info", "publish", "read_media_type", "read_media_type_file"]

log = logging.getLogger("blobdrivers.blobs")

T = TypeVar("T")


class BlobSpace(Protocol):
    """Where blobs live: what a publish needs of a :class:`~blobdrivers.blobs.BlobStore`."""

    #: The storage driver holding the blobs.
    driver: StorageDriver
    #: The descriptor cache, or None.
    cache: DescriptorCache | None
    #: Where everything lives (see :mod:`.layout`).
    layout: Layout
    #: Seconds a publish waits for ``stat`` to show the blob.
    publish_timeout: float


def publish(
    space: BlobSpace,
    algorithm: str,
    hex_digest: str,
    digest: str,
    size: int,
    media_type: str | None,
    write: Callable[[bool], None],
    prepare: Callable[[], None] | None = None,
) -> Descriptor:
    """Publish verified bytes of ``size`` at the blob's address; ``write(conditional)`` does the write.

    ``write(True)`` must fail with PreconditionFailedError when the blob exists;
    ``write(False)`` replaces it. ``prepare`` runs before the first write.
    """
    driver, cache = space.driver, space.cache
    path = space.layout.blob_data(algorithm, hex_digest)
    # Read before the publish: a delete racing it makes the fill at the end a no-op.
    generation = cached(cache.generation, digest) if cache is not None else None
    existing = file_info(driver, path)
    if existing is not None and existing.size == size:
        if media_type is not None:
            _write_media_type(space, algorithm, hex_digest, media_type)
    else:
        # The sidecar goes first, so a reader that sees the blob sees its media type too.
        if media_type is not None:
            _write_media_type(space, algorithm, hex_digest, media_type)
        if prepare is not None:
            prepare()
        try:
            write(True)
        except PreconditionFailedError:
            pass  # published concurrently by someone else: checked below
        except UnsupportedMethodError:
            # No native put-if-absent: equal content makes an overwrite harmless, but skip it when possible.
            current = file_info(driver, path)
            if current is None or current.size != size:
                write(False)
        info = _await_blob(space, path, digest)
        if info.size != size:
            # Equal digests with unequal sizes: the stored blob is damaged; replace it with verified bytes.
            log.warning("blob %s had %d bytes instead of %d: replacing it", digest, info.size, size)
            write(False)
            info = _await_blob(space, path, digest)
            if info.size != size:
                raise BlobPublishError(
                    f"blob {digest} shows {info.size} bytes after publishing {size}",
                    driver=driver.name,
                    path=path,
                )
    descriptor = Descriptor(digest, size, media_type or read_media_type(space, algorithm, hex_digest))
    if cache is not None:
        cached(cache.fill, descriptor, generation)
    return descriptor


def read_media_type(space: BlobSpace, algorithm: str, hex_digest: str) -> str:
    """The blob's global media type (the default one when it has none)."""
    path = space.layout.blob_media_type(algorithm, hex_digest)
    return read_media_type_file(space.driver, path) or DEFAULT_MEDIA_TYPE


def read_media_type_file(driver: StorageDriver, path: str) -> str | None:
    """The media type stored at ``path``, or None when there is none (or it is invalid)."""
    try:
        text = driver.get(path).decode("ascii", "replace").strip()
    except PathNotFoundError:
        return None
    try:
        return validate_media_type(text)
    except ValueError:
        log.warning("ignoring an invalid media type in %s", path)
        return None


def file_info(driver: StorageDriver, path: str) -> FileInfo | None:
    """``driver.stat(path)``, or None when nothing is there."""
    try:
        return driver.stat(path)
    except PathNotFoundError:
        return None


def cached(fn: Callable[..., T], *args: object) -> T | None:
    """Call the cache; a failure of the cache itself never fails the store."""
    try:
        return fn(*args)
    except Exception:
        log.warning("descriptor cache call %s failed; the store answers", getattr(fn, "__name__", fn),
                    exc_info=True)  # fmt: skip
        return None


def _write_media_type(space: BlobSpace, algorithm: str, hex_digest: str, media_type: str) -> None:
    space.driver.put(space.layout.blob_media_type(algorithm, hex_digest), media_type.encode("ascii"))


def _await_blob(space: BlobSpace, path: str, digest: str) -> FileInfo:
    """Stat the published blob until it shows (at once on strongly consistent backends)."""
    deadline = time.monotonic() + space.publish_timeout
    delay = 0.005
    while True:
        info = file_info(space.driver, path)
        if info is not None and not info.is_dir:
            return info
        if time.monotonic() >= deadline:
            raise BlobPublishError(
                f"blob {digest} was published but stat does not show it after {space.publish_timeout} s",
                driver=space.driver.name,
                path=path,
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
