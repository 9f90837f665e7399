"""The typed errors every driver raises.

Each error carries the name of the driver that raised it and, where one applies,
the path it was about. Errors that have a natural builtin counterpart also inherit
it, so ``except FileNotFoundError`` or ``except ValueError`` keep working for code
that knows nothing of this library. Messages never contain credentials: drivers
build them from paths, parameter names and error codes only.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base of every error raised by a storage driver.

    ``driver`` names the driver (``"s3"``, ``"filesystem"``, ...) and ``path`` the
    logical path the call was about, when there is one. Backend SDK errors are
    wrapped in a ``StorageError`` whose ``__cause__`` is the original exception,
    with the secrets masked in it (see :func:`blobdrivers.redaction.scrub_exception`).

    ``args`` is always ``(message,)``: ``message`` is stored there, so ``repr()``,
    ``args`` and pickling show the redacted message and nothing else.
    """

    def __init__(self, message: str, *, driver: str | None = None, path: str | None = None) -> None:
        Exception.__init__(self, message)
        self.driver = driver
        self.path = path

    @property
    def message(self) -> str:
        """The message without the driver name; setting it replaces ``args``."""
        return str(self.args[0]) if self.args else ""

    @message.setter
    def message(self, value: str) -> None:
        self.args = (value,)

    def __str__(self) -> str:
        where = f"{self.driver}: " if self.driver else ""
        return f"{where}{self.message}"

    def __reduce__(self) -> tuple[object, ...]:
        # Keep the keyword-only attributes across pickling (process pools, multiprocessing).
        return (_rebuild, (type(self), self.message, self.driver, self.path))


def _rebuild(cls: type[StorageError], message: str, driver: str | None, path: str | None) -> StorageError:
    return cls(message, driver=driver, path=path)


class PathNotFoundError(StorageError, FileNotFoundError):
    """Nothing exists at the path (or, for ``list``, below it)."""


class BucketNotFoundError(StorageError):
    """The bucket or container the driver was configured with does not exist.

    Not a :class:`PathNotFoundError`: no path can be found until the store itself
    exists, and a caller treating "absent" as "create it" must not take this for one.
    """


class InvalidPathError(StorageError, ValueError):
    """The path breaks the path rule (see :mod:`blobdrivers.paths`)."""


class InvalidOffsetError(StorageError, ValueError):
    """A read offset or length is negative or otherwise unusable."""


class UnsupportedMethodError(StorageError, NotImplementedError):
    """The driver or its backend cannot do this (for example ``url_for`` on a filesystem)."""


class PreconditionFailedError(StorageError):
    """A conditional write (``if_none_match`` / ``if_match``) found its condition false; nothing changed."""


class ConfigError(StorageError, ValueError):
    """A driver parameter or configuration is invalid; the message names the parameter and what is allowed."""


class DriverNotFoundError(StorageError, LookupError):
    """No driver of that name is registered, or its SDK is not installed (the message names the extra)."""


class WriterClosedError(StorageError, ValueError):
    """A writer was used after ``close()``, ``commit()`` or ``cancel()``."""


__all__ = [
    "BucketNotFoundError",
    "ConfigError",
    "DriverNotFoundError",
    "InvalidOffsetError",
    "InvalidPathError",
    "PathNotFoundError",
    "PreconditionFailedError",
    "StorageError",
    "UnsupportedMethodError",
    "WriterClosedError",
]
