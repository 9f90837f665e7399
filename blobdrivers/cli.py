"""The ``blobdrivers`` command: inspect stores and move data between them, by URL.

Locations
    A *location* is ``PATH`` in the default store, or ``URL#PATH`` in the store the
    URL names (``file:///srv/store#/docs/a.txt``, ``memory://test#/a``,
    ``s3://bucket/prefix?region=eu-west-1#/a``). A URL without ``#PATH`` means the
    root of its store. The default store is ``--store URL``, else the environment
    variable ``BLOBDRIVERS_URL``, else the filesystem driver's default root.

    ``cp`` and ``mv`` take two locations or local files: an argument containing
    ``://`` or starting with ``/`` is a location; ``-`` is stdin or stdout; anything
    else (``./file``, ``dir/file``, ``file``) is a local file.

Exit codes
    0 success, 1 a storage or I/O error (``blobdrivers: error: ...`` on stderr),
    2 a usage error, 130 interrupted. ``conformance`` passes pytest's code through.

The full reference with examples is ``docs/cli.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import logging
import os
import stat as stat_module
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO, Protocol, cast

from . import __version__, factory
from .driver import StorageDriver
from .drivers.filesystem import FilesystemDriver
from .errors import PathNotFoundError, StorageError
from .listing import FileInfo
from .progress import Progress, ProgressReader, progress_wanted
from .redaction import redact_url
from .replicate import add_sync_parser

PROG = "blobdrivers"
#: Environment variable naming the default store's URL.
ENV_URL = "BLOBDRIVERS_URL"
#: Buffer for copies to local files and stdout; a store-to-store copy uses the driver's own part sizes.
COPY_BUFFER = 1024 * 1024

LOCATION_HELP = """\
A LOCATION is PATH in the default store or URL#PATH in the store the URL names:
  /docs/a.txt                                   in the default store
  file:///srv/store#/docs/a.txt                 filesystem driver rooted at /srv/store
  memory://test#/docs/a.txt                     in-memory store "test" (this process only)
  's3://bucket/prefix?region=eu-west-1#/docs'   quote URLs with ? or & for the shell
A URL without #PATH means the root of its store. The default store is --store URL,
else $BLOBDRIVERS_URL, else the filesystem driver's default root."""


class UsageError(Exception):
    """The command line is inconsistent (exit code 2)."""


class CommandError(Exception):
    """A command cannot do what was asked, for a reason the library does not raise (exit code 1)."""


# ---------------------------------------------------------------------- locations


@dataclass(frozen=True)
class StoreLocation:
    """A path in a store: ``url`` is ``None`` for the default store; ``path`` is ``""`` when none was given."""

    url: str | None
    path: str


@dataclass(frozen=True)
class LocalFile:
    """A file on the local machine; ``-`` stands for stdin or stdout."""

    path: str


Endpoint = StoreLocation | LocalFile


def parse_location(text: str) -> StoreLocation:
    """Split ``URL#PATH`` (or a bare ``PATH`` in the default store) into a :class:`StoreLocation`."""
    if "://" in text:
        url, _, path = text.partition("#")
        if path and not path.startswith("/"):
            path = "/" + path
        return StoreLocation(url, path)
    return StoreLocation(None, text)


def parse_endpoint(text: str) -> Endpoint:
    """A ``cp``/``mv`` argument: a location (``URL#PATH`` or ``/PATH``), ``-``, or a local file."""
    if text == "-":
        return LocalFile("-")
    if "://" in text or text.startswith("/"):
        return parse_location(text)
    return LocalFile(text)


def _logical(location: StoreLocation, *, allow_root: bool) -> str:
    """The location's path with trailing slashes dropped; ``/`` for a bare URL when allowed."""
    path = location.path.rstrip("/") or ("/" if location.path or location.url is not None else "")
    if path in ("", "/") and not allow_root:
        if location.url is not None and not location.path:
            raise UsageError("this command needs a path inside the store: write the location as URL#/path")
        raise UsageError("this command needs a path below the root '/'")
    return path or "/"


