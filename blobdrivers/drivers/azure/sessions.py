"""Writer sessions: the hidden staging blob of each, the marker that parks one, and taking one over.

A session stages its blocks on a hidden staging blob of its own,
``<root>/~blobdrivers/uploads/<sha256 of the key>.<session>``, which no commit to
the path can touch (Azure discards every uncommitted block of a blob when anyone
commits it). ``close()`` parks the session in a small hidden *marker* blob,
``<root>/~blobdrivers/uploads/<sha256 of the key>`` (one parked session per path),
naming the session, its block count and byte size, and the base (etag and committed
blocks) when the upload appends to committed content. A resuming writer takes the
marker over (a delete with If-Match on what it read, so one parked session goes to
one writer), then reads the staging blob's block list and keeps exactly its
session's blocks. The ``~`` keeps markers and staging blobs out of list and walk.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobBlock, BlobClient, BlobType

from ... import paths
from ...errors import StorageError
from .blocks import ID_LENGTH, ID_PREFIX, SourceBlob, new_session
from .errors import error_code, is_missing, is_missing_blob, status

if TYPE_CHECKING:
    from . import AzureDriver

log = logging.getLogger("blobdrivers.azure")


@dataclass(frozen=True)
class Base:
    """Committed content an upload appends to: its etag, and the committed blocks it re-uses."""

    etag: str
    blocks: int
    size: int


@dataclass
class Session:
    """A writer session: its id, the sizes of the blocks it staged (by index), the base it appends to."""

    id: str = field(default_factory=new_session)
    staged: list[int] = field(default_factory=list)
    base: Base | None = None

    def state(self) -> dict[str, Any]:
        """What the marker records of this session."""
        base = self.base
        return {
            "v": 1,
            "session": self.id,
            "blocks": len(self.staged),
            "size": (base.size if base else 0) + sum(self.staged),
            "base": {"etag": base.etag, "blocks": base.blocks, "size": base.size} if base else None,
        }


def _uploads_prefix(driver: AzureDriver, full: str) -> str:
    digest = hashlib.sha256(paths.to_key(full).encode()).hexdigest()
    return f"{paths.dir_key(driver._root or paths.ROOT)}{driver.bookkeeping_dir}/uploads/{digest}"


def marker(driver: AzureDriver, full: str) -> BlobClient:
    """The hidden blob that parks the session of ``full``."""
    return driver._container_client().get_blob_client(_uploads_prefix(driver, full))


def staging(driver: AzureDriver, full: str, session: str) -> BlobClient:
    """The hidden blob a writer session stages its blocks on.

    Never the target: any commit to the target (another writer's, a put's)
    discards every uncommitted block there, so a writer's blocks live on a blob of
    their own until its commit copies them over server-side.
    """
    return driver._container_client().get_blob_client(f"{_uploads_prefix(driver, full)}.{session}")


def drop_staging(driver: AzureDriver, full: str, session: str) -> None:
    """Delete a session's staging blob (best effort: it is hidden, and Azure drops stale blocks in a week)."""
    try:
        staging(driver, full, session).delete_blob()
    except HttpResponseError as exc:
        if not is_missing(exc):
            log.debug("azure: could not delete the staging blob of %s: %s", driver._logical(full), error_code(exc))


def take_marker(driver: AzureDriver, full: str, blob: BlobClient | None = None) -> dict[str, Any] | None:
    """Read the parked session's marker and delete it (If-Match on what was read): the session is ours.

    Two writers taking one marker: exactly one delete succeeds; the other reads
    again and finds none (or a newer one). ``blob``: the marker's client, when the caller has it.
    """
    blob = blob or marker(driver, full)
    for _ in range(5):
        try:
            downloader = blob.download_blob()
            raw = downloader.readall()
        except HttpResponseError as exc:
            if is_missing_blob(exc):
                return None
            raise
        try:
            blob.delete_blob(etag=downloader.properties.etag, match_condition=MatchConditions.IfNotModified)
        except HttpResponseError as exc:
            if is_missing(exc) or status(exc) == 412:
                continue  # another writer took it (or parked anew) meanwhile
            raise
        try:
            state = json.loads(raw)
            if not isinstance(state, dict) or state.get("v") != 1:
                raise ValueError("unknown marker version")
            return state
        except ValueError:
            log.debug("azure: dropped an unreadable upload marker %s", blob.blob_name)
            return None
    raise StorageError(f"the upload marker of {driver._logical(full)} keeps changing; try again")


