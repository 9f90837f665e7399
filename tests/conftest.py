"""Shared pytest fixtures: local servers started by the tests, and fresh buckets on them.

Session-scoped servers: ``moto_server``, ``azurite_server``, ``gcs_server``,
``redis_server``, ``oss_server``. Per-test containers: ``s3_bucket``,
``azure_container``, ``gcs_bucket``, ``oss_bucket``.

A server that cannot be started makes each test that needs it FAIL under
``CI=true`` and SKIP (with the reason) otherwise: see ``tests/servers/local.py``.
Tests using any of these fixtures get the ``servers`` marker automatically, so
``pytest -m "not servers"`` runs the rest.

Deliberately free of ``blobdrivers`` imports: the fixtures yield plain names,
endpoints and credentials.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar

import pytest

from tests.servers.local import (
    AzuriteServer,
    GcsServer,
    MotoServer,
    RedisServer,
    ServerUnavailable,
    require,
    start_azurite,
    start_gcs,
    start_moto,
    start_redis,
)

OSS_ACCESS_KEY_ID = "test-ak"
OSS_ACCESS_KEY_SECRET = "test-sk"
OSS_BUCKET = "test-bucket"

SERVER_FIXTURES = frozenset(
    {
        "moto_server",
        "azurite_server",
        "gcs_server",
        "redis_server",
        "oss_server",
        "s3_bucket",
        "azure_container",
        "gcs_bucket",
        "oss_bucket",
    }
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "servers: needs a local test server (moto, Azurite, gcp-storage-emulator, redis-server, OSS); "
        "added automatically to tests that use a server fixture",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.servers)


def unique_name(prefix: str = "test") -> str:
    """A bucket/container name valid on S3, Azure, GCS and OSS (lowercase, digits, dashes)."""
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


# --------------------------------------------------------------------------- servers


class _Stoppable(Protocol):
    def stop(self) -> None: ...


_Server = TypeVar("_Server", bound=_Stoppable)


def _serving(name: str, start: Callable[[], _Server]) -> Iterator[_Server]:
    """Start a session's server with ``start``, yield it and stop it; one that cannot start fails or skips."""
    try:
        server = start()
    except ServerUnavailable as exc:
        require(name, exc.reason)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    yield from _serving("moto (S3)", start_moto)


@pytest.fixture(scope="session")
def azurite_server() -> Iterator[AzuriteServer]:
    yield from _serving("Azurite (Azure Blob)", start_azurite)


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[GcsServer]:
    yield from _serving("gcp-storage-emulator (GCS)", start_gcs)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    yield from _serving("redis-server", start_redis)


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """URL of a running, empty Redis (restarted if an earlier test killed it)."""
    if not redis_server.running:
        try:
            redis_server.restart()
        except ServerUnavailable as exc:
            require("redis-server", f"restart failed: {exc.reason}")
    try:
        import redis
    except ImportError as exc:
        require("redis-server", f"redis-py is not installed ({exc})")
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
    finally:
        client.close()
    yield redis_server.url


@pytest.fixture(scope="session")
def oss_server() -> Iterator[Any]:
    try:
        from tests.servers.oss import OssServer
    except Exception as exc:  # missing module, or it fails to import
        require("OSS test server", f"tests.servers.oss cannot be imported: {exc!r}")
    try:
        server = OssServer(
            access_key_id=OSS_ACCESS_KEY_ID, access_key_secret=OSS_ACCESS_KEY_SECRET, buckets=(OSS_BUCKET,)
        )
        server.start()
    except Exception as exc:
        require("OSS test server", f"did not start: {exc!r}")
    try:
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------- per-test buckets


@pytest.fixture
def s3_client(moto_server: MotoServer) -> Iterator[Any]:
    """A boto3 S3 client for moto (fake credentials passed explicitly, not via os.environ)."""
    try:
        import boto3
    except ImportError as exc:
        require("moto (S3)", f"boto3 is not installed ({exc})")
    client = boto3.client("s3", **moto_server.client_kwargs())
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def s3_bucket(s3_client: Any) -> Iterator[str]:
    """A fresh, uniquely named, empty bucket on moto; emptied and deleted afterwards."""
    name = unique_name()
    s3_client.create_bucket(Bucket=name)  # us-east-1: no CreateBucketConfiguration
    yield name
    with contextlib.suppress(Exception):
        for page in s3_client.get_paginator("list_multipart_uploads").paginate(Bucket=name):
            for upload in page.get("Uploads", []):
                s3_client.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
        for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=name):
            keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if keys:
                s3_client.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
        s3_client.delete_bucket(Bucket=name)


@pytest.fixture
def azure_service_client(azurite_server: AzuriteServer) -> Iterator[Any]:
    """``azure.storage.blob.BlobServiceClient`` for Azurite (connection string with the dev key)."""
    try:
        from azure.storage.blob import BlobServiceClient
    except ImportError as exc:
        require("Azurite (Azure Blob)", f"azure-storage-blob is not installed ({exc})")
    client = BlobServiceClient.from_connection_string(azurite_server.connection_string)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def azure_container(azure_service_client: Any) -> Iterator[str]:
    """A fresh, uniquely named container on Azurite; deleted afterwards."""
    name = unique_name()
    azure_service_client.create_container(name)
    yield name
    with contextlib.suppress(Exception):
        azure_service_client.delete_container(name)


@pytest.fixture
def gcs_client(gcs_server: GcsServer) -> Iterator[Any]:
    """``google.cloud.storage.Client`` for the emulator, endpoint passed explicitly.

    No STORAGE_EMULATOR_HOST needed: ``client_options.api_endpoint`` routes JSON,
    upload and download URLs to the emulator; AnonymousCredentials skip auth.
    """
    try:
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage
    except ImportError as exc:
        require("gcp-storage-emulator (GCS)", f"google-cloud-storage is not installed ({exc})")
    client = storage.Client(
        project=gcs_server.project,
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options=ClientOptions(api_endpoint=gcs_server.endpoint),
    )
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def gcs_bucket(gcs_client: Any) -> Iterator[str]:
    """A fresh, uniquely named bucket on the GCS emulator; emptied and deleted afterwards."""
    name = unique_name()
    gcs_client.create_bucket(name)
    yield name
    with contextlib.suppress(Exception):
        bucket = gcs_client.bucket(name)
        for blob in gcs_client.list_blobs(name):
            blob.delete()
        bucket.delete()


@pytest.fixture
def oss_bucket(oss_server: Any) -> str:
    """The OSS server's bucket (``test-bucket``), emptied by ``reset()`` before the test.

    Credentials: ``OSS_ACCESS_KEY_ID`` / ``OSS_ACCESS_KEY_SECRET`` (``test-ak`` / ``test-sk``).
    """
    oss_server.reset()
    return OSS_BUCKET
