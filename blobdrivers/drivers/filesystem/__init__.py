"""The filesystem driver: files under a root directory, published by atomic rename.

Every publish (put, writer commit, cat, move) writes a temporary file in the hidden
staging folder ``<root>/~blobdrivers`` (the bookkeeping folder; same filesystem), fsyncs it, renames it into
place and fsyncs the directory, so a reader or a crash sees the old content or the
whole new content. A ``~`` is outside the path rule, so the staging folder can never
be named by a caller, listed or walked. Its folders are made on first use, and made
again when a store above this one (``parent.delete("/tenant")``) deleted them, root
and all, so a child store keeps working.

A folder is a directory only while a file with a valid path lies below it: an empty
folder, names outside the path rule (``a b``) and a child store's staging are no
directory for ``list``, ``walk``, ``stat`` or ``delete``. ``list`` looks into each
sub-folder until its first such file (one ``scandir`` for a folder the driver wrote).

Paths are resolved one component at a time from a descriptor of the root with
``O_NOFOLLOW``: a symlink planted inside the root (or a race that plants one) can
never lead a call outside it; such a link is refused with a :class:`StorageError`.

Publishes to one path are serialised by an ``flock`` on one of a fixed set of lock
files chosen by the path's hash, so ``if_match`` is a real compare-and-swap across
threads and processes; ``if_none_match="*"`` uses ``link()``, which is atomic on its
own. Writers stage into a file of their own; ``close()`` parks it under a name
derived from the path, where ``writer(path, append=True)`` in any process claims it.

Here: the driver (how each operation meets the files); :mod:`.files`: descriptor-level
file and folder helpers; :mod:`.writer`: the writer backend.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import os
import stat as stat_module
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from ... import paths
from ...capabilities import Capability
from ...clients import ProcessLocal
from ...conditions import Conditions
from ...driver import StorageDriver
from ...errors import InvalidPathError, PreconditionFailedError, StorageError
from ...listing import FileInfo
from ...params import MiB, Params
from ...reader import RangeReader
from ...transfer import Source
from ...writer import WriterBackend
from .files import (
    DIR_FLAGS,
    closing,
    copy_fd,
    copy_source,
    etag_of,
    file_info,
    forget_file_names,
    holds_file,
    remove_tree,
)
from .writer import FileWriter

STAGING = StorageDriver.bookkeeping_dir
_LOCK_STRIPES = 64


def default_root() -> str:
    """The per-user data folder used when no ``rootdirectory`` is given."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return os.path.join(base, "blobdrivers")