def _join(directory: str, name: str) -> str:
    return ("" if directory == "/" else directory.rstrip("/")) + "/" + name


# ---------------------------------------------------------------------- context


class _Stores:
    """Drivers by URL, created once per command.

    URLs that give the same driver with the same parameters (``file:///x`` and
    ``file:///x/``) share one instance: commands compare instances to tell a
    move or copy within one store (a rename, a server-side ``cat``) from one
    between stores, and a move must never delete what it just copied onto itself.
    """

    def __init__(self, default_url: str | None) -> None:
        if default_url is not None and "#" in default_url:
            raise UsageError("--store and $BLOBDRIVERS_URL take a store URL without #PATH")
        self._default_url = default_url or None
        self._drivers: dict[str | None, StorageDriver] = {}

    def drivers(self) -> list[StorageDriver]:
        return list(self._drivers.values())

    def get(self, url: str | None) -> StorageDriver:
        key = url if url is not None else self._default_url
        driver = self._drivers.get(key)
        if driver is None:
            driver = factory.create("filesystem", {}) if key is None else factory.from_url(key)
            driver = next((known for known in self._drivers.values() if known.same_store(driver)), driver)
            self._drivers[key] = driver
        return driver


@dataclass
class _Context:
    stores: _Stores
    quiet: bool

    def progress(self, label: str, total: int | None) -> Progress:
        return Progress(label, total, enabled=progress_wanted(quiet=self.quiet))

    def store(self, location: StoreLocation) -> StorageDriver:
        return self.stores.get(location.url)


class _Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


@dataclass(frozen=True)
class _Conditions:
    if_none_match: str | None = None
    if_match: str | None = None

    def __bool__(self) -> bool:
        return self.if_none_match is not None or self.if_match is not None

    def kwargs(self) -> dict[str, str | None]:
        return {"if_none_match": self.if_none_match, "if_match": self.if_match}


def _conditions(args: argparse.Namespace) -> _Conditions:
    return _Conditions("*" if getattr(args, "if_absent", False) else None, getattr(args, "if_match", None))


# ---------------------------------------------------------------------- output helpers


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
    if as_json:
        print(json.dumps(_info_dict(info)))
    elif long:
        print(_long_line(info))
    else:
        print(info.path + ("/" if info.is_dir and info.path != "/" else ""))


# ---------------------------------------------------------------------- commands


def cmd_drivers(args: argparse.Namespace, ctx: _Context) -> int:
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
    scheme = f"{status.scheme}://" if status.scheme else None
    return {"name": name, "scheme": scheme, "status": status.status, "detail": detail, "extra": status.extra}


def cmd_conformance(args: argparse.Namespace, ctx: _Context) -> int:
    """Run the conformance suite through pytest and pass its exit code through."""
    hint = 'the conformance suite needs pytest: pip install "blobdrivers[testing]"'
    if not _pytest_available():
        print(f"{PROG}: error: {hint}", file=sys.stderr)
        return 2
    try:
        from .testing import run_conformance
    except ImportError as exc:
        if (exc.name or "").split(".")[0] in ("pytest", "_pytest"):
            print(f"{PROG}: error: {hint}", file=sys.stderr)
            return 2
        raise
    extra = [*(["-k", args.k] if args.k else []), *args.pytest_args]
    sys.stdout.flush()
    return int(run_conformance(args.url, large=args.large, extra_args=extra))


def _pytest_available() -> bool:
    try:
        return importlib.util.find_spec("pytest") is not None
    except (ImportError, ValueError):
        return False


def cmd_ls(args: argparse.Namespace, ctx: _Context) -> int:
    """List the children of a directory (``-r``: everything below it)."""
    location = parse_location(args.location or "")
    driver = ctx.store(location)
    path = _logical(location, allow_root=True)
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


