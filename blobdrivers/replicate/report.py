"""What a replication reports: the counts, the failures, the progress snapshots, the interruption."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = ["ReplicationFailure", "ReplicationInterrupted", "ReplicationProgress", "ReplicationReport", "reason"]


class ReplicationFailure(NamedTuple):
    """One failed update: the path, why it failed, and what was attempted.

    ``operation`` is ``"copy"``, ``"delete"``, ``"compare"`` (reading both sides
    under ``compare="sha256"``) or ``"list"`` (a listing failed, which aborts the run).
    ``reason`` is the error's type and message; driver messages never carry credentials.
    """

    path: str
    reason: str
    operation: str = "copy"


@dataclass
class ReplicationReport:
    """What a replication did; ``ok`` is true when nothing failed and nothing was aborted.

    Counts are of files (directories are implicit and never counted).

    * ``offered``/``offered_bytes``: files listed on the source.
    * ``wanted``/``wanted_bytes``: offered files the target wanted, ``missing`` there
      or ``changed`` (different under ``compare``).
    * ``copied``/``copied_bytes``: wanted files written to the target
      (``server_side`` of them by a server-side copy). Zero in a dry run.
    * ``skipped``: offered files the target already had the same.
    * ``vanished``: wanted files deleted from the source before they could be copied.
    * ``extra``: target files absent from the source; ``deleted`` of them were
      deleted (``delete=True``; never in a dry run or an aborted run).
    * ``failed``: every failed update with its path and reason.
    * ``aborted``/``abort_reason``: the run stopped early (failure threshold, a
      listing error, an interruption, or an empty source with ``delete``).
    * ``elapsed``: wall time in seconds; ``throughput`` bytes copied per second.
    """

    compare: str = "size"
    dry_run: bool = False
    offered: int = 0
    offered_bytes: int = 0
    wanted: int = 0
    wanted_bytes: int = 0
    missing: int = 0
    changed: int = 0
    copied: int = 0
    copied_bytes: int = 0
    server_side: int = 0
    skipped: int = 0
    vanished: int = 0
    extra: int = 0
    deleted: int = 0
    failed: list[ReplicationFailure] = field(default_factory=list)
    aborted: bool = False
    abort_reason: str | None = None
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no update failed and the run was not aborted."""
        return not self.failed and not self.aborted

    @property
    def throughput(self) -> float:
        """Bytes copied per second of the whole run (0.0 when nothing was timed)."""
        return self.copied_bytes / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def objects_per_second(self) -> float:
        """Files copied per second of the whole run."""
        return self.copied / self.elapsed if self.elapsed > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary of every field, plus ``ok``, ``throughput`` and ``objects_per_second``."""
        data: dict[str, Any] = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["failed"] = [failure._asdict() for failure in self.failed]
        data["ok"] = self.ok
        data["throughput"] = self.throughput
        data["objects_per_second"] = self.objects_per_second
        return data


@dataclass(frozen=True)
class ReplicationProgress:
    """A snapshot passed to the ``progress`` callback.

    ``action`` says what just happened to ``path``: ``"copied"``, ``"deleted"``,
    ``"failed"``, and in a dry run ``"would-copy"`` and ``"would-delete"``; it is
    ``None`` for a periodic update (at most every 0.1 s while listing or copying).
    ``objects`` counts finished updates (copied, deleted or failed) and ``bytes`` the
    bytes copied so far, including those of copies still running. The totals
    ``wanted``/``wanted_bytes``/``extra`` grow while ``listing_done`` is false.
    """

    offered: int
    wanted: int
    wanted_bytes: int
    extra: int
    objects: int
    bytes: int
    listing_done: bool
    action: str | None = None
    path: str | None = None


class ReplicationInterrupted(KeyboardInterrupt):
    """Raised by :func:`replicate` when interrupted (Ctrl-C, or a ``progress`` callback raising ``KeyboardInterrupt``).

    Copies in flight were cancelled, each leaving nothing behind on the target;
    ``report`` tells what was done before. Running again copies only the rest.
    """

    def __init__(self, report: ReplicationReport) -> None:
        super().__init__("replication interrupted")
        self.report = report


def reason(error: BaseException) -> str:
    """An error as a failure's ``reason``: its type and message."""
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
