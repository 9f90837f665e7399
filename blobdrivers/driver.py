"""StorageDriver: the one contract every backend implements.

The public methods validate arguments, apply the ``rootdirectory`` prefix,
instrument the call (a debug log line with its duration, and observers for
metrics) and turn every failure into a :class:`~blobdrivers.errors.StorageError`,
once, here. A driver implements only the backend hooks (``_put``, ``_open``,
``_stat``, ...), which receive *full* paths (root prefix applied) and may raise
its SDK's errors freely: ``_translate_error`` maps them.

The precise semantics of each method are in ``docs/contract.md``.
"""

from __future__ import annotations

import abc
import builtins
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote

from . import limits, paths, urls
from .calls import RACE_POINTS, Call, CallEvent, PathPairs, RacePoint
from .capabilities import Capability, needed_for, require
from .conditions import Conditions
from .errors import (
    ConfigError,
    InvalidOffsetError,
    PathNotFoundError,
    StorageError,
    UnsupportedMethodError,
)
from .listing import FileInfo
from .reader import RangeReader, Reader
from .redaction import MASK, mask_credentials, scrub_exception, secret_forms
from .transfer import Data, Source
from .writer import Writer, WriterBackend

T = TypeVar("T")
#: (full path, caller's path) of the other files of one call.
__all__ = ["RACE_POINTS", "URL_METHODS", "CallEvent", "RacePoint", "StorageDriver"]

URL_METHODS = frozenset({"GET", "HEAD", "PUT"})