def cmd_stat(args: argparse.Namespace, ctx: _Context) -> int:
    """Show what the store knows about one path."""
    location = parse_location(args.location)
    info = ctx.store(location).stat(_logical(location, allow_root=True))
    if args.json:
        print(json.dumps(_info_dict(info)))
        return 0
    print(f"path      {info.path}")
    print(f"type      {'directory' if info.is_dir else 'file'}")
    print(f"size      {info.size}")
    print(f"modified  {info.modified.astimezone(UTC).isoformat()}")
    print(f"etag      {info.etag if info.etag is not None else '-'}")
    return 0


def cmd_get(args: argparse.Namespace, ctx: _Context) -> int:
    """Download a file to a local file, a local directory or stdout."""
    src = parse_location(args.location)
    _logical(src, allow_root=False)  # a usage error for a bare URL or the root, before any request
    _copy(ctx, src, LocalFile(args.dest), recursive=False, conditions=_Conditions())
    return 0


def cmd_put(args: argparse.Namespace, ctx: _Context) -> int:
    """Upload a local file or stdin, atomically."""
    _copy(ctx, LocalFile(args.source), parse_location(args.location), recursive=False, conditions=_conditions(args))
    return 0


def cmd_cp(args: argparse.Namespace, ctx: _Context) -> int:
    """Copy between any two stores, local files and stdin/stdout."""
    _copy(
        ctx, parse_endpoint(args.src), parse_endpoint(args.dst), recursive=args.recursive, conditions=_conditions(args)
    )
    return 0


def cmd_mv(args: argparse.Namespace, ctx: _Context) -> int:
    """Move a file or directory: a rename within one store, else a copy then a delete of each source file."""
    src, dst = parse_endpoint(args.src), parse_endpoint(args.dst)
    conditions = _conditions(args)
    if LocalFile("-") in (src, dst):
        raise UsageError("mv cannot use stdin or stdout ('-'); use cp")
    if isinstance(src, StoreLocation) and isinstance(dst, StoreLocation) and ctx.store(src) is ctx.store(dst):
        _move_within(ctx.store(src), _logical(src, allow_root=True), dst, conditions)
        return 0
    _copy(ctx, src, dst, recursive=True, conditions=conditions, delete_source=True)
    return 0


def _move_within(driver: StorageDriver, src: str, dst: StoreLocation, conditions: _Conditions) -> None:
    info = driver.stat(src)
    if not info.is_dir:
        driver.move(src, _store_destination(driver, dst, _basename(src)), **conditions.kwargs())
        return
    target = _logical(dst, allow_root=True)
    _refuse_nesting(src, target)
    # Collect the files first: renaming entries out of a directory while listing it may skip some.
    files = [entry.path for entry in driver.walk(src) if not entry.is_dir]
    for path in files:
        driver.move(path, _join(target, path[len(src) + 1 :] if src != "/" else path[1:]), **conditions.kwargs())


def cmd_rm(args: argparse.Namespace, ctx: _Context) -> int:
    """Delete files and directories (always recursive); ``-f`` ignores missing paths."""
    status = 0
    for text in args.locations:
        location = parse_location(text)
        path = _logical(location, allow_root=True)
        try:
            ctx.store(location).delete(path)
        except PathNotFoundError as exc:
            if not args.force:
                _report(exc)
                status = 1
    return status


def cmd_url(args: argparse.Namespace, ctx: _Context) -> int:
    """Print a URL a plain HTTP client can use on the file."""
    location = parse_location(args.location)
    print(ctx.store(location).url_for(_logical(location, allow_root=False), args.method, args.expires))
    return 0


def cmd_cleanup(args: argparse.Namespace, ctx: _Context) -> int:
    """Remove a filesystem store's staging leftovers older than ``--older-than``."""
    store = ctx.stores.get(args.url)
    if not isinstance(store, FilesystemDriver):
        raise CommandError(f"the {store.name} driver keeps no local staging files; cleanup applies to file:// stores")
    removed = store.cleanup(older_than=args.older_than)
    print(f"removed {removed} staging entr{'y' if removed == 1 else 'ies'} older than {args.older_than} s")
    return 0


