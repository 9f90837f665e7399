"""Locations (``URL#PATH``, ``/PATH``, local files, ``-``), the stores they name, and what a command runs with."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from typing import TextIO

from .. import factory, paths
from ..driver import StorageDriver
from ..errors import StorageError
from ..redaction import redact_url
from .progress import Progress, progress_wanted

PROG = "blobdrivers"
#: Environment variable naming the default store's URL.
ENV_URL = "BLOBDRIVERS_URL"


class UsageError(Exception):
    """The command line is inconsistent (exit code 2)."""


class CommandError(Exception):
    """A command cannot do what was asked, for a reason the library does not raise (exit code 1)."""


def report_error(exc: BaseException) -> None:
    """Print ``blobdrivers: error: MESSAGE`` for ``exc`` on stderr, on one line whatever the message holds."""
    if isinstance(exc, OSError) and not isinstance(exc, StorageError) and exc.strerror:
        message = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    else:
        message = str(exc) or type(exc).__name__
    print(f"{PROG}: error: {one_line(message)}", file=sys.stderr)


def one_line(text: str) -> str:
    """``text`` with its lines joined by ``; `` (a driver's or SDK's message may span several)."""
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


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
    """A ``cp``/``mv`` argument: a store location, ``-`` (stdin/stdout) or a local file.

    ``URL#PATH`` (anything containing ``://``) is a location, ``-`` is stdin/stdout,
    ``~``, ``./``, ``../`` and other relative paths are local files, ``/`` is the
    default store's root. A bare ``/PATH`` is a path in the default store only while
    its first component does not exist on this machine: ``/tmp/out`` could mean
    either, so it is a :class:`UsageError` naming both spellings rather than a guess
    that writes into the default store.
    """
    if text == "-":
        return LocalFile("-")
    if "://" in text:
        return parse_location(text)
    if not text.startswith("/"):
        return local_file(text)
    if not text.strip("/"):
        return StoreLocation(None, "/")  # the local root is never a sensible copy target
    top = "/" + text.lstrip("/").split("/", 1)[0]
    if os.path.lexists(top):
        in_store = text if paths.is_valid(text.rstrip("/")) else paths.suggest(text)
        store_spelling = f", or URL#{in_store} for the store" if in_store else ""
        raise UsageError(
            f"{text!r} is ambiguous: {top} exists on this machine, but a bare /PATH is a path in the default store;"
            f" write {local_spelling(text)!r} for the local path{store_spelling}"
        )
    return StoreLocation(None, text)


def local_file(text: str) -> LocalFile:
    """A local file argument: a leading ``~`` is the home folder, as a shell would read it unquoted."""
    return LocalFile(os.path.expanduser(text) if text.startswith("~") else text)


def local_spelling(absolute: str) -> str:
    """A relative path naming the local file ``absolute``, starting with ``./`` or ``../``.

    It is never read as an option (``-x``), the home folder (``~``) or a store path.
    For a path without ``.``, ``..`` or ``//`` it is the shortest one; otherwise the
    path itself below enough ``../`` to reach the root, so that links resolve as in
    ``absolute``. A trailing ``/`` is kept (it means "into this folder").
    """
    trailing = "/" if absolute.endswith("/") and absolute.strip("/") else ""
    if os.path.normpath(absolute) == absolute.rstrip("/"):
        relative = os.path.relpath(absolute)
        if relative == ".":
            return "./"
        if not relative.startswith(("./", "../")) and relative != "..":
            relative = "./" + relative
        return relative + trailing
    depth = len([part for part in os.getcwd().split("/") if part])
    return "../" * depth + absolute.lstrip("/") if depth else "./" + absolute.lstrip("/")


def logical_path(location: StoreLocation, *, allow_root: bool) -> str:
    """The location's path with trailing slashes dropped; ``/`` for a bare URL when allowed."""
    path = location.path.rstrip("/") or ("/" if location.path or location.url is not None else "")
    if path in ("", "/") and not allow_root:
        if location.url is not None and not location.path:
            raise UsageError("this command needs a path inside the store: write the location as URL#/path")
        raise UsageError("this command needs a path below the root '/'")
    return path or "/"


def join_path(directory: str, name: str) -> str:
    """``name`` inside the store directory ``directory``."""
    return ("" if directory == "/" else directory.rstrip("/")) + "/" + name


