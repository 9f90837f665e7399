"""SDK clients that survive ``fork``: created lazily, once per process.

HTTP connection pools must never be shared between a parent and a forked child
(both would read answers off the same sockets), so drivers hold their SDK clients
in a :class:`ProcessLocal`, which builds a fresh client the first time it is used
in each process.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class ProcessLocal(Generic[T]):
    """A value built by ``factory`` on first use in each process; thread-safe."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._pid = -1
        self._value: T | None = None
        _instances.add(self)

    def _after_fork(self) -> None:
        # A thread of the parent may have held the lock at fork time; the child starts clean.
        self._lock = threading.Lock()
        self._value = None

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


_instances: weakref.WeakSet[ProcessLocal[Any]] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for instance in list(_instances):
        instance._after_fork()


os.register_at_fork(after_in_child=_reset_after_fork)
