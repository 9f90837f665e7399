"""Azure Blob driver against Azurite over real HTTP: the conformance suite plus Azure-specific cases.

Azurite lacks Put Block From URL and Put Blob From URL, so on it ``cat`` and the
legacy-blob conversion take their streaming fallbacks; the server-side request is
checked by fault-case tests that stand in for the missing call. Everything else
runs against the emulator, which verifies SharedKey and SAS signatures, SAS
expiry and If-Match.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import pickle
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobClient, BlobServiceClient, BlobType, ContainerSasPermissions, generate_container_sas

import blobdrivers
from blobdrivers.drivers import azure as azure_module
from blobdrivers.drivers.azure import AzureDriver
from blobdrivers.drivers.azure import copies as copies_module
from blobdrivers.errors import (
    BucketNotFoundError,
    ConfigError,
    PathNotFoundError,
    PreconditionFailedError,
    StorageError,
)
from blobdrivers.testing import DriverConformance
from blobdrivers.testing.contract_namespace import WriteRaw
from blobdrivers.testing.contract_rules import MissingBucket
from blobdrivers.testing.faultproxy import FaultProxy, azure_error
from blobdrivers.testing.helpers import payload as _payload
from blobdrivers.testing.helpers import race as _race
from tests.proxied import MISSING_BUCKET, faulty_driver_hook
from tests.servers.local import AzuriteServer

CHUNK = 64 * 1024
SMALL_CHUNK = 16 * 1024

# urllib without proxies: we only ever talk to 127.0.0.1.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture
def params(azurite_server: AzuriteServer, azure_container: str) -> dict[str, Any]:
    return {
        "accountname": azurite_server.account_name,
        "accountkey": azurite_server.account_key,
        "container": azure_container,
        "serviceurl": azurite_server.blob_endpoint,
        "chunksize": CHUNK,
    }


@pytest.fixture
def drv(params: dict[str, Any]) -> AzureDriver:
    return AzureDriver(**params)


@pytest.fixture
def small(params: dict[str, Any]) -> AzureDriver:
    return AzureDriver(**{**params, "chunksize": SMALL_CHUNK})


@pytest.fixture
def container(azure_service_client: BlobServiceClient, azure_container: str) -> Any:
    return azure_service_client.get_container_client(azure_container)


def _write_raw_blob(container: Any, root: str) -> WriteRaw:
    def write(key: str, data: bytes) -> bool:
        if {".", ".."} & set(key.split("/")):
            return False  # the SDK normalizes "." and ".." in the URL, so the request signs another name
        container.upload_blob(root + key, data, overwrite=True)
        return True

    return write


class TestAzureConformance(DriverConformance):
    @pytest.fixture
    def driver(self, params: dict[str, Any]) -> AzureDriver:
        return AzureDriver(**params)

    @pytest.fixture
    def foreign_keys(self, container: Any) -> WriteRaw:
        return _write_raw_blob(container, "")

    faulty_driver = faulty_driver_hook("azure")

    @pytest.fixture
    def missing_bucket_driver(self, params: dict[str, Any]) -> MissingBucket:
        return AzureDriver(**{**params, "container": MISSING_BUCKET}), MISSING_BUCKET


class TestAzureConnectionStringRootConformance(DriverConformance):
    """The same contract through a connection string, below a rootdirectory, with 16 KiB blocks."""

    @pytest.fixture
    def driver(self, azurite_server: AzuriteServer, azure_container: str) -> AzureDriver:
        return AzureDriver(
            connectionstring=azurite_server.connection_string,
            container=azure_container,
            rootdirectory="/registry/v2",
            chunksize=SMALL_CHUNK,
            maxconcurrency=3,
        )

    @pytest.fixture
    def foreign_keys(self, container: Any) -> WriteRaw:
        return _write_raw_blob(container, "registry/v2/")


# ---------------------------------------------------------------------- configuration


def test_from_url_and_factory(azurite_server: AzuriteServer, azure_container: str) -> None:
    query = urllib.parse.urlencode(
        {
            "accountname": azurite_server.account_name,
            "accountkey": azurite_server.account_key,
            "serviceurl": azurite_server.blob_endpoint,
            "chunksize": "1MiB",
            "maxconcurrency": "4",
            "retries": "2",
        }
    )
    store = blobdrivers.from_url(f"azure://{azure_container}/some/prefix?{query}")
    assert isinstance(store, AzureDriver)
    assert (store.chunk_size, store.concurrency, store.retries) == (1024 * 1024, 4, 2)
    store.put("/x", b"via url")
    assert store.get("/x") == b"via url"
    plain = blobdrivers.create(
        "azure", {"connectionstring": azurite_server.connection_string, "container": azure_container}
    )
    assert plain.get("/some/prefix/x") == b"via url"
    assert plain.list("/") == ["/some"]
    store.delete("/x")


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"container": None}, "container"),
        ({"container": "Bad_Name"}, "container"),
        ({"container": "a--b"}, "container"),
        ({"sastoken": "sv=1&sig=abc"}, "at most one"),
        ({"accountname": None}, "accountname"),
        ({"accountname": "Not-Valid"}, "accountname"),
        ({"accountkey": "not base64 !!"}, "accountkey"),
        ({"chunksize": "1KiB"}, "chunksize"),
        ({"chunksize": "lots"}, "chunksize"),
        ({"maxconcurrency": 0}, "maxconcurrency"),
        ({"retries": -1}, "retries"),
        ({"serviceurl": "ftp://example"}, "serviceurl"),
        ({"realm": "bad realm"}, "realm"),
        ({"unknown": "x"}, "unknown"),
        ({"accountkey": None, "credentials": "type=default"}, "credentials"),
        ({"accountkey": None, "credentials": {"type": "client_secret", "clientid": "c"}}, "credentials"),
        ({"accountkey": None, "sastoken": "sv=2020&se=x"}, "sastoken"),
    ],
)
def test_config_errors_name_the_parameter(azurite_server: AzuriteServer, overrides: dict[str, Any], names: str) -> None:
    params: dict[str, Any] = {
        "accountname": azurite_server.account_name,
        "accountkey": azurite_server.account_key,
        "container": "some-container",
    }
    for key, value in overrides.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    with pytest.raises(ConfigError) as caught:
        AzureDriver(**params)
    message = str(caught.value)
    assert names in message
    assert azurite_server.account_key not in message
    assert "not base64 !!" not in message


def test_connection_string_conflicts_and_garbage(azurite_server: AzuriteServer) -> None:
    with pytest.raises(ConfigError, match="connectionstring"):
        AzureDriver(connectionstring="garbage without pairs", container="abc")
    with pytest.raises(ConfigError, match="accountname"):
        AzureDriver(
            connectionstring=azurite_server.connection_string,
            accountname=azurite_server.account_name,
            container="abc",
        )
    with pytest.raises(ConfigError) as caught:
        AzureDriver(
            connectionstring=azurite_server.connection_string, accountkey=azurite_server.account_key, container="abc"
        )
    assert azurite_server.account_key not in str(caught.value)


def test_missing_container_is_a_clear_error(params: dict[str, Any]) -> None:
    store = AzureDriver(**{**params, "container": "no-such-container"})
    operations = {
        "put": lambda: store.put("/x", b"x"),
        "get": lambda: store.get("/x"),
        "stat": lambda: store.stat("/x"),
        "list": lambda: store.list("/"),
        "delete": lambda: store.delete("/x"),
        "writer": lambda: store.writer("/x", append=True),
    }
    for name, operation in operations.items():
        with pytest.raises(BucketNotFoundError) as caught:
            operation()
        assert str(caught.value).endswith("container 'no-such-container' does not exist"), name
        assert not isinstance(caught.value, PathNotFoundError)


@pytest.mark.parametrize("attempts", [1, 3])
def test_retries_counts_every_attempt_of_a_request(
    params: dict[str, Any], azurite_server: AzuriteServer, attempts: int
) -> None:
    """``retries=N``: a server that always answers 503 sees exactly N requests for one operation."""
    upstream = f"http://127.0.0.1:{azurite_server.port}"
    with FaultProxy(upstream, rate=1.0, modes=("error",), error_body=azure_error) as proxy:
        serviceurl = f"{proxy.endpoint}/{azurite_server.account_name}"
        store = AzureDriver(**{**params, "serviceurl": serviceurl, "retries": attempts})
        for operation in (lambda: store.put("/busy", b"x"), lambda: store.get("/busy")):
            proxy.reset_stats()
            with pytest.raises(StorageError, match=r"HTTP 50[03]"):
                operation()
            assert proxy.stats["requests"] == attempts


def test_a_missing_cat_source_names_the_callers_path(params: dict[str, Any]) -> None:
    store = AzureDriver(**{**params, "rootdirectory": "/root"})
    store.put("/a/present", b"x")
    with pytest.raises(PathNotFoundError) as caught:
        store.cat("/a/joined", ["/a/present", "/a/missing"])
    assert caught.value.path == "/a/missing"
    assert "/a/missing" in str(caught.value) and "root/a" not in str(caught.value)
    store.delete("/a")


# ---------------------------------------------------------------------- secrets


def test_secrets_never_in_repr_errors_or_debug_logs(
    params: dict[str, Any], azurite_server: AzuriteServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store = AzureDriver(**params)
    key = azurite_server.account_key
    assert key not in repr(store)
    assert key not in repr(pickle.loads(pickle.dumps(store)))
    store.put("/s/a", _payload(CHUNK * 2 + 3))
    store.put("/s/b", b"b")
    url = store.url_for("/s/a")
    signature = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["sig"][0]
    store.cat("/s/c", ["/s/a", "/s/b"])
    store.move("/s/c", "/s/d")
    with store.writer("/s/w") as writer:
        writer.write(_payload(CHUNK + 1))
    list(store.walk("/"))
    wrong = AzureDriver(**{**params, "accountkey": base64.b64encode(b"wrong key" * 8).decode()})
    with pytest.raises(StorageError) as caught:
        wrong.put("/denied", b"x")
    assert "denied" in str(caught.value) or "403" in str(caught.value)
    store.delete("/s")
    records = [record.getMessage() for record in caplog.records]
    assert records, "expected debug logging from the driver and the SDK"
    for text in [*records, str(caught.value), repr(caught.value)]:
        assert key not in text
        assert signature not in text
        assert urllib.parse.quote(signature, safe="") not in text


def test_sas_token_mode_keeps_the_token_out_of_logs_and_errors(
    params: dict[str, Any], azurite_server: AzuriteServer, caplog: pytest.LogCaptureFixture
) -> None:
    container = params["container"]
    token = generate_container_sas(
        azurite_server.account_name,
        container,
        account_key=azurite_server.account_key,
        permission=ContainerSasPermissions(read=True, write=True, create=True, delete=True, list=True, add=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    signature = urllib.parse.parse_qs(token)["sig"][0]
    caplog.set_level(logging.DEBUG)
    store = AzureDriver(
        accountname=azurite_server.account_name,
        sastoken="?" + token,
        container=container,
        serviceurl=azurite_server.blob_endpoint,
        chunksize=SMALL_CHUNK,
    )
    assert signature not in repr(store)
    content = _payload(3 * SMALL_CHUNK + 5)
    store.put("/t/a", content)
    store.put("/t/b", b"tail")
    store.cat("/t/c", ["/t/a", "/t/b"])
    store.move("/t/c", "/t/d")
    assert store.get("/t/d") == content + b"tail"
    with pytest.raises(blobdrivers.errors.UnsupportedMethodError):
        store.url_for("/t/d")
    expired = generate_container_sas(
        azurite_server.account_name,
        container,
        account_key=azurite_server.account_key,
        permission=ContainerSasPermissions(read=True),
        expiry=datetime.now(UTC) - timedelta(hours=1),
    )
    expired_signature = urllib.parse.parse_qs(expired)["sig"][0]
    stale = AzureDriver(
        accountname=azurite_server.account_name,
        sastoken=expired,
        container=container,
        serviceurl=azurite_server.blob_endpoint,
    )
    with pytest.raises(StorageError) as caught:
        stale.get("/t/d")
    store.delete("/t")
    texts = [record.getMessage() for record in caplog.records]
    assert any("urllib3" in record.name for record in caplog.records), "urllib3 request lines were not captured"
    chain: list[BaseException] = [caught.value]
    while chain[-1].__cause__ is not None and len(chain) < 5:
        chain.append(chain[-1].__cause__)  # type: ignore[arg-type]
    texts += [str(error) for error in chain] + [repr(error) for error in chain]
    for text in texts:
        for secret in (signature, urllib.parse.quote(signature, safe=""), expired_signature):
            assert secret not in text


# ---------------------------------------------------------------------- BlockBlobs, legacy AppendBlobs


def _append_blob(container: Any, name: str, content: bytes) -> BlobClient:
    blob = container.get_blob_client(name)
    blob.create_append_blob()
    for start in range(0, len(content), 4000):
        blob.append_block(content[start : start + 4000])
    assert blob.get_blob_properties().blob_type == BlobType.APPENDBLOB
    return blob


@pytest.mark.parametrize("size", [10, 3 * CHUNK + 1], ids=["single-put", "multi-block"])
def test_put_replaces_a_legacy_append_blob_by_a_block_blob(drv: AzureDriver, container: Any, size: int) -> None:
    legacy = _append_blob(container, "legacy", b"old appended content")
    content = _payload(size, seed=size)
    drv.put("/legacy", content)
    assert drv.get("/legacy") == content
    assert legacy.get_blob_properties().blob_type == BlobType.BLOCKBLOB
    drv.delete("/legacy")


def test_writer_and_cat_and_move_over_legacy_append_blobs(drv: AzureDriver, container: Any) -> None:
    _append_blob(container, "log", b"legacy head|")
    appender = drv.writer("/log", append=True)
    assert appender.size == len(b"legacy head|")
    appender.write(_payload(CHUNK + 9))
    appender.commit()
    assert drv.get("/log") == b"legacy head|" + _payload(CHUNK + 9)
    assert container.get_blob_client("log").get_blob_properties().blob_type == BlobType.BLOCKBLOB

    _append_blob(container, "joined", b"to be replaced")
    drv.put("/part", _payload(2 * CHUNK))
    drv.cat("/joined", ["/log", "/part"])
    assert drv.get("/joined") == drv.get("/log") + _payload(2 * CHUNK)

    _append_blob(container, "target", b"legacy target")
    drv.move("/part", "/target")
    assert drv.get("/target") == _payload(2 * CHUNK)

    _append_blob(container, "legacy-src", b"an old upload")
    drv.move("/legacy-src", "/moved")
    assert drv.get("/moved") == b"an old upload"
    assert container.get_blob_client("moved").get_blob_properties().blob_type == BlobType.BLOCKBLOB
    with pytest.raises(PathNotFoundError):
        drv.stat("/legacy-src")
    for path in ("/log", "/joined", "/target", "/moved"):
        drv.delete(path)


def test_large_legacy_append_blob_is_refused_not_replaced_non_atomically(drv: AzureDriver, container: Any) -> None:
    legacy_content = _payload(CHUNK + 100, seed=3)
    _append_blob(container, "big-legacy", legacy_content)
    with pytest.raises(StorageError, match="legacy"):
        drv.put("/big-legacy", _payload(3 * CHUNK))
    blob = container.get_blob_client("big-legacy")
    assert blob.download_blob().readall() == legacy_content
    assert blob.get_blob_properties().blob_type == BlobType.APPENDBLOB
    drv.delete("/big-legacy")


def test_multi_block_put_uses_one_session_of_equal_length_ids(drv: AzureDriver, container: Any) -> None:
    drv.put("/blocks", _payload(3 * CHUNK + 5))
    committed, uncommitted = container.get_blob_client("blocks").get_block_list("all")
    assert not uncommitted
    ids = [block.id for block in committed]
    assert len(ids) == 4 and len({len(i) for i in ids}) == 1
    sessions = {i[:-10] for i in ids}
    assert len(sessions) == 1
    assert [int(i[-10:]) for i in ids] == [0, 1, 2, 3]
    drv.delete("/blocks")


# ---------------------------------------------------------------------- writer


def test_resume_across_instances_reads_the_staging_block_list(drv: AzureDriver, container: Any) -> None:
    first = _payload(2 * CHUNK + 100, seed=1)
    writer = drv.writer("/up/load")
    writer.write(first)
    writer.close()
    # Blocks are staged on the session's hidden staging blob, never on the target, where
    # any other commit to the path would discard them.
    assert not container.get_blob_client("up/load").exists()
    listed = [props.name for props in container.list_blobs(include=["uncommittedblobs"])]
    staging = [name for name in listed if "~blobdrivers/uploads/" in name and "." in name]
    assert len(staging) == 1
    _, uncommitted = container.get_blob_client(staging[0]).get_block_list("all")
    assert sum(block.size for block in uncommitted) == len(first)
    assert len({block.id[:-10] for block in uncommitted}) == 1  # one session
    other = pickle.loads(pickle.dumps(drv))
    resumed = other.writer("/up/load", append=True)
    assert resumed.size == len(first)
    second = _payload(CHUNK + 1, seed=2)
    resumed.write(second)
    resumed.close()
    third = pickle.loads(pickle.dumps(drv)).writer("/up/load", append=True)
    assert third.size == len(first) + len(second)
    third.commit()
    assert drv.get("/up/load") == first + second
    # The staging blob and the marker are gone.
    assert [props.name for props in container.list_blobs(include=["uncommittedblobs"])] == ["up/load"]
    assert drv.list("/") == ["/up"]
    drv.delete("/up")


def test_nothing_committed_after_cancel_and_markers_stay_hidden(drv: AzureDriver, container: Any) -> None:
    writer = drv.writer("/d/w")
    writer.write(_payload(2 * CHUNK + 1))
    writer.close()
    assert drv.list("/") == []
    assert list(drv.walk("/")) == []
    with pytest.raises(PathNotFoundError):
        drv.stat("/d")
    resumed = drv.writer("/d/w", append=True)
    resumed.write(b"more")
    resumed.cancel()
    with pytest.raises(PathNotFoundError):
        drv.stat("/d/w")
    with pytest.raises(PathNotFoundError):
        drv.writer("/d/w", append=True)  # the cancel dropped the session marker
    visible = [props.name for props in container.list_blobs() if "~" not in props.name]
    assert visible == []
    assert drv.list("/") == []


def test_a_put_never_discards_a_parked_writer_session(drv: AzureDriver) -> None:
    content = _payload(2 * CHUNK, seed=10)
    writer = drv.writer("/u")
    writer.write(content)
    writer.close()
    # A Put Block List discards the blob's other uncommitted blocks: the writer's are on
    # its staging blob, out of reach.
    rival = _payload(2 * CHUNK + 1, seed=11)
    drv.put("/u", rival)
    resumed = drv.writer("/u", append=True)
    assert resumed.size == len(content)
    resumed.commit()
    assert drv.get("/u") == content
    drv.delete("/u")


def test_a_lost_staging_blob_is_reported_not_resumed_silently(drv: AzureDriver, container: Any) -> None:
    writer = drv.writer("/u")
    writer.write(_payload(2 * CHUNK))
    writer.close()
    for props in container.list_blobs(include=["uncommittedblobs"]):
        if "." in props.name:
            container.get_blob_client(props.name).delete_blob()
    with pytest.raises(StorageError, match="lost"):
        drv.writer("/u", append=True)
    with pytest.raises(PathNotFoundError):
        drv.writer("/u", append=True)  # the stale marker is gone too


def test_append_reuses_committed_blocks_without_copying(drv: AzureDriver, container: Any) -> None:
    head = _payload(2 * CHUNK, seed=4)
    drv.put("/a", head)
    committed_before, _ = container.get_blob_client("a").get_block_list("all")
    appender = drv.writer("/a", append=True)
    _, staged = container.get_blob_client("a").get_block_list("all")
    assert staged == []  # nothing copied at open
    appender.write(b"tail")
    appender.commit()
    committed_after, _ = container.get_blob_client("a").get_block_list("all")
    assert [b.id for b in committed_after[: len(committed_before)]] == [b.id for b in committed_before]
    assert drv.get("/a") == head + b"tail"
    drv.delete("/a")


def test_append_fails_cleanly_when_the_base_changed(drv: AzureDriver) -> None:
    drv.put("/base", _payload(2 * CHUNK))
    appender = drv.writer("/base", append=True)
    appender.write(b"tail")
    drv.put("/base", b"rewritten meanwhile")
    with pytest.raises(PreconditionFailedError):
        appender.commit()
    assert drv.get("/base") == b"rewritten meanwhile"
    drv.delete("/base")


def test_resent_block_never_duplicates_data(drv: AzureDriver, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault case: every Put Block is sent twice, as after a timeout whose request did land."""
    real = BlobClient.stage_block
    sent: list[str] = []

    def twice(self: BlobClient, block_id: str, data: Any, length: int | None = None, **kwargs: Any) -> Any:
        sent.append(self.blob_name)
        real(self, block_id, data, length=length, **kwargs)
        return real(self, block_id, data, length=length, **kwargs)

    monkeypatch.setattr(BlobClient, "stage_block", twice)
    content = _payload(3 * CHUNK + 11, seed=8)
    with drv.writer("/twice") as writer:
        writer.write(content)
    drv.put("/twice-put", content)
    # Four blocks each for the writer's staging blob and the put (a commit's copy to the
    # target may stream through this client as well, where Put Block From URL is missing).
    assert sum("~blobdrivers/uploads/" in name for name in sent) == 4 and sent.count("twice-put") == 4
    assert drv.get("/twice") == content
    assert drv.get("/twice-put") == content
    drv.delete("/twice")
    drv.delete("/twice-put")


