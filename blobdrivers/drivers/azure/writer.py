"""The writer backend: one session staging blocks on its own hidden staging blob, in the background.

``close()`` parks the session in the path's marker (one parked session per path:
parking replaces, and drops, the one parked before). ``commit()`` makes the staging
blob readable (Put Block List there), copies it server-side into fresh blocks of
the target (Put Block From URL) and commits those after the re-used committed
blocks of an append base, in one Put Block List. Staged blocks never sit on the
target while the writer is open, so no other commit to the path can discard them:
two writers' commits both succeed, the later one's content wins.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
from typing import TYPE_CHECKING, Final

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobBlock, BlobClient, BlockState

from ...conditions import Conditions
from ...errors import PreconditionFailedError, StorageError
from ...transfer import BackgroundParts, PartBuffer, growing_part_sizes
from . import blocks, sessions
from .blocks import MAX_BLOCK_SIZE, MAX_BLOCKS, SourceBlob
from .errors import status
from .sessions import Session

if TYPE_CHECKING:
    from . import AzureDriver

log = logging.getLogger("blobdrivers.azure")

#: Copies of a writer's staged content a commit makes when concurrent commits keep discarding them.
_COMMIT_ATTEMPTS: Final = 3


@functools.cache
def _growing_sizes(chunk_size: int) -> tuple[int, ...]:
    """Block sizes for a writer of unknown length: block ``i`` has size ``sizes[i]``."""
    return tuple(growing_part_sizes(chunk_size, max_parts=MAX_BLOCKS, max_part_size=MAX_BLOCK_SIZE))


class AzureWriter:
    """Writer backend of one session (see the module docstring); ``session.staged`` grows as blocks go out."""

    def __init__(self, driver: AzureDriver, full: str, blob: BlobClient, session: Session) -> None:
        self._driver, self._full, self._blob = driver, full, blob
        self._session = session
        self._sizes = session.staged  # size of each block staged (or being staged), by index
        self._staging = sessions.staging(driver, full, session.id)
        self._sizes_table = _growing_sizes(driver.chunk_size)
        self._buffer = PartBuffer(self._part_size())
        # A block that could not be staged breaks the writer; the blocks before the lowest failed one are safe.
        self._background = BackgroundParts(driver.concurrency, self._stage, executor=lambda: driver._clients.get().pool)
        self.size = (session.base.size if session.base else 0) + sum(session.staged)

    def _part_size(self) -> int:
        index = min(len(self._sizes), len(self._sizes_table) - 1)
        return self._sizes_table[index]

    # -- staging

    def _submit(self, data: bytes | bytearray | memoryview) -> None:
        """Stage ``data`` as the next block in the background, once one of the writer's slots is free."""
        self._background.send(data, self._next_block)

    def _next_block(self, size: int) -> int:
        """In the slot of the next block, before it is copied: its index (after an earlier failure, none)."""
        self._raise_failures()
        index = len(self._sizes)
        if index >= MAX_BLOCKS:
            raise StorageError(f"an upload to {self._driver._logical(self._full)} reached {MAX_BLOCKS} blocks")
        self._sizes.append(size)
        return index

    def _stage(self, index: int, data: memoryview) -> int:
        return self._driver._stage_part(self._full, self._staging, self._session.id, index, data)

    def _raise_failures(self) -> None:
        failure = self._background.failure
        if failure is not None:
            raise failure

    def _drain(self) -> None:
        """Wait for every block in flight; raise the first failure (then and on every later call)."""
        self._background.drain()
        self._raise_failures()

    def _flush(self) -> None:
        rest = self._buffer.take_rest()
        if rest:
            self._submit(rest)
        self._drain()

    # -- WriterBackend

    def write(self, data: memoryview) -> None:
        """Buffer ``data``; every full block is staged in the background."""
        for part in self._buffer.cut(data):
            self._submit(part)
            self._buffer.part_size = self._part_size()

    def close(self) -> None:
        """Stage what is buffered and park the session in the marker, for a resume.

        After a block failed, only the blocks before the first failed one are
        parked (nothing past it became durable), and the failure is raised so the
        caller knows that less than everything written was kept.
        """
        try:
            self._flush()
        except Exception:
            if not self._truncate():
                raise
            self._park()
            raise
        self._park()

    def _truncate(self) -> bool:
        """After a failed block: wait for the others, keep the blocks before the first failed one; say if one did."""
        with contextlib.suppress(Exception):
            self._drain()
        first_failed = self._background.first_failed
        if first_failed is None:
            return False
        del self._sizes[first_failed:]
        return True

    def _park(self) -> None:
        sessions.park(self._driver, self._full, self._session)

    def commit(self, conditions: Conditions) -> None:
        """Publish: one Put Blob when everything is still buffered, else one Put Block List on the target."""
        driver = self._driver
        if not self._sizes and self._session.base is None:
            data = self._buffer.take_rest()
            try:
                blocks.put_blob(self._blob, data, conditions)
            except Exception:
                self._keep(data)
                raise
            return
        try:
            self._flush()
        except Exception:
            if self._truncate():
                with contextlib.suppress(Exception):  # best effort, as in _keep: the block's failure is what counts
                    self._park()
            raise
        effective = self._effective(conditions)
        base: list[BlobBlock] = []
        if self._session.base is not None and self._session.base.blocks:
            base = [BlobBlock(block.id, BlockState.COMMITTED) for block in self._committed_base()]
        try:
            staged = self._readable_staging()
            for attempt in itertools.count(1):
                # Fresh blocks on the target, copied from the staging blob, committed at once.
                session = blocks.new_session()
                copier = driver._copier
                sizes = copier.copy_into_blocks(self._blob, session, staged, 0, driver.chunk_size) if staged else []
                assert sizes is not None  # streaming is allowed, so there is always a result
                try:
                    blocks.commit(
                        self._blob,
                        base + blocks.uncommitted(session, len(sizes)),
                        effective,
                        session=session,
                        staged=len(sizes),
                        overwritten_is_success=False,
                        path=driver._logical(self._full),
                    )
                    break
                except StorageError:
                    # A concurrent commit to the path discarded the copies in the short window before
                    # ours: the staging blob still holds everything, so copy again.
                    if attempt == _COMMIT_ATTEMPTS:
                        raise
        except Exception:
            self._keep(b"")  # a false condition or a failed request keeps the progress for a resume
            raise
        sessions.drop_staging(driver, self._full, self._session.id)

    def _readable_staging(self) -> list[SourceBlob]:
        """Commit the session's blocks on its staging blob, so they can be copied; ``[]`` when there are none."""
        if not self._sizes:
            return []
        self._staging.commit_block_list(
            [BlobBlock(blocks.block_id(self._session.id, i), BlockState.LATEST) for i in range(len(self._sizes))]
        )
        props = self._staging.get_blob_properties()
        return [SourceBlob(self._full, self._staging, str(props.etag), int(props.size))]

    def _effective(self, conditions: Conditions) -> Conditions:
        """The user's conditions combined with If-Match on the base an append started from."""
        base = self._session.base
        if base is None:
            return conditions
        if conditions.if_none_match or (conditions.if_match is not None and conditions.if_match != base.etag):
            self._park()
            raise PreconditionFailedError(
                f"{self._driver._logical(self._full)} exists with etag {base.etag}, so the condition is false"
            )
        return Conditions(if_match=base.etag)

    def _committed_base(self) -> list[BlobBlock]:
        base = self._session.base
        try:
            committed, _ = self._blob.get_block_list(
                "committed", etag=base.etag if base else None, match_condition=MatchConditions.IfNotModified
            )
        except HttpResponseError as exc:
            if status(exc) in (404, 412):
                self._park()
                raise PreconditionFailedError(
                    f"{self._driver._logical(self._full)} changed since this append started; nothing was published"
                ) from exc
            raise
        if base is None or len(committed) != base.blocks:
            self._park()
            raise PreconditionFailedError(f"{self._driver._logical(self._full)} changed since this append started")
        return committed

    def _keep(self, data: bytes) -> None:
        """After a failed commit: stage what was buffered and park, so a resume loses nothing.

        Best effort: when the service is unreachable this fails too, and the
        original error is what the caller sees.
        """
        try:
            if data:
                self._submit(data)
            self._drain()
            self._park()
        except Exception as exc:
            log.debug(
                "azure: could not park the upload of %s after a failed commit: %s",
                self._blob.blob_name,
                type(exc).__name__,
            )

    def cancel(self) -> None:
        """Forget the upload: delete the session's staging blob. The path keeps what it had."""
        self._background.drain()
        sessions.drop_staging(self._driver, self._full, self._session.id)
