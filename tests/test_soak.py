"""Soak of every driver: 32 threads of mixed operations, bounded in CI.

The local drivers soak for ``BLOBDRIVERS_SOAK_SECONDS`` (default 8 s) each and the
network drivers (against their local servers) for the same time; set the variable
higher for the long variant (say 600). Each test prints the operations it ran and
the descriptors and RSS of the first and last quarters.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from blobdrivers import StorageDriver
from blobdrivers.drivers.filesystem import FilesystemDriver
from blobdrivers.drivers.inmemory import InMemoryDriver
from tests.network import network_driver
from tests.soak import SoakResult, check, soak

SECONDS = float(os.environ.get("BLOBDRIVERS_SOAK_SECONDS", "8"))


def _report(kind: str, result: SoakResult) -> None:
    (first_fds, first_rss), (last_fds, last_rss) = result.quarter(0), result.quarter(3)
    print(
        f"soak {kind}: {result.operations} operations in {SECONDS:g} s ({len(result.samples)} samples); "
        f"fds {first_fds:.1f} -> {last_fds:.1f}, RSS {first_rss / 2**20:.1f} -> {last_rss / 2**20:.1f} MiB "
        f"(first -> last quarter); tolerated errors: {result.tolerated}"
    )


@pytest.mark.parametrize("kind", ["filesystem", "inmemory"])
def test_soak(kind: str, tmp_path: Path) -> None:
    driver: StorageDriver = (
        FilesystemDriver(rootdirectory=str(tmp_path), fsync=False) if kind == "filesystem" else InMemoryDriver()
    )
    result = soak(driver, SECONDS)
    _report(kind, result)
    check(result)


def _network_driver(kind: str, request: pytest.FixtureRequest) -> StorageDriver:
    """A driver on a fresh prefix of ``kind``'s local server, with small chunks so parts race too."""
    chunks = {"s3": "5MiB", "azure": "32KiB", "gcs": "256KiB", "oss": "100KiB"}
    root = f"/soak-{uuid.uuid4().hex[:12]}"
    return network_driver(kind, request, chunksize=chunks[kind], rootdirectory=root)


#: Plain StorageErrors each driver documents for racing operations (besides PathNotFoundError).
#: A source rewritten while a cat or move reads or copies it fails the call rather than mixing
#: versions: S3 and OSS pin sources by etag (docs/drivers/s3.md, oss.md), Azure guards reads and
#: copies with If-Match / x-ms-source-if-match, and a writer's commit whose blocks a concurrent
#: commit discarded raises (docs/drivers/azure.md). GCS pins by generation, which the emulator ignores.
RACES: dict[str, tuple[str, ...]] = {
    "s3": (r"changed while it was being read$", r"changed during the copy$"),
    "oss": (r"changed while it was being read$", r"changed during the copy$"),
    "azure": (
        r"changed while it was being read$",
        r"changed during the operation \(\w+\)$",
        r"were discarded by a concurrent write to that path; nothing was published$",
    ),
    "gcs": (),
}


@pytest.mark.parametrize("kind", ["s3", "azure", "gcs", "oss"])
def test_soak_network(kind: str, request: pytest.FixtureRequest) -> None:
    driver = _network_driver(kind, request)
    result = soak(driver, SECONDS, tolerate=RACES[kind])
    _report(kind, result)
    check(result)
