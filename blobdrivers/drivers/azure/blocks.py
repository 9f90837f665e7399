"""Block ids and the two publishing calls: Put Blob and Put Block List.

Block ids are ``"bd1" + session + index`` (a fixed-width 45-character string,
base64-encoded by the SDK, so every id of a blob has the same length as Azure
requires). The session is a random 128-bit hex id per put, cat or writer, so two
writers staging blocks for the same path can never list each other's blocks: a
commit names only its own session's blocks, and a blob is always exactly one
writer's content. A block re-sent after a timeout goes under the same id and
replaces itself, so a retry can never duplicate data.

Azure discards every uncommitted block of a blob when anyone commits that blob
(Put Blob or Put Block List). So when two multi-block puts race for one path, the
later commit finds its blocks gone; :func:`commit` tells that case apart.

A conditional publish carries a random id in its metadata (``bdpublish``): if a
response is lost and the SDK retries, the retry finds its own write and fails the
condition, and the id tells that apart from a real competitor.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any, Final

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobBlock, BlobClient, BlobType, BlockState

from ...conditions import Conditions
from ...errors import StorageError
from ...params import MiB
from .errors import error_code, is_condition_failure, is_missing

log = logging.getLogger("blobdrivers.azure")

#: Service limits (Put Block / Put Block List, API 2019-12-12 and later).
MAX_BLOCKS: Final = 50_000
MAX_BLOCK_SIZE: Final = 4000 * MiB

ID_PREFIX: Final = "bd1"
ID_LENGTH: Final = len(ID_PREFIX) + 32 + 10
_PUBLISH_META: Final = "bdpublish"


def block_id(session: str, index: int) -> str:
    """The (unencoded) id of block ``index`` of a session: fixed width, so every id has one length."""
    return f"{ID_PREFIX}{session}{index:010d}"


def new_session() -> str:
    """A fresh random session id (32 hex digits)."""
    return uuid.uuid4().hex


def uncommitted(session: str, count: int) -> list[BlobBlock]:
    """The first ``count`` blocks of ``session``, as staged (not yet committed)."""
    return [BlobBlock(block_id(session, index), BlockState.UNCOMMITTED) for index in range(count)]


@dataclass(frozen=True)
class SourceBlob:
    """A blob to copy from, pinned to the etag it had when it was looked at."""

    full: str
    client: BlobClient
    etag: str
    size: int


def condition_kwargs(conditions: Conditions) -> dict[str, Any]:
    """The SDK's keyword arguments for ``if_none_match="*"`` / ``if_match=etag``."""
    if conditions.if_none_match:
        return {"match_condition": MatchConditions.IfMissing}
    if conditions.if_match is not None:
        return {"etag": conditions.if_match, "match_condition": MatchConditions.IfNotModified}
    return {}


def _as_bytes(data: memoryview | bytes | bytearray) -> bytes:
    """``bytes`` for the SDK's single-shot upload, without a copy when ``data`` already is whole bytes."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, memoryview) and isinstance(data.obj, bytes) and data.nbytes == len(data.obj):
        return data.obj
    return bytes(data)


def _published(blob: BlobClient, publish: str) -> bool:
    """Whether our own earlier attempt of a failed conditional publish landed (its id is in the metadata)."""
    try:
        metadata = blob.get_blob_properties().metadata or {}
    except HttpResponseError:
        return False
    return metadata.get(_PUBLISH_META) == publish


def publish_metadata(conditions: Conditions) -> tuple[str | None, dict[str, str] | None]:
    """A publish id and the metadata carrying it, for a conditional publish; ``(None, None)`` otherwise."""
    publish = new_session() if conditions else None
    return publish, ({_PUBLISH_META: publish} if publish else None)


def landed_anyway(exc: HttpResponseError, blob: BlobClient, publish: str | None) -> bool:
    """A conditional publish failed its condition only because our own retried attempt had landed."""
    return bool(publish) and is_condition_failure(exc) and _published(blob, publish or "")


def put_blob(blob: BlobClient, data: memoryview | bytes | bytearray, conditions: Conditions) -> None:
    """One Put Blob: a BlockBlob of ``data`` (which replaces a blob of any type atomically)."""
    publish, metadata = publish_metadata(conditions)
    try:
        blob.upload_blob(
            _as_bytes(data),
            length=len(data),
            blob_type=BlobType.BLOCKBLOB,
            overwrite=not conditions.if_none_match,
            metadata=metadata,
            **condition_kwargs(conditions),
        )
    except HttpResponseError as exc:
        if not landed_anyway(exc, blob, publish):
            raise


def commit(
    blob: BlobClient,
    blocks: list[BlobBlock],
    conditions: Conditions,
    *,
    session: str,
    staged: int,
    overwritten_is_success: bool,
    path: str,
) -> None:
    """Put Block List: publish ``blocks`` atomically under ``conditions``.

    When the session's ``staged`` blocks were discarded by a concurrent commit or
    delete of the blob, either report success (the caller is a single
    unconditional call that the concurrent write superseded) or raise a
    ``StorageError`` naming ``path``, the caller's.
    """
    publish, metadata = publish_metadata(conditions)
    try:
        blob.commit_block_list(blocks, metadata=metadata, **condition_kwargs(conditions))
    except HttpResponseError as exc:
        if landed_anyway(exc, blob, publish):
            return
        if error_code(exc) != "InvalidBlockList" or not _discarded(blob, session, staged):
            raise
        if overwritten_is_success:
            log.debug("azure: a concurrent write replaced %s while its blocks were staged", blob.blob_name)
            return
        raise StorageError(
            f"the blocks staged for {path} were discarded by a concurrent write to that path; nothing was published"
        ) from exc


def commit_session(
    blob: BlobClient, session: str, count: int, conditions: Conditions, *, overwritten_is_success: bool, path: str
) -> None:
    """:func:`commit` of exactly the first ``count`` blocks ``session`` staged on ``blob``."""
    commit(
        blob,
        uncommitted(session, count),
        conditions,
        session=session,
        staged=count,
        overwritten_is_success=overwritten_is_success,
        path=path,
    )


def _discarded(blob: BlobClient, session: str, staged: int) -> bool:
    if staged == 0:
        return False
    try:
        _, pending = blob.get_block_list("uncommitted")
    except HttpResponseError as exc:
        if is_missing(exc):
            return True
        raise
    present = {block.id for block in pending}
    return any(block_id(session, index) not in present for index in range(staged))
