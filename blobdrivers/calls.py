"""One public driver call: its instrumentation (timing, debug log, observers, error wrapping) and race points.

:class:`~blobdrivers.driver.StorageDriver` runs every public method inside a
:class:`Call`, so each call is timed, logged at DEBUG, reported to the
observers as a :class:`CallEvent` and has its failure wrapped into a
:class:`~blobdrivers.errors.StorageError`, once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

from .errors import StorageError

if TYPE_CHECKING:
    from .driver import StorageDriver

log = logging.getLogger("blobdrivers")

#: ``(full path, caller's path)`` of a call's other files (a move's destination, cat's sources).
PathPairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class RacePoint:
    """A named point between two backend requests of one operation, as passed to race hooks.

    ``path`` is the caller's path of the operation; ``index`` numbers repeated
    points of one operation (the part number at ``"part.upload"``), else 0.
    """

    name: str
    path: str
    index: int = 0


#: The race points a driver marks with :meth:`StorageDriver._race_point`, and where.
RACE_POINTS: Mapping[str, str] = {
    "put.checked": "a conditional put or commit has checked its condition and not yet published",
    "move.copied": (
        "a move has written the destination (a rename: checked its conditions) and not yet removed the source"
        " (path: the source)"
    ),
    "part.upload": "a writer or multipart put is about to send one part (index: part number, from 1)",
}


@dataclass(frozen=True)
class CallEvent:
    """One finished public call, as passed to observers (for metrics)."""

    driver: str
    operation: str
    path: str
    duration: float
    error: StorageError | None


class Call:
    """Times one public call, turns its failure into a StorageError and tells the observers.

    A class rather than a generator-based context manager: it runs on every call.
    """

    __slots__ = ("_driver", "_operation", "_others", "_path", "_started")

    def __init__(self, driver: StorageDriver, operation: str, path: str, others: PathPairs = ()) -> None:
        self._driver = driver
        self._operation = operation
        self._path = path
        self._others = others

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        driver = self._driver
        error: StorageError | None = None
        if isinstance(exc, Exception):
            error = driver._wrap(exc, self._operation, self._path, self._others)
        if driver.observers or log.isEnabledFor(logging.DEBUG):
            duration = time.perf_counter() - self._started
            outcome = type(error or exc).__name__ if exc is not None else "ok"
            log.debug("%s %s %s %.3f ms %s", driver.name, self._operation, self._path, duration * 1000, outcome)
            for observer in driver.observers:
                observer(CallEvent(driver.name, self._operation, self._path, duration, error))
        if error is not None and error is not exc:
            raise error from exc
