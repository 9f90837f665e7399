"""Locations (``URL#PATH``, ``/PATH``, local files, ``-``), the stores they name, and what a command runs with."""

from __future__ import annotations

import argparse
import os
import sys
import urllib.parse
from dataclasses import dataclass, field

from .. import factory
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
    ``~``, ``./``, ``../`` and other relative paths are local files. A bare ``/PATH`` is a
    path in the default store only while its first component does not exist on this
    machine: ``/tmp/out`` could mean either, so it is a :class:`UsageError` naming
    both spellings rather than a guess that writes into the default store.
    """
    if text == "-":
        return LocalFile("-")
    if "://" in text:
        return parse_location(text)
    if text.startswith("~"):
        return LocalFile(os.path.expanduser(text))
    if not text.startswith("/"):
        return LocalFile(text)
    top = "/" + text.lstrip("/").split("/", 1)[0]
    if os.path.lexists(top):
        raise UsageError(
            f"{text!r} is ambiguous: {top} exists on this machine, but a bare /PATH is a path in the default store;"
            f" write {os.path.relpath(text)!r} for the local path, or URL#{text} for the store"
        )
    return StoreLocation(None, text)


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

    def warn_if_vanishing(self, location: StoreLocation) -> None:
        """Warn once on stderr when ``location``'s store keeps what is written only in this process's memory.

        A ``memory://`` URL without a name is private to this command; a named one
        lives as long as the process, so for the one-shot command it too ends now.
        """
        driver = self.store(location)
        if driver.name != "inmemory":
            return
        url = location.url or self.stores.default_url or ""
        private = not urllib.parse.urlsplit(url).netloc
        if (not private and not self.one_shot) or url in self._warned:
            return
        self._warned.add(url)
        shown = redact_url(url.split("#", 1)[0], set(driver.secret_params))
        why = "has no name, so it is private to this command" if private else "is held in this process's memory"
        print(
            f"{PROG}: warning: the in-memory store {shown} {why}: what is written there is gone when the command ends",
            file=sys.stderr,
        )

    def progress(self, label: str, total: int | None) -> Progress:
        """A progress bar for one transfer, shown only on a terminal and without ``--quiet``."""
        return Progress(label, total, enabled=progress_wanted(quiet=self.quiet))

    def store(self, location: StoreLocation) -> StorageDriver:
        """The driver of the store ``location`` is in."""
        return self.stores.get(location.url)


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