class Stores:
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

    @property
    def default_url(self) -> str | None:
        """The default store's URL (``None``: the filesystem driver's default root)."""
        return self._default_url

    def drivers(self) -> list[StorageDriver]:
        """The drivers created so far."""
        return list(self._drivers.values())

    def get(self, url: str | None) -> StorageDriver:
        """The driver of ``url`` (``None``: the default store), created on first use."""
        key = url if url is not None else self._default_url
        driver = self._drivers.get(key)
        if driver is None:
            driver = factory.create("filesystem", {}) if key is None else factory.from_url(key)
            driver = next((known for known in self._drivers.values() if known.same_store(driver)), driver)
            self._drivers[key] = driver
        return driver


@dataclass
class Context:
    """What every command runs with: the stores it opened, whether progress bars are hidden.

    ``one_shot`` is true when this process is the ``blobdrivers`` command itself (it
    exits after the command), false when a program calls :func:`main` with its own
    arguments and keeps running.
    """

    stores: Stores
    quiet: bool
    one_shot: bool = False
    _warned: set[str] = field(default_factory=set)

    def vanishing(self, location: StoreLocation) -> str | None:
        """Why what is written at ``location`` is gone when the command ends, or ``None`` when it stays."""
        return vanishing_reason(self.store(location), location.url or self.stores.default_url, one_shot=self.one_shot)

    def warn_if_vanishing(self, location: StoreLocation) -> None:
        """Warn once per store on stderr when what is written at ``location`` is gone when the command ends."""
        url = location.url or self.stores.default_url or ""
        why = self.vanishing(location)
        if why is None or url in self._warned:
            return
        self._warned.add(url)
        warn_vanishing(self.store(location), url, why)

    def refuse_moving_into_vanishing(self, location: StoreLocation) -> None:
        """Raise :class:`UsageError` when a move to ``location`` would delete its source for a store that vanishes."""
        why = self.vanishing(location)
        if why is not None:
            shown = redact_url(location.url or self.stores.default_url or "", set(self.store(location).secret_params))
            raise UsageError(
                f"mv into the in-memory store {shown.split('#', 1)[0]} would delete the source: the store {why}"
                " and is gone when the command ends; use cp"
            )

    def progress(self, label: str, total: int | None) -> Progress:
        """A progress bar for one transfer, shown only on a terminal and without ``--quiet``."""
        return Progress(label, total, enabled=progress_wanted(quiet=self.quiet))

    def store(self, location: StoreLocation) -> StorageDriver:
        """The driver of the store ``location`` is in."""
        return self.stores.get(location.url)


def vanishing_reason(driver: StorageDriver, url: str | None, *, one_shot: bool) -> str | None:
    """Why what is written into ``driver`` (opened from ``url``) is gone when the command ends, else ``None``.

    A ``memory://`` store without a name (no URL host, no ``?name=``) is private to
    this command; a named one lives as long as the process, so it ends with the
    one-shot ``blobdrivers`` command (``one_shot``) but not with a program calling main().
    """
    if driver.name != "inmemory" or url is None:
        return None
    if not factory.resolve_url(url.split("#", 1)[0])[1].get("name"):
        return "has no name, so it is private to this command"
    return "is held in this process's memory" if one_shot else None


def warn_vanishing(driver: StorageDriver, url: str, why: str, *, stream: TextIO | None = None) -> None:
    """Print (on ``stream``, default stderr) that what is written into the store of ``url`` is gone at the end."""
    shown = redact_url(url.split("#", 1)[0], set(driver.secret_params))
    print(
        f"{PROG}: warning: the in-memory store {shown} {why}: what is written there is gone when the command ends",
        file=sys.stderr if stream is None else stream,
    )


@dataclass(frozen=True)
class WriteConditions:
    """``--if-absent`` / ``--if-match ETAG`` of a command, for each file it writes; false when neither is given."""

    if_none_match: str | None = None
    if_match: str | None = None

    def __bool__(self) -> bool:
        return self.if_none_match is not None or self.if_match is not None

    def kwargs(self) -> dict[str, str | None]:
        """The keyword arguments of ``put``/``move`` these conditions stand for."""
        return {"if_none_match": self.if_none_match, "if_match": self.if_match}


def write_conditions(args: argparse.Namespace) -> WriteConditions:
    """The write conditions given on the command line."""
    return WriteConditions("*" if getattr(args, "if_absent", False) else None, getattr(args, "if_match", None))
