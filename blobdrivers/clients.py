"""SDK clients: built once per process (they survive ``fork``), over HTTP sessions set up one way.

HTTP connection pools must never be shared between a parent and a forked child
(both would read answers off the same sockets), so drivers hold their SDK clients
in a :class:`ProcessLocal`, which builds a fresh client the first time it is used
in each process.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

log = logging.getLogger("blobdrivers")


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


def tls_verify(driver: str, endpoint: str, *, skipverify: bool) -> bool | str:
    """What to pass as ``verify``: ``False`` under ``skipverify`` (logged as a warning), else the CA bundle.

    The bundle comes from ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE`` when set, else
    ``True`` (the default trust store).
    """
    if skipverify:
        log.warning("%s: skipverify is set: TLS certificates of %s are NOT verified", driver, endpoint)
        return False
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True


def http_session(endpoint: str, *, verify: bool | str, pool_size: int, session: Any = None) -> Any:
    """A ``requests.Session`` for one endpoint: proxies and CA read once, a pool of ``pool_size``, no retries.

    requests re-reads proxy and CA settings from the environment on every request
    (about half a millisecond each) and lets ``REQUESTS_CA_BUNDLE`` override
    ``verify``; reading them once here fixes both. Retries are the driver's, so the
    adapter makes none. ``session`` configures an SDK's own session instead of a new one.
    """
    import requests  # the network drivers' dependency, not the core's

    configured = session if session is not None else requests.Session()
    configured.trust_env = False
    configured.proxies.update(requests.utils.get_environ_proxies(endpoint))
    configured.verify = verify
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    configured.mount("https://", adapter)
    configured.mount("http://", adapter)
    return configured
