"""File and folder operations by descriptor, shared by the filesystem driver's operations."""

from __future__ import annotations

import errno
import io
import os
import stat as stat_module
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime

from ... import paths
from ...errors import StorageError
from ...listing import FileInfo
from ...params import MiB
from ...transfer import Source

#: Opening a folder: never through a symlink.
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def local_error(exc: Exception, path: str) -> StorageError | None:
    """A failed system call as a one-line error about the caller's ``path``, or ``None`` for the base's default.

    The OS's words and the errno name, never the file the call named: that may be a
    staging or parked file of the driver's own, which the caller never asked about.
    A missing file is left to the base (a :class:`PathNotFoundError` about ``path``).
    """
    if not isinstance(exc, OSError) or isinstance(exc, FileNotFoundError) or exc.errno is None:
        return None
    name = errno.errorcode.get(exc.errno, str(exc.errno))
    return StorageError(f"{path}: {exc.strerror or os.strerror(exc.errno)} ({name})")


def etag_of(result: os.stat_result) -> str:
    """The etag of a file: inode, modification time and size."""
    return f"{result.st_ino:x}-{result.st_mtime_ns:x}-{result.st_size:x}"


def file_info(full: str, result: os.stat_result) -> FileInfo:
    """The FileInfo of ``full`` from its ``stat`` result."""
    is_dir = stat_module.S_ISDIR(result.st_mode)
    return FileInfo(
        path=full,
        size=0 if is_dir else result.st_size,
        modified=datetime.fromtimestamp(result.st_mtime, UTC),
        is_dir=is_dir,
        etag=None if is_dir else etag_of(result),
    )


def copy_source(source: Source, out: io.FileIO, chunk_size: int) -> None:
    """Write all of ``source`` to ``out`` (bytes-like data without a buffer copy)."""
    if source.in_memory:
        while view := source.read(64 * MiB):
            while view:
                view = view[out.write(view) or 0 :]
        return
    buffer = bytearray(chunk_size)
    view = memoryview(buffer)
    while got := source.readinto(view):
        chunk = view[:got]
        while chunk:
            chunk = chunk[out.write(chunk) or 0 :]


def copy_fd(in_fd: int, out_fd: int, count: int) -> None:
    """Copy ``count`` bytes between descriptors in the kernel where possible."""
    offset = 0
    try:
        if not hasattr(os, "copy_file_range"):
            raise OSError(errno.ENOSYS, "copy_file_range is not available")
        while offset < count:
            copied = os.copy_file_range(in_fd, out_fd, count - offset, offset_src=offset)
            if copied == 0:
                break
            offset += copied
        return
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
    while offset < count:
        chunk = os.pread(in_fd, min(8 * MiB, count - offset), offset)
        if not chunk:
            break
        os.write(out_fd, chunk)
        offset += len(chunk)


@contextmanager
def closing(fd: int) -> Iterator[int]:
    """Close the descriptor ``fd`` when the block ends."""
    try:
        yield fd
    finally:
        os.close(fd)


def holds_file(parent_fd: int, name: str) -> bool:
    """Whether a file with a valid path lies below the folder ``name`` (directories are implicit).

    Stops at the first such file: a folder written through the driver nearly always
    shows one in its first entries. Empty folders, other programs' names and a child
    store's staging hold none.
    """
    try:
        fd = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    except (FileNotFoundError, NotADirectoryError):
        return False
    with closing(fd):
        folders: list[str] = []
        with os.scandir(fd) as scan:
            for entry in scan:
                if not paths.is_valid("/" + entry.name):
                    continue
                if entry.is_file(follow_symlinks=False):
                    return True
                if entry.is_dir(follow_symlinks=False):
                    folders.append(entry.name)
        return any(holds_file(fd, folder) for folder in folders)


def remove_tree(parent_fd: int, name: str) -> None:
    """Remove a directory tree by descriptors, never following symlinks."""
    fd = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    try:
        with os.scandir(fd) as scan:
            entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in scan]
        for child, is_dir in entries:
            if is_dir:
                remove_tree(fd, child)
            else:
                with suppress(FileNotFoundError):
                    os.unlink(child, dir_fd=fd)
    finally:
        os.close(fd)
    with suppress(FileNotFoundError):
        os.rmdir(name, dir_fd=parent_fd)
