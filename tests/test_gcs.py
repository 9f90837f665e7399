"""GCS driver: the conformance suite against gcp-storage-emulator, plus what the suite cannot show.

Everything runs against the emulator over real HTTP. The emulator ignores
preconditions (``ifGenerationMatch``), list paging, session cancellation and
signatures, and cannot break a connection on demand: those paths are covered by
fault-case tests that wrap the driver's two HTTP clients (urllib3 for data and
metadata, the SDK's session for batch requests), record what the driver sends,
and answer or break some requests themselves.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import pickle
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3.exceptions
from urllib3.response import HTTPResponse

import blobdrivers
from blobdrivers.calls import CallEvent
from blobdrivers.capabilities import Capability
from blobdrivers.drivers.gcs import GCSDriver
from blobdrivers.drivers.gcs import client as gcs_client
from blobdrivers.drivers.gcs.sidecar import UploadState
from blobdrivers.drivers.gcs.uploads import upload_small
from blobdrivers.errors import (
    BucketNotFoundError,
    ConfigError,
    InvalidPathError,
    PathNotFoundError,
    PreconditionFailedError,
    StorageError,
    UnsupportedMethodError,
)
from blobdrivers.testing import DriverConformance
from blobdrivers.testing.contract_conditions import CONDITIONED
from blobdrivers.testing.contract_namespace import WriteRaw
from blobdrivers.testing.contract_races import MOVE_CONDITIONS
from blobdrivers.testing.contract_rules import MissingBucket
from blobdrivers.testing.faultproxy import FaultProxy, gcs_error
from blobdrivers.testing.helpers import payload as _payload
from tests.proxied import MISSING_BUCKET, faulty_driver_hook
from tests.servers.google_auth import TokenEndpoint
from tests.servers.google_auth import service_account as make_service_account
from tests.servers.local import GcsServer

CHUNK = 256 * 1024
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture
def bucket(gcs_server: GcsServer, gcs_bucket: str) -> str:
    """A fresh bucket with soft delete off, as a registry bucket usually has it.

    The emulator keeps every soft-deleted object and rewrites its whole state on
    each request, so with its 7-day default the session slows down test after test.
    """
    answer = requests.patch(
        f"{gcs_server.endpoint}/storage/v1/b/{gcs_bucket}",
        json={"softDeletePolicy": {"retentionDurationSeconds": "0"}},
        timeout=30,
    )
    answer.raise_for_status()
    return gcs_bucket


@pytest.fixture
def gcs(gcs_server: GcsServer, bucket: str) -> GCSDriver:
    """A driver on a fresh bucket, with the smallest chunk so resumable paths run on small data."""
    return GCSDriver(bucket=bucket, endpoint=gcs_server.endpoint, chunksize=CHUNK, project=gcs_server.project)


def _raw_keys(driver: GCSDriver, prefix: str = "") -> list[str]:
    """Every key in the driver's bucket, hidden ones included (straight from the JSON API)."""
    params = {"prefix": prefix} if prefix else {}
    answer = requests.get(driver._api.objects, params=params, timeout=30).json()
    return [item["name"] for item in answer.get("items") or []]


def _parked_state(driver: GCSDriver, key: str) -> Any:
    """The sidecar of the upload parked for ``key``, read without taking it over (straight from the API)."""
    sidecar = urllib.parse.quote(driver._parking.sidecar_key(key), safe="")
    answer = requests.get(f"{driver._api.downloads}/{sidecar}", params={"alt": "media"}, timeout=30)
    return UploadState.decode(answer.content) if answer.status_code == 200 else None


def _emulator_ignores(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, reason=f"gcp-storage-emulator {reason}")


def _leave_empty(store: GCSDriver) -> None:
    for info in list(store.walk("/")):
        if not info.is_dir:
            with contextlib.suppress(PathNotFoundError):
                store.delete(info.path)


class TestGCSConformance(DriverConformance):
    @pytest.fixture
    def driver(self, gcs: GCSDriver) -> GCSDriver:
        return gcs

    @pytest.fixture
    def foreign_keys(self, gcs: GCSDriver) -> WriteRaw:
        def write(key: str, data: bytes) -> bool:
            if {".", ".."} & set(key.split("/")):
                return False  # gcp-storage-emulator drops the connection on such a name
            answer = requests.post(gcs._api.uploads, params={"uploadType": "media", "name": key}, data=data, timeout=30)
            answer.raise_for_status()
            return True

        return write

    faulty_driver = faulty_driver_hook("gcs")

    @pytest.fixture
    def missing_bucket_driver(self, gcs_server: GcsServer) -> MissingBucket:
        driver = GCSDriver(bucket=MISSING_BUCKET, endpoint=gcs_server.endpoint, project=gcs_server.project)
        return driver, MISSING_BUCKET

    # The emulator ignores ifGenerationMatch, so these four cannot pass against it; the
    # requests the driver sends for them, and its handling of a 412, are checked by the
    # fault-case tests below (test_conditions_*). strict: if the emulator learns
    # preconditions, these start passing and the marks must go.
    IGNORES_PRECONDITIONS = _emulator_ignores("ignores ifGenerationMatch preconditions (see test_conditions_*)")

    @IGNORES_PRECONDITIONS
    def test_put_if_none_match(self, store: GCSDriver) -> None:  # type: ignore[override]
        try:
            super().test_put_if_none_match(store)
        finally:
            _leave_empty(store)

    @IGNORES_PRECONDITIONS
    def test_put_if_match(self, store: GCSDriver) -> None:  # type: ignore[override]
        try:
            super().test_put_if_match(store)
        finally:
            _leave_empty(store)

    @IGNORES_PRECONDITIONS
    @CONDITIONED
    def test_false_condition_fails_and_changes_nothing(  # type: ignore[override]
        self, store: GCSDriver, operation: str, kind: str
    ) -> None:
        try:
            super().test_false_condition_fails_and_changes_nothing(store, operation, kind)
        finally:
            _leave_empty(store)

    @IGNORES_PRECONDITIONS
    def test_racing_put_if_none_match_has_one_winner(self, store: GCSDriver) -> None:  # type: ignore[override]
        try:
            super().test_racing_put_if_none_match_has_one_winner(store)
        finally:
            _leave_empty(store)

    @_emulator_ignores(
        "ignores ifGenerationMatch on the move's pinned delete (see test_move_keeps_a_source_rewritten_*)"
    )
    @MOVE_CONDITIONS
    def test_move_keeps_a_put_to_its_source_after_the_copy(  # type: ignore[override]
        self, store: GCSDriver, conditions: dict[str, str]
    ) -> None:
        super().test_move_keeps_a_put_to_its_source_after_the_copy(store, conditions)


# ---------------------------------------------------------------------- wire helpers


@dataclass
class Call:
    """One request the driver sent."""

    method: str
    url: str
    params: dict[str, str]
    headers: dict[str, str]
    body: Any = None

    @property
    def path(self) -> str:
        return urllib.parse.unquote(urllib.parse.urlsplit(self.url).path)

    @property
    def json(self) -> Any:
        return json.loads(bytes(self.body)) if self.body else None