class StorageDriver(abc.ABC):
    """Abstract base of every storage driver; see ``docs/contract.md`` for the semantics.

    Instances are safe to share between threads and keep working in a child
    process after ``fork``. They pickle by their parameters, so ``pickle`` gives a
    new, independent instance on the same store.
    """

    #: Registered name of the driver, used in errors and logs.
    name: ClassVar[str] = "driver"
    #: Parameters whose values are secret: never shown in repr, errors or logs.
    secret_params: ClassVar[frozenset[str]] = frozenset()
    #: Longest ``expires_in`` the backend's signed URLs allow, in seconds.
    max_url_expiry: ClassVar[int] = 7 * 24 * 3600
    #: Longest key the backend stores, in bytes, root prefix included (``None``: no limit).
    #: Longer paths are :class:`InvalidPathError` before any request.
    max_key_bytes: ClassVar[int | None] = None
    #: Longest path component the backend stores, in bytes (``None``: no limit of its own).
    max_component_bytes: ClassVar[int | None] = None
    #: Room kept below the root for the driver's own bookkeeping keys (parked writer
    #: tails, staging names): the longest such key, less the root prefix, in bytes.
    bookkeeping_key_bytes: ClassVar[int] = 0
    #: The one folder below the root where a driver keeps its bookkeeping (parked
    #: writers, staging, markers). Paths never name it (``~`` starts no valid
    #: component), so it never shows in a listing and user data never collides with it.
    bookkeeping_dir: ClassVar[str] = "~blobdrivers"
    #: Parameters that tune an instance (sizes, concurrency, retries, timeouts, logging)
    #: without changing which data it addresses: :meth:`identity` leaves them out.
    tuning_params: ClassVar[frozenset[str]] = frozenset(
        {
            "chunksize",
            "maxconcurrency",
            "concurrency",
            "multipartcopychunksize",
            "multipartcopymaxconcurrency",
            "multipartcopythresholdsize",
            "fsync",
            "retries",
            "maxretries",
            "timeout",
            "loglevel",
        }
    )
    #: What every instance of the class supports beyond the core contract (see
    #: :mod:`blobdrivers.capabilities`); :attr:`capabilities` may narrow it by configuration.
    declared_capabilities: ClassVar[frozenset[Capability]] = frozenset()
    #: Why the driver may lack a capability, and what to do: added to the refusal's message.
    capability_notes: ClassVar[Mapping[Capability, str]] = {}
    #: URL schemes that name this driver in :func:`blobdrivers.from_url` (``("s3",)`` for ``s3://``).
    url_schemes: ClassVar[tuple[str, ...]] = ()
    #: The parameter a URL's host fills (``"bucket"``); ``None``: the URL names no host.
    url_host_param: ClassVar[str | None] = None
    #: True when a streamed ``put`` may hold several ``chunk_size`` buffers at once
    #: (parts sent in parallel); False when it writes sequentially from one buffer.
    parallel_put: ClassVar[bool] = True

    def __init__(self, params: Mapping[str, Any], *, rootdirectory: str = "", chunk_size: int = 1024 * 1024) -> None:
        self._params = dict(params)
        self._root = paths.normalize_root(rootdirectory, driver=self.name)
        #: The size a driver moves data in (part, block, buffer); the conformance
        #: suite writes multiples of it so multipart paths really run.
        self.chunk_size = chunk_size
        #: Callables receiving a :class:`CallEvent` after every public call.
        self.observers: list[Callable[[CallEvent], None]] = []
        #: Callables run at this instance's race points, by name (see :data:`RACE_POINTS`).
        #: Tests install them to force a narrow interleaving of two clients
        #: deterministically; a hook that raises fails the step it stands before.
        self.race_hooks: dict[str, Callable[[RacePoint], None]] = {}
        self._check_bookkeeping_room()

    # ------------------------------------------------------------------ public API

    def get(self, path: str) -> bytes:
        """The whole content of the file at ``path``."""
        full = self._file_path(path)
        with self._call("get", path):
            return self._get(full)

    def put(self, path: str, data: Data, *, if_none_match: str | None = None, if_match: str | None = None) -> None:
        """Atomically replace the content at ``path`` with ``data``, streaming it.

        ``data`` is bytes-like, a binary file object (read from its current
        position) or an iterable of bytes. Readers see the old or the whole new
        content, never a part. With ``if_none_match="*"`` it publishes only if
        nothing exists at ``path``; with ``if_match=etag`` only if the current etag
        is ``etag``; otherwise :class:`PreconditionFailedError`, changing nothing.
        """
        full = self._file_path(path)
        conditions = self._conditions(if_none_match, if_match, path)
        source = Source(data)
        with self._call("put", path):
            self._put(full, source, conditions)

    def stream(self, path: str, offset: int = 0, length: int | None = None) -> Reader:
        """A binary reader over ``length`` bytes (default: all) starting at ``offset``.

        An offset at or beyond the end gives an empty read; a negative offset or
        length raises :class:`InvalidOffsetError`.
        """
        full = self._file_path(path)
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise InvalidOffsetError(f"invalid offset {offset!r}: must be an integer >= 0", driver=self.name, path=path)
        if length is not None and (isinstance(length, bool) or not isinstance(length, int) or length < 0):
            raise InvalidOffsetError(
                f"invalid length {length!r}: must be an integer >= 0 or None", driver=self.name, path=path
            )
        with self._call("stream", path):
            backend, remaining = self._open(full, offset, length)
        return Reader(
            backend,
            remaining=remaining,
            chunk_size=self.chunk_size,
            translate=lambda exc: self._wrap(exc, "stream", path),
        )

    def writer(self, path: str, append: bool = False) -> Writer:
        """A resumable writer for ``path``; nothing is visible there before ``commit()``.

        A writer's staging is its *session*; ``close()`` parks it. ``append=True``
        takes over a session parked for ``path`` (from any instance or process; the
        most recently parked, and each parked session goes to one writer only) and
        resumes at exactly what that session durably wrote; with none parked it
        appends to the committed content, and raises :class:`PathNotFoundError`
        when nothing exists. ``append=False`` starts afresh, dropping the sessions
        parked for ``path``. Neither ever adopts or drops a live writer's session
        or a put in flight: concurrent writers of one path are isolated, each
        commit publishes that writer's whole content, and the last commit wins.
        """
        full = self._file_path(path)
        if append:
            self._require(path, Capability.RESUMABLE_WRITERS)
        with self._call("writer", path):
            backend = self._writer(full, append)
        guard: Callable[[str, Callable[[], Any]], Any] = lambda op, fn: self._guarded(op, path, fn)  # noqa: E731
        return Writer(backend, path=path, driver=self.name, guard=guard, check=self._commit_check(path, append))

    def stat(self, path: str) -> FileInfo:
        """Information about the file or implicit directory at ``path``."""
        full = self._any_path(path)
        with self._call("stat", path):
            info = self._stat(full)
        return info.moved_to(path)

    def list(self, path: str) -> builtins.list[str]:
        """Sorted full paths of the direct children of the directory ``path``.

        ``list("/")`` of an empty store is ``[]``; any other path with no children
        (missing, or a file) raises :class:`PathNotFoundError`.
        """
        full = self._any_path(path)
        with self._call("list", path):
            children = sorted(set(self._visible(full, self._list(full))))
            if not children and path != paths.ROOT:
                raise PathNotFoundError(f"no directory at {path}", driver=self.name, path=path)
            return children

    def walk(self, path: str = paths.ROOT) -> Iterator[FileInfo]:
        """Every file and directory below ``path``, depth-first.

        Siblings come sorted by name, a directory's name comparing as if it ended
        in ``/`` (the byte order of object keys; see :func:`listing.walk_key`). A
        file vanishing during the walk is skipped. A non-root ``path`` with nothing
        below it raises :class:`PathNotFoundError` when iteration starts.
        """
        full = self._any_path(path)
        return self._walk_logical(path, full)

    def move(self, src: str, dst: str, *, if_none_match: str | None = None, if_match: str | None = None) -> None:
        """Move the file ``src`` to ``dst``, replacing ``dst``; conditions apply to ``dst``.

        A missing ``src`` raises :class:`PathNotFoundError` and leaves ``dst`` untouched.
        A move never deletes content it did not move: a put to ``src`` racing the
        move is either moved, or (landing after the move read ``src``) stays at
        ``src`` while the move still succeeds ("move, then put").
        """
        full_src = self._file_path(src)
        full_dst = self._file_path(dst)
        conditions = self._conditions(if_none_match, if_match, dst)
        with self._call("move", src, others=((full_dst, dst),)):
            if full_src != full_dst:
                self._move(full_src, full_dst, conditions)
            else:
                self._stat(full_src)

    def delete(self, path: str) -> None:
        """Delete the file or, recursively, the directory at ``path``.

        Deleting ``/d/f`` never touches ``/d/fsuffix``. A missing path raises
        :class:`PathNotFoundError`.
        """
        full = self._file_path(path)
        with self._call("delete", path):
            self._delete(full)

    def cat(self, path: str, sources: builtins.list[str]) -> None:
        """Atomically write the concatenation of the files ``sources`` to ``path``.

        Sources are left untouched and may include ``path`` itself. A missing
        source raises :class:`PathNotFoundError` and changes nothing.
        """
        full = self._file_path(path)
        if isinstance(sources, str):
            raise TypeError("cat() sources must be a list of paths, not a single string")
        full_sources = [self._file_path(source) for source in sources]
        with self._call("cat", path, others=tuple(zip(full_sources, sources, strict=True))):
            try:
                self._cat(full, full_sources)
            except Exception as exc:
                if isinstance(exc, StorageError) and exc.path in full_sources:
                    raise  # the hook named the missing source: _call shows it by the caller's path
                missing = self._missing_source(exc, dict(zip(full_sources, sources, strict=True)))
                if missing is None:
                    raise
                raise PathNotFoundError(f"cat source {missing} does not exist", path=missing) from exc

    def url_for(self, path: str, method: str = "GET", expires_in: int = 1200) -> str:
        """A URL a plain HTTP client can use for ``method`` on ``path`` for ``expires_in`` seconds.

        Raises :class:`UnsupportedMethodError` unless the driver declares
        :attr:`Capability.SIGNED_READ_URLS` (GET, HEAD) or :attr:`Capability.SIGNED_PUT_URLS` (PUT).
        """
        full = self._file_path(path)
        method = method.upper() if isinstance(method, str) else method
        if method not in URL_METHODS:
            raise ValueError(f"url_for method must be one of {', '.join(sorted(URL_METHODS))}, not {method!r}")
        if (
            isinstance(expires_in, bool)
            or not isinstance(expires_in, int | float)
            or not 1 <= expires_in <= self.max_url_expiry
        ):
            raise ValueError(f"expires_in must be between 1 and {self.max_url_expiry} seconds, not {expires_in!r}")
        self._require(path, Capability.SIGNED_PUT_URLS if method == "PUT" else Capability.SIGNED_READ_URLS)
        with self._call("url_for", path):
            return self._url_for(full, method, int(expires_in))

    def below(self, path: str) -> StorageDriver:
        """A new driver on the same store whose root is ``path`` of this one.

        Useful to give a tenant, a test or a registry its own prefix. The new
        instance shares nothing with this one but its parameters.
        """
        paths.validate(path, driver=self.name)
        return type(self)(**self._params_below(path))

    def max_path_bytes(self) -> int | None:
        """Longest path this instance accepts, in bytes: the key limit less the root prefix (``None``: no limit)."""
        if self.max_key_bytes is None:
            return None
        return self.max_key_bytes - self._key_overhead()

    @property
    def capabilities(self) -> frozenset[Capability]:
        """What this instance supports beyond the core contract: :attr:`declared_capabilities` or, by config, fewer."""
        return self.declared_capabilities

    @classmethod
    def params_from_url(cls, url: str) -> dict[str, Any]:
        """A store URL's parameters; the default: host -> :attr:`url_host_param`, path -> rootdirectory, query."""
        return urls.url_params(url, host_param=cls.url_host_param, driver=cls.name)

    # ------------------------------------------------------------------ hooks

    def _key_overhead(self) -> int:
        """Bytes a backend key has beyond its logical path: the root prefix, less the dropped leading slash."""
        return len(paths.to_key(self._root).encode()) if self._root else -1

    def _params_below(self, path: str) -> dict[str, Any]:
        """Parameters of a driver rooted at ``path`` of this one; the default moves ``rootdirectory``."""
        return {**self._params, "rootdirectory": paths.join(self._root, path)}

    @abc.abstractmethod
    def _put(self, full: str, source: Source, conditions: Conditions) -> None:
        """Publish ``source`` at ``full`` atomically under ``conditions``."""

    @abc.abstractmethod
    def _open(self, full: str, offset: int, length: int | None) -> tuple[RangeReader, int | None]:
        """Open a range for reading; return the reader and the exact byte count it will give, if known."""

    @abc.abstractmethod
    def _writer(self, full: str, append: bool) -> WriterBackend:
        """Open or resume the staging of a writer for ``full``."""

    @abc.abstractmethod
    def _stat(self, full: str) -> FileInfo:
        """Stat a file or implicit directory, reporting ``full`` as its path."""

    @abc.abstractmethod
    def _list(self, full: str) -> Iterator[str]:
        """Full paths of the direct children of ``full`` (any order; invalid names are filtered out)."""

    @abc.abstractmethod
    def _walk(self, full: str) -> Iterator[FileInfo]:
        """Every entry below ``full``, in walk order (see :mod:`blobdrivers.listing`), with full paths."""

    @abc.abstractmethod
    def _move(self, src: str, dst: str, conditions: Conditions) -> None:
        """Move the file ``src`` to ``dst``."""

    @abc.abstractmethod
    def _delete(self, full: str) -> None:
        """Delete a file or a directory tree; raise PathNotFoundError when nothing is there."""

    @abc.abstractmethod
    def _cat(self, full: str, sources: builtins.list[str]) -> None:
        """Publish the concatenation of ``sources`` at ``full`` atomically."""

    def _get(self, full: str) -> bytes:
        """Read a whole file; the default drains ``_open``."""
        backend, remaining = self._open(full, 0, None)
        try:
            return Reader(backend, remaining=remaining, chunk_size=self.chunk_size).readall()
        finally:
            backend.close()

    def _url_for(self, full: str, method: str, expires_in: int) -> str:
        """Build a signed or public URL; called only for the methods :attr:`capabilities` declares."""
        raise UnsupportedMethodError("this driver has no URLs for its files", driver=self.name)

    def _missing_source(self, exc: Exception, sources: Mapping[str, str]) -> str | None:
        """The caller's path of the source a failed ``_cat`` missed (R5), or None when ``exc`` is no "not found".

        Used when the hook did not name it (``PathNotFoundError`` with ``path=`` the
        full source path): the first source that is no file is it, one ``_stat`` per
        source up to it (requests on this error path only).
        """
        if not self._is_not_found(exc):
            return None
        for full, source in sources.items():
            try:
                if self._stat(full).is_dir:
                    return source
            except Exception as probe:
                if self._is_not_found(probe):
                    return source
        return None

    def _is_not_found(self, exc: Exception) -> bool:
        """Whether a hook's exception means "no file there" (before any wrapping)."""
        mapped = exc if isinstance(exc, StorageError) else self._translate_error(exc, "")
        return isinstance(mapped, PathNotFoundError) or (mapped is None and isinstance(exc, FileNotFoundError))

    def _race_point(self, name: str, full: str, index: int = 0) -> None:
        """Run the race hook installed under ``name``, if any; drivers call it at the points of RACE_POINTS.

        Costs one dict lookup when no hook is installed.
        """
        hook = self.race_hooks.get(name)
        if hook is not None:
            hook(RacePoint(name, paths.strip(self._root, full), index))

    def _translate_error(self, exc: Exception, path: str) -> StorageError | None:
        """Map a backend exception to a contract error, or ``None`` to let the base wrap it."""
        return None

    # ------------------------------------------------------------------ plumbing

    def _conditions(self, if_none_match: str | None, if_match: str | None, path: str) -> Conditions:
        conditions = Conditions(if_none_match, if_match)
        self._require(path, *needed_for(conditions))
        return conditions

    def _commit_check(self, path: str, append: bool) -> Callable[[Conditions, int, bool], None]:
        """Run before a commit (conditions, size, backend ``streaming``); refuses undeclared capabilities."""
        limit = float("inf") if append else self.chunk_size  # a fresh writer of chunk_size bytes streams
        return lambda c, size, streaming: self._require(path, *needed_for(c, streamed=streaming or size >= limit))

    def _require(self, path: str, *needed: Capability) -> None:
        """Refuse, before any request, a call needing a capability this instance does not declare."""
        for capability in needed:
            require(self.capabilities, capability, driver=self.name, path=path, notes=self.capability_notes)

    def _file_path(self, path: str) -> str:
        return paths.join(self._root, self._fitting(paths.validate(path, driver=self.name)))

    def _any_path(self, path: str) -> str:
        return paths.join(self._root, self._fitting(paths.validate(path, allow_root=True, driver=self.name)))

    def _fitting(self, path: str) -> str:
        return limits.fitting(
            path,
            overhead=self._key_overhead(),
            max_key=self.max_key_bytes,
            max_component=self.max_component_bytes,
            driver=self.name,
        )

    def _check_bookkeeping_room(self) -> None:
        """Refuse a root so long that the driver's own bookkeeping keys below it could not be stored."""
        limit = self.max_key_bytes
        if limit is not None and self._key_overhead() + 1 + self.bookkeeping_key_bytes > limit:
            raise ConfigError(
                f"rootdirectory is too long for {self.name}: keys below it need {self.bookkeeping_key_bytes} bytes "
                f"of room for bookkeeping within the limit of {limit} bytes",
                driver=self.name,
            )

    def _visible(self, full: str, children: Iterator[str]) -> Iterator[str]:
        for child in children:
            if paths.is_valid(child):
                yield paths.strip(self._root, child)

    def _walk_logical(self, path: str, full: str) -> Iterator[FileInfo]:
        entries = self._guarded_iter("walk", path, lambda: self._walk(full))
        found = False
        for info in entries:
            if paths.is_valid(info.path):
                found = True
                yield info.moved_to(paths.strip(self._root, info.path))
        if not found and path != paths.ROOT:
            raise PathNotFoundError(f"nothing below {path}", driver=self.name, path=path)

    def _guarded_iter(self, operation: str, path: str, start: Callable[[], Iterator[T]]) -> Iterator[T]:
        try:
            iterator = start()
        except Exception as exc:
            raise self._wrap(exc, operation, path) from exc
        while True:
            try:
                item = next(iterator)
            except StopIteration:
                return
            except Exception as exc:
                raise self._wrap(exc, operation, path) from exc
            yield item

    def _guarded(self, operation: str, path: str, fn: Callable[[], T]) -> T:
        with self._call(operation, path):
            return fn()

    def _call(self, operation: str, path: str, *, others: PathPairs = ()) -> Call:
        return Call(self, operation, path, others)

    def _wrap(self, exc: Exception, operation: str, path: str, others: PathPairs = ()) -> StorageError:
        """Turn any exception from a hook into a StorageError naming this driver and the path.

        The secrets are masked first in ``exc`` and its whole chain (``redact``, in
        place): ``exc`` becomes the ``__cause__`` and ``__context__`` of the error raised.
        ``others`` pairs the full paths of the call's other files (a move's
        destination, a cat's sources) with the caller's: an error a hook raised about
        one of them names the caller's path, in its message and in ``path``.
        """
        scrub_exception(exc, self.redact)
        if isinstance(exc, StorageError):
            if exc.driver is None:
                exc.driver = self.name
            if exc.path is None:
                exc.path = path
            elif self._root:
                exc.path = dict(others).get(exc.path, exc.path)
            exc.message = self._caller_paths(self.redact(exc.message), path, others)
            return exc
        mapped = self._translate_error(exc, path)
        if mapped is None:
            if isinstance(exc, FileNotFoundError):
                mapped = PathNotFoundError(f"no file at {path}")
            else:
                mapped = StorageError(f"{operation} {path} failed: {type(exc).__name__}: {exc}")
        mapped.driver, mapped.path = self.name, path
        mapped.message = self._caller_paths(self.redact(mapped.message), path, others)
        return mapped

    def _caller_paths(self, text: str, path: str, others: PathPairs = ()) -> str:
        """Show the caller's paths rather than the root-prefixed ones a hook put in a message."""
        if not self._root:
            return text
        pairs = [*others, (paths.join(self._root, path), path)] if path.startswith("/") else list(others)
        for full, caller in sorted(pairs, key=lambda pair: len(pair[0]), reverse=True):
            text = text.replace(full, caller)
        return text

    def redact(self, text: str) -> str:
        """``text`` without secrets, each replaced by ``***``.

        Masks the values of this driver's secret parameters (strings of 4 characters
        or more, or such values of a mapping), raw, URL-encoded or base64, and the
        credentials of :data:`~blobdrivers.redaction.CREDENTIAL_PATTERNS` (signed
        query parameters, tokens, Authorization headers).
        """
        for name in self.secret_params:
            value = self._params.get(name)
            values = value.values() if isinstance(value, Mapping) else [value]
            for secret in values:
                if isinstance(secret, str) and len(secret) >= 4:
                    for form in secret_forms(secret):
                        text = text.replace(form, MASK)
        return mask_credentials(text)

    def identity(self) -> str:
        """Which stored data this instance addresses, as text; never holds a secret.

        Two instances return the same string exactly when they address the same
        data: the same backend, store (endpoint, bucket, container, account) and
        root. It is :meth:`store_identity` followed by the root (``""`` for the whole
        store, else ``"/a/b"``), so an instance rooted inside another's root has the
        other's identity followed by ``/``. Safe to print, log and use in names.
        """
        return self.store_identity() + self._root

    def store_identity(self) -> str:
        """Which store this instance addresses, its root left out: ``NAME://`` and the choosing parameters.

        The default is built from the driver's name and its parameters but the
        root, the :attr:`secret_params`, the :attr:`tuning_params` and empty ones,
        each ``key=value`` percent-encoded (so it holds no ``/`` after ``://``),
        e.g. ``s3://bucket=b&region=eu-west-1``. A driver whose store is chosen
        otherwise (a local folder, a named in-memory store) overrides it.
        """
        skipped = self.secret_params | self.tuning_params | {"rootdirectory"}
        chosen = sorted(
            (key, value) for key, value in self._params.items() if key not in skipped and value not in (None, "")
        )
        encoded = "&".join(f"{quote(key, safe='')}={quote(str(value), safe='')}" for key, value in chosen)
        return f"{self.name}://{encoded}"

    def same_store(self, other: StorageDriver) -> bool:
        """True when ``other`` addresses the same data below the same root (see :meth:`shares_store`)."""
        return self.identity() == other.identity() and self._same_secrets(other)

    def shares_store(self, other: StorageDriver) -> bool:
        """True when ``other`` addresses the same store, whatever the two roots: equal :meth:`store_identity`.

        The secret parameters must be equal too (compared here, never shown): a store
        chosen by a secret (a connection string naming the account) is then never
        taken for another, at the cost of treating two credentials of one store as two.
        """
        return self.store_identity() == other.store_identity() and self._same_secrets(other)

    def _same_secrets(self, other: StorageDriver) -> bool:
        names = self.secret_params | other.secret_params
        return all(self._params.get(name) == other._params.get(name) for name in names)

    def rooted_at(self, root: str) -> StorageDriver:
        """A new driver on the same store whose root is ``root`` (a root as :meth:`identity` ends in)."""
        return type(self)(**{**self._params, "rootdirectory": root})

    def missing_root(self) -> str | None:
        """The root folder when this store's root is a folder of its own that does not exist, else ``None``.

        Reads of such a root see an empty store (reading creates nothing), which a
        caller copying *from* it should not mistake for an empty source. Stores
        whose root is a key prefix have no such folder: ``None``.
        """
        return None

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{key}={MASK if key in self.secret_params else repr(value)}" for key, value in sorted(self._params.items())
        )
        return f"{type(self).__name__}({shown})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_driver, (type(self), self._params))


def _rebuild_driver(cls: type[StorageDriver], params: dict[str, Any]) -> StorageDriver:
    return cls(**params)
