"""Smoke tests: every local server starts and answers a real SDK call over HTTP."""

from __future__ import annotations

import socket
import sys
import time
from typing import Any

import pytest

from tests.servers.local import (
    AzuriteServer,
    GcsServer,
    ManagedProcess,
    MotoServer,
    RedisServer,
    ServerStartError,
    ServerUnavailable,
    free_port,
    require,
    start_gcs,
    start_moto,
    wait_for_http,
    wait_for_port,
)

PAYLOAD = bytes(range(256)) * 4096 + b"tail"  # ~1 MiB, not all one byte


# --------------------------------------------------------------------------- S3 / moto


def test_moto_put_get(moto_server: MotoServer, s3_client: Any, s3_bucket: str) -> None:
    assert moto_server.endpoint_url.startswith("http://127.0.0.1:")
    s3_client.put_object(Bucket=s3_bucket, Key="dir/a b.bin", Body=PAYLOAD)
    got = s3_client.get_object(Bucket=s3_bucket, Key="dir/a b.bin")["Body"].read()
    assert got == PAYLOAD
    ranged = s3_client.get_object(Bucket=s3_bucket, Key="dir/a b.bin", Range="bytes=10-19")["Body"].read()
    assert ranged == PAYLOAD[10:20]


def test_moto_subprocess_and_reset() -> None:
    """The subprocess variant starts, and reset() drops every bucket."""
    boto3 = pytest.importorskip("boto3")
    try:
        server = start_moto(in_process=False)
    except ServerUnavailable as exc:
        require("moto (S3)", exc.reason)
    try:
        client = boto3.client("s3", **server.client_kwargs())
        client.create_bucket(Bucket="reset-me")
        client.put_object(Bucket="reset-me", Key="k", Body=b"v")
        assert [b["Name"] for b in client.list_buckets()["Buckets"]] == ["reset-me"]
        server.reset()
        assert client.list_buckets()["Buckets"] == []
        client.close()
    finally:
        server.stop()


# --------------------------------------------------------------------------- Azure / Azurite


def test_azurite_upload_download(
    azurite_server: AzuriteServer, azure_service_client: Any, azure_container: str
) -> None:
    assert azurite_server.account_name == "devstoreaccount1"
    assert f"BlobEndpoint={azurite_server.blob_endpoint};" in azurite_server.connection_string
    blob = azure_service_client.get_blob_client(azure_container, "dir/a b.bin")
    blob.upload_blob(PAYLOAD, overwrite=True)
    assert blob.download_blob().readall() == PAYLOAD
    assert blob.download_blob(offset=10, length=10).readall() == PAYLOAD[10:20]
    names = [b.name for b in azure_service_client.get_container_client(azure_container).list_blobs()]
    assert names == ["dir/a b.bin"]


# --------------------------------------------------------------------------- GCS / gcp-storage-emulator


def test_gcs_upload_download(gcs_server: GcsServer, gcs_client: Any, gcs_bucket: str) -> None:
    bucket = gcs_client.bucket(gcs_bucket)
    bucket.blob("dir/a b.bin").upload_from_string(PAYLOAD)
    blob = bucket.blob("dir/a b.bin")
    assert blob.download_as_bytes() == PAYLOAD
    assert blob.download_as_bytes(start=10, end=19) == PAYLOAD[10:20]  # end is inclusive
    assert [b.name for b in gcs_client.list_blobs(gcs_bucket)] == ["dir/a b.bin"]


def test_gcs_reset() -> None:
    """reset() (the emulator's /wipe) drops every bucket; on a private emulator."""
    pytest.importorskip("google.cloud.storage")
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    try:
        server = start_gcs()
    except ServerUnavailable as exc:
        require("gcp-storage-emulator (GCS)", exc.reason)
    try:
        client = storage.Client(
            project=server.project,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options=ClientOptions(api_endpoint=server.endpoint),
        )
        client.create_bucket("reset-me").blob("k").upload_from_string(b"v")
        assert [b.name for b in client.list_buckets()] == ["reset-me"]
        server.reset()
        assert list(client.list_buckets()) == []
        client.close()
    finally:
        server.stop()


# --------------------------------------------------------------------------- Redis


def test_redis_set_get_kill_restart(redis_server: RedisServer, redis_url: str) -> None:
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(redis_url, socket_timeout=2)
    try:
        client.set("k", b"v")
        assert client.get("k") == b"v"

        port = redis_server.port
        redis_server.kill()
        assert not redis_server.running
        with pytest.raises(redis.exceptions.ConnectionError):
            client.get("k")

        redis_server.restart()
        assert redis_server.running
        assert redis_server.port == port
        assert client.get("k") is None  # a fresh, empty server on the same port
        client.set("k", b"w")
        assert client.get("k") == b"w"
    finally:
        client.close()


# --------------------------------------------------------------------------- OSS


def test_oss_put_get(oss_server: Any, oss_bucket: str) -> None:
    oss2 = pytest.importorskip("oss2")
    auth = oss2.Auth("test-ak", "test-sk")
    bucket = oss2.Bucket(auth, oss_server.endpoint, oss_bucket)
    bucket.put_object("dir/a b.bin", PAYLOAD)
    assert bucket.get_object("dir/a b.bin").read() == PAYLOAD


# --------------------------------------------------------------------------- helpers


def test_require_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no-such-server unavailable: not installed"):
        require("no-such-server", "not installed")


def test_require_skips_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-such-server unavailable: not installed"):
        require("no-such-server", "not installed")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        require("no-such-server", "not installed")


def test_failed_start_reports_output_tail() -> None:
    proc = ManagedProcess(
        "crasher", [sys.executable, "-c", "import sys; sys.stderr.write('boom: cannot bind'); sys.exit(3)"]
    ).start()
    try:
        with pytest.raises(ServerStartError, match=r"(?s)exited with code 3.*boom: cannot bind"):
            wait_for_http(f"http://127.0.0.1:{free_port()}/", timeout=10, process=proc)
    finally:
        proc.cleanup()


def test_silent_server_times_out_with_clear_error() -> None:
    port = free_port()
    with pytest.raises(ServerStartError, match="did not listen on"):
        wait_for_port("127.0.0.1", port, timeout=0.3, name="nothing")
    assert isinstance(ServerStartError("x"), ServerUnavailable)


def test_missing_executable_is_unavailable() -> None:
    with pytest.raises(ServerUnavailable, match="cannot run"):
        ManagedProcess("ghost", ["/nonexistent/bd-no-such-server"]).start()


def test_stop_escalates_to_sigkill() -> None:
    code = (
        "import signal, socket, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = ManagedProcess("stubborn", [sys.executable, "-c", code]).start()
    try:
        deadline = time.monotonic() + 10
        while "ready" not in proc.log_tail() and time.monotonic() < deadline:
            time.sleep(0.02)
        t0 = time.monotonic()
        returncode = proc.stop(timeout=0.5)
        assert returncode == -9
        assert time.monotonic() - t0 < 5
        assert not proc.running
    finally:
        proc.cleanup()


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