def test_a_block_that_cannot_be_staged_fails_the_writer(drv: AzureDriver, monkeypatch: pytest.MonkeyPatch) -> None:
    real = BlobClient.stage_block

    def flaky(self: BlobClient, block_id: str, data: Any, length: int | None = None, **kwargs: Any) -> Any:
        if block_id.endswith("0000000001"):
            raise HttpResponseError(message="service unavailable")
        return real(self, block_id, data, length=length, **kwargs)

    monkeypatch.setattr(BlobClient, "stage_block", flaky)
    writer = drv.writer("/broken")
    with pytest.raises(StorageError):
        writer.write(_payload(3 * CHUNK))
        writer.write(b"more")  # the failure surfaces here at the latest
        writer.commit()
    with contextlib.suppress(StorageError):
        writer.close()  # parks what came before the failed block (and says so when not raised yet)
    monkeypatch.undo()
    with pytest.raises(PathNotFoundError):
        drv.stat("/broken")
    resumed = drv.writer("/broken", append=True)
    assert resumed.size == CHUNK
    resumed.cancel()


# ---------------------------------------------------------------------- concurrency


def test_sixteen_concurrent_multi_block_puts_never_mix(small: AzureDriver, container: Any) -> None:
    contents = [_payload(4 * SMALL_CHUNK + i, seed=200 + i) for i in range(16)]
    results = _race(16, lambda i: small.put("/same", contents[i]))
    assert all(result is None for result in results), results
    final = small.get("/same")
    assert final in contents
    committed, _ = container.get_blob_client("same").get_block_list("all")
    assert len({block.id[:-10] for block in committed}) == 1  # exactly one put's blocks
    small.delete("/same")


