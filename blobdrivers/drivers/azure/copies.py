"""Server-side copies (Copy Blob, Put Block From URL, Put Blob From URL) and their streaming fallbacks.

Whether the service copies from URLs is found out once per driver instance, by the
first attempt (Azurite lacks Put Block From URL and Put Blob From URL); without it
the ranges stream through the client, ``maxconcurrency`` at a time.

Legacy AppendBlobs: no block can be staged on one and Copy Blob keeps the blob
type, so one is first rewritten as a BlockBlob with the same content, in one atomic
call guarded by If-Match (see :meth:`Copier.replace_legacy`).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Final, cast

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobClient, BlobProperties, BlobType

# The generated layer's condition model, which the public method passes through.
from azure.storage.blob._generated.models import SourceModifiedAccessConditions

from ...conditions import Conditions
from ...errors import StorageError
from ...params import MiB
from ...transfer import part_size_for, run_bounded
from . import blocks
from .blocks import MAX_BLOCK_SIZE, MAX_BLOCKS, SourceBlob
from .errors import error_code, is_not_implemented, status

if TYPE_CHECKING:
    from . import AzureDriver

log = logging.getLogger("blobdrivers.azure")

#: Largest range one Put Block From URL copies (the documented limit of that call).
MAX_COPY_RANGE: Final = 100 * MiB
#: Largest blob moved with one synchronous Copy Blob From URL.
MAX_SYNC_COPY: Final = 256 * MiB


class Copier:
    """The copies of one driver instance, and what it learnt about the service's copy calls."""

    def __init__(self, driver: AzureDriver) -> None:
        self._driver = driver
        #: Whether the service copies from URLs (Put Block From URL, Put Blob From URL): None until the first try.
        self.copy_from_url: bool | None = None
        self._legacy_lock = threading.Lock()

    # ------------------------------------------------------------------ blocks

    def stage(self, blob: BlobClient, block_id: str, data: memoryview | bytes) -> int:
        """Put Block; a legacy AppendBlob at the path is converted first (see :meth:`replace_legacy`)."""
        # A memoryview goes to urllib3 as one buffer, without a copy (the SDK's stub says bytes).
        body = cast(Any, data)
        try:
            blob.stage_block(block_id, body, length=len(data))
        except HttpResponseError as exc:
            if error_code(exc) != "InvalidBlobType":
                raise
            self.replace_legacy(blob)
            blob.stage_block(block_id, body, length=len(data))
        return len(data)

    def replace_legacy(self, blob: BlobClient) -> None:
        """Turn a legacy AppendBlob (or PageBlob) into a BlockBlob with the same content.

        Put Blob From URL (server-side) where the service has it, else a download and
        Put Blob when it fits in one chunk, both guarded by If-Match: readers see the
        same bytes throughout. Larger legacy blobs on services without Put Blob From
        URL are refused with a clear error rather than replaced non-atomically.
        """
        driver = self._driver
        with self._legacy_lock:
            props = blob.get_blob_properties()
            if props.blob_type == BlobType.BLOCKBLOB:
                return  # another thread converted it
            guard: dict[str, Any] = {"etag": props.etag, "match_condition": MatchConditions.IfNotModified}
            source = driver._signer.source_url(blob, 3600)
            if source is not None and self.copy_from_url is not False:
                try:
                    blob.upload_blob_from_url(source, overwrite=True, **guard)
                    self.copy_from_url = True
                    log.debug("azure: replaced legacy %s at %s server-side", props.blob_type, blob.blob_name)
                    return
                except HttpResponseError as exc:
                    if not is_not_implemented(exc):
                        raise
                    self._note_no_copy_from_url()
            if props.size > driver.chunk_size:
                raise StorageError(
                    f"a legacy {props.blob_type} of {props.size} bytes is at {driver._shown(blob)}; this service "
                    "cannot replace it atomically by a BlockBlob (no Put Blob From URL): delete it first"
                )
            data = driver._read_range(blob, 0, props.size, props.etag)
            blob.upload_blob(bytes(data), length=len(data), blob_type=BlobType.BLOCKBLOB, overwrite=True, **guard)
            log.debug("azure: replaced legacy %s at %s by a BlockBlob", props.blob_type, blob.blob_name)

    def _note_no_copy_from_url(self) -> None:
        if self.copy_from_url is not False:
            self.copy_from_url = False
            log.debug("azure: the service has no Put Block/Blob From URL; copies stream through this client")

    def copy_into_blocks(
        self,
        target: BlobClient,
        session: str,
        sources: list[SourceBlob],
        start: int,
        block_size: int,
        *,
        allow_streaming: bool = True,
    ) -> list[int] | None:
        """Stage the concatenation of ``sources`` as blocks ``start, start+1, ...`` of ``target``.

        Server-side (Put Block From URL, ranges of up to 100 MiB) when the service
        supports it, else downloading and re-staging ranges of ``block_size`` with
        ``maxconcurrency`` in flight (or, without ``allow_streaming``, return None).
        Returns the staged block sizes.
        """
        driver = self._driver
        can_sign = bool(sources) and driver._signer.source_url(sources[0].client, 60) is not None
        if can_sign and self.copy_from_url is not False:
            ranges = _ranges(sources, max(block_size, MAX_COPY_RANGE))
            if not ranges:
                return []
            try:
                self._stage_from_url(target, session, start, ranges[0])
            except HttpResponseError as exc:
                if not is_not_implemented(exc):
                    raise
                self._note_no_copy_from_url()
            else:
                if self.copy_from_url is None:
                    self.copy_from_url = True
                    log.debug("azure: the service copies blocks from URLs; copies run server-side")
                log.debug("azure: staging %d ranges into %s server-side", len(ranges), target.blob_name)
                tasks = [
                    functools.partial(self._stage_from_url, target, session, start + i, item)
                    for i, item in enumerate(ranges[1:], start=1)
                ]
                run_bounded(tasks, driver.concurrency)
                return [length for _, _, length in ranges]
        if not allow_streaming:
            return None
        ranges = _ranges(sources, block_size)
        log.debug("azure: staging %d ranges into %s by streaming copy", len(ranges), target.blob_name)

        def copy(index: int, source: SourceBlob, offset: int, length: int) -> int:
            data = driver._read_range(source.client, offset, length, source.etag)
            return self.stage(target, blocks.block_id(session, start + index), memoryview(data))

        return run_bounded([functools.partial(copy, i, *item) for i, item in enumerate(ranges)], driver.concurrency)

    def _stage_from_url(self, target: BlobClient, session: str, index: int, item: tuple[SourceBlob, int, int]) -> int:
        source, offset, length = item
        url = self._driver._signer.source_url(source.client, 3600)
        if url is None:
            raise StorageError("cannot authorize a copy source")
        target.stage_block_from_url(
            blocks.block_id(session, index),
            url,
            source_offset=offset,
            source_length=length,
            source_modified_access_conditions=SourceModifiedAccessConditions(source_if_match=source.etag),
        )
        return length

    # ------------------------------------------------------------------ whole blobs

    def copy_blob(self, source: BlobClient, props: BlobProperties, target: BlobClient, conditions: Conditions) -> None:
        """Server-side copy of ``source`` (as of ``props``) to ``target``, published atomically.

        Small blobs: one synchronous Copy Blob From URL. Large ones: Put Block From
        URL of every range and one Put Block List (atomic, unlike a pending async
        copy); where the service lacks that, a polled asynchronous Copy Blob.
        """
        driver = self._driver
        source_guard: dict[str, Any] = {
            "source_etag": props.etag,
            "source_match_condition": MatchConditions.IfNotModified,
        }
        url = driver._signer.source_url(source, 7 * 24 * 3600) or source.url
        publish, metadata = blocks.publish_metadata(conditions)
        guards = {**source_guard, **blocks.condition_kwargs(conditions)}
        try:
            if props.size <= MAX_SYNC_COPY:
                try:
                    target.start_copy_from_url(url, metadata=metadata, requires_sync=True, **guards)
                    return
                except HttpResponseError as exc:
                    if not is_not_implemented(exc):
                        raise
            else:
                info = SourceBlob("", source, props.etag, props.size)
                block = part_size_for(props.size, driver.chunk_size, max_parts=MAX_BLOCKS, max_part_size=MAX_BLOCK_SIZE)
                session = blocks.new_session()
                staged = self.copy_into_blocks(target, session, [info], 0, block, allow_streaming=False)
                if staged is not None:
                    blocks.commit_session(
                        target,
                        session,
                        len(staged),
                        conditions,
                        overwritten_is_success=False,
                        path=driver._shown(target),
                    )
                    return
            self._async_copy(url, target, metadata, guards)
        except HttpResponseError as exc:
            if blocks.landed_anyway(exc, target, publish):
                return
            if not conditions and status(exc) == 412:
                # Only the source is guarded, so it changed (Azurite says ConditionNotMet, not SourceConditionNotMet).
                raise StorageError(
                    f"a source of {driver._shown(target)} changed during the operation "
                    f"({error_code(exc) or 'HTTP 412'})"
                ) from exc
            raise

    def _async_copy(
        self, url: str, target: BlobClient, metadata: dict[str, str] | None, guards: dict[str, Any]
    ) -> None:
        started = target.start_copy_from_url(url, metadata=metadata, **guards)
        state = str(started.get("copy_status") or "pending")
        copy_id = str(started.get("copy_id") or "")
        delay, deadline = 0.05, time.monotonic() + 3600
        while state == "pending":
            if time.monotonic() > deadline:
                target.abort_copy(copy_id)
                raise StorageError(f"copy to {self._driver._shown(target)} did not finish within an hour; aborted")
            time.sleep(delay)
            delay = min(2.0, delay * 2)
            state = str(target.get_blob_properties().copy.status or "pending")
        if state != "success":
            raise StorageError(
                f"copy to {self._driver._shown(target)} ended with status {state}; the source is untouched"
            )


def _ranges(sources: list[SourceBlob], size: int) -> list[tuple[SourceBlob, int, int]]:
    return [
        (source, offset, min(size, source.size - offset))
        for source in sources
        for offset in range(0, source.size, size)
    ]
