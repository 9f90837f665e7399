"""Where source and target lie: overlap refused, a missing source folder refused, copies inside one store.

Everything here reads the stores through the driver contract
(:meth:`~blobdrivers.driver.StorageDriver.identity`, ``same_store``,
``shares_store``, ``rooted_at``, ``missing_root`` and the ``SERVER_SIDE_CAT``
capability), so it
serves third-party drivers as it serves the built-in ones.
"""

from __future__ import annotations

from collections.abc import Callable

from .. import paths
from ..capabilities import Capability
from ..driver import StorageDriver
from ..errors import StorageError

__all__ = ["refuse_missing_folder", "refuse_overlap", "server_side_copier"]


def _root(driver: StorageDriver) -> str | None:
    """The root ``driver.identity()`` ends in, or ``None`` when it does not follow ``store_identity()``."""
    store, identity = driver.store_identity(), driver.identity()
    return identity[len(store) :] if identity.startswith(store) else None


def _location(root: str, path: str) -> str:
    """Where ``path`` below ``root`` lies in its store, as a prefix ("" is the whole store)."""
    return root.rstrip("/") + ("" if path == paths.ROOT else path)


def refuse_overlap(source: StorageDriver, target: StorageDriver, path: str) -> None:
    """Raise ``ValueError`` when ``path`` of ``source`` and of ``target`` is one location, or one holds the other."""
    if source.same_store(target):
        a = b = _location("", path)
    else:
        source_root, target_root = _root(source), _root(target)
        if not source.shares_store(target) or source_root is None or target_root is None:
            return
        a, b = _location(source_root, path), _location(target_root, path)
    if a == b or a.startswith(b + "/") or b.startswith(a + "/"):
        raise ValueError(
            f"source and target overlap ({a or '/'} and {b or '/'} on the same store): "
            "replicating one into the other would copy or delete its own files"
        )


def refuse_missing_folder(source: StorageDriver) -> None:
    """Raise ``ValueError`` when the source's root is a folder that does not exist."""
    # Reading a missing root creates nothing and lists nothing: without this a typo
    # in the source would replicate an "empty store" and succeed.
    folder = source.missing_root()
    if folder is not None:
        raise ValueError(f"the source folder {folder} does not exist")


def server_side_copier(source: StorageDriver, target: StorageDriver) -> Callable[[str], None] | None:
    """A function copying one path from source to target inside the store, or ``None``.

    Only when both drivers address the same store (``shares_store``) and
    its ``cat`` copies inside the store (``Capability.SERVER_SIDE_CAT``; a filesystem's copies
    through this process anyway). The copy is the store's own ``cat(dst, [src])``
    on a driver rooted where both roots meet: one source is a server-side copy on
    object stores, and atomic everywhere.
    """
    if Capability.SERVER_SIDE_CAT not in source.capabilities & target.capabilities:
        return None
    source_root, target_root = _root(source), _root(target)
    if not source.shares_store(target) or source_root is None or target_root is None:
        return None
    common_parts: list[str] = []
    for a, b in zip(source_root.split("/")[1:], target_root.split("/")[1:], strict=False):
        if a != b:
            break
        common_parts.append(a)
    common = "/" + "/".join(common_parts) if common_parts else ""
    try:
        store = target.rooted_at(common)
    except (StorageError, TypeError, ValueError):
        return None  # the driver will not take these parameters back: stream instead

    def copy(path: str) -> None:
        src = paths.strip(common, source_root + path)
        dst = paths.strip(common, target_root + path)
        store.cat(dst, [src])

    return copy
