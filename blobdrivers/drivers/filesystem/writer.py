"""The filesystem driver's writer backend: stages into a private file, parks it on close, publishes on commit."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ...conditions import Conditions

if TYPE_CHECKING:
    from . import FilesystemDriver


class FileWriter:
    """Writer backend staging into a private file; ``close`` parks it for resume."""

    def __init__(self, driver: FilesystemDriver, full: str, fd: int, own: str, parked: str) -> None:
        self._driver = driver
        self._full = full
        self._fd = fd
        self._own = own
        self._parked = parked
        self.size = os.fstat(fd).st_size

    def write(self, data: memoryview) -> None:
        """Append ``data`` to the staged file."""
        while data:
            written = os.write(self._fd, data)
            data = data[written:]

    def close(self) -> None:
        """Fsync the staged file and park it for a resume."""
        self._driver._sync_file(self._fd)
        os.close(self._fd)
        os.replace(self._own, self._parked)

    def commit(self, conditions: Conditions) -> None:
        """Fsync the staged file and publish it under ``conditions``; a failed commit parks it."""
        self._driver._sync_file(self._fd)
        os.close(self._fd)
        try:
            self._driver._publish(self._own, self._full, conditions)
        except BaseException:
            os.replace(self._own, self._parked)  # a failed commit keeps progress for a resume
            raise

    def cancel(self) -> None:
        """Drop the staged file."""
        os.close(self._fd)
        os.unlink(self._own)
