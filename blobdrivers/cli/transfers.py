"""Copies between stores, local files and stdin/stdout: streamed in bounded memory, published atomically."""

from __future__ import annotations

import contextlib
import errno
import os
import stat as stat_module
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import BinaryIO, Protocol, cast

from ..driver import StorageDriver
from ..errors import PathNotFoundError, StorageError
from ..listing import FileInfo
from .locations import (
    CommandError,
    Context,
    Endpoint,
    LocalFile,
    StoreLocation,
    UsageError,
    WriteConditions,
    join_path,
    logical_path,
)
from .places import Place, local_place, refuse_overlap, refuse_same_file, store_place
from .progress import Progress, ProgressReader

#: Buffer for copies to local files and stdout; a store-to-store copy uses the driver's own part sizes.
COPY_BUFFER = 1024 * 1024


class _Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


def transfer(
    ctx: Context,
    src: Endpoint,
    dst: Endpoint,
    *,
    recursive: bool,
    conditions: WriteConditions,
    delete_source: bool = False,
) -> None:
    """Copy ``src`` to ``dst`` (a directory's files with ``recursive``); ``delete_source`` makes it a move.

    Each file is deleted from the source right after its copy, so an interruption
    leaves every file in at least one place. A copy onto the source itself (another
    spelling of the same file or folder, see :mod:`.places`) is refused before anything is written.
    """
    if src == LocalFile("-") and dst == LocalFile("-"):
        raise UsageError("source and destination cannot both be '-'")
    if conditions and not isinstance(dst, StoreLocation):
        raise UsageError("--if-absent and --if-match apply to a destination in a store")
    if isinstance(src, LocalFile):
        if src.path != "-" and os.path.isdir(src.path):
            raise CommandError(f"{src.path} is a local directory; only files are copied from the local machine")
        target = file_target(ctx, dst, "" if src.path == "-" else basename(src.path))
        if src.path != "-":
            _refuse_same_file(ctx, local_place(src.path), target)
        copy_file(ctx, src, None, target, conditions)
        if delete_source:
            os.remove(src.path)
        return
    driver = ctx.store(src)
    path = logical_path(src, allow_root=True)
    info = driver.stat(path)
    if not info.is_dir:
        target = file_target(ctx, dst, basename(path))
        _refuse_same_file(ctx, store_place(driver, path), target)
        copy_file(ctx, StoreLocation(src.url, path), info, target, conditions)
        if delete_source:
            driver.delete(path)
        return
    if not recursive:
        raise CommandError(f"{path} is a directory (cp -r and get -r copy what is below a directory)")
    if dst == LocalFile("-"):
        raise CommandError(f"{path} is a directory; a directory cannot be written to stdout")
    if isinstance(dst, LocalFile) and os.path.lexists(dst.path) and not os.path.isdir(dst.path):
        raise CommandError(f"{dst.path} is not a directory (a directory's files are copied into a folder)")
    destination = _tree_destination(dst)
    listed: list[FileInfo] | None = None

    def relatives() -> list[str]:
        nonlocal listed
        listed = [entry for entry in driver.walk(path) if not entry.is_dir]
        return [_relative(path, entry.path) for entry in listed]

    refuse_overlap(store_place(driver, path), place_of(ctx, dst), relatives, path, _shown(dst))
    for entry in listed if listed is not None else driver.walk(path):
        if entry.is_dir:
            continue
        target = destination(_relative(path, entry.path))
        copy_file(ctx, StoreLocation(src.url, entry.path), entry, target, conditions, parents=True)
        if delete_source:
            driver.delete(entry.path)


def _relative(directory: str, path: str) -> str:
    return path[len(directory) + 1 :] if directory != "/" else path[1:]


def _tree_destination(dst: Endpoint) -> Callable[[str], Endpoint]:
    """Where each file of a directory goes, by its path relative to it: below ``dst``."""
    if isinstance(dst, LocalFile):
        return lambda relative: LocalFile(os.path.join(dst.path, *relative.split("/")))
    target = logical_path(dst, allow_root=True)
    return lambda relative: StoreLocation(dst.url, join_path(target, relative))


def place_of(ctx: Context, endpoint: Endpoint) -> Place:
    """Where the file or folder ``endpoint`` names is kept (not ``-``)."""
    if isinstance(endpoint, LocalFile):
        return local_place(endpoint.path)
    return store_place(ctx.store(endpoint), logical_path(endpoint, allow_root=True))


def _shown(endpoint: Endpoint) -> str:
    """A destination as the user reads it: a local path, or a store's logical path."""
    return endpoint.path if isinstance(endpoint, LocalFile) else logical_path(endpoint, allow_root=True)


def _refuse_same_file(ctx: Context, source: Place, target: Endpoint) -> None:
    if target != LocalFile("-"):
        refuse_same_file(source, place_of(ctx, target), target.path)


