"""Soak of the local drivers (bounded in CI; longer with BLOBDRIVERS_SOAK_SECONDS)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from blobdrivers import StorageDriver
from blobdrivers.drivers.filesystem import FilesystemDriver
from blobdrivers.drivers.inmemory import InMemoryDriver
from tests.soak import check, soak

SECONDS = float(os.environ.get("BLOBDRIVERS_SOAK_SECONDS", "8"))


@pytest.mark.parametrize("kind", ["filesystem", "inmemory"])
def test_soak(kind: str, tmp_path: Path) -> None:
    driver: StorageDriver = (
        FilesystemDriver(rootdirectory=str(tmp_path), fsync=False) if kind == "filesystem" else InMemoryDriver()
    )
    result = soak(driver, SECONDS)
    print(f"{kind}: {result.operations} operations in {SECONDS} s, fds/rss first vs last quarter "
          f"{result.quarter(0)} -> {result.quarter(3)}")
    check(result)
