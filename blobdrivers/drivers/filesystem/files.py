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
from ...listing import FileInfo
from ...params import MiB
from ...transfer import Source

#: Opening a folder: never through a symlink.
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def forget_file_names(exc: Exception) -> None:
    """Drop the file names a failed system call carries, so that its text is the OS's words alone.

    The file a call named may be a staging or parked file of the driver's own, which
    the caller never asked about; the error the caller sees names the caller's path.
    """
    if isinstance(exc, OSError):
        # Deleting (not assigning None) unsets them: str() would show "None" otherwise.
        del exc.filename, exc.filename2


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