Rule = Callable[[Call, Callable[..., Any]], Any]


@dataclass
class Wire:
    """Wraps a driver's HTTP clients: records every request; rules may answer or break some.

    Two clients: the urllib3 one (``AuthorizedHttp.urlopen``) for data and metadata,
    the SDK's requests session for batch requests. A rule gets the call and
    ``forward(url=..., body=..., headers=...)`` (which sends it on to the emulator) and returns
    a response, or ``None`` to pass the call on.
    """

    calls: list[Call] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)

    def _handle(self, call: Call, forward: Callable[..., Any]) -> Any:
        self.calls.append(call)
        for rule in self.rules:
            answer = rule(call, forward)
            if answer is not None:
                return answer
        return forward()

    def wrap_urlopen(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def urlopen(method: str, url: str, body: Any = None, headers: Any = None, **kwargs: Any) -> Any:
            call = Call(method, url, _query(url), dict(headers or {}), body)

            def forward(**over: Any) -> Any:
                target = over.get("url", url)
                return real(method, target, body=over.get("body", body), headers=over.get("headers", headers), **kwargs)

            return self._handle(call, forward)

        return urlopen

    def wrap_request(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def request(method: str, url: str, data: Any = None, headers: Any = None, **kwargs: Any) -> Any:
            call = Call(method, url, _query(url), dict(headers or {}), data)
            return self._handle(call, lambda **over: real(method, url, data=data, headers=headers, **kwargs))

        return request

    def find(self, method: str, contains: str = "", **params: str) -> list[Call]:
        return [
            c
            for c in self.calls
            if c.method == method and contains in c.path and all(c.params.get(k) == v for k, v in params.items())
        ]


def _query(url: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


@pytest.fixture
def wire_for(monkeypatch: pytest.MonkeyPatch) -> Callable[[GCSDriver], Wire]:
    def attach(driver: GCSDriver) -> Wire:
        client = driver._clients.get()
        wire = Wire()
        monkeypatch.setattr(client.http, "urlopen", wire.wrap_urlopen(client.http.urlopen))
        session = client.storage._http
        monkeypatch.setattr(session, "request", wire.wrap_request(session.request))
        return wire

    return attach


def _response(status: int, body: Any = None, headers: dict[str, str] | None = None) -> HTTPResponse:
    reasons = {308: "Resume Incomplete", 412: "Precondition Failed", 503: "Service Unavailable"}
    return HTTPResponse(
        body=json.dumps(body).encode() if body is not None else b"",
        headers={"Content-Type": "application/json", **(headers or {})},
        status=status,
        reason=reasons.get(status, "OK"),
        preload_content=True,
    )


def _is_session_put(call: Call) -> bool:
    return call.method == "PUT" and "upload_id" in call.url


def _with_range(call: Call, content_range: str, length: int) -> dict[str, str]:
    """The call's headers for sending only ``length`` bytes of its body under ``content_range``."""
    return {**call.headers, "Content-Range": content_range, "Content-Length": str(length)}


def _precondition_failed(call: Call, forward: Callable[..., Any]) -> Any:
    """What GCS answers when an ifGenerationMatch does not hold (the emulator ignores it)."""
    if call.method == "POST" and "ifGenerationMatch" in call.params:
        error = {"code": 412, "message": "conditionNotMet", "errors": [{"reason": "conditionNotMet"}]}
        return _response(412, {"error": error})
    return None


def _reopen(driver: GCSDriver) -> GCSDriver:
    other: GCSDriver = pickle.loads(pickle.dumps(driver))
    return other


def _hidden_keys(driver: GCSDriver) -> list[str]:
    return [key for key in _raw_keys(driver) if "~" in key]


# ---------------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"chunksize": 300 * 1024}, "chunksize"),
        ({"chunksize": "100KiB"}, "chunksize"),
        ({"chunksize": "lots"}, "chunksize"),
        ({"maxconcurrency": 0}, "maxconcurrency"),
        ({"retries": -1}, "retries"),
        ({"bucket": "Not A Bucket"}, "bucket"),
        ({"bucket": None}, "bucket"),
        ({"endpoint": "ftp://host/path"}, "endpoint"),
        ({"credentials": "{not json"}, "credentials"),
        ({"credentials": {"type": "service_account"}}, "credentials"),
        ({"keyfile": "/nonexistent/key.json"}, "keyfile"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_parameters_raise_config_error_naming_them(params: dict[str, Any], named: str) -> None:
    full = {"bucket": "registry-bucket", "endpoint": "http://127.0.0.1:9", **params}
    with pytest.raises(ConfigError) as caught:
        GCSDriver(**{k: v for k, v in full.items() if v is not None})
    assert named in str(caught.value)
    assert caught.value.driver == "gcs"


def test_defaults_and_sizes() -> None:
    driver = GCSDriver(bucket="registry-bucket", endpoint="http://127.0.0.1:9")
    assert driver.chunk_size == 16 * 1024 * 1024
    assert driver.concurrency == 8
    assert GCSDriver(bucket="registry-bucket", endpoint="127.0.0.1:9", chunksize="512KiB").chunk_size == 512 * 1024
    assert GCSDriver(bucket="registry-bucket", endpoint="127.0.0.1:9").endpoint == "http://127.0.0.1:9"


def test_from_url_and_storage_emulator_host(
    gcs_server: GcsServer, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = urllib.parse.quote(gcs_server.endpoint, safe="")
    driver = blobdrivers.from_url(f"gs://{bucket}/some/prefix?endpoint={endpoint}&chunksize=256KiB")
    assert isinstance(driver, GCSDriver)
    driver.put("/x", b"one")
    assert _raw_keys(driver) == ["some/prefix/x"]
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.endpoint.removeprefix("http://"))
    from_env = GCSDriver(bucket=bucket, rootdirectory="/some/prefix/")
    assert from_env.endpoint == gcs_server.endpoint
    assert from_env.get("/x") == b"one"
    from_env.delete("/x")
    assert _raw_keys(driver) == []


# ---------------------------------------------------------------------- writer: resume, cancel, hidden state


def test_close_leaves_session_and_small_tail_for_exact_resume(gcs_server: GcsServer, bucket: str) -> None:
    driver = GCSDriver(bucket=bucket, endpoint=gcs_server.endpoint, chunksize="1MiB")
    first = _payload(700 * 1024, seed=1)
    writer = driver.writer("/up/blob")
    writer.write(first)  # less than a chunk: nothing sent yet
    writer.close()  # sends the 256 KiB-aligned 512 KiB, keeps 188 KiB in the sidecar
    state = _parked_state(driver, "up/blob")
    assert state is not None and state.session is not None
    assert state.session.offset == 512 * 1024
    assert len(state.tail) == len(first) - 512 * 1024 < 256 * 1024
    # The session itself says what it persisted: exactly the sidecar's offset.
    answer = requests.put(state.session.uri, headers={"Content-Range": "bytes */*"}, timeout=30)
    assert answer.status_code == 308 and answer.headers["Range"] == f"bytes=0-{512 * 1024 - 1}"
    with pytest.raises(PathNotFoundError):
        driver.stat("/up/blob")
    assert driver.list("/") == []

    second = _payload(300 * 1024, seed=2)
    resumed = _reopen(driver).writer("/up/blob", append=True)
    assert resumed.size == len(first)
    resumed.write(second)
    resumed.close()
    last = _reopen(driver).writer("/up/blob", append=True)
    assert last.size == len(first) + len(second)
    last.write(b"end")
    last.commit()
    assert driver.get("/up/blob") == first + second + b"end"
    assert _hidden_keys(driver) == []
    driver.delete("/up")


def test_a_resumed_streaming_upload_is_refused_a_condition_by_capability(gcs_server: GcsServer, bucket: str) -> None:
    driver = GCSDriver(bucket=bucket, endpoint=gcs_server.endpoint, chunksize="1MiB")
    content = _payload(600 * 1024)
    writer = driver.writer("/a")
    writer.write(content)  # less than a chunk, but close() starts a session on /a for the aligned 512 KiB
    writer.close()
    resumed = driver.writer("/a", append=True)
    resumed.write(b"tail")
    events: list[CallEvent] = []
    driver.observers.append(events.append)
    with pytest.raises(UnsupportedMethodError, match="conditional commit of a streamed writer") as caught:
        resumed.commit(if_none_match="*")
    driver.observers.remove(events.append)
    assert caught.value.driver == "gcs" and "GCS fixes" in str(caught.value)  # the capability note
    assert [event.operation for event in events] == ["close"]  # refused before the commit hook: parked
    last = driver.writer("/a", append=True)
    assert last.size == len(content) + 4
    last.commit()
    assert driver.get("/a") == content + b"tail"
    driver.delete("/a")


def test_a_resumed_writer_that_dies_takes_its_session_with_it(gcs: GCSDriver) -> None:
    """A parked upload goes to one writer: once taken over, no other writer adopts it, not even after a crash."""
    first, second = _payload(700 * 1024, 1), _payload(400 * 1024, 2)
    writer = gcs.writer("/crash")
    writer.write(first)  # chunk 256 KiB: 512 KiB sent, 188 KiB buffered
    writer.close()  # the sidecar records offset 512 KiB and the 188 KiB tail
    doomed = _reopen(gcs).writer("/crash", append=True)  # takes the sidecar over
    doomed.write(second)  # 188 + 400 KiB buffered: two more chunks go out (to 1 MiB)...
    del doomed  # ...and the process dies without close(): nothing is parked
    with pytest.raises(PathNotFoundError):
        _reopen(gcs).writer("/crash", append=True)
    assert _hidden_keys(gcs) == []


def test_cancel_deletes_session_and_sidecar(gcs: GCSDriver, wire_for: Callable[[GCSDriver], Wire]) -> None:
    writer = gcs.writer("/c")
    writer.write(_payload(CHUNK + 10))
    writer.close()
    state = _parked_state(gcs, "c")
    assert state is not None and state.session is not None
    assert len(_hidden_keys(gcs)) == 1
    wire = wire_for(gcs)
    gcs.writer("/c", append=True).cancel()
    # GCS answers 499 to this DELETE; the emulator, which has no session cancel, 501.
    assert state.session.uri in [c.url for c in wire.find("DELETE")]
    assert _hidden_keys(gcs) == []
    with pytest.raises(PathNotFoundError):
        gcs.writer("/c", append=True)


def test_bookkeeping_is_invisible(gcs: GCSDriver) -> None:
    writer = gcs.writer("/dir/file")
    writer.write(b"staged")
    writer.close()
    assert [key.split("/")[:2] for key in _raw_keys(gcs)] == [["~blobdrivers", "uploads"]]
    assert gcs.list("/") == []
    assert list(gcs.walk("/")) == []
    for path in ("/dir", "/dir/file", "/"):
        with pytest.raises(PathNotFoundError):
            gcs.stat(path)
    with pytest.raises(InvalidPathError):
        gcs.stat("/~blobdrivers")
    gcs.writer("/dir/file", append=True).cancel()
    assert _raw_keys(gcs) == []


def test_rootdirectory_confines_keys_and_bookkeeping(gcs_server: GcsServer, bucket: str) -> None:
    rooted = GCSDriver(bucket=bucket, endpoint=gcs_server.endpoint, rootdirectory="reg/v2", chunksize=CHUNK)
    rooted.put("/a/b", b"x")
    writer = rooted.writer("/w")
    writer.write(b"y")
    writer.close()
    keys = _raw_keys(rooted)
    assert "reg/v2/a/b" in keys
    assert all(key.startswith("reg/v2/") for key in keys)
    assert rooted.list("/") == ["/a"]
    assert rooted.stat("/").is_dir
    bare = GCSDriver(bucket=bucket, endpoint=gcs_server.endpoint)
    assert bare.list("/") == ["/reg"]
    rooted.writer("/w", append=True).cancel()
    rooted.delete("/a")
    assert _raw_keys(rooted) == []


def test_append_to_committed_content_composes_server_side(
    gcs: GCSDriver, wire_for: Callable[[GCSDriver], Wire]
) -> None:
    head = _payload(2 * CHUNK + 5, seed=4)
    gcs.put("/a", head)
    generation = gcs.stat("/a").etag
    wire = wire_for(gcs)
    appender = gcs.writer("/a", append=True)
    appender.write(b"tail")
    appender.commit()
    (compose,) = wire.find("POST", "/compose")
    assert compose.json["sourceObjects"][0] == {"name": "a", "generation": generation}
    # The committed bytes never came back through the client.
    assert [c for c in wire.calls if "/download/" in c.path and c.path.endswith("/a")] == []
    assert gcs.get("/a") == head + b"tail"
    assert _hidden_keys(gcs) == []
    gcs.delete("/a")


def test_a_damaged_sidecar_is_replaced_by_a_fresh_writer_and_refused_by_a_resume(gcs: GCSDriver) -> None:
    writer = gcs.writer("/d")
    writer.write(b"x")
    writer.close()
    (sidecar,) = _hidden_keys(gcs)
    upload_small(gcs._api, sidecar, b"not a sidecar", {}, what="test")
    with pytest.raises(StorageError, match="sidecar"):
        gcs.writer("/d", append=True)
    fresh = gcs.writer("/d")
    fresh.write(b"new")
    fresh.commit()
    assert gcs.get("/d") == b"new"
    assert _hidden_keys(gcs) == []
    gcs.delete("/d")


def test_an_append_whose_base_vanished_is_a_conflict(gcs: GCSDriver, wire_for: Callable[[GCSDriver], Wire]) -> None:
    gcs.put("/a", b"base")
    appender = gcs.writer("/a", append=True)
    appender.write(b"+tail")
    wire = wire_for(gcs)

    def base_gone(call: Call, forward: Callable[..., Any]) -> Any:
        # On GCS a replaced generation is gone (without versioning); the emulator ignores generations.
        if call.path.endswith("/compose"):
            return _response(404, {"error": {"code": 404, "errors": [{"reason": "notFound"}]}})
        return None

    wire.rules.append(base_gone)
    with pytest.raises(PreconditionFailedError, match="gone"):
        appender.commit()
    wire.rules.clear()
    assert gcs.get("/a") == b"base"
    resumed = _reopen(gcs).writer("/a", append=True)
    assert resumed.size == len(b"base+tail")
    resumed.cancel()
    assert _hidden_keys(gcs) == []
    gcs.delete("/a")


# ---------------------------------------------------------------------- cat / move / delete


@pytest.mark.parametrize(("count", "composes"), [(40, 2), (100, 4)])
def test_cat_composes_a_tree_and_removes_temporaries(
    gcs: GCSDriver, wire_for: Callable[[GCSDriver], Wire], count: int, composes: int
) -> None:
    parts = [_payload(100 + i, seed=i) for i in range(count)]
    names = [f"/parts/{i:03d}" for i in range(count)]
    for name, data in zip(names, parts, strict=True):
        gcs.put(name, data)
    wire = wire_for(gcs)
    gcs.cat("/joined", names)
    calls = wire.find("POST", "/compose")
    assert len(calls) == composes
    assert max(len(c.json["sourceObjects"]) for c in calls) <= 32
    assert calls[-1].path.endswith("/o/joined/compose")
    # Content never travelled through the client, and every temporary composite is gone.
    assert not [c for c in wire.calls if "/download/" in c.path or "/upload/" in c.path]
    assert _hidden_keys(gcs) == []
    assert gcs.get("/joined") == b"".join(parts)
    assert gcs.get(names[7]) == parts[7]
    gcs.delete("/parts")
    gcs.delete("/joined")


def test_cat_with_a_missing_source_names_it_and_cleans_up(gcs: GCSDriver) -> None:
    names = [f"/p/{i:02d}" for i in range(40)]
    for name in names:
        gcs.put(name, b"x")
    gcs.put("/dst", b"keep")
    with pytest.raises(PathNotFoundError) as caught:
        gcs.cat("/dst", [*names[:35], "/p/missing", *names[35:]])
    assert caught.value.path == "/p/missing"
    assert gcs.get("/dst") == b"keep"
    assert _hidden_keys(gcs) == []
    gcs.delete("/p")
    gcs.delete("/dst")


def test_move_is_a_rewrite_then_a_generation_pinned_delete(
    gcs: GCSDriver, wire_for: Callable[[GCSDriver], Wire]
) -> None:
    content = _payload(2 * CHUNK + 3, seed=5)
    gcs.put("/src", content)
    generation = gcs.stat("/src").etag
    assert generation
    wire = wire_for(gcs)
    gcs.move("/src", "/dst")
    (rewrite,) = wire.find("POST", "/rewriteTo/")
    assert rewrite.params["sourceGeneration"] == generation
    assert rewrite.path.endswith("/o/src/rewriteTo/b/" + gcs.bucket + "/o/dst")
    (delete,) = wire.find("DELETE")
    assert delete.params["ifGenerationMatch"] == generation
    assert not [c for c in wire.calls if "/download/" in c.path or "/upload/" in c.path]
    assert gcs.get("/dst") == content
    with pytest.raises(PathNotFoundError):
        gcs.stat("/src")
    gcs.delete("/dst")


def test_move_keeps_a_source_rewritten_after_the_rewrite(gcs: GCSDriver, wire_for: Callable[[GCSDriver], Wire]) -> None:
    """A put to the source after the rewrite makes the pinned delete fail (412 on GCS): the move succeeds, both stay."""
    gcs.put("/src", b"first")
    copied = gcs.stat("/src").etag
    wire = wire_for(gcs)

    def pinned_delete_of_a_replaced_generation(call: Call, forward: Callable[..., Any]) -> Any:
        # What GCS answers; the emulator ignores ifGenerationMatch and would delete the newer generation.
        if call.method == "DELETE" and call.params.get("ifGenerationMatch") == copied:
            error = {"code": 412, "message": "conditionNotMet", "errors": [{"reason": "conditionNotMet"}]}
            return _response(412, {"error": error})
        return None

    wire.rules.append(pinned_delete_of_a_replaced_generation)
    gcs.race_hooks["move.copied"] = lambda point: _reopen(gcs).put("/src", b"second")
    gcs.move("/src", "/dst")
    (delete,) = wire.find("DELETE")
    assert delete.params["ifGenerationMatch"] == copied
    assert (gcs.get("/src"), gcs.get("/dst")) == (b"second", b"first")
    gcs.delete("/src")
    gcs.delete("/dst")


def test_rewrite_loops_on_the_rewrite_token(gcs: GCSDriver, wire_for: Callable[[GCSDriver], Wire]) -> None:
    gcs.put("/big", _payload(3000))
    wire = wire_for(gcs)

    def not_done_yet(call: Call, forward: Callable[..., Any]) -> Any:
        # Large or cross-location rewrites take several calls on GCS; the emulator always finishes in one.
        if "/rewriteTo/" in call.path and "rewriteToken" not in call.params:
            return _response(200, {"kind": "storage#rewriteResponse", "done": False, "rewriteToken": "token-1"})
        return None

    wire.rules.append(not_done_yet)
    gcs.move("/big", "/moved")
    rewrites = wire.find("POST", "/rewriteTo/")
    assert [c.params.get("rewriteToken") for c in rewrites] == [None, "token-1"]
    assert gcs.get("/moved") == _payload(3000)
    gcs.delete("/moved")


def test_delete_of_a_tree_uses_batches(gcs: GCSDriver, wire_for: Callable[[GCSDriver], Wire]) -> None:
    for i in range(150):
        gcs.put(f"/tree/{i:03d}", b"")
    gcs.put("/tree-sibling", b"stays")
    wire = wire_for(gcs)
    gcs.delete("/tree")
    assert len(wire.find("POST", "/batch/storage/v1")) == 2  # 100 + 50 calls
    assert gcs.list("/") == ["/tree-sibling"]
    gcs.delete("/tree-sibling")


def test_delete_of_a_tree_without_the_batch_endpoint_deletes_object_by_object(
    gcs_server: GcsServer, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A GCS-compatible server without batch requests: the proxy answers 501 to /batch/.
    with FaultProxy(gcs_server.endpoint, rate=0.0, refuse={"/batch/": 501}) as proxy:
        store = GCSDriver(bucket=bucket, endpoint=proxy.endpoint, chunksize=CHUNK, project=gcs_server.project)
        for name in ("a", "b", "c", "d/e", "d/f"):
            store.put(f"/tree/{name}", b"x")
            store.put(f"/again/{name}", b"y")
        store.put("/tree-sibling", b"stays")
        with caplog.at_level(logging.DEBUG, logger="blobdrivers.gcs"):
            store.delete("/tree")
            store.delete("/again")  # remembered: no second batch attempt
        assert proxy.stats["refused"] == 1
        assert [r for r in caplog.records if r.levelno == logging.DEBUG and "batch" in r.getMessage()]
        assert store.list("/") == ["/tree-sibling"]
        store.delete("/tree-sibling")
    direct = GCSDriver(bucket=bucket, endpoint=gcs_server.endpoint, project=gcs_server.project)
    assert _raw_keys(direct) == []


def test_listing_follows_page_tokens(
    gcs: GCSDriver, wire_for: Callable[[GCSDriver], Wire], monkeypatch: pytest.MonkeyPatch
) -> None:
    files = ["/p/a", "/p/b/c", "/p/b/d", "/p/e", "/p/f/g", "/p/h", "/p/i", "/p/j/k/l", "/p/m"]
    for path in files:
        gcs.put(path, path.encode())
    monkeypatch.setattr(gcs_client, "LIST_PAGE_SIZE", 2)
    wire = wire_for(gcs)

    def paginate(call: Call, forward: Callable[..., Any]) -> Any:
        # The emulator ignores maxResults and pageToken: page its full answer the way GCS does.
        if call.method != "GET" or not call.path.endswith(f"/b/{gcs.bucket}/o"):
            return None
        size, start = int(call.params["maxResults"]), int(call.params.get("pageToken", "0"))
        query = {k: v for k, v in call.params.items() if k not in ("maxResults", "pageToken")}
        whole = forward(url=call.url.split("?", 1)[0] + "?" + urllib.parse.urlencode(query))
        answer = json.loads(whole.data)
        entries = sorted(
            [(item["name"], "item", item) for item in answer.get("items") or []]
            + [(prefix, "prefix", prefix) for prefix in answer.get("prefixes") or []]
        )
        page = entries[start : start + size]
        body: dict[str, Any] = {
            "items": [e[2] for e in page if e[1] == "item"],
            "prefixes": [e[2] for e in page if e[1] == "prefix"],
        }
        if start + size < len(entries):
            body["nextPageToken"] = str(start + size)
        return _response(200, body)

    wire.rules.append(paginate)
    assert gcs.list("/p") == ["/p/a", "/p/b", "/p/e", "/p/f", "/p/h", "/p/i", "/p/j", "/p/m"]
    assert [info.path for info in gcs.walk("/p") if not info.is_dir] == sorted(files)
    assert gcs.stat("/p/j").is_dir
    tokens = [c.params.get("pageToken") for c in wire.find("GET") if c.path.endswith("/o")]
    assert {"2", "4", "6"} <= set(tokens)
    gcs.delete("/p")
    assert gcs.list("/") == []


# ---------------------------------------------------------------------- conditions (the emulator ignores them)


def test_conditions_are_sent_as_generation_preconditions(gcs: GCSDriver, wire_for: Callable[[GCSDriver], Wire]) -> None:
    wire = wire_for(gcs)
    gcs.put("/c", b"x", if_none_match="*")
    assert wire.find("POST", "/upload/", uploadType="multipart")[-1].params["ifGenerationMatch"] == "0"
    etag = gcs.stat("/c").etag
    assert etag and etag.isdigit()
    gcs.put("/c", b"y", if_match=etag)
    assert wire.find("POST", "/upload/", uploadType="multipart")[-1].params["ifGenerationMatch"] == etag
    gcs.put("/big", _payload(2 * CHUNK + 1), if_none_match="*")  # resumable: the condition goes on the session
    assert wire.find("POST", "/upload/", uploadType="resumable")[-1].params["ifGenerationMatch"] == "0"
    gcs.move("/c", "/d", if_none_match="*")
    assert wire.find("POST", "/rewriteTo/")[-1].params["ifGenerationMatch"] == "0"
    writer = gcs.writer("/e")
    writer.write(b"small")
    writer.commit(if_none_match="*")
    assert wire.find("POST", "/upload/", uploadType="multipart")[-1].params["ifGenerationMatch"] == "0"
    appender = gcs.writer("/e", append=True)
    appender.write(b"+more")
    etag = gcs.stat("/e").etag
    assert etag
    appender.commit(if_match=etag)
    assert wire.find("POST", "/compose")[-1].params["ifGenerationMatch"] == etag
    assert gcs.get("/e") == b"small+more"
    sent = len(wire.calls)
    with pytest.raises(PreconditionFailedError):
        gcs.put("/d", b"z", if_match="not-a-generation")  # cannot match: refused without a request
    assert len(wire.calls) == sent
    for path in ("/big", "/d", "/e"):
        gcs.delete(path)


def test_conditions_failing_with_412_change_nothing(gcs: GCSDriver, wire_for: Callable[[GCSDriver], Wire]) -> None:
    gcs.put("/c", b"old")
    gcs.put("/src", b"src")
    wire = wire_for(gcs)
    wire.rules.append(_precondition_failed)
    with pytest.raises(PreconditionFailedError):
        gcs.put("/c", b"new", if_none_match="*")
    with pytest.raises(PreconditionFailedError):
        gcs.put("/c", _payload(2 * CHUNK + 1), if_match="1")
    assert gcs.get("/c") == b"old"
    assert not [c for c in wire.calls if _is_session_put(c)]  # refused when the session was asked for
    with pytest.raises(PreconditionFailedError):
        gcs.move("/src", "/c", if_none_match="*")
    assert gcs.get("/src") == b"src" and gcs.get("/c") == b"old"
    assert not wire.find("DELETE")
    # A writer whose conditional commit fails keeps its progress for a resume.
    writer = gcs.writer("/c")
    writer.write(b"staged")
    with pytest.raises(PreconditionFailedError):
        writer.commit(if_none_match="*")
    assert writer.closed and gcs.get("/c") == b"old"
    resumed = _reopen(gcs).writer("/c", append=True)
    assert resumed.size == len(b"staged")
    resumed.write(b"!")
    resumed.commit()
    assert gcs.get("/c") == b"staged!"
    # The same for an append, which composes: the new bytes stay parked as a hidden piece.
    appender = gcs.writer("/c", append=True)
    appender.write(_payload(CHUNK + 1))
    with pytest.raises(PreconditionFailedError):
        appender.commit(if_match=gcs.stat("/c").etag)
    assert gcs.get("/c") == b"staged!"
    again = _reopen(gcs).writer("/c", append=True)
    assert again.size == len(b"staged!") + CHUNK + 1
    again.cancel()
    assert gcs.get("/c") == b"staged!"
    assert _hidden_keys(gcs) == []
    gcs.delete("/c")
    gcs.delete("/src")


def test_a_412_at_the_end_of_a_resumable_put_cancels_its_session(
    gcs: GCSDriver, wire_for: Callable[[GCSDriver], Wire]
) -> None:
    wire = wire_for(gcs)

    def refuse_final(call: Call, forward: Callable[..., Any]) -> Any:
        # GCS checks the condition again when the session completes.
        if _is_session_put(call) and not call.headers["Content-Range"].endswith("/*"):
            return _response(412, {"error": {"code": 412, "errors": [{"reason": "conditionNotMet"}]}})
        return None

    wire.rules.append(refuse_final)
    with pytest.raises(PreconditionFailedError):
        gcs.put("/big", _payload(2 * CHUNK + 9), if_none_match="*")
    assert len(wire.find("POST", "/upload/", uploadType="resumable")) == 1
    uris = {c.url for c in wire.calls if _is_session_put(c)}
    assert len(uris) == 1 and wire.find("DELETE")[-1].url in uris
    with pytest.raises(PathNotFoundError):
        gcs.stat("/big")


def test_commit_condition_after_the_session_started_is_unsupported_and_keeps_progress(gcs: GCSDriver) -> None:
    content = _payload(CHUNK + 5, seed=6)
    writer = gcs.writer("/u")
    writer.write(content)  # a full chunk went into a session that writes /u itself
    with pytest.raises(UnsupportedMethodError):
        writer.commit(if_none_match="*")
    assert writer.closed
    with pytest.raises(PathNotFoundError):
        gcs.stat("/u")
    resumed = _reopen(gcs).writer("/u", append=True)
    assert resumed.size == len(content)
    resumed.commit()
    assert gcs.get("/u") == content
    assert _hidden_keys(gcs) == []
    gcs.delete("/u")


# ---------------------------------------------------------------------- transient failures and integrity


def test_transient_errors_are_retried(gcs: GCSDriver, wire_for: Callable[[GCSDriver], Wire]) -> None:
    gcs.put("/s", b"x")
    wire = wire_for(gcs)
    failures = iter([True])

    def unavailable_once(call: Call, forward: Callable[..., Any]) -> Any:
        if call.method == "GET" and call.path.endswith("/o/s") and next(failures, False):
            return _response(503, {"error": {"code": 503, "errors": [{"reason": "backendError"}]}})
        return None

    wire.rules.append(unavailable_once)
    assert gcs.stat("/s").size == 1
    assert len(wire.find("GET", "/o/s")) == 2
    gcs.delete("/s")


def test_a_lost_chunk_answer_resumes_from_the_persisted_offset(
    gcs: GCSDriver, wire_for: Callable[[GCSDriver], Wire]
) -> None:
    content = _payload(3 * CHUNK + 11, seed=7)
    wire = wire_for(gcs)
    chunks_seen: list[str] = []

    def lose_second_answer(call: Call, forward: Callable[..., Any]) -> Any:
        if _is_session_put(call) and call.body:
            chunks_seen.append(call.headers["Content-Range"])
            if len(chunks_seen) == 2:
                forward().close()  # the server keeps the chunk...
                raise urllib3.exceptions.ProtocolError("connection reset")  # ...but the answer is lost
        return None

    wire.rules.append(lose_second_answer)
    gcs.put("/r", iter([content]))  # a stream: sent chunk by chunk
    assert gcs.get("/r") == content
    status_queries = [c for c in wire.calls if _is_session_put(c) and c.headers["Content-Range"] == "bytes */*"]
    assert len(status_queries) == 1
    assert len(chunks_seen) == len(set(chunks_seen)) == 4  # no chunk was sent twice
    gcs.delete("/r")


def test_a_partly_persisted_chunk_is_completed(
    gcs_server: GcsServer, bucket: str, wire_for: Callable[[GCSDriver], Wire]
) -> None:
    driver = GCSDriver(bucket=bucket, endpoint=gcs_server.endpoint, chunksize="1MiB")
    content = _payload(2 * 1024 * 1024 + 3, seed=8)
    wire = wire_for(driver)
    cut = iter([True])

    def keep_a_quarter(call: Call, forward: Callable[..., Any]) -> Any:
        # GCS may persist less than a chunk (in 256 KiB units) and say so in its 308.
        if _is_session_put(call) and call.headers["Content-Range"] == f"bytes 0-{1024 * 1024 - 1}/*" and next(cut, 0):
            body = bytes(call.body[: 256 * 1024])
            return forward(body=body, headers=_with_range(call, f"bytes 0-{256 * 1024 - 1}/*", len(body)))
        return None

    wire.rules.append(keep_a_quarter)
    driver.put("/q", iter([content]))  # a stream: sent chunk by chunk
    assert driver.get("/q") == content
    ranges = [c.headers["Content-Range"] for c in wire.calls if _is_session_put(c)]
    assert ranges[:2] == [f"bytes 0-{1024 * 1024 - 1}/*", f"bytes {256 * 1024}-{1024 * 1024 - 1}/*"]
    driver.delete("/q")


def test_puts_of_known_size_go_in_one_resumable_request(
    gcs: GCSDriver, wire_for: Callable[[GCSDriver], Wire], tmp_path: Any
) -> None:
    content = _payload(3 * CHUNK + 17, seed=10)
    path = tmp_path / "blob"
    path.write_bytes(content)
    wire = wire_for(gcs)
    gcs.put("/mem", content)
    with path.open("rb") as file:
        file.seek(17)
        gcs.put("/file", file)  # from the current position, like every put of a file object
    sends = [c.headers["Content-Range"] for c in wire.calls if _is_session_put(c)]
    assert sends == [f"bytes 0-{len(content) - 1}/{len(content)}", f"bytes 0-{len(content) - 18}/{len(content) - 17}"]
    assert len(wire.find("POST", "/upload/", uploadType="resumable")) == 2
    assert gcs.get("/mem") == content
    assert gcs.get("/file") == content[17:]
    gcs.delete("/mem")
    gcs.delete("/file")


def test_a_broken_file_upload_resumes_by_seeking(
    gcs: GCSDriver, wire_for: Callable[[GCSDriver], Wire], tmp_path: Any
) -> None:
    content = _payload(4 * CHUNK + 5, seed=11)
    path = tmp_path / "blob"
    path.write_bytes(content)
    wire = wire_for(gcs)
    broken = iter([True])

    def break_mid_request(call: Call, forward: Callable[..., Any]) -> Any:
        if _is_session_put(call) and call.headers["Content-Range"].startswith("bytes 0-") and next(broken, False):
            # The connection drops after the server kept the first 256 KiB.
            head = content[:CHUNK]
            forward(body=head, headers=_with_range(call, f"bytes 0-{CHUNK - 1}/*", len(head)))
            raise urllib3.exceptions.ProtocolError("Connection broken: reset by peer")
        return None

    wire.rules.append(break_mid_request)
    with path.open("rb") as file:
        gcs.put("/f", file)
    sends = [c.headers["Content-Range"] for c in wire.calls if _is_session_put(c)]
    total = len(content)
    assert sends == [f"bytes 0-{total - 1}/{total}", "bytes */*", f"bytes {CHUNK}-{total - 1}/{total}"]
    assert gcs.get("/f") == content
    gcs.delete("/f")


class _BreakingResponse:
    """A streamed response whose body breaks after ``limit`` bytes, like a reset connection."""

    def __init__(self, response: Any, limit: int) -> None:
        self._response = response
        self._left = limit

    def read(self, amount: int, **kwargs: Any) -> bytes:
        if self._left <= 0:
            raise urllib3.exceptions.ProtocolError("Connection broken: reset by peer")
        data: bytes = self._response.read(min(amount, self._left), **kwargs)
        self._left -= len(data)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._response, name)


def test_stream_reconnects_at_the_current_offset(gcs: GCSDriver, wire_for: Callable[[GCSDriver], Wire]) -> None:
    content = _payload(3 * CHUNK, seed=9)
    gcs.put("/s", content)
    wire = wire_for(gcs)
    broken = iter([True])

    def break_first_download(call: Call, forward: Callable[..., Any]) -> Any:
        if "/download/" in call.path and next(broken, False):
            return _BreakingResponse(forward(), 100_000)
        return None

    wire.rules.append(break_first_download)
    with gcs.stream("/s", 10) as reader:
        assert reader.read() == content[10:]
    downloads = [c for c in wire.calls if "/download/" in c.path]
    assert [c.headers.get("Range") for c in downloads] == ["bytes=10-", f"bytes={10 + 100_000}-{3 * CHUNK - 1}"]
    gcs.delete("/s")


def test_corrupted_downloads_are_detected(gcs: GCSDriver, wire_for: Callable[[GCSDriver], Wire]) -> None:
    gcs.put("/s", b"payload")
    wire = wire_for(gcs)

    def wrong_hash(call: Call, forward: Callable[..., Any]) -> Any:
        if "/download/" in call.path:
            response = forward()
            response.headers["X-Goog-Hash"] = "crc32c=AAAAAA==,md5=AAAAAAAAAAAAAAAAAAAAAA=="
            return response
        return None

    wire.rules.append(wrong_hash)
    with pytest.raises(StorageError, match="integrity"):
        gcs.get("/s")
    with pytest.raises(StorageError, match="integrity"):
        gcs.stream("/s").read()
    wire.rules.clear()
    gcs.delete("/s")


def test_errors_never_show_the_session_uri(
    gcs_server: GcsServer, bucket: str, wire_for: Callable[[GCSDriver], Wire]
) -> None:
    driver = GCSDriver(bucket=bucket, endpoint=gcs_server.endpoint, chunksize=CHUNK, retries=1)
    wire = wire_for(driver)

    def reset(call: Call, forward: Callable[..., Any]) -> Any:
        if _is_session_put(call):
            raise urllib3.exceptions.ProtocolError(f"reset while talking to {call.url}")
        return None

    wire.rules.append(reset)
    with pytest.raises(StorageError) as caught:
        driver.put("/big", _payload(2 * CHUNK + 1))
    assert "upload_id" not in str(caught.value)
    assert "upload_id" not in repr(caught.value)
    assert caught.value.path == "/big"
    wire.rules.clear()
    with pytest.raises(PathNotFoundError):
        driver.stat("/big")


def _every_operation(driver: GCSDriver) -> list[tuple[str, Callable[[], object]]]:
    def write_and_commit() -> None:
        writer = driver.writer("/w")
        writer.write(b"z" * (CHUNK + 7))
        writer.commit()

    return [
        ("stat", lambda: driver.stat("/src")),
        ("get", lambda: driver.get("/src")),
        ("stream", lambda: driver.stream("/src").read()),
        ("put", lambda: driver.put("/x", b"x")),
        ("put of a session", lambda: driver.put("/x", b"x" * (2 * CHUNK + 1))),
        ("put of a stream", lambda: driver.put("/x", iter([b"x" * (2 * CHUNK + 1)]))),
        ("put of a file", lambda: driver.put("/x", io.BytesIO(b"x" * (2 * CHUNK + 1)))),
        ("list", lambda: driver.list("/")),
        ("walk", lambda: list(driver.walk("/"))),
        ("delete", lambda: driver.delete("/a")),
        ("cat", lambda: driver.cat("/x", ["/src", "/src"])),
        ("move", lambda: driver.move("/src", "/dst")),
        ("writer", write_and_commit),
    ]


@pytest.mark.parametrize("attempts", [1, 3])
def test_retries_is_the_number_of_requests_an_operation_makes_against_a_failing_server(
    gcs_server: GcsServer, bucket: str, attempts: int
) -> None:
    """R1: with ``retries=N`` a server that always answers 503 sees exactly N requests per operation."""
    with FaultProxy(gcs_server.endpoint, rate=1.0, modes=("error",), error_body=gcs_error) as proxy:
        proxy.enabled = False
        driver = GCSDriver(bucket=bucket, endpoint=proxy.endpoint, chunksize=CHUNK, retries=attempts)
        assert driver._api.retry.attempts == attempts
        driver._api.retry = dataclasses.replace(driver._api.retry, base_delay=0.001)  # the count, not the waits
        driver.put("/src", b"data")
        driver.put("/a/b", b"x")
        proxy.enabled = True
        for name, operation in _every_operation(driver):
            before = proxy.stats["requests"]
            with pytest.raises(StorageError):
                operation()
            assert proxy.stats["requests"] - before == attempts, name
        proxy.enabled = False
        driver.delete("/a")
        driver.delete("/src")


def test_a_missing_bucket_is_bucket_not_found_from_every_operation(gcs_server: GcsServer) -> None:
    """R3: not PathNotFoundError; the emulator's 404s say nothing, so a 404 is explained on failure only."""
    driver = GCSDriver(bucket="no-such-bucket-r3", endpoint=gcs_server.endpoint, chunksize=CHUNK)
    for name, operation in _every_operation(driver):
        with pytest.raises(BucketNotFoundError) as caught:
            operation()
        assert not isinstance(caught.value, PathNotFoundError), name
        assert caught.value.message == "bucket 'no-such-bucket-r3' does not exist", name


def test_real_gcs_404_messages_tell_the_bucket_from_the_object() -> None:
    """GCS words a missing bucket and a missing object differently: no extra request is needed to tell."""
    from blobdrivers.drivers.gcs.errors import HTTPError

    def answer(message: str) -> HTTPError:
        body = {"error": {"code": 404, "message": message, "errors": [{"reason": "notFound", "message": message}]}}
        return HTTPError.from_response(_response(404, body), "stat")

    assert answer("The specified bucket does not exist.").bucket_missing is True
    assert answer("No such object: b/k").bucket_missing is False
    assert HTTPError.from_response(_response(404), "stat").bucket_missing is None


def test_session_uris_and_signatures_never_reach_a_log_line(
    gcs: GCSDriver, caplog: pytest.LogCaptureFixture, service_account: tuple[dict[str, str], Any]
) -> None:
    """R7: urllib3 logs every request line at DEBUG; session ids and URL signatures are masked there."""
    with caplog.at_level(logging.DEBUG):
        writer = gcs.writer("/w")
        writer.write(_payload(2 * CHUNK + 5))
        writer.close()
        resumed = gcs.writer("/w", append=True)
        resumed.write(b"tail")
        resumed.commit()
        info, _ = service_account
        signer = GCSDriver(bucket=gcs.bucket, endpoint=gcs.endpoint, credentials=info)
        url = signer.url_for("/w", method="GET", expires_in=600)
        logging.getLogger("urllib3.connectionpool").debug("fetching %s", url)
    signature = _query(url)["X-Goog-Signature"]
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "upload_id=***" in text
    assert "upload_id=" not in text.replace("upload_id=***", "")
    assert signature not in text
    assert "upload_id=***" in gcs.redact("https://h/upload?upload_id=ADPy-secret")
    assert signature not in signer.redact(url)
    gcs.delete("/w")


# ---------------------------------------------------------------------- signed URLs


@pytest.fixture
def token_server() -> Iterator[TokenEndpoint]:
    with TokenEndpoint() as endpoint:
        yield endpoint


@pytest.fixture
def service_account(token_server: TokenEndpoint) -> tuple[dict[str, str], Any]:
    """A throwaway service-account key granted tokens by ``token_server``, and its public key."""
    info, key = make_service_account(token_server.url)
    return info, key.public_key()


def _verify_v4_signature(url: str, method: str, public_key: Any) -> dict[str, str]:
    """Check a V4 signed URL the way GCS does (the emulator does not check signatures at all)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    parts = urllib.parse.urlsplit(url)
    signed_query, _, signature = parts.query.rpartition("&X-Goog-Signature=")
    pairs = urllib.parse.parse_qsl(signed_query)
    assert [name for name, _ in pairs] == sorted(name for name, _ in pairs)  # canonical order
    params = dict(pairs)
    canonical = "\n".join(
        [method, parts.path, signed_query, f"host:{parts.netloc}\n", params["X-Goog-SignedHeaders"], "UNSIGNED-PAYLOAD"]
    )
    scope = params["X-Goog-Credential"].split("/", 1)[1]
    to_sign = "\n".join(
        [params["X-Goog-Algorithm"], params["X-Goog-Date"], scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    public_key.verify(bytes.fromhex(signature), to_sign.encode(), padding.PKCS1v15(), hashes.SHA256())
    return params


def test_signed_urls_with_a_service_account_key(
    gcs_server: GcsServer, bucket: str, service_account: tuple[dict[str, str], Any], token_server: TokenEndpoint
) -> None:
    from cryptography.exceptions import InvalidSignature

    info, public_key = service_account
    driver = GCSDriver(bucket=bucket, endpoint=gcs_server.endpoint, credentials=info, chunksize=CHUNK)
    assert "PRIVATE KEY" not in repr(driver)
    driver.put("/signed/blob", b"signed content")
    assert token_server.hits >= 1  # requests really went through the service-account token flow

    url = driver.url_for("/signed/blob", expires_in=600)
    with _OPENER.open(url, timeout=30) as response:  # plain urllib, no credentials
        assert (response.status, response.read()) == (200, b"signed content")
    params = _verify_v4_signature(url, "GET", public_key)
    assert params["X-Goog-Algorithm"] == "GOOG4-RSA-SHA256"
    assert params["X-Goog-Expires"] == "600"
    assert params["X-Goog-Credential"].startswith(info["client_email"] + "/")
    assert urllib.parse.urlsplit(url).path == f"/{bucket}/signed/blob"

    head = driver.url_for("/signed/blob", method="HEAD", expires_in=driver.max_url_expiry)
    _verify_v4_signature(head, "HEAD", public_key)
    with pytest.raises(InvalidSignature):  # the signature binds the method...
        _verify_v4_signature(head, "GET", public_key)
    with pytest.raises(InvalidSignature):  # ...and the object
        _verify_v4_signature(url.replace("/signed/blob", "/signed/other"), "GET", public_key)
    with pytest.raises(UnsupportedMethodError):
        driver.url_for("/signed/blob", method="PUT")
    with pytest.raises(ValueError):
        driver.url_for("/signed/blob", expires_in=driver.max_url_expiry + 1)
    driver.delete("/signed")


def test_url_for_without_a_private_key_says_why(gcs: GCSDriver) -> None:
    gcs.put("/u", b"x")
    with pytest.raises(UnsupportedMethodError, match=r"signed GET/HEAD URLs.*private key") as caught:
        gcs.url_for("/u")
    assert caught.value.driver == "gcs"
    gcs.delete("/u")


def test_capabilities_never_raise_an_sdk_error(
    service_account: tuple[dict[str, str], Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    store = blobdrivers.create("gcs", {"bucket": "bucket-x"})  # application default credentials, which fail
    for call in (lambda: store.put("/a", b"x", if_none_match="*"), lambda: store.put("/a", b"x")):
        with pytest.raises(StorageError, match="no Google credentials") as caught:
            call()
        assert type(caught.value).__module__.startswith("blobdrivers")
    info, _ = service_account
    keyed = GCSDriver(bucket="bucket-x", endpoint="http://127.0.0.1:9", credentials=json.dumps(info))
    assert Capability.SIGNED_READ_URLS in keyed.capabilities  # from the configuration: no client is built
    assert keyed._clients._value is None


def test_credentials_never_show(service_account: tuple[dict[str, str], Any]) -> None:
    info, _ = service_account
    driver = GCSDriver(bucket="registry-bucket", endpoint="http://127.0.0.1:9", credentials=json.dumps(info))
    assert "PRIVATE KEY" not in repr(driver) and "credentials=***" in repr(driver)
    broken = {**info, "private_key": info["private_key"][:200]}
    with pytest.raises(ConfigError) as caught:
        GCSDriver(bucket="registry-bucket", credentials=broken)
    assert "PRIVATE" not in str(caught.value) and "credentials" in str(caught.value)


def test_small_puts_use_one_request_with_a_checksum(gcs: GCSDriver, wire_for: Callable[[GCSDriver], Wire]) -> None:
    wire = wire_for(gcs)
    data = bytes(range(256)) * 16 + b"\r\n--\r\n\r\n"  # binary, with multipart-looking bytes
    gcs.put("/small", data)
    (upload,) = wire.calls
    assert upload.params["uploadType"] == "multipart"
    metadata = json.loads(bytes(upload.body).split(b"\r\n\r\n", 2)[1].split(b"\r\n", 1)[0])
    import google_crc32c

    assert metadata["crc32c"] == base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()
    assert gcs.get("/small") == data
    gcs.put("/stream", io.BufferedReader(io.BytesIO(data)))  # a file object: read, then one request
    assert gcs.get("/stream") == data
    gcs.delete("/small")
    gcs.delete("/stream")
