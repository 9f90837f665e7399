"""Replication between any two stores: a missing check, then updates, with failure thresholds.

:func:`replicate` makes ``target`` hold what ``source`` holds below ``path``. It
works in two phases, run as one pipeline:

1. **Missing check.** Both sides are listed with ``walk`` (one flat, paginated
   listing on object stores: no request per object) and the two listings are
   merged as sorted streams. ``walk`` yields files in the same order on every
   driver (:func:`blobdrivers.listing.walk_key`, which for files is plain string
   order), so a merge join decides each path in one pass holding neither listing
   in memory: missing on the target, different under ``compare``, the same, or
   extra on the target (absent from the source).
2. **Updates.** Wanted files are copied by ``concurrency`` worker threads as the
   merge finds them: streamed from ``source.stream`` into ``target.put`` (atomic,
   bounded memory), or copied server-side with the store's own ``cat`` when both
   drivers address the same bucket/container of the same account. With
   ``delete=True`` the files extra on the target are deleted once every copy has
   finished, unless the run was aborted.

Every update succeeds or fails on its own; a failure never leaves a partial object
on the target, because ``put`` and ``cat`` publish atomically. When the failures
reach ``failure_threshold`` and their ratio to the successes exceeds
``failure_ratio``, no further update starts and the report says why. Running
again after a success copies nothing; after an interruption it copies only what
is still missing. See ``docs/replication.md``.
Where each part lives: :mod:`.plan` (listings, the merge, ``compare``),
:mod:`.stores` (overlap, same-store copies, through the driver contract),
:mod:`.copy` (one update in a worker), :mod:`.run` (scheduling, thresholds,
progress) and :mod:`.report` (the results). The ``blobdrivers sync`` command is
:mod:`blobdrivers.cli.sync`.
"""

from __future__ import annotations

from collections.abc import Callable

from .. import paths
from ..driver import StorageDriver
from .plan import COMPARE_MODES, MODIFY_WINDOW, Compare
from .report import ReplicationFailure, ReplicationInterrupted, ReplicationProgress, ReplicationReport
from .run import Run
from .stores import refuse_missing_folder, refuse_overlap

__all__ = [
    "COMPARE_MODES",
    "MODIFY_WINDOW",
    "ReplicationFailure",
    "ReplicationInterrupted",
    "ReplicationProgress",
    "ReplicationReport",
    "replicate",
]


def replicate(
    source: StorageDriver,
    target: StorageDriver,
    path: str = paths.ROOT,
    *,
    delete: bool = False,
    compare: Compare = "size",
    concurrency: int = 8,
    failure_threshold: int = 100,
    failure_ratio: float = 1.0,
    dry_run: bool = False,
    progress: Callable[[ReplicationProgress], None] | None = None,
) -> ReplicationReport:
    """Make ``target`` hold every file ``source`` holds below ``path`` (one-way), and report.

    ``compare`` decides when a file present on both sides is copied again:

    * ``"size"``: when the sizes differ. Cheapest; blind to a rewrite of equal size.
    * ``"etag"``: when the sizes differ; otherwise by etag where both etags are
      content MD5s (S3 and OSS objects; multipart etags only prove equality), and
      else when the source file is newer than its copy by more than
      :data:`MODIFY_WINDOW` seconds. Catches same-size rewrites (a registry's tag
      ``link`` files) without reading any content. Because a copy is newer than its
      source, each copy is checked: the source's etag is read again after it, and a
      source that changed meanwhile is copied again (a copy never looks current
      without holding the source's content as of its end).
    * ``"sha256"``: when the sizes differ, or the contents differ: both files are read
      and compared (the check ``sha256`` digests would make, stopping at the first
      difference). Reads every common file on both sides: expensive.

    Updates run in up to ``concurrency`` threads while the listing goes on; a
    streamed copy to an object store takes one of those slots per chunk of the
    target, so memory stays near ``concurrency`` target chunks. Same-store copies
    use the store's own ``cat`` (server-side where it can). With ``delete`` the
    files extra on the target are deleted after all copies, unless the run aborted
    or the source listed no file at all (a safety stop: an empty or mistyped source
    would otherwise empty the target). ``dry_run`` decides everything (reading contents
    under ``"sha256"``) and changes nothing. ``progress`` is called from the calling
    thread with :class:`ReplicationProgress` snapshots; an exception it raises stops
    the run (``KeyboardInterrupt`` becomes :class:`ReplicationInterrupted`).

    Store errors never raise: they are failures in the report (a listing error
    aborts the run). Raises ``ValueError`` for bad arguments, when source and
    target overlap (the same store with one location inside the other), and when
    the source is a filesystem folder that does not exist (a mistyped source is not
    an empty one).
    """
    if compare not in COMPARE_MODES:
        raise ValueError(f"compare must be one of {', '.join(COMPARE_MODES)}, not {compare!r}")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be an integer >= 1, not {concurrency!r}")
    if isinstance(failure_threshold, bool) or not isinstance(failure_threshold, int) or failure_threshold < 1:
        raise ValueError(f"failure_threshold must be an integer >= 1, not {failure_threshold!r}")
    if isinstance(failure_ratio, bool) or not isinstance(failure_ratio, int | float) or failure_ratio < 0:
        raise ValueError(f"failure_ratio must be a number >= 0, not {failure_ratio!r}")
    paths.validate(path, allow_root=True)
    refuse_overlap(source, target, path)
    refuse_missing_folder(source)
    run = Run(
        source,
        target,
        path,
        delete=delete,
        compare=compare,
        concurrency=concurrency,
        failure_threshold=failure_threshold,
        failure_ratio=float(failure_ratio),
        dry_run=dry_run,
        progress=progress,
    )
    return run.execute()