# ---------------------------------------------------------------------- transfers


def _copy(
    ctx: _Context,
    src: Endpoint,
    dst: Endpoint,
    *,
    recursive: bool,
    conditions: _Conditions,
    delete_source: bool = False,
) -> None:
    if src == LocalFile("-") and dst == LocalFile("-"):
        raise UsageError("source and destination cannot both be '-'")
    if conditions and not isinstance(dst, StoreLocation):
        raise UsageError("--if-absent and --if-match apply to a destination in a store")
    if isinstance(src, LocalFile):
        if src.path != "-" and os.path.isdir(src.path):
            raise CommandError(f"{src.path} is a local directory; only files are copied from the local machine")
        _copy_file(ctx, src, None, dst, conditions)
        if delete_source:
            os.remove(src.path)
        return
    driver = ctx.store(src)
    path = _logical(src, allow_root=True)
    info = driver.stat(path)
    if not info.is_dir:
        _copy_file(ctx, StoreLocation(src.url, path), info, dst, conditions)
        if delete_source:
            driver.delete(path)
        return
    if not recursive:
        raise CommandError(f"{path} is a directory (cp -r copies what is below a directory)")
    if not isinstance(dst, StoreLocation):
        raise CommandError("a directory is copied only to a store location, not to local files")
    target = _logical(dst, allow_root=True)
    if ctx.store(dst) is driver:
        _refuse_nesting(path, target)
    for entry in driver.walk(path):
        if entry.is_dir:
            continue
        relative = entry.path[len(path) + 1 :] if path != "/" else entry.path[1:]
        destination = StoreLocation(dst.url, _join(target, relative))
        _copy_file(ctx, StoreLocation(src.url, entry.path), entry, destination, conditions, exact=True)
        if delete_source:
            driver.delete(entry.path)


def _refuse_nesting(src: str, dst: str) -> None:
    if src in ("/", dst) or dst.startswith(src + "/"):
        raise CommandError(f"cannot copy or move the directory {src} into itself ({dst})")


def _basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _copy_file(
    ctx: _Context,
    src: Endpoint,
    info: FileInfo | None,
    dst: Endpoint,
    conditions: _Conditions,
    *,
    exact: bool = False,
) -> None:
    """Stream one file from ``src`` to ``dst`` in bounded memory, with a progress bar.

    ``dst`` may name a directory to copy into, unless ``exact`` says it is the file itself.
    """
    name = "" if src == LocalFile("-") else _basename(src.path)
    label = src.path if src.path != "-" else "stdin"
    if isinstance(dst, StoreLocation):
        driver = ctx.store(dst)
        target = dst.path if exact else _store_destination(driver, dst, name)
        if isinstance(src, StoreLocation) and ctx.store(src) is driver and not conditions:
            # Within one store a copy is a one-source cat: server-side where the backend
            # can, never through this process (so there is no progress to show).
            driver.cat(target, [src.path])
            return
        with _open_source(ctx, src, info) as (reader, total), ctx.progress(label, total) as progress:
            # A file-like object to put(), which reads it in the driver's own part sizes.
            driver.put(target, cast(BinaryIO, ProgressReader(reader, progress)), **conditions.kwargs())
    elif dst.path == "-":
        out = sys.stdout.buffer
        with _open_source(ctx, src, info) as (reader, total), ctx.progress(label, total) as progress:
            _pump(reader, out.write, progress)
            out.flush()
    else:
        local_target = _local_destination(dst.path, name)
        with _open_source(ctx, src, info) as (reader, total), ctx.progress(label, total) as progress:
            _write_local(local_target, reader, progress)