class FilesystemDriver(StorageDriver):
    """Files under ``rootdirectory`` (default: a per-user data folder); ``fsync`` (default true)."""

    name = "filesystem"
    url_schemes = ("file",)
    declared_capabilities = frozenset(Capability) - {
        Capability.SIGNED_READ_URLS,
        Capability.SIGNED_PUT_URLS,
        Capability.SERVER_SIDE_CAT,
    }
    #: PATH_MAX (4,096 with its NUL) for the whole OS path, root included, and NAME_MAX
    #: for one component: no file a caller names is out of reach of other programs.
    max_key_bytes = 4095
    max_component_bytes = 255
    #: Staging names: ``/~blobdrivers/uploads/<sha256>.<uuid>`` is 115 bytes.
    bookkeeping_key_bytes = 160
    parallel_put = False  # a put writes sequentially from one buffer

    def __init__(self, **params: Any) -> None:
        reader = Params(self.name, params)
        self.root = os.path.abspath(reader.string("rootdirectory") or default_root())
        self.fsync = reader.boolean("fsync", True)
        chunk_size = reader.size("chunksize", 1 * MiB, minimum=4096, maximum=1024 * MiB)
        reader.done()
        # Record the resolved root, so a pickled copy (another process) opens the same folder.
        super().__init__({**params, "rootdirectory": self.root}, chunk_size=chunk_size)
        # Nothing is created here: the root and its staging folders are made by the first
        # write (see _staging), so reads and dry runs of a missing root leave no trace.
        self._root_fd = self._open_root()
        self._reopen_lock = threading.Lock()

    def _open_root(self) -> ProcessLocal[int]:
        return ProcessLocal(lambda: os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))

    # The root is a folder of this machine, not a key prefix: the store is the machine's
    # files, and the folder (resolved: one folder spelt two ways is one store) the root.
    def identity(self) -> str:
        """``filesystem://`` and the resolved root folder."""
        return self.store_identity() + os.path.realpath(self.root)

    def store_identity(self) -> str:
        """``filesystem://``: every instance addresses this machine's files."""
        return f"{self.name}://"

    def missing_root(self) -> str | None:
        """The resolved root folder when it does not exist (the first write makes it)."""
        folder = os.path.realpath(self.root)
        return None if os.path.isdir(folder) else folder

    def _params_below(self, path: str) -> dict[str, Any]:
        return {**self._params, "rootdirectory": os.path.join(self.root, path.lstrip("/"))}

    def _key_overhead(self) -> int:
        return len(self.root.encode())  # the OS path is the root folder followed by the path

    def _translate_error(self, exc: Exception, path: str) -> StorageError | None:
        if isinstance(exc, OSError) and exc.errno == errno.ENAMETOOLONG:
            return InvalidPathError(f"invalid path {path!r}: a component is longer than this filesystem stores")
        forget_file_names(exc)  # the base's message ("put /a failed: OSError: ...") names the caller's path
        return None

    # ------------------------------------------------------------------ resolution

    def _live_root(self, *, create: bool) -> int:
        """A descriptor of the root folder, opened again if the folder was deleted since.

        A store above this one (``parent.delete("/tenant")``) may delete this store's
        root folder, staging and all: the cached descriptor then names a removed folder
        (no links), so it is opened again by name, and a write makes the folder anew.
        """
        try:
            fd = self._root_fd.get()
            if os.fstat(fd).st_nlink:
                return fd
        except FileNotFoundError:
            pass  # reopened before while the folder was missing; the open is tried again below
        if create:
            os.makedirs(self.root, exist_ok=True)
        with self._reopen_lock:
            with suppress(FileNotFoundError):
                if os.fstat(self._root_fd.get()).st_nlink:
                    return self._root_fd.get()
            # The old descriptor is left open: another thread may still be using it.
            self._root_fd = self._open_root()
        return self._root_fd.get()

    @contextmanager
    def _dir(self, full: str, *, create: bool = False) -> Iterator[int]:
        """A descriptor of the directory ``full`` (a full path), never following a symlink."""
        root = fd = self._live_root(create=create)
        try:
            for part in full.split("/")[1:] if full != paths.ROOT else []:
                child = self._step(fd, part, create=create)
                if fd != root:
                    os.close(fd)
                fd = child
            yield fd
        finally:
            if fd != root:
                os.close(fd)

    def _step(self, fd: int, part: str, *, create: bool) -> int:
        try:
            child = os.open(part, DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            if not create:
                raise
            with suppress(FileExistsError):
                os.mkdir(part, dir_fd=fd)
                self._sync_dir(fd)
            child = os.open(part, DIR_FLAGS, dir_fd=fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StorageError(f"refusing to follow a symlink at component {part!r}") from exc
            if exc.errno == errno.ENOTDIR:
                raise FileNotFoundError(errno.ENOENT, "a file stands where a directory is needed") from exc
            raise
        return child

    def _open_staging(self, folder: str, *, create: bool) -> int:
        """A descriptor of a staging folder, made on first use (and again after a store above deleted it)."""
        location = os.path.join(self.root, STAGING, folder)
        try:
            return os.open(location, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            if not create:
                raise
        self._live_root(create=True)
        os.makedirs(location, exist_ok=True)
        return os.open(location, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    @contextmanager
    def _staging(self, folder: str) -> Iterator[int]:
        fd = self._open_staging(folder, create=True)
        try:
            yield fd
        finally:
            os.close(fd)

    def _sync_dir(self, fd: int) -> None:
        if self.fsync:
            os.fsync(fd)

    def _sync_file(self, fd: int) -> None:
        if self.fsync:
            os.fsync(fd)

    @contextmanager
    def _path_lock(self, *fulls: str) -> Iterator[None]:
        """Hold the lock of every path in ``fulls`` (across threads and processes) for the block.

        The locks are taken in ascending stripe order, each stripe once, so two
        operations on overlapping paths never deadlock (nor one on itself: two
        descriptors of one lock file would exclude each other).
        """
        stripes = sorted({_stripe(full) for full in fulls})
        fds: list[int] = []
        try:
            with self._staging("locks") as locks:
                for stripe in stripes:
                    fds.append(os.open(str(stripe), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600, dir_fd=locks))
            for fd in fds:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            for fd in fds:
                os.close(fd)

    # ------------------------------------------------------------------ publishing

    def _new_temp(self) -> tuple[str, int]:
        name = uuid.uuid4().hex
        with self._staging("tmp") as tmp:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644, dir_fd=tmp)
        return os.path.join(self.root, STAGING, "tmp", name), fd

    def _publish(self, staged: str, full: str, conditions: Conditions) -> None:
        """Move the fsynced file ``staged`` (an OS path in the staging area) to ``full`` atomically."""
        parent, name = paths.parent(full), full.rsplit("/", 1)[1]
        for attempt in range(5):
            try:
                with self._dir(parent, create=True) as dir_fd, self._path_lock(full):
                    self._check(dir_fd, name, full, conditions)
                    if conditions.if_match is not None:
                        self._race_point("put.checked", full)
                    if conditions.if_none_match:
                        try:
                            os.link(staged, name, dst_dir_fd=dir_fd)
                        except FileExistsError:
                            raise PreconditionFailedError(f"{full} already exists") from None
                        os.unlink(staged)
                    else:
                        os.rename(staged, name, dst_dir_fd=dir_fd)
                    self._sync_dir(dir_fd)
                return
            except FileNotFoundError:
                # A concurrent delete pruned the parent between creation and rename.
                if attempt == 4 or not os.path.exists(staged):
                    raise
            except PreconditionFailedError:
                self._prune(parent)  # do not leave a folder made for nothing
                raise

    def _check(self, dir_fd: int, name: str, full: str, conditions: Conditions) -> None:
        if conditions.if_match is None:
            return
        try:
            current = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            raise PreconditionFailedError(
                f"{full} does not exist, so it cannot match etag {conditions.if_match!r}"
            ) from None
        if etag_of(current) != conditions.if_match:
            raise PreconditionFailedError(f"etag of {full} is not {conditions.if_match!r}")

    def _put(self, full: str, source: Source, conditions: Conditions) -> None:
        staged, fd = self._new_temp()
        try:
            with io.FileIO(fd, "w", closefd=False) as out:
                copy_source(source, out, self.chunk_size)
            self._sync_file(fd)
            os.close(fd)
            fd = -1
            self._publish(staged, full, conditions)
        finally:
            if fd >= 0:
                os.close(fd)
            with suppress(FileNotFoundError):
                os.unlink(staged)

    # ------------------------------------------------------------------ reading

    def _open_file(self, full: str) -> int:
        with self._dir(paths.parent(full)) as dir_fd:
            try:
                fd = os.open(full.rsplit("/", 1)[1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise StorageError(f"refusing to follow a symlink at {full}") from exc
                raise
        if not stat_module.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise FileNotFoundError(errno.ENOENT, f"{full} is a directory, not a file")
        return fd

    def _get(self, full: str) -> bytes:
        with io.FileIO(self._open_file(full), "r") as file:
            return file.readall()

    def _open(self, full: str, offset: int, length: int | None) -> tuple[RangeReader, int | None]:
        file = io.FileIO(self._open_file(full), "r")
        size = os.fstat(file.fileno()).st_size
        available = max(0, size - offset)
        if offset:
            file.seek(min(offset, size))
        return file, available if length is None else min(length, available)

    def _stat(self, full: str) -> FileInfo:
        if full == paths.ROOT:
            result = os.stat(self.root)
        else:
            name = full.rsplit("/", 1)[1]
            with self._dir(paths.parent(full)) as dir_fd:
                result = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                if stat_module.S_ISDIR(result.st_mode) and not holds_file(dir_fd, name):
                    raise FileNotFoundError(errno.ENOENT, f"no file below {full}, so no directory")
        return file_info(full, result)

    def _list(self, full: str) -> Iterator[str]:
        try:
            with self._dir(full) as dir_fd:
                with os.scandir(dir_fd) as entries:
                    found = [
                        (entry.name, entry.is_dir(follow_symlinks=False))
                        for entry in entries
                        if paths.is_valid("/" + entry.name)
                        and (entry.is_file(follow_symlinks=False) or entry.is_dir(follow_symlinks=False))
                    ]
                # A folder is a directory only while a file lies below it (not an empty
                # folder another program made, nor a child store's staging).
                names = [name for name, is_dir in found if not is_dir or holds_file(dir_fd, name)]
        except NotADirectoryError:
            return iter(())
        except FileNotFoundError:
            if full == paths.ROOT:
                return iter(())
            raise
        base = "" if full == paths.ROOT else full
        return iter([f"{base}/{name}" for name in names if name != STAGING])

    def _walk(self, full: str) -> Iterator[FileInfo]:
        try:
            with self._dir(full) as dir_fd:
                entries = self._walk_below(os.dup(dir_fd), "" if full == paths.ROOT else full)
        except (FileNotFoundError, NotADirectoryError):
            return iter(())
        return entries

    def _walk_below(self, dir_fd: int, base: str) -> Iterator[FileInfo]:
        """Walk order of one directory; an empty directory yields nothing (directories are implicit)."""
        try:
            with os.scandir(dir_fd) as scan:
                entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in scan if e.name != STAGING]
            for name, is_dir in sorted(entries, key=lambda item: item[0] + "/" if item[1] else item[0]):
                if not paths.is_valid("/" + name):
                    continue
                try:
                    if is_dir:
                        child_fd = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
                        below = self._walk_below(child_fd, f"{base}/{name}")
                        first = next(below, None)
                        if first is None:
                            continue
                        yield file_info(f"{base}/{name}", os.stat(name, dir_fd=dir_fd, follow_symlinks=False))
                        yield first
                        yield from below
                    else:
                        result = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                        if stat_module.S_ISREG(result.st_mode):
                            yield file_info(f"{base}/{name}", result)
                except (FileNotFoundError, NotADirectoryError):
                    continue  # vanished (or replaced) during the walk
        finally:
            os.close(dir_fd)

    # ------------------------------------------------------------------ changing

    def _move(self, src: str, dst: str, conditions: Conditions) -> None:
        # One rename (or, for if_none_match, link then unlink) from the source itself:
        # a crash at any point leaves the source, the destination, or (between link
        # and unlink) both, and never loses the content. The locks of both paths are
        # held from the check to the end, so a put or delete of either is wholly
        # before or after the move (a put that checked its if_match on the source
        # cannot publish between the move's rename and its return).
        src_name, dst_name = src.rsplit("/", 1)[1], dst.rsplit("/", 1)[1]
        for attempt in range(5):
            try:
                # The source folder first: a move from a store that does not exist yet must not create it.
                with self._dir(paths.parent(src)) as src_dir, self._path_lock(src, dst):
                    if not stat_module.S_ISREG(os.stat(src_name, dir_fd=src_dir, follow_symlinks=False).st_mode):
                        raise FileNotFoundError(errno.ENOENT, f"{src} is not a file")
                    self._move_checked(src_dir, src, src_name, dst, dst_name, conditions)
                break
            except FileNotFoundError:
                # A concurrent delete may have pruned the new destination folder; retry
                # unless it is the source that is missing.
                if attempt == 4 or not self._exists(src):
                    self._prune(paths.parent(dst))
                    raise
            except PreconditionFailedError:
                self._prune(paths.parent(dst))  # do not leave a folder made for nothing
                raise
        self._prune(paths.parent(src))

    def _move_checked(
        self, src_dir: int, src: str, src_name: str, dst: str, dst_name: str, conditions: Conditions
    ) -> None:
        with self._dir(paths.parent(dst), create=True) as dst_dir:
            self._check(dst_dir, dst_name, dst, conditions)
            if conditions.if_none_match:
                try:
                    os.link(src_name, dst_name, src_dir_fd=src_dir, dst_dir_fd=dst_dir, follow_symlinks=False)
                except FileExistsError:
                    raise PreconditionFailedError(f"{dst} already exists") from None
                self._sync_dir(dst_dir)
                self._race_point("move.copied", src)
                os.unlink(src_name, dir_fd=src_dir)
            else:
                self._race_point("move.copied", src)
                os.rename(src_name, dst_name, src_dir_fd=src_dir, dst_dir_fd=dst_dir)
            self._sync_dir(dst_dir)
            self._sync_dir(src_dir)

    def _exists(self, full: str) -> bool:
        try:
            self._stat(full)
        except (FileNotFoundError, NotADirectoryError):
            return False
        return True

    def _delete(self, full: str) -> None:
        parent, name = paths.parent(full), full.rsplit("/", 1)[1]
        with self._dir(parent) as dir_fd:
            result = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if stat_module.S_ISDIR(result.st_mode):
                if not holds_file(dir_fd, name):
                    raise FileNotFoundError(errno.ENOENT, f"no file below {full}, so no directory")
                # Take the tree out of sight in one rename, then remove it at leisure.
                trash = uuid.uuid4().hex
                with self._staging("trash") as trash_fd:
                    os.rename(name, trash, src_dir_fd=dir_fd, dst_dir_fd=trash_fd)
                    self._sync_dir(dir_fd)
                    remove_tree(trash_fd, trash)
            else:
                with self._path_lock(full):
                    os.unlink(name, dir_fd=dir_fd)
                self._sync_dir(dir_fd)
        self._prune(parent)

    def _prune(self, full: str) -> None:
        """Remove now-empty directories from ``full`` upwards (directories are implicit)."""
        while full != paths.ROOT:
            parent = paths.parent(full)
            try:
                with self._dir(parent) as dir_fd:
                    os.rmdir(full.rsplit("/", 1)[1], dir_fd=dir_fd)
            except OSError:
                return
            full = parent

    def _cat(self, full: str, sources: list[str]) -> None:
        staged, out_fd = self._new_temp()
        try:
            for source in sources:
                in_fd = self._open_file(source)
                try:
                    copy_fd(in_fd, out_fd, os.fstat(in_fd).st_size)
                finally:
                    os.close(in_fd)
            self._sync_file(out_fd)
            os.close(out_fd)
            out_fd = -1
            self._publish(staged, full, Conditions())
        finally:
            if out_fd >= 0:
                os.close(out_fd)
            with suppress(FileNotFoundError):
                os.unlink(staged)

    # ------------------------------------------------------------------ writer

    def _upload_name(self, full: str) -> str:
        return hashlib.sha256(full.encode()).hexdigest()

    def _writer(self, full: str, append: bool) -> WriterBackend:
        parked = self._upload_name(full)
        own = f"{parked}.{uuid.uuid4().hex}"
        with self._staging("uploads") as uploads:
            if append:
                try:
                    os.rename(parked, own, src_dir_fd=uploads, dst_dir_fd=uploads)
                except FileNotFoundError:
                    self._seed_from_committed(full, uploads, own)
            else:
                with suppress(FileNotFoundError):
                    os.unlink(parked, dir_fd=uploads)
            fd = os.open(own, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644, dir_fd=uploads)
        folder = os.path.join(self.root, STAGING, "uploads")
        return FileWriter(self, full, fd, os.path.join(folder, own), os.path.join(folder, parked))

    def _seed_from_committed(self, full: str, uploads: int, own: str) -> None:
        """Start an append to committed content with a copy of it (the copy is kernel-side)."""
        in_fd = self._open_file(full)
        try:
            out_fd = os.open(own, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644, dir_fd=uploads)
            try:
                copy_fd(in_fd, out_fd, os.fstat(in_fd).st_size)
            finally:
                os.close(out_fd)
        finally:
            os.close(in_fd)

    def cleanup(self, older_than: float) -> int:
        """Remove staging leftovers (crashed puts, abandoned uploads) older than ``older_than`` seconds.

        Returns the number of entries removed. Safe while the store is in use: only
        entries untouched for longer than ``older_than`` are removed.
        """
        removed = 0
        limit = time.time() - older_than
        for folder in ("tmp", "uploads", "trash"):
            try:
                fd = self._open_staging(folder, create=False)
            except FileNotFoundError:
                continue  # never used: nothing to clean
            with closing(fd), os.scandir(fd) as entries:
                for entry in list(entries):
                    try:
                        if entry.stat(follow_symlinks=False).st_mtime >= limit:
                            continue
                        if entry.is_dir(follow_symlinks=False):
                            remove_tree(fd, entry.name)
                        else:
                            os.unlink(entry.name, dir_fd=fd)
                        removed += 1
                    except FileNotFoundError:
                        continue
        return removed


def _stripe(full: str) -> int:
    """The lock stripe of a path: a fixed set of lock files, so their number stays bounded."""
    return int.from_bytes(hashlib.blake2b(full.encode(), digest_size=4).digest(), "big") % _LOCK_STRIPES