def file_target(ctx: Context, dst: Endpoint, name: str) -> Endpoint:
    """The file a copy of the file named ``name`` writes: ``dst``, or ``name`` inside it when it is a directory."""
    if isinstance(dst, StoreLocation):
        return StoreLocation(dst.url, store_destination(ctx.store(dst), dst, name))
    return dst if dst.path == "-" else LocalFile(_local_destination(dst.path, name))


def move_within(driver: StorageDriver, src: str, dst: StoreLocation, conditions: WriteConditions) -> None:
    """Move the file or directory ``src`` of ``driver`` to ``dst`` in the same store, file by file."""
    info = driver.stat(src)
    if not info.is_dir:
        target = store_destination(driver, dst, basename(src))
        refuse_same_file(store_place(driver, src), store_place(driver, target), target)
        driver.move(src, target, **conditions.kwargs())
        return
    target = logical_path(dst, allow_root=True)
    # Collect the files first: renaming entries out of a directory while listing it may skip some.
    files = [entry.path for entry in driver.walk(src) if not entry.is_dir]
    relatives = [_relative(src, path) for path in files]
    refuse_overlap(store_place(driver, src), store_place(driver, target), lambda: relatives, src, target)
    for relative in relatives:
        driver.move(join_path(src, relative), join_path(target, relative), **conditions.kwargs())


def basename(path: str) -> str:
    """The last component of ``path``."""
    return path.rstrip("/").rsplit("/", 1)[-1]


def copy_file(
    ctx: Context,
    src: Endpoint,
    info: FileInfo | None,
    dst: Endpoint,
    conditions: WriteConditions,
    *,
    parents: bool = False,
) -> None:
    """Stream one file from ``src`` to the file ``dst`` in bounded memory, with a progress bar.

    ``parents`` creates the local folders ``dst`` is in (a file of a directory tree).
    """
    label = src.path if src.path != "-" else "stdin"
    if isinstance(dst, StoreLocation):
        driver = ctx.store(dst)
        target = dst.path
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
        if parents:
            _make_folders(os.path.dirname(dst.path))
        with _open_source(ctx, src, info) as (reader, total), ctx.progress(label, total) as progress:
            _write_local(dst.path, reader, progress)


@contextlib.contextmanager
def _open_source(ctx: Context, src: Endpoint, info: FileInfo | None) -> Iterator[tuple[_Readable, int | None]]:
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


def store_destination(driver: StorageDriver, dst: StoreLocation, name: str) -> str:
    """The file path a copy goes to: into ``dst`` when it ends in ``/``, is the root or is a directory."""
    into = dst.path.endswith("/") or not dst.path
    path = logical_path(dst, allow_root=True)
    if not into and path != "/":
        with contextlib.suppress(PathNotFoundError):
            into = driver.stat(path).is_dir
    if not into and path != "/":
        return path
    if not name:
        raise UsageError("name the destination file when reading stdin (the destination is a directory)")
    return join_path(path, name)


def _local_destination(path: str, name: str) -> str:
    if os.path.isdir(path) or path.endswith(os.sep):
        if not name:
            raise UsageError("name the destination file (the destination is a directory)")
        return os.path.join(path, name)
    return path


def _make_folders(folder: str) -> None:
    """Create the local folder ``folder`` and its parents; a file in the way is "not a directory", by its name."""
    try:
        os.makedirs(folder or ".", exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        blocking = next(
            (parent for parent in _parents(folder) if os.path.lexists(parent) and not os.path.isdir(parent)), folder
        )
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), blocking) from exc


def _parents(folder: str) -> list[str]:
    """``folder`` and the folders above it, the outermost first (``a``, ``a/b``, ``a/b/c``)."""
    chain = [folder]
    while (parent := os.path.dirname(chain[-1])) not in ("", chain[-1]):
        chain.append(parent)
    return chain[::-1]


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
    """Write a local file atomically: a temporary file next to it, renamed over it once complete.

    A local error names ``path``, the user's target, never the temporary file.
    """
    directory = os.path.dirname(os.path.abspath(path))
    with _naming(path):
        fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:

            def write(data: memoryview) -> None:
                with _naming(path):
                    out.write(data)

            _pump(reader, write, progress)
            with _naming(path):
                out.flush()
                os.fsync(out.fileno())
        umask = os.umask(0)
        os.umask(umask)
        with _naming(path):
            os.chmod(temp, 0o666 & ~umask)
            os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


@contextlib.contextmanager
def _naming(path: str) -> Iterator[None]:
    """Re-raise a local :class:`OSError` as the same error about ``path`` (errors of the store pass through)."""
    try:
        yield
    except StorageError:
        raise
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), path) from exc