@contextlib.contextmanager
def _open_source(ctx: _Context, src: Endpoint, info: FileInfo | None) -> Iterator[tuple[_Readable, int | None]]:
    if isinstance(src, StoreLocation):
        with ctx.store(src).stream(src.path) as reader:
            yield reader, info.size if info is not None else None
    elif src.path == "-":
        stdin = sys.stdin.buffer
        yield stdin, _regular_size(stdin.fileno)
    else:
        with open(src.path, "rb") as file:
            yield file, _regular_size(file.fileno)


def _regular_size(fileno: Callable[[], int]) -> int | None:
    try:
        status = os.fstat(fileno())
    except (OSError, ValueError, AttributeError):
        return None
    return status.st_size if stat_module.S_ISREG(status.st_mode) else None


def _store_destination(driver: StorageDriver, dst: StoreLocation, name: str) -> str:
    """The file path a copy goes to: into ``dst`` when it ends in ``/``, is the root or is a directory."""
    into = dst.path.endswith("/") or not dst.path
    path = _logical(dst, allow_root=True)
    if not into and path != "/":
        with contextlib.suppress(PathNotFoundError):
            into = driver.stat(path).is_dir
    if not into and path != "/":
        return path
    if not name:
        raise UsageError("name the destination file when reading stdin (the destination is a directory)")
    return _join(path, name)


def _local_destination(path: str, name: str) -> str:
    if os.path.isdir(path) or path.endswith(os.sep):
        if not name:
            raise UsageError("name the destination file (the destination is a directory)")
        return os.path.join(path, name)
    return path


def _pump(reader: _Readable, write: Callable[[memoryview], object], progress: Progress) -> None:
    buffer = bytearray(COPY_BUFFER)
    view = memoryview(buffer)
    readinto = getattr(reader, "readinto", None)
    while True:
        if readinto is not None:
            got = int(readinto(view) or 0)
        else:
            chunk = reader.read(COPY_BUFFER)
            got = len(chunk)
            view[:got] = chunk
        if not got:
            return
        write(view[:got])
        progress.update(got)


def _write_local(path: str, reader: _Readable, progress: Progress) -> None:
    """Write a local file atomically: a temporary file next to it, renamed over it once complete."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            _pump(reader, out.write, progress)
            out.flush()
            os.fsync(out.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


# ---------------------------------------------------------------------- parser


def _age(text: str) -> int:
    if text.strip() in {"0", "0s", "0m", "0h", "0d"}:
        return 0
    return _expires(text)


def _expires(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (text[:-1], units[text[-1]]) if text and text[-1] in units else (text, 1)
    try:
        seconds = int(number) * unit
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: use seconds or a number with s, m, h or d"
        ) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: must be positive")
    return seconds


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``blobdrivers`` command (every subcommand has ``--help``)."""
    return _build()[0]


