"""SDK clients that survive ``fork``: created lazily, once per process.

HTTP connection pools must never be shared between a parent and a forked child
(both would read answers off the same sockets), so drivers hold their SDK clients
in a :class:`ProcessLocal`, which builds a fresh client the first time it is used
in each process.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class ProcessLocal(Generic[T]):
    """A value built by ``factory`` on first use in each process; thread-safe."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._pid = -1
        self._value: T | None = None

    def get(self) -> T:
        """The value for the current process, building it if needed."""
        pid = os.getpid()
        value = self._value
        if self._pid == pid and value is not None:
            return value
        with self._lock:
            if self._pid != pid or self._value is None:
                self._value = self._factory()
                self._pid = pid
            return self._value
