"""The resumable Writer returned by ``writer``: one state machine shared by every driver.

States: *open* -> *closed* (progress kept for resume), *committed* (published) or
*cancelled* (progress dropped). Only an open writer accepts ``write``, ``commit``
and ``cancel``; ``close`` is idempotent. As a context manager a normal exit
commits and an exception exits through ``close``: nothing is published, progress
is kept. Drivers supply only the backend steps (:class:`WriterBackend`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol

from .conditions import Conditions
from .errors import UnsupportedMethodError, WriterClosedError


class WriterBackend(Protocol):
    """The backend steps of a writer. ``size`` is the byte count already staged when opened.

    A backend may also have a boolean ``streaming`` attribute, true once its upload
    streams into a session whose conditions were fixed when it started: a conditional
    commit then needs ``CONDITIONAL_STREAMED_COMMIT`` whatever the writer's size (a
    resumed writer's, say), and the base refuses it before the backend's ``commit``.
    """

    size: int

    def write(self, data: memoryview) -> None:
        """Stage ``data`` after what is staged (buffering is the backend's choice)."""

    def close(self) -> None:
        """Persist staged progress so that a later ``writer(path, append=True)`` resumes it."""

    def commit(self, conditions: Conditions) -> None:
        """Publish staged content atomically and drop the staging state; on failure keep progress parked."""

    def cancel(self) -> None:
        """Drop staged content; the path keeps what it had."""


class _State(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"
    COMMITTED = "committed"
    CANCELLED = "cancelled"


class Writer:
    """A resumable, atomically publishing writer for one path.

    ``size`` counts every byte written so far, including those of a resumed upload.
    Not safe for concurrent use by several threads (like a file object).
    """

    def __init__(
        self,
        backend: WriterBackend,
        *,
        path: str,
        driver: str,
        guard: Callable[[str, Callable[[], Any]], Any],
        check: Callable[[Conditions, int, bool], None] | None = None,
    ) -> None:
        self._backend = backend
        self._check = check
        self._path = path
        self._driver = driver
        self._guard = guard
        self._state = _State.OPEN
        self.size = backend.size

    @property
    def path(self) -> str:
        """The logical path this writer publishes to."""
        return self._path

    @property
    def closed(self) -> bool:
        """True once the writer was closed, committed or cancelled."""
        return self._state is not _State.OPEN

    def _require_open(self, action: str) -> None:
        if self._state is not _State.OPEN:
            raise WriterClosedError(
                f"cannot {action} {self._path}: writer already {self._state.value}",
                driver=self._driver,
                path=self._path,
            )

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append ``data``; return its length."""
        self._require_open("write to")
        view = memoryview(data).cast("B")
        if view:
            self._guard("write", lambda: self._backend.write(view))
            self.size += len(view)
        return len(view)

    def commit(self, *, if_none_match: str | None = None, if_match: str | None = None) -> None:
        """Publish everything written, atomically, under the given conditions.

        A failed commit (a false condition, a backend error) publishes nothing and
        leaves the writer closed with its progress kept for ``writer(path, append=True)``.
        """
        conditions = Conditions(if_none_match, if_match)
        self._require_open("commit")
        if self._check is not None:
            try:
                self._check(conditions, self.size, bool(getattr(self._backend, "streaming", False)))
            except UnsupportedMethodError:
                self.close()  # refused before any request: parked, like any failed commit
                raise
        try:
            self._guard("commit", lambda: self._backend.commit(conditions))
        except BaseException:
            # The backend keeps progress on a failed commit: the writer ends closed, resumable.
            self._state = _State.CLOSED
            raise
        self._state = _State.COMMITTED

    def cancel(self) -> None:
        """Drop everything written; the path keeps its previous content."""
        self._require_open("cancel")
        self._guard("cancel", self._backend.cancel)
        self._state = _State.CANCELLED

    def close(self) -> None:
        """Keep progress for a later resume; publishes nothing. Idempotent."""
        if self._state is _State.OPEN:
            self._state = _State.CLOSED
            self._guard("close", self._backend.close)

    def __enter__(self) -> Writer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None and self._state is _State.OPEN:
            self.commit()
        else:
            self.close()

    def __repr__(self) -> str:
        return f"<Writer {self._driver}:{self._path} size={self.size} {self._state.value}>"
