"""The commands but ``sync``: each ``cmd_NAME(args, ctx)`` returns the exit code."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from datetime import UTC, datetime
from typing import Any

from .. import factory
from ..driver import StorageDriver
from ..errors import PathNotFoundError
from ..listing import FileInfo
from .locations import (
    PROG,
    CommandError,
    Context,
    LocalFile,
    StoreLocation,
    UsageError,
    WriteConditions,
    local_file,
    logical_path,
    parse_endpoint,
    parse_location,
    report_error,
    write_conditions,
)
from .transfers import basename, move_within, transfer


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _info_dict(info: FileInfo) -> dict[str, Any]:
    return {
        "path": info.path,
        "is_dir": info.is_dir,
        "size": info.size,
        "modified": info.modified.astimezone(UTC).isoformat(),
        "etag": info.etag,
    }


def _long_line(info: FileInfo) -> str:
    kind, size = ("d", "-") if info.is_dir else ("-", str(info.size))
    return f"{kind} {size:>12}  {_time(info.modified)}  {info.path}{'/' if info.is_dir and info.path != '/' else ''}"


def _print_entry(info: FileInfo, *, long: bool, as_json: bool) -> None:
    # Plain output is the path alone, for ls and ls -r alike (as find(1) prints): marking
    # directories in a plain ls would cost a stat per child on an object store. -l marks them.
    if as_json:
        print(json.dumps(_info_dict(info)))
    elif long:
        print(_long_line(info))
    else:
        print(info.path)


def cmd_drivers(args: argparse.Namespace, ctx: Context) -> int:
    """List the drivers, whether each can be used, and the extra to install when its SDK is missing."""
    rows = [_driver_row(name) for name in factory.available_drivers()]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    headers: dict[str, str | None] = {"name": "NAME", "scheme": "URL", "status": "STATUS", "detail": ""}
    widths = {key: max(len(str(row[key] or "")) for row in [headers, *rows]) for key in headers}
    for row in [headers, *rows]:
        cells = [str(row[key] or "").ljust(widths[key]) for key in ("name", "scheme", "status")]
        print("  ".join([*cells, str(row["detail"] or "")]).rstrip())
    return 0


def _driver_row(name: str) -> dict[str, str | None]:
    status = factory.driver_status(name)
    problem = f'pip install "blobdrivers[{status.extra}]"' if status.extra else status.problem
    notes = [f"alias of {status.alias_of}"] if status.alias_of else []
    detail = "; ".join([*notes, *([problem] if problem else [])]) or None
    scheme = ", ".join(f"{scheme}://" for scheme in status.schemes) or None
    return {"name": name, "scheme": scheme, "status": status.status, "detail": detail, "extra": status.extra}


def cmd_conformance(args: argparse.Namespace, ctx: Context) -> int:
    """Run the conformance suite through pytest and pass its exit code through."""
    hint = 'the conformance suite needs pytest: pip install "blobdrivers[testing]"'
    if not _pytest_available():
        print(f"{PROG}: error: {hint}", file=sys.stderr)
        return 2
    try:
        from ..testing import run_conformance
    except ImportError as exc:
        if (exc.name or "").split(".")[0] in ("pytest", "_pytest"):
            print(f"{PROG}: error: {hint}", file=sys.stderr)
            return 2
        raise
    extra = [*(["-k", args.k] if args.k else []), *args.pytest_args]
    sys.stdout.flush()
    return int(run_conformance(args.url, large=args.large, verbose=args.verbose, extra_args=extra))


def _pytest_available() -> bool:
    try:
        return importlib.util.find_spec("pytest") is not None
    except (ImportError, ValueError):
        return False


def cmd_ls(args: argparse.Namespace, ctx: Context) -> int:
    """List the children of a directory (``-r``: everything below it)."""
    location = parse_location(args.location or "")
    driver = ctx.store(location)
    path = logical_path(location, allow_root=True)
    long = args.long or args.json
    try:
        if args.recursive:
            for info in driver.walk(path):
                _print_entry(info, long=long, as_json=args.json)
            return 0
        children = driver.list(path)
    except PathNotFoundError:
        # ls of a file shows the file, as ls(1) does.
        file = _file_info(driver, path) if path != "/" else None
        if file is None:
            raise
        _print_entry(file, long=long, as_json=args.json)
        return 0
    for child in children:
        if not long:
            print(child)
            continue
        try:
            info = driver.stat(child)
        except PathNotFoundError:
            continue  # deleted since the listing
        _print_entry(info, long=True, as_json=args.json)
    return 0


def _file_info(driver: StorageDriver, path: str) -> FileInfo | None:
    try:
        info = driver.stat(path)
    except PathNotFoundError:
        return None
    return None if info.is_dir else info


def cmd_stat(args: argparse.Namespace, ctx: Context) -> int:
    """Show what the store knows about one path."""
    location = parse_location(args.location)
    info = ctx.store(location).stat(logical_path(location, allow_root=True))
    if args.json:
        print(json.dumps(_info_dict(info)))
        return 0
    print(f"path      {info.path}")
    print(f"type      {'directory' if info.is_dir else 'file'}")
    print(f"size      {info.size}")
    print(f"modified  {info.modified.astimezone(UTC).isoformat()}")
    print(f"etag      {info.etag if info.etag is not None else '-'}")
    return 0


def cmd_get(args: argparse.Namespace, ctx: Context) -> int:
    """Download a file to a local file, a local directory or stdout; ``-r`` a directory's files into a folder.

    Without DEST a file goes into the current directory and a directory into a
    folder of its own name there (the root of a store: the current directory).
    """
    src = parse_location(args.location)
    path = logical_path(src, allow_root=args.recursive)  # a bare URL or the root only with -r, before any request
    dest = args.dest
    if dest is None:
        dest = basename(path) if args.recursive and path != "/" else "."
    transfer(ctx, src, local_file(dest), recursive=args.recursive, conditions=WriteConditions())
    return 0


def cmd_put(args: argparse.Namespace, ctx: Context) -> int:
    """Upload a local file or stdin, atomically."""
    dst = parse_location(args.location)
    ctx.warn_if_vanishing(dst)
    transfer(ctx, local_file(args.source), dst, recursive=False, conditions=write_conditions(args))
    return 0


def cmd_cp(args: argparse.Namespace, ctx: Context) -> int:
    """Copy between any two stores, local files and stdin/stdout."""
    src, dst = parse_endpoint(args.src), parse_endpoint(args.dst)
    if isinstance(dst, StoreLocation):
        ctx.warn_if_vanishing(dst)
    transfer(ctx, src, dst, recursive=args.recursive, conditions=write_conditions(args))
    return 0


def cmd_mv(args: argparse.Namespace, ctx: Context) -> int:
    """Move a file or directory: a rename within one store, else a copy then a delete of each source file."""
    src, dst = parse_endpoint(args.src), parse_endpoint(args.dst)
    conditions = write_conditions(args)
    if LocalFile("-") in (src, dst):
        raise UsageError("mv cannot use stdin or stdout ('-'); use cp")
    if isinstance(dst, StoreLocation):
        # The source is deleted after its copy: into a store that vanishes, that is data lost.
        ctx.refuse_moving_into_vanishing(dst)
    if isinstance(src, StoreLocation) and isinstance(dst, StoreLocation) and ctx.store(src) is ctx.store(dst):
        move_within(ctx.store(src), logical_path(src, allow_root=True), dst, conditions)
        return 0
    transfer(ctx, src, dst, recursive=True, conditions=conditions, delete_source=True)
    return 0


def cmd_rm(args: argparse.Namespace, ctx: Context) -> int:
    """Delete files and directories (always recursive); ``-f`` ignores missing paths."""
    status = 0
    for text in args.locations:
        location = parse_location(text)
        path = logical_path(location, allow_root=True)
        try:
            ctx.store(location).delete(path)
        except PathNotFoundError as exc:
            if not args.force:
                report_error(exc)
                status = 1
    return status


def cmd_url(args: argparse.Namespace, ctx: Context) -> int:
    """Print a URL a plain HTTP client can use on the file."""
    location = parse_location(args.location)
    print(ctx.store(location).url_for(logical_path(location, allow_root=False), args.method, args.expires))
    return 0


def cmd_cleanup(args: argparse.Namespace, ctx: Context) -> int:
    """Remove a filesystem store's staging leftovers older than ``--older-than``."""
    store = ctx.stores.get(args.url)
    # A capability, not part of the StorageDriver contract: only drivers that stage
    # files locally (the filesystem driver) have a cleanup(older_than) method.
    cleanup = getattr(store, "cleanup", None)
    if not callable(cleanup):
        raise CommandError(f"the {store.name} driver keeps no local staging files; cleanup applies to file:// stores")
    removed = int(cleanup(older_than=args.older_than))
    print(f"removed {removed} staging entr{'y' if removed == 1 else 'ies'} older than {args.older_than} s")
    return 0