def park(driver: AzureDriver, full: str, session: Session) -> None:
    """Park ``session`` in the marker of ``full``, dropping the staging blob of a session parked before."""
    blob = marker(driver, full)  # one client for both requests (building one costs CPU)
    replaced = take_marker(driver, full, blob)
    if replaced is not None and replaced.get("session") != session.id:
        drop_staging(driver, full, str(replaced["session"]))
    blob.upload_blob(json.dumps(session.state()).encode(), overwrite=True)


def resume(driver: AzureDriver, full: str, state: dict[str, Any]) -> Session:
    """The parked session ``state`` describes, with its staged blocks checked on its staging blob."""
    session = str(state["session"])
    count = int(state["blocks"])
    base_state = state.get("base")
    base = Base(str(base_state["etag"]), int(base_state["blocks"]), int(base_state["size"])) if base_state else None
    sizes: dict[int, int] = {}
    if count:
        try:
            committed, pending = staging(driver, full, session).get_block_list("all")
        except HttpResponseError as exc:
            if not is_missing_blob(exc):
                raise
            committed, pending = [], []
        prefix = ID_PREFIX + session
        # A block staged again after a failed commit is newer than its committed twin.
        for block in [*committed, *pending]:
            block_id = str(block.id)
            if len(block_id) == ID_LENGTH and block_id.startswith(prefix) and block_id[len(prefix) :].isdigit():
                sizes[int(block_id[len(prefix) :])] = int(block.size or 0)
    staged = [sizes.get(index) for index in range(count)]
    total = (base.size if base else 0) + sum(size or 0 for size in staged)
    if any(size is None for size in staged) or total != int(state["size"]):
        drop_staging(driver, full, session)
        raise StorageError(
            f"the upload in progress for {driver._logical(full)} was lost: its staged blocks are gone; "
            "start the upload again"
        )
    return Session(session, [int(size or 0) for size in staged], base)


def append_to_committed(driver: AzureDriver, full: str, blob: BlobClient) -> Session:
    """A new session appending to the committed content of ``blob``.

    It re-uses the committed block list when it can (no data copied); a blob
    without one (written by Put Blob, by another tool, or a legacy AppendBlob) is
    first copied into the session's first blocks.
    """
    for _ in range(5):
        props = blob.get_blob_properties()
        if props.blob_type != BlobType.BLOCKBLOB:
            driver._copier.replace_legacy(blob)
            continue
        try:
            committed, _ = blob.get_block_list(
                "committed", etag=props.etag, match_condition=MatchConditions.IfNotModified
            )
        except HttpResponseError as exc:
            if status(exc) == 412:
                continue  # rewritten between the two calls: read again
            raise
        session = new_session()
        if _reusable(committed, props.size):
            return Session(session, [], Base(str(props.etag), len(committed), int(props.size)))
        info = SourceBlob(full, blob, props.etag, props.size)
        target = staging(driver, full, session)
        staged = driver._copier.copy_into_blocks(target, session, [info], 0, driver.chunk_size)
        assert staged is not None  # streaming is allowed, so there is always a result
        return Session(session, staged, Base(str(props.etag), 0, 0))
    raise StorageError(f"{driver._logical(full)} keeps changing; cannot append to it")


def _reusable(committed: list[BlobBlock], size: int) -> bool:
    """Whether committed blocks can be named again in a commit next to ours (same id length, whole content)."""
    total = 0
    for block in committed:
        block_id = block.id
        if not isinstance(block_id, str) or len(block_id) != ID_LENGTH or not block_id.isascii():
            return False
        total += int(block.size or 0)
    return total == size