def _build() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The parser and, by name, the parser of each subcommand (for their own usage errors)."""
    subparsers: dict[str, argparse.ArgumentParser] = {}
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Inspect blob stores and move data between them. Stores are selected by URL.",
        epilog=LOCATION_HELP + "\n\nRun 'blobdrivers COMMAND --help' for each command. Reference: docs/cli.md",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _add_common(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # Options given after the command land on the same names; SUPPRESS keeps values given before it.
    common = argparse.ArgumentParser(add_help=False)
    _add_common(common, suppress=True)

    def command(
        name: str,
        handler: Callable[[argparse.Namespace, _Context], int],
        summary: str,
        epilog: str,
        *,
        store: bool = True,
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=summary,
            description=summary,
            epilog=epilog,
            formatter_class=_Formatter,
            parents=[common] if store else [],
        )
        sub.set_defaults(handler=handler)
        subparsers[name] = sub
        return sub

    sub = command(
        "drivers",
        cmd_drivers,
        "List the storage drivers, their URL schemes, and what to install for those whose SDK is missing.",
        "examples:\n  blobdrivers drivers\n  blobdrivers drivers --json",
        store=False,
    )
    sub.add_argument("--json", action="store_true", help="one JSON object per driver and line")

    sub = command(
        "conformance",
        cmd_conformance,
        "Run the conformance suite (pytest) against the store at URL; exit with pytest's code.",
        "Without URL it runs against a filesystem driver in a temporary folder. Every test\n"
        "works in its own sub-folder of the store and leaves it empty. Other arguments go to\n"
        "pytest; put pytest options that take a value after '--'.\n\n"
        "examples:\n"
        "  blobdrivers conformance\n"
        "  blobdrivers conformance memory://\n"
        "  blobdrivers conformance 's3://bucket/ci?regionendpoint=http://localhost:9000' -k writer\n"
        "  blobdrivers conformance file:///mnt/nfs/store --large -- -x --maxfail 3",
        store=False,
    )
    sub.add_argument("url", nargs="?", metavar="URL", help="store URL (default: filesystem in a temporary folder)")
    sub.add_argument("--large", action="store_true", help="add the multi-GiB streamed round trip")
    sub.add_argument("-k", metavar="EXPR", help="run only the tests matching this pytest expression")

    sub = command(
        "ls",
        cmd_ls,
        "List the children of a directory (the root by default); -r lists everything below it.",
        LOCATION_HELP + "\n\n"
        "Plain output is one path per line. -l adds the type (d or -), the size in bytes and the\n"
        "modification time (UTC); directories end in '/'. --json prints one JSON object per line\n"
        "with path, is_dir, size, modified and etag. ls of a file shows that file.\n\n"
        "examples:\n"
        "  blobdrivers ls\n"
        "  blobdrivers ls -l /docs\n"
        "  blobdrivers ls -r --json file:///srv/store#/docs",
    )
    sub.add_argument("location", nargs="?", metavar="LOCATION", help="directory to list (default: the root)")
    sub.add_argument("-l", "--long", action="store_true", help="show type, size and modification time")
    sub.add_argument("-r", "--recursive", action="store_true", help="walk everything below, depth first")
    sub.add_argument("--json", action="store_true", help="JSON lines output (implies -l)")

    sub = command(
        "stat",
        cmd_stat,
        "Show the size, modification time, type and etag of a file or directory.",
        LOCATION_HELP + "\n\nexamples:\n  blobdrivers stat /docs/a.txt\n  blobdrivers stat --json memory://t#/a",
    )
    sub.add_argument("location", metavar="LOCATION")
    sub.add_argument("--json", action="store_true", help="print one JSON object: path, is_dir, size, modified, etag")

    sub = command(
        "get",
        cmd_get,
        "Download a file to a local file (written atomically), into a local directory, or to stdout ('-').",
        LOCATION_HELP + "\n\nexamples:\n"
        "  blobdrivers get /docs/a.txt              # ./a.txt\n"
        "  blobdrivers get /docs/a.txt /tmp/b.txt\n"
        "  blobdrivers get memory://t#/a - | sha256sum",
    )
    sub.add_argument("location", metavar="LOCATION", help="the file to download")
    sub.add_argument("dest", nargs="?", default=".", metavar="DEST", help="local file, directory or - (default: .)")

    sub = command(
        "put",
        cmd_put,
        "Upload a local file or stdin ('-') to a store; the file appears whole or not at all.",
        LOCATION_HELP + "\n\n"
        "A LOCATION that ends in '/', is the root or is an existing directory receives the\n"
        "file under its own name.\n\n"
        "examples:\n"
        "  blobdrivers put layer.tar /blobs/layer.tar\n"
        "  blobdrivers put report.pdf file:///srv/store#/docs/\n"
        "  tar c dir | blobdrivers put - memory://t#/dir.tar\n"
        "  blobdrivers put --if-absent tag.json /tags/latest",
    )
    sub.add_argument("source", metavar="SOURCE", help="local file, or - for stdin")
    sub.add_argument("location", metavar="LOCATION", help="destination file or directory")
    _add_conditions(sub)

    sub = command(
        "cp",
        cmd_cp,
        "Copy a file (or with -r a directory tree) between any two stores, local files and stdin/stdout.",
        LOCATION_HELP + "\n\n"
        "SRC and DST are locations (containing :// or starting with /), local files\n"
        "(./file, dir/file, file) or '-' for stdin/stdout. Data streams through in bounded\n"
        "memory; each file is published atomically. A DST ending in '/', the root or an existing\n"
        "directory receives the file under its own name. With -r a directory's files are copied\n"
        "below DST (DST/relative/path), between store locations only.\n\n"
        "examples:\n"
        "  blobdrivers cp /docs/a.txt /archive/a.txt\n"
        "  blobdrivers cp file:///srv/a#/docs/a.txt 's3://bucket/b?region=eu-west-1#/docs/'\n"
        "  blobdrivers cp -r file:///srv/registry 's3://bucket/registry?region=eu-west-1'\n"
        "  blobdrivers cp ./local.bin memory://t#/x.bin",
    )
    sub.add_argument("src", metavar="SRC")
    sub.add_argument("dst", metavar="DST")
    sub.add_argument("-r", "--recursive", action="store_true", help="copy the files below a directory")
    _add_conditions(sub)

    sub = command(
        "mv",
        cmd_mv,
        "Move a file or a directory tree: a rename within one store, else copy then delete each file.",
        LOCATION_HELP + "\n\n"
        "Within one store (the same URL) each file is moved with the driver's move, which\n"
        "is atomic per file. Across stores, local files included, each file is copied and\n"
        "then deleted from the source. A DST ending in '/' or naming a directory receives a\n"
        "file under its own name; a directory's files go below DST.\n\n"
        "examples:\n"
        "  blobdrivers mv /uploads/u1 /blobs/sha256/abcd\n"
        "  blobdrivers mv /old-dir /new-dir\n"
        "  blobdrivers mv file:///srv/a#/big.bin memory://t#/big.bin",
    )
    sub.add_argument("src", metavar="SRC")
    sub.add_argument("dst", metavar="DST")
    _add_conditions(sub)

    sub = command(
        "rm",
        cmd_rm,
        "Delete files and directories (always recursive, like the driver's delete).",
        LOCATION_HELP + "\n\n"
        "The root '/' is never deleted. A missing path is an error (exit 1) unless -f is given;\n"
        "the remaining locations are still deleted.\n\n"
        "examples:\n  blobdrivers rm /docs/a.txt\n  blobdrivers rm -f /tmp-uploads /cache",
    )
    sub.add_argument("locations", nargs="+", metavar="LOCATION")
    sub.add_argument("-f", "--force", action="store_true", help="ignore missing paths")
    sub.add_argument("-r", "--recursive", action="store_true", help="accepted for habit; rm is always recursive")

    sub = command(
        "url",
        cmd_url,
        "Print a URL that a plain HTTP client can use on a file (drivers without URLs fail with exit 1).",
        LOCATION_HELP + "\n\n"
        "--expires takes seconds or a number with s, m, h or d (default 20m); the driver\n"
        "refuses more than its service allows.\n\n"
        "examples:\n"
        "  blobdrivers url 's3://bucket/registry?region=eu-west-1#/docs/a.txt'\n"
        "  blobdrivers url --method PUT --expires 1h /uploads/new.bin",
    )
    sub.add_argument("location", metavar="LOCATION")
    sub.add_argument(
        "--method", type=str.upper, choices=["GET", "HEAD", "PUT"], default="GET", help="HTTP method (default GET)"
    )
    sub.add_argument("--expires", type=_expires, default=1200, metavar="DURATION", help="validity (default 20m)")

    sub = command(
        "cleanup",
        cmd_cleanup,
        "Remove a filesystem store's staging leftovers (crashed puts, abandoned uploads) older than an age.",
        "Staging entries live in the root's hidden ~staging folder. Entries touched within\n"
        "--older-than are kept, so this is safe while the store is in use; an abandoned upload\n"
        "that is removed can no longer be resumed.\n\n"
        "examples:\n"
        "  blobdrivers cleanup file:///var/lib/registry --older-than 7d\n"
        "  blobdrivers cleanup --older-than 0   # everything, with the store idle",
    )
    sub.add_argument(
        "url", nargs="?", metavar="URL", help="store URL (default: --store, $BLOBDRIVERS_URL, else the default root)"
    )
    sub.add_argument("--older-than", type=_age, default=86400, metavar="DURATION", help="minimum age (default 1d)")

    subparsers["sync"] = add_sync_parser(commands, parents=[common])
    return parser, subparsers


def _add_common(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    parser.add_argument(
        "--store",
        metavar="URL",
        default=argparse.SUPPRESS if suppress else None,
        help=f"default store for bare /PATH locations (default: ${ENV_URL}, else the filesystem default root)",
    )
    flag = argparse.SUPPRESS if suppress else False
    parser.add_argument("-q", "--quiet", action="store_true", default=flag, help="no progress bars")
    parser.add_argument(
        "--debug", action="store_true", default=flag, help="log every driver call to stderr and show tracebacks"
    )


def _add_conditions(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--if-absent", action="store_true", help="write only if nothing exists at the destination")
    group.add_argument("--if-match", metavar="ETAG", help="write only if the destination's etag (from stat) is ETAG")


# ---------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser, commands = _build()
    try:
        args = _parse(parser, commands, arguments)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except UsageError as exc:
        _report(exc)
        return 2
    debug = bool(getattr(args, "debug", False))
    with _debug_log() if debug else contextlib.nullcontext():
        return _run(args, debug=debug)


def _run(args: argparse.Namespace, *, debug: bool) -> int:
    stores: _Stores | None = None
    try:
        stores = _Stores(args.store or os.environ.get(ENV_URL) or None)
        return int(args.handler(args, _Context(stores, bool(args.quiet))))
    except UsageError as exc:
        _report(exc)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our stdout went away (| head): stop quietly, as cat(1) does.
        _silence_stdout()
        return 141
    except (StorageError, CommandError, ValueError, OSError) as exc:
        if debug:
            _print_traceback(exc, stores)
        _report(exc)
        return 1


def _parse(
    parser: argparse.ArgumentParser, commands: dict[str, argparse.ArgumentParser], arguments: list[str]
) -> argparse.Namespace:
    head, tail = arguments, []
    if "--" in arguments:
        cut = arguments.index("--")
        head, tail = arguments[:cut], arguments[cut + 1 :]
        if "conformance" not in head:
            raise UsageError(
                "'--' passes arguments to pytest and is accepted only by conformance; "
                "write a local file whose name starts with '-' as ./-name"
            )
    args, unknown = parser.parse_known_args(head)
    if args.command == "conformance":
        args.pytest_args = [*unknown, *tail]
        return args
    if unknown:
        commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def _report(exc: BaseException) -> None:
    if isinstance(exc, OSError) and not isinstance(exc, StorageError) and exc.strerror:
        message = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    else:
        message = str(exc) or type(exc).__name__
    print(f"{PROG}: error: {message}", file=sys.stderr)


def _print_traceback(exc: BaseException, stores: _Stores | None) -> None:
    """Print the traceback (with SDK causes) for --debug, with secrets masked.

    Library messages are redacted already, but an SDK's own exception (the
    ``__cause__``) may quote a request URL: mask every parameter value the drivers
    hold as secret and every credential-like query parameter.
    """
    text = "".join(traceback.format_exception(exc))
    names: set[str] = set()
    for driver in stores.drivers() if stores is not None else []:
        text = driver.redact(text)
        names.update(driver.secret_params)
    sys.stderr.write(redact_url(text, names))


@contextlib.contextmanager
def _debug_log() -> Iterator[None]:
    """Log every driver call to stderr for the duration of one command (main() may run many times in a process)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    log = logging.getLogger("blobdrivers")
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def _silence_stdout() -> None:
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


__all__ = ["ENV_URL", "LocalFile", "StoreLocation", "build_parser", "main", "parse_endpoint", "parse_location"]