def test_sixteen_concurrent_multi_block_writers_never_mix(small: AzureDriver) -> None:
    contents = [_payload(3 * SMALL_CHUNK + 17 * i, seed=300 + i) for i in range(16)]

    def write(index: int) -> None:
        with small.writer("/w") as writer:
            for start in range(0, len(contents[index]), 5000):
                writer.write(contents[index][start : start + 5000])

    results = _race(16, write)
    winners = [r for r in results if r is None]
    assert winners, results
    # A writer whose staged blocks another commit discarded fails loudly; none publishes a mix.
    assert all(r is None or (isinstance(r, StorageError) and "discarded" in str(r)) for r in results), results
    assert small.get("/w") in contents
    small.delete("/w")


def test_concurrent_multi_block_cats_all_succeed_with_whole_content(small: AzureDriver) -> None:
    parts = [_payload(2 * SMALL_CHUNK + 3, seed=50), _payload(SMALL_CHUNK, seed=51)]
    small.put("/p0", parts[0])
    small.put("/p1", parts[1])
    results = _race(8, lambda i: small.cat("/joined", ["/p0", "/p1"]))
    assert all(result is None for result in results), results
    assert small.get("/joined") == b"".join(parts)
    for path in ("/p0", "/p1", "/joined"):
        small.delete(path)


