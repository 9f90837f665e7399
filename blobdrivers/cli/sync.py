"""The ``blobdrivers sync`` command: :func:`blobdrivers.replicate.replicate` with a progress line and a summary.

Options, report and exit codes are in ``docs/replication.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from .. import factory, paths
from ..driver import StorageDriver
from ..errors import StorageError
from ..redaction import redact_url
from ..replicate import COMPARE_MODES, ReplicationInterrupted, ReplicationProgress, ReplicationReport, replicate
from .locations import Context, vanishing_reason, warn_vanishing
from .progress import Progress, format_size, progress_wanted

__all__ = ["add_sync_parser", "run_sync", "summary_table"]


def add_sync_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    *,
    parents: Sequence[argparse.ArgumentParser] | None = None,
) -> argparse.ArgumentParser:
    """Add the ``sync`` subcommand to ``subparsers`` and return its parser.

    ``parents`` are the parsers of options shared by every subcommand; without
    them the command gets its own ``-q/--quiet``. The parser's ``handler(args,
    context)`` default runs :func:`run_sync`.
    """
    parser = subparsers.add_parser(
        "sync",
        parents=list(parents or ()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="replicate one store into another: missing check, then copies (and deletes)",
        description=(
            "Make DST_URL hold every file SRC_URL holds (one-way): list both stores, copy what\n"
            "DST_URL lacks or holds differently, and with --delete remove what SRC_URL lacks.\n"
            "Re-running after a success copies nothing; after an interruption, only the rest."
        ),
        epilog=(
            "A URL's path is the store's root directory, so 's3://bucket/mirror' replicates into\n"
            "the prefix mirror/ of the bucket; --path limits both sides to one folder.\n\n"
            "exit status: 0 done, 1 an update failed or the run stopped early, 2 bad arguments,\n"
            "130 interrupted (copies in flight are cancelled; nothing partial is left behind).\n\n"
            "examples:\n"
            "  blobdrivers sync file:///var/lib/registry 's3://mirror/registry?region=eu-west-1'\n"
            "  blobdrivers sync s3://old azure://new --delete --compare etag --concurrency 32\n"
            "  blobdrivers sync file:///srv/a file:///srv/b --dry-run --json\n"
            "Reference: blobdrivers help replication"
        ),
    )
    parser.add_argument("source", metavar="SRC_URL", help="store to copy from")
    parser.add_argument("target", metavar="DST_URL", help="store to copy to")
    parser.add_argument("--path", default=paths.ROOT, help="replicate only below this path (default: /)")
    parser.add_argument("--delete", action="store_true", help="delete files of DST that SRC does not have")
    parser.add_argument(
        "--compare",
        choices=COMPARE_MODES,
        default="size",
        help="when a file on both sides is copied again: size (default), etag (etag or newer), sha256 (contents)",
    )
    parser.add_argument("--concurrency", type=_positive_int, default=8, metavar="N", help="parallel updates (8)")
    parser.add_argument(
        "--failure-threshold",
        type=_positive_int,
        default=100,
        metavar="N",
        help="stop once N updates failed and failures outnumber successes by --failure-ratio (100)",
    )
    parser.add_argument(
        "--failure-ratio", type=float, default=1.0, metavar="R", help="failures per success that stop the run (1.0)"
    )
    parser.add_argument("--dry-run", action="store_true", help="show what would be copied and deleted; change nothing")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    if parents is None:
        parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_sync_handler)
    return parser


def _sync_handler(args: argparse.Namespace, context: Context) -> int:
    return run_sync(args, one_shot=context.one_shot)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _open_store(url: str) -> StorageDriver:
    if "://" not in url:
        raise ValueError(f"{url!r} is not a store URL (for a local folder write file://{os.path.abspath(url)})")
    if "#" in url:
        raise ValueError(f"{url!r}: sync takes store URLs without #PATH; use --path to limit both sides to a folder")
    return factory.from_url(url)


def run_sync(
    args: argparse.Namespace, *, stdout: TextIO | None = None, stderr: TextIO | None = None, one_shot: bool = False
) -> int:
    """Run ``blobdrivers sync`` with parsed arguments; return the exit status.

    0 when everything was replicated, 1 when an update failed or the run stopped
    early, 2 for bad arguments or store configuration, 130 when interrupted.
    A target that vanishes when the command ends (a ``memory://`` store; ``one_shot``:
    this process is the ``blobdrivers`` command) is warned about, as ``cp`` does.
    """
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    opened: list[StorageDriver] = []

    def shown(text: str) -> str:
        # Everything printed may quote the URLs: mask their credentials.
        for driver in opened:
            text = driver.redact(text)
        return redact_url(text, {name for driver in opened for name in driver.secret_params})

    try:
        opened.append(_open_store(args.source))
        opened.append(_open_store(args.target))
    except (StorageError, ValueError) as exc:
        print(shown(f"blobdrivers sync: error: {exc}"), file=err)
        return 2
    source, target = opened
    why = vanishing_reason(target, args.target, one_shot=one_shot)
    if why is not None and not args.dry_run:
        warn_vanishing(target, args.target, why, stream=err)
    quiet = bool(getattr(args, "quiet", False))
    show_bar = not args.dry_run and progress_wanted(quiet=quiet, stream=err)
    bar = Progress("sync", enabled=show_bar, stream=err)
    plan: list[dict[str, str]] = []
    last_bytes = 0

    def on_progress(event: ReplicationProgress) -> None:
        nonlocal last_bytes
        if event.action in ("would-copy", "would-delete") and event.path is not None:
            if args.json:
                plan.append({"action": event.action, "path": event.path})
            else:
                print(f"{event.action} {event.path}", file=out)
            return
        total = event.wanted + (event.extra if args.delete else 0)
        bar.label = f"sync {event.objects:,}/{total:,}{'' if event.listing_done else '+'} files"
        bar.total = event.wanted_bytes if event.listing_done else None
        bar.update(event.bytes - last_bytes)
        last_bytes = event.bytes

    status = 0
    try:
        report = replicate(
            source,
            target,
            args.path,
            delete=args.delete,
            compare=args.compare,
            concurrency=args.concurrency,
            failure_threshold=args.failure_threshold,
            failure_ratio=args.failure_ratio,
            dry_run=args.dry_run,
            progress=on_progress,
        )
    except ReplicationInterrupted as exc:
        report, status = exc.report, 130
    except (StorageError, ValueError) as exc:
        bar.abort()
        print(shown(f"blobdrivers sync: error: {exc}"), file=err)
        return 2
    if report.ok:
        bar.finish()
    else:
        bar.abort()
    if args.json:
        data = report.to_dict()
        data["source"] = args.source
        data["target"] = args.target
        if args.dry_run:
            data["plan"] = plan
        print(shown(json.dumps(data, indent=2)), file=out)
    else:
        print(shown(summary_table(report, args.source, args.target)), file=out)
    if status:
        return status
    return 0 if report.ok else 1


def summary_table(report: ReplicationReport, source: str, target: str, *, max_failures: int = 20) -> str:
    """The end-of-run summary of ``blobdrivers sync`` as text (credentials in the URLs masked)."""
    verb = "would copy" if report.dry_run else "copied"
    rows = [
        ("offered", report.offered, format_size(report.offered_bytes), ""),
        (
            "wanted",
            report.wanted,
            format_size(report.wanted_bytes),
            f"missing {report.missing:,}, changed {report.changed:,}",
        ),
    ]
    if not report.dry_run:
        rows.append((verb, report.copied, format_size(report.copied_bytes), f"server-side {report.server_side:,}"))
    rows.append(("skipped", report.skipped, "", f"same under compare={report.compare}"))
    if report.vanished:
        rows.append(("vanished", report.vanished, "", "deleted from the source meanwhile"))
    rows.append(
        ("extra", report.extra, "", "on the target only" + ("" if report.dry_run else f", deleted {report.deleted:,}"))
    )
    rows.append(("failed", len(report.failed), "", ""))
    title = redact_url(f"{'dry run: ' if report.dry_run else ''}{source} -> {target}")
    lines = [title, f"  {'':<10} {'files':>12} {'bytes':>12}"]
    for name, count, size, note in rows:
        lines.append(f"  {name:<10} {count:>12,} {size:>12}  {note}".rstrip())
    rate = f"{format_size(report.throughput)}/s, {report.objects_per_second:,.1f} files/s"
    lines.append(f"  elapsed {report.elapsed:.1f} s, {rate}")
    if report.aborted:
        lines.append(f"  ABORTED: {report.abort_reason}")
    for failure in report.failed[:max_failures]:
        lines.append(f"  FAILED {failure.operation} {failure.path}: {failure.reason}")
    if len(report.failed) > max_failures:
        lines.append(f"  ... and {len(report.failed) - max_failures:,} more failures (--json lists them all)")
    return "\n".join(lines)
