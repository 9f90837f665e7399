"""Drivers of every network kind on their local test servers (and the parameters that put them there)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from blobdrivers import StorageDriver

if TYPE_CHECKING:
    from tests.servers.local import AzuriteServer, GcsServer, MotoServer
    from tests.servers.oss import OssServer

KINDS = ("s3", "azure", "gcs", "oss")


def server_params(kind: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """The parameters that put a driver of ``kind`` on the test's bucket (or container) of its local server."""
    if kind == "s3":
        return s3_params(request.getfixturevalue("moto_server"), request.getfixturevalue("s3_bucket"))
    if kind == "azure":
        azurite: AzuriteServer = request.getfixturevalue("azurite_server")
        return {
            "accountname": azurite.account_name,
            "accountkey": azurite.account_key,
            "serviceurl": azurite.blob_endpoint,
            "container": request.getfixturevalue("azure_container"),
        }
    if kind == "gcs":
        gcs: GcsServer = request.getfixturevalue("gcs_server")
        return {"bucket": request.getfixturevalue("gcs_bucket"), "endpoint": gcs.endpoint, "project": gcs.project}
    if kind == "oss":
        oss: OssServer = request.getfixturevalue("oss_server")
        return {
            "bucket": request.getfixturevalue("oss_bucket"),
            "endpoint": oss.endpoint,
            "accesskeyid": "test-ak",
            "accesskeysecret": "test-sk",
        }
    raise ValueError(f"no network driver kind {kind!r}")


def s3_params(moto: MotoServer, bucket: str) -> dict[str, Any]:
    """The parameters that put an S3 driver on ``bucket`` of the moto server."""
    return {
        "bucket": bucket,
        "regionendpoint": moto.endpoint_url,
        "region": moto.region,
        "accesskey": moto.credentials["aws_access_key_id"],
        "secretkey": moto.credentials["aws_secret_access_key"],
    }


def network_driver(kind: str, request: pytest.FixtureRequest, **params: Any) -> StorageDriver:
    """A driver of ``kind`` on the test's bucket (or container) of its local server, plus ``params``."""
    # Imported here: tests that want only the parameters load no cloud SDK.
    from blobdrivers.drivers.azure import AzureDriver
    from blobdrivers.drivers.gcs import GCSDriver
    from blobdrivers.drivers.oss import OSSDriver
    from blobdrivers.drivers.s3 import S3Driver

    drivers: dict[str, type[StorageDriver]] = {"s3": S3Driver, "azure": AzureDriver, "gcs": GCSDriver, "oss": OSSDriver}
    if kind not in drivers:
        raise ValueError(f"no network driver kind {kind!r}")
    return drivers[kind](**server_params(kind, request), **params)