# ---------------------------------------------------------------------- conditions


def test_conditional_put_survives_a_retry_of_its_own_request(drv: AzureDriver, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault case: the first Put Blob lands but its answer is lost, so the retry meets our own blob."""
    real = BlobClient.upload_blob

    def lost_answer(self: BlobClient, data: Any, *args: Any, **kwargs: Any) -> Any:
        real(self, data, *args, **kwargs)
        return real(self, data, *args, **kwargs)  # the "retry": fails its own condition

    monkeypatch.setattr(BlobClient, "upload_blob", lost_answer)
    drv.put("/once", b"mine", if_none_match="*")
    assert drv.get("/once") == b"mine"
    etag = drv.stat("/once").etag
    drv.put("/once", b"again", if_match=etag)
    assert drv.get("/once") == b"again"
    monkeypatch.undo()
    with pytest.raises(PreconditionFailedError):
        drv.put("/once", b"rival", if_none_match="*")
    with pytest.raises(PreconditionFailedError):
        drv.put("/once", _payload(3 * CHUNK), if_match=etag)  # stale etag, multi-block path
    assert drv.get("/once") == b"again"
    drv.delete("/once")


def test_conditional_multi_block_commit(drv: AzureDriver, container: Any) -> None:
    content = _payload(2 * CHUNK + 1)
    drv.put("/m", content, if_none_match="*")
    with pytest.raises(PreconditionFailedError):
        drv.put("/m", content, if_none_match="*")
    assert container.get_blob_client("m").get_block_list("all")[1] == []  # refused before uploading
    etag = drv.stat("/m").etag
    assert etag
    drv.put("/m", content[::-1], if_match=etag)
    assert drv.get("/m") == content[::-1]
    drv.delete("/m")


# ---------------------------------------------------------------------- cat: server-side path


def test_cat_detects_missing_copy_from_url_once_and_streams(
    drv: AzureDriver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []
    real = BlobClient.stage_block_from_url

    def spy(self: BlobClient, *args: Any, **kwargs: Any) -> Any:
        calls.append(self.blob_name)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(BlobClient, "stage_block_from_url", spy)
    caplog.set_level(logging.DEBUG, logger="blobdrivers.azure")
    parts = [_payload(2 * CHUNK, seed=60), _payload(CHUNK + 1, seed=61)]
    drv.put("/c0", parts[0])
    drv.put("/c1", parts[1])
    drv.cat("/cat1", ["/c0", "/c1"])
    drv.cat("/cat2", ["/c1", "/c0"])
    assert drv.get("/cat1") == parts[0] + parts[1]
    assert drv.get("/cat2") == parts[1] + parts[0]
    assert calls == ["cat1"]  # tried once (Azurite answers 501), then never again
    messages = " ".join(record.getMessage() for record in caplog.records)
    assert "no Put Block/Blob From URL" in messages and "streaming copy" in messages
    for path in ("/c0", "/c1", "/cat1", "/cat2"):
        drv.delete(path)


def test_cat_server_side_request(drv: AzureDriver, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault case: stand in for the Put Block From URL that Azurite lacks and check every request.

    The stand-in fetches the source URL the driver built, with plain urllib and the
    requested range (so Azurite verifies the SAS), and stages the bytes under the
    block id the driver chose; the driver then commits against the real emulator.
    """
    requests_seen: list[dict[str, Any]] = []

    def block_from_url(
        self: BlobClient,
        block_id: str,
        source_url: str,
        source_offset: int | None = None,
        source_length: int | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        assert source_offset is not None and source_length is not None
        request = urllib.request.Request(
            source_url, headers={"Range": f"bytes={source_offset}-{source_offset + source_length - 1}"}
        )
        with _OPENER.open(request, timeout=30) as response:
            data = response.read()
            etag = response.headers["ETag"]
        conditions = kwargs["source_modified_access_conditions"]
        requests_seen.append(
            {
                "target": self.blob_name,
                "id": block_id,
                "source": urllib.parse.urlsplit(source_url).path.rsplit("/", 1)[-1],
                "sas": "sig=" in source_url,
                "range": (source_offset, source_length),
                "if_match_ok": conditions.source_if_match == etag,
            }
        )
        self.stage_block(block_id, data)
        return {}

    monkeypatch.setattr(BlobClient, "stage_block_from_url", block_from_url)
    monkeypatch.setattr(copies_module, "MAX_COPY_RANGE", CHUNK)  # several ranges per source
    sources = [_payload(2 * CHUNK + 10, seed=70), _payload(CHUNK, seed=71), b""]
    for index, content in enumerate(sources):
        drv.put(f"/s{index}", content)
    drv.cat("/server-side", ["/s0", "/s1", "/s2"])
    assert drv.get("/server-side") == b"".join(sources)
    assert drv._copier.copy_from_url is True
    requests_seen.sort(key=lambda r: r["id"])  # ranges run in parallel: order them by block index
    assert [r["range"] for r in requests_seen] == [(0, CHUNK), (CHUNK, CHUNK), (2 * CHUNK, 10), (0, CHUNK)]
    assert [r["source"] for r in requests_seen] == ["s0", "s0", "s0", "s1"]
    assert all(r["sas"] and r["if_match_ok"] and r["target"] == "server-side" for r in requests_seen)
    ids = [r["id"] for r in requests_seen]
    assert len({len(i) for i in ids}) == 1 and len({i[:-10] for i in ids}) == 1
    assert sorted(int(i[-10:]) for i in ids) == [0, 1, 2, 3]
    for index in range(3):
        drv.delete(f"/s{index}")
    drv.delete("/server-side")


# ---------------------------------------------------------------------- move


def test_large_move_takes_the_polled_async_copy_on_azurite(drv: AzureDriver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(copies_module, "MAX_SYNC_COPY", CHUNK)
    content = _payload(3 * CHUNK, seed=80)
    drv.put("/big-src", content)
    drv.put("/big-dst", b"old")
    drv.move("/big-src", "/big-dst")
    assert drv.get("/big-dst") == content
    with pytest.raises(PathNotFoundError):
        drv.stat("/big-src")
    drv.delete("/big-dst")


def test_failed_copy_leaves_the_source(drv: AzureDriver, monkeypatch: pytest.MonkeyPatch) -> None:
    drv.put("/keep", b"source")

    def broken(self: BlobClient, *args: Any, **kwargs: Any) -> Any:
        raise HttpResponseError(message="copy failed")

    monkeypatch.setattr(BlobClient, "start_copy_from_url", broken)
    with pytest.raises(StorageError):
        drv.move("/keep", "/elsewhere")
    monkeypatch.undo()
    assert drv.get("/keep") == b"source"
    with pytest.raises(PathNotFoundError):
        drv.stat("/elsewhere")
    drv.delete("/keep")


# ---------------------------------------------------------------------- stream


def test_stream_resumes_after_a_broken_connection(drv: AzureDriver) -> None:
    content = _payload(3 * CHUNK + 7, seed=90)
    drv.put("/r", content)
    with drv.stream("/r", 5) as reader:
        first = reader.read(1000)
        backend = reader._backend  # type: ignore[attr-defined]
        backend._body._raw.close()  # the connection drops mid-body
        rest = reader.read()
    assert first + rest == content[5:]
    with drv.stream("/r") as reader:
        reader.read(10)
        drv.put("/r", b"rewritten")
        reader._backend._body._raw.close()  # type: ignore[attr-defined]
        with pytest.raises(StorageError, match="changed"):
            reader.read()
    drv.delete("/r")


# ---------------------------------------------------------------------- url_for


def test_sas_urls_are_verified_and_expire(drv: AzureDriver) -> None:
    drv.put("/signed", b"signed content")
    url = drv.url_for("/signed", expires_in=2)
    with _OPENER.open(url, timeout=30) as response:
        assert response.read() == b"signed content"
    tampered = url.replace("sig=", "sig=AAAA")
    with pytest.raises(urllib.error.HTTPError) as caught:
        _OPENER.open(tampered, timeout=30)
    assert caught.value.code == 403
    time.sleep(3.5)
    with pytest.raises(urllib.error.HTTPError) as caught:
        _OPENER.open(url, timeout=30)
    assert caught.value.code == 403
    drv.delete("/signed")


def test_put_url_uploads_and_read_url_cannot_write(drv: AzureDriver) -> None:
    put_url = drv.url_for("/uploaded", method="PUT", expires_in=300)
    request = urllib.request.Request(
        put_url, data=b"from a plain client", method="PUT", headers={"x-ms-blob-type": "BlockBlob"}
    )
    with _OPENER.open(request, timeout=30) as response:
        assert response.status == 201
    assert drv.get("/uploaded") == b"from a plain client"
    read_url = drv.url_for("/uploaded")
    request = urllib.request.Request(read_url, data=b"x", method="PUT", headers={"x-ms-blob-type": "BlockBlob"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        _OPENER.open(request, timeout=30)
    assert caught.value.code == 403
    drv.delete("/uploaded")


def test_delete_many_uses_batches(drv: AzureDriver, monkeypatch: pytest.MonkeyPatch) -> None:
    names = [f"/many/{i:04d}" for i in range(300)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda name: drv.put(name, b""), names))
    batches: list[int] = []
    real = azure_module.ContainerClient.delete_blobs

    def spy(self: Any, *blobs: Any, **kwargs: Any) -> Iterator[Any]:
        batches.append(len(blobs))
        return real(self, *blobs, **kwargs)

    monkeypatch.setattr(azure_module.ContainerClient, "delete_blobs", spy)
    drv.delete("/many")
    assert batches == [256, 44]
    assert drv.list("/") == []


def test_works_in_a_forked_child_with_fresh_clients(drv: AzureDriver) -> None:
    drv.put("/parent", b"p")
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            drv.put("/child", drv.get("/parent") + b"c")
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert drv.get("/child") == b"pc"
    drv.delete("/parent")
    drv.delete("/child")
