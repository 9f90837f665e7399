"""Drivers of every network kind on their local test servers, for tests that run the same thing on each."""

from __future__ import annotations

from typing import Any

import pytest

from blobdrivers import StorageDriver
from blobdrivers.drivers.azure import AzureDriver
from blobdrivers.drivers.gcs import GCSDriver
from blobdrivers.drivers.oss import OSSDriver
from blobdrivers.drivers.s3 import S3Driver
from tests.servers.local import AzuriteServer, GcsServer, MotoServer
from tests.servers.oss import OssServer

KINDS = ("s3", "azure", "gcs", "oss")


def network_driver(kind: str, request: pytest.FixtureRequest, **params: Any) -> StorageDriver:
    """A driver of ``kind`` on the test's bucket (or container) of its local server, plus ``params``."""
    if kind == "s3":
        moto: MotoServer = request.getfixturevalue("moto_server")
        return S3Driver(
            bucket=request.getfixturevalue("s3_bucket"),
            regionendpoint=moto.endpoint_url,
            region=moto.region,
            accesskey=moto.credentials["aws_access_key_id"],
            secretkey=moto.credentials["aws_secret_access_key"],
            **params,
        )
    if kind == "azure":
        azurite: AzuriteServer = request.getfixturevalue("azurite_server")
        return AzureDriver(
            accountname=azurite.account_name,
            accountkey=azurite.account_key,
            serviceurl=azurite.blob_endpoint,
            container=request.getfixturevalue("azure_container"),
            **params,
        )
    if kind == "gcs":
        gcs: GcsServer = request.getfixturevalue("gcs_server")
        return GCSDriver(
            bucket=request.getfixturevalue("gcs_bucket"), endpoint=gcs.endpoint, project=gcs.project, **params
        )
    if kind == "oss":
        oss: OssServer = request.getfixturevalue("oss_server")
        return OSSDriver(
            bucket=request.getfixturevalue("oss_bucket"),
            endpoint=oss.endpoint,
            accesskeyid="test-ak",
            accesskeysecret="test-sk",
            **params,
        )
    raise ValueError(f"no network driver kind {kind!r}")
