"""Every network driver pointed at a :class:`~blobdrivers.testing.faultproxy.FaultProxy` before its local server.

One :class:`Harness` per driver kind (``BUILDERS``): how to build the driver
against any endpoint (its server, or a proxy in front of it), the error body its
backend answers with, and where its leftovers hide. ``tests/test_faults.py`` runs
its fault matrix with them; :func:`faulty_drivers` gives the conformance suite's
``faulty_driver`` fixture hook (``blobdrivers.testing.contract_rules``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from blobdrivers.driver import StorageDriver
from blobdrivers.drivers import oss as oss_module
from blobdrivers.drivers.azure import AzureDriver
from blobdrivers.drivers.gcs import GCSDriver
from blobdrivers.drivers.oss import OSSDriver
from blobdrivers.drivers.s3 import S3Driver
from blobdrivers.params import KiB, MiB
from blobdrivers.testing.contract_rules import FaultyDriver
from blobdrivers.testing.faultproxy import ErrorBody, FaultProxy, azure_error, gcs_error, oss_error, s3_error


@dataclass
class Harness:
    """One driver kind against its local server: how to build it, where its leftovers hide."""

    name: str
    upstream: str
    error_body: ErrorBody
    #: Chunk size of the big put, and of everything else (small, so that many requests happen).
    put_chunk: int
    chunk: int
    build: Callable[[str, dict[str, Any]], StorageDriver]
    #: Leftovers that must never survive an operation: uploads, hidden objects, markers.
    leftovers: Callable[[], list[str]]
    #: Parameters that switch the driver's retries off.
    no_retry: dict[str, Any]
    #: Staged data the backend offers no call to delete (Azure's uncommitted blocks), by blob.
    residue: Callable[[], dict[str, int]] = field(default=lambda: {})

    def driver(self, endpoint: str | None = None, **extra: Any) -> StorageDriver:
        return self.build(endpoint or self.upstream, {"chunksize": self.chunk, **extra})


def _s3(request: pytest.FixtureRequest) -> Harness:
    server = request.getfixturevalue("moto_server")
    bucket = request.getfixturevalue("s3_bucket")
    client = request.getfixturevalue("s3_client")
    chunk = 5 * MiB  # S3's minimum part size

    def build(endpoint: str, extra: dict[str, Any]) -> StorageDriver:
        return S3Driver(
            bucket=bucket,
            regionendpoint=endpoint,
            region=server.region,
            accesskey=server.credentials["aws_access_key_id"],
            secretkey=server.credentials["aws_secret_access_key"],
            # Moves of anything above one part are multipart copies, part by part.
            multipartcopythresholdsize=chunk,
            multipartcopychunksize=chunk,
            maxconcurrency=4,
            **extra,
        )

    def leftovers() -> list[str]:
        found = [f"upload {u['Key']}" for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads") or []]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            found += [f"hidden {item['Key']}" for item in page.get("Contents") or [] if "~" in item["Key"]]
        return found

    return Harness("s3", server.endpoint_url, s3_error, chunk, chunk, build, leftovers, {"retries": 1})


def _azure(request: pytest.FixtureRequest) -> Harness:
    server = request.getfixturevalue("azurite_server")
    container_name = request.getfixturevalue("azure_container")
    container = request.getfixturevalue("azure_service_client").get_container_client(container_name)

    def build(endpoint: str, extra: dict[str, Any]) -> StorageDriver:
        return AzureDriver(
            accountname=server.account_name,
            accountkey=server.account_key,
            container=container_name,
            serviceurl=f"{endpoint}/{server.account_name}",
            maxconcurrency=4,
            **extra,
        )

    def leftovers() -> list[str]:
        # Markers of writers in progress are hidden blobs under ~blobdrivers/uploads/.
        return [f"hidden {blob.name}" for blob in container.list_blobs() if "~" in blob.name]

    return Harness(
        "azure",
        f"http://127.0.0.1:{server.port}",
        azure_error,
        2 * MiB,
        256 * KiB,
        build,
        leftovers,
        {"retries": 1},
        residue=lambda: _azure_residue(container),
    )


def _azure_residue(container: Any) -> dict[str, int]:
    """Uncommitted blocks by blob, including blobs that have nothing but uncommitted blocks.

    Azure has no call to delete uncommitted blocks: the next commit to the blob
    drops them, or the service after a week. They are never visible content.
    """
    residue: dict[str, int] = {}
    for blob in container.list_blobs(include=["uncommittedblobs"]):
        _, uncommitted = container.get_blob_client(blob.name).get_block_list("uncommitted")
        if uncommitted:
            residue[blob.name] = len(uncommitted)
    return residue


def _gcs(request: pytest.FixtureRequest) -> Harness:
    server = request.getfixturevalue("gcs_server")
    bucket = request.getfixturevalue("gcs_bucket")

    def build(endpoint: str, extra: dict[str, Any]) -> StorageDriver:
        return GCSDriver(bucket=bucket, endpoint=endpoint, project=server.project, maxconcurrency=4, **extra)

    def leftovers() -> list[str]:
        # The emulator ignores paging: one answer holds every object. Resumable
        # sessions cannot be listed at all (on GCS either), so they are not checked.
        answer = requests.get(f"{server.endpoint}/storage/v1/b/{bucket}/o", timeout=30).json()
        return [f"hidden {item['name']}" for item in answer.get("items") or [] if "~" in item["name"]]

    # Chunks are multiples of 256 KiB. The streamed put sends its chunks one after the other.
    return Harness("gcs", server.endpoint, gcs_error, 4 * MiB, 256 * KiB, build, leftovers, {"retries": 1})


def _oss(request: pytest.FixtureRequest) -> Harness:
    server = request.getfixturevalue("oss_server")
    bucket = request.getfixturevalue("oss_bucket")
    monkeypatch = request.getfixturevalue("monkeypatch")
    chunk = 128 * KiB  # OSS parts may be as small as 100 KiB
    # The OSS driver moves objects up to 256 MiB with one CopyObject and copies in 64 MiB
    # parts (module constants, not parameters): shrink both so a move of a multi-part
    # object is a multipart copy of several parts, as larger objects get.
    monkeypatch.setattr(oss_module, "MOVE_COPY_THRESHOLD", chunk)
    monkeypatch.setattr(oss_module, "COPY_CHUNK", chunk)

    def build(endpoint: str, extra: dict[str, Any]) -> StorageDriver:
        return OSSDriver(
            bucket=bucket,
            endpoint=endpoint,
            accesskeyid=server.access_key_id,
            accesskeysecret=server.access_key_secret,
            maxconcurrency=4,
            **extra,
        )

    def leftovers() -> list[str]:
        found = [f"upload {key}" for key, _ in server.multipart_uploads(bucket)]
        return found + [f"hidden {key}" for key in server.object_keys(bucket) if "~" in key]

    return Harness("oss", server.endpoint, oss_error, 5 * MiB, chunk, build, leftovers, {"retries": 1})


BUILDERS: dict[str, Callable[[pytest.FixtureRequest], Harness]] = {
    "s3": _s3,
    "azure": _azure,
    "gcs": _gcs,
    "oss": _oss,
}

#: A bucket (container) name valid everywhere that no test creates: the ``missing_bucket_driver`` hooks use it.
MISSING_BUCKET = "rules-no-such-bucket"


@contextlib.contextmanager
def faulty_drivers(request: pytest.FixtureRequest, name: str) -> Iterator[FaultyDriver]:
    """The ``faulty_driver`` hook of driver kind ``name``: ``make(retries)`` gives a driver and its proxy.

    Each driver talks to the test's store through a proxy of its own with faults off
    (the test switches them on) and the backend's error body; every proxy stops on exit.
    """
    harness = BUILDERS[name](request)
    proxies: list[FaultProxy] = []

    def make(retries: int) -> tuple[StorageDriver, FaultProxy]:
        proxy = FaultProxy(harness.upstream, error_body=harness.error_body, enabled=False).start()
        proxies.append(proxy)
        return harness.driver(proxy.endpoint, retries=retries), proxy

    try:
        yield make
    finally:
        for proxy in proxies:
            proxy.stop()


def faulty_driver_hook(name: str) -> Any:
    """The ``faulty_driver`` fixture of driver kind ``name``, to assign in a conformance class body."""

    @pytest.fixture
    def faulty_driver(self: object, request: pytest.FixtureRequest) -> Iterator[FaultyDriver]:
        with faulty_drivers(request, name) as make:
            yield make

    return faulty_driver
