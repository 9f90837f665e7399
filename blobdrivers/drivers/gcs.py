"""The Google Cloud Storage driver, on google-cloud-storage.

Objects live in one bucket under the key ``<rootdirectory>/<path>`` (no leading
slash). The driver's own bookkeeping lives below ``<rootdirectory>/~blobdrivers/``:
``~`` is outside the path rule, so list, walk and stat never show it, and it
sorts after every valid key.

How each operation maps onto the JSON API:

* ``put``: one multipart (metadata + media) request when the data fits in one
  chunk, else a resumable session fed chunk by chunk; the object appears only
  when the session is finalised. Conditions are the session's or request's
  ``ifGenerationMatch``. Every upload carries a CRC32C the server checks.
* ``writer``: a resumable session, started lazily when the first full chunk is
  ready. ``close()`` sends the 256 KiB-aligned part of what is buffered and
  parks the session URI, its persisted offset and the rest (< 256 KiB) in a
  hidden *sidecar* object (one parked session per path); a writer in any process
  takes the sidecar over (a generation-matched delete: one writer per parked
  session) and resumes after asking the session for its persisted offset
  (``Content-Range: bytes */*``). Live writers' sessions are in no sidecar, so no
  other writer drops them.
  Appending to committed content composes the committed generation with the new
  data. See ``docs/drivers/gcs.md`` for the trade-offs.
* ``cat``: ``compose`` (32 sources per call, a tree of hidden temporaries beyond).
* ``move``: ``rewrite`` (looping on the rewrite token) then a generation-pinned delete.
* ``delete``: the object and every key below ``path/``, in batch requests (one request per
  object on servers without them).
* ``url_for``: V4 signed URLs for GET and HEAD when the credentials hold a private key.

Media transfers use the SDK client's authorised HTTP session directly: the
resumable protocol must be driven by hand to resume one session from many
driver instances (the SDK's resumable helpers assume one process owns it).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import hashlib
import itertools
import json
import logging
import os
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import quote, urlencode

import google_crc32c
import requests
import requests.adapters
import urllib3
import urllib3.exceptions
from google.api_core import exceptions as api_exceptions
from google.api_core.client_options import ClientOptions
from google.auth import exceptions as auth_exceptions
from google.auth.credentials import AnonymousCredentials, Signing
from google.auth.transport.requests import AuthorizedSession
from google.auth.transport.urllib3 import AuthorizedHttp
from google.cloud import storage
from google.cloud.storage.batch import Batch
from urllib3.response import BaseHTTPResponse

from .. import paths
from ..clients import ProcessLocal
from ..conditions import Conditions
from ..driver import StorageDriver
from ..errors import (
    ConfigError,
    PathNotFoundError,
    PreconditionFailedError,
    StorageError,
    UnsupportedMethodError,
)
from ..listing import FileInfo, visible_children, walk_flat
from ..params import GiB, KiB, MiB, Params
from ..reader import RangeReader
from ..retry import RetryPolicy
from ..transfer import PartBuffer, Source, run_bounded, upload_parts
from ..writer import WriterBackend

log = logging.getLogger("blobdrivers.gcs")

DEFAULT_ENDPOINT = "https://storage.googleapis.com"
SCOPES = ("https://www.googleapis.com/auth/devstorage.full_control",)
#: Resumable uploads move data in multiples of this (a GCS rule).
ALIGN = 256 * KiB
#: Sources per compose call (a GCS limit).
COMPOSE_LIMIT = 32
#: Calls per batch request (a GCS limit).
BATCH_LIMIT = 100
#: Items per listing page (the GCS maximum); a module global so tests can shrink it.
LIST_PAGE_SIZE = 1000
HIDDEN = "~blobdrivers"
OCTET_STREAM = "application/octet-stream"
SIDECAR_MAGIC = b"blobdrivers-gcs-upload/1\n"
#: (connect, read) seconds for every request.
TIMEOUT = (20.0, 120.0)

_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
#: Statuses of a batch request itself saying the server has no batch endpoint.
_NO_BATCH_STATUS = frozenset({404, 405, 501})
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")
_RANGE = re.compile(r"bytes=0-(\d+)")


class _HTTPError(Exception):
    """A JSON-API answer with an unexpected status. Carries codes only, never URLs."""

    def __init__(self, status: int, reason: str, what: str) -> None:
        super().__init__(f"{what}: HTTP {status} {reason}".rstrip())
        self.status = status
        self.reason = reason
        self.what = what

    @classmethod
    def from_response(cls, response: BaseHTTPResponse, what: str) -> _HTTPError:
        reason = ""
        try:
            error = json.loads(response.data or b"{}").get("error", {})
            errors = error.get("errors") or [{}]
            reason = str(errors[0].get("reason") or "")
        except (ValueError, AttributeError, TypeError, IndexError):
            pass
        if not re.fullmatch(r"[A-Za-z0-9_]{0,64}", reason):
            reason = ""
        return cls(response.status, reason or response.reason or "", what)


class _UnreadableSidecar(StorageError):
    """The sidecar of an upload in progress cannot be parsed."""


class _SessionGone(StorageError):
    """The resumable session expired (a week on GCS), was cancelled or is unknown."""


def _is_transient(exc: BaseException) -> bool:
    """Whether a failure is worth retrying: throttling, server errors, broken connections."""
    if isinstance(exc, _HTTPError):
        return exc.status in _TRANSIENT_STATUS
    if isinstance(
        exc,
        requests.ConnectionError
        | requests.Timeout
        | requests.exceptions.ChunkedEncodingError
        | ConnectionError
        | urllib3.exceptions.HTTPError
        | auth_exceptions.TransportError,
    ):
        return True
    return isinstance(
        exc,
        api_exceptions.TooManyRequests
        | api_exceptions.InternalServerError
        | api_exceptions.BadGateway
        | api_exceptions.ServiceUnavailable
        | api_exceptions.GatewayTimeout,
    )


def _crc_extend(crc: int, data: bytes | bytearray | memoryview) -> int:
    """Extend a CRC32C with ``data`` (the C implementation only takes ``bytes``: copy in 1 MiB slices)."""
    if isinstance(data, bytes):
        return int(google_crc32c.extend(crc, data))
    view = memoryview(data).cast("B")
    for start in range(0, len(view), MiB):
        crc = google_crc32c.extend(crc, bytes(view[start : start + MiB]))
    return crc


def _crc_b64(crc: int) -> str:
    return base64.b64encode(crc.to_bytes(4, "big")).decode("ascii")


def _crc_from_b64(value: str | None) -> int | None:
    if not value:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return int.from_bytes(raw, "big") if len(raw) == 4 else None


def _parse_time(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _file_info(full: str, item: Mapping[str, Any]) -> FileInfo:
    return FileInfo(
        path=full,
        size=int(item.get("size") or 0),
        modified=_parse_time(item.get("updated")),
        etag=str(item["generation"]) if item.get("generation") else None,
    )


def _generation_param(conditions: Conditions) -> dict[str, str]:
    """``ifGenerationMatch`` for conditions: ``0`` means "no live object"; etags are generations."""
    if conditions.if_none_match is not None:
        return {"ifGenerationMatch": "0"}
    if conditions.if_match is not None:
        etag = conditions.if_match
        if not etag.isdigit() or int(etag) == 0:
            # Not a generation of this store, so no object can match it.
            raise PreconditionFailedError(f"etag {etag!r} is not a GCS generation, so it cannot match")
        return {"ifGenerationMatch": etag}
    return {}


@dataclass
class _Piece:
    """An object that a writer's content starts with: committed content, or a finished temporary."""

    name: str
    generation: str | None
    size: int
    temp: bool

    def source(self) -> dict[str, str]:
        entry = {"name": self.name}
        if self.generation:
            entry["generation"] = self.generation
        return entry


@dataclass
class _Session:
    """A resumable upload session: its URI (a bearer secret), the key it creates, the persisted offset."""

    uri: str
    key: str
    offset: int = 0
    direct: bool = True  # True when it creates the target itself, False for a hidden temporary

    def __repr__(self) -> str:
        return f"_Session(key={self.key!r}, offset={self.offset}, direct={self.direct})"


@dataclass
class _Client:
    storage: Any  # google.cloud.storage.Client, on a requests session (batch requests, signing)
    http: Any  # google.auth.transport.urllib3.AuthorizedHttp: every other request
    credentials: Any


@dataclass
class _UploadState:
    """What a sidecar records about an upload in progress."""

    target: str
    session: _Session | None = None
    pieces: list[_Piece] = field(default_factory=list)
    crc: int | None = 0
    tail: bytes = b""

    def encode(self) -> bytes:
        header = {
            "target": self.target,
            "session": None
            if self.session is None
            else {
                "uri": self.session.uri,
                "key": self.session.key,
                "offset": self.session.offset,
                "direct": self.session.direct,
            },
            "pieces": [
                {"name": p.name, "generation": p.generation, "size": p.size, "temp": p.temp} for p in self.pieces
            ],
            "crc": self.crc,
            "tail": len(self.tail),
        }
        return SIDECAR_MAGIC + json.dumps(header, separators=(",", ":")).encode() + b"\n" + self.tail

    @classmethod
    def decode(cls, blob: bytes) -> _UploadState:
        if not blob.startswith(SIDECAR_MAGIC):
            raise _UnreadableSidecar("the upload's sidecar object is not in a format this driver knows")
        try:
            header_end = blob.index(b"\n", len(SIDECAR_MAGIC))
            header = json.loads(blob[len(SIDECAR_MAGIC) : header_end])
            tail = blob[header_end + 1 :]
            if len(tail) != header["tail"]:
                raise ValueError("truncated")
            raw = header.get("session")
            session = None
            if raw:
                offset, direct = int(raw["offset"]), bool(raw["direct"])
                session = _Session(uri=raw["uri"], key=raw["key"], offset=offset, direct=direct)
            pieces = [
                _Piece(p["name"], p.get("generation"), int(p["size"]), bool(p["temp"]))
                for p in header.get("pieces", [])
            ]
            crc = header.get("crc")
            return cls(header["target"], session, pieces, None if crc is None else int(crc), tail)
        except (ValueError, KeyError, TypeError) as exc:
            raise _UnreadableSidecar(f"the upload's sidecar object is damaged ({type(exc).__name__})") from None


class GCSDriver(StorageDriver):
    """Objects in a Google Cloud Storage bucket.

    Parameters: ``bucket`` (required); ``rootdirectory``; ``keyfile`` (path of a
    service-account JSON key) or ``credentials`` (its content, as a mapping or a
    JSON string), else application default credentials, or anonymous access when
    an endpoint is set; ``project``; ``endpoint`` (default: ``STORAGE_EMULATOR_HOST``
    if set, else ``https://storage.googleapis.com``); ``chunksize`` (multiple of
    256 KiB, default 16 MiB); ``maxconcurrency`` (default 8); ``retries`` (retries
    after a transient failure, default 8).
    """

    name = "gcs"
    #: GCS object names are at most 1,024 bytes of UTF-8; parked writer state and other bookkeeping keys need at most
    #: 160 bytes below the root (``~blobdrivers/uploads/<hashes>/tail-NNNNN`` and the like).
    max_key_bytes = 1024
    bookkeeping_key_bytes = 160
    secret_params = frozenset({"credentials"})
    max_url_expiry = 7 * 24 * 3600

    def __init__(self, **params: Any) -> None:
        reader = Params(self.name, params, secrets=self.secret_params)
        bucket = reader.required_string("bucket")
        rootdirectory = reader.string("rootdirectory", "") or ""
        keyfile = reader.string("keyfile")
        raw_credentials = params.get("credentials")
        if isinstance(raw_credentials, str) and raw_credentials.strip():
            reader.string("credentials")
            try:
                credentials_info: Mapping[str, Any] | None = json.loads(raw_credentials)
            except ValueError:
                raise ConfigError(
                    "invalid value (hidden) for parameter 'credentials': expected a mapping or its JSON text",
                    driver=self.name,
                ) from None
            if not isinstance(credentials_info, Mapping):
                raise ConfigError(
                    "invalid value (hidden) for parameter 'credentials': the JSON text is not an object",
                    driver=self.name,
                )
        else:
            credentials_info = reader.mapping("credentials")
        self.project = reader.string("project")
        endpoint = reader.string("endpoint")
        chunk_size = reader.size("chunksize", 16 * MiB, minimum=ALIGN, maximum=5 * GiB, multiple_of=ALIGN)
        self.max_concurrency = reader.integer("maxconcurrency", 8, minimum=1, maximum=256)
        retries = reader.integer("retries", 8, minimum=0, maximum=100)
        self._skipverify = reader.boolean("skipverify", False)
        reader.done()
        if not _BUCKET_NAME.fullmatch(bucket) or ".." in bucket:
            raise ConfigError(
                f"invalid value {bucket!r} for parameter 'bucket': a GCS bucket name is 3-222 characters "
                "of lowercase letters, digits, '-', '_' and '.'",
                driver=self.name,
            )
        if keyfile and credentials_info is not None:
            raise ConfigError("give 'keyfile' or 'credentials', not both", driver=self.name)
        self.bucket = bucket
        self.endpoint = self._resolve_endpoint(endpoint)
        super().__init__(params, rootdirectory=rootdirectory, chunk_size=chunk_size)
        self._credentials = self._load_credentials(keyfile, credentials_info)
        # GCS asks for exponential backoff from about a second up to 32 s on 429 and 5xx.
        self._retry = RetryPolicy(attempts=retries + 1, base_delay=0.5, max_delay=32.0, deadline=300.0)
        #: False once the server refused a batch request (see _delete_many).
        self._batch_offered = True
        root_key = paths.to_key(self._root)
        self._hidden = f"{root_key}/{HIDDEN}" if root_key else HIDDEN
        self._api = f"{self.endpoint}/storage/v1/b/{bucket}/o"
        self._upload_api = f"{self.endpoint}/upload/storage/v1/b/{bucket}/o"
        self._download_api = f"{self.endpoint}/download/storage/v1/b/{bucket}/o"
        self._clients: ProcessLocal[_Client] = ProcessLocal(self._make_client)
        if self._skipverify:
            log.warning("gcs: skipverify is set: TLS certificates of %s are NOT verified", self.endpoint)

    # ------------------------------------------------------------------ set-up

    def _resolve_endpoint(self, endpoint: str | None) -> str:
        source = "endpoint"
        if endpoint is None and os.environ.get("STORAGE_EMULATOR_HOST"):
            endpoint, source = os.environ["STORAGE_EMULATOR_HOST"], "STORAGE_EMULATOR_HOST"
        if endpoint is None:
            return DEFAULT_ENDPOINT
        endpoint = endpoint.strip().rstrip("/")
        if "://" not in endpoint:
            endpoint = "http://" + endpoint  # the emulator convention: STORAGE_EMULATOR_HOST=localhost:9023
        if not re.fullmatch(r"https?://[^/?#\s]+", endpoint):
            raise ConfigError(
                f"invalid value {endpoint!r} for {source!r}: expected http(s)://host[:port] with no path",
                driver=self.name,
            )
        return endpoint

    @property
    def custom_endpoint(self) -> bool:
        """True when talking to something other than Google's public endpoint (an emulator, a private one)."""
        return self.endpoint != DEFAULT_ENDPOINT

    def _load_credentials(self, keyfile: str | None, info: Mapping[str, Any] | None) -> Any:
        """Credentials from ``keyfile``/``credentials`` now (so bad ones fail at once); else later, lazily."""
        if keyfile:
            try:
                with open(keyfile, encoding="utf-8") as file:
                    loaded = json.load(file)
            except (OSError, ValueError) as exc:
                raise ConfigError(
                    f"invalid value {keyfile!r} for parameter 'keyfile': cannot read a JSON key ({type(exc).__name__})",
                    driver=self.name,
                ) from None
            return self._credentials_from(loaded, "keyfile")
        if info is not None:
            return self._credentials_from(info, "credentials")
        if self.custom_endpoint:
            return AnonymousCredentials()  # type: ignore[no-untyped-call]
        return None  # application default credentials, looked up on first use

    def _credentials_from(self, info: Any, parameter: str) -> Any:
        """Build credentials of an explicitly allowed type (never whatever type a JSON file claims)."""
        from google.oauth2 import credentials as user_credentials
        from google.oauth2 import service_account

        kind = info.get("type") if isinstance(info, Mapping) else None
        shown = "(hidden)" if parameter in self.secret_params else repr(self._params.get(parameter))
        try:
            if kind == "service_account":
                return service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                    dict(info), scopes=list(SCOPES)
                )
            if kind == "authorized_user":
                return user_credentials.Credentials.from_authorized_user_info(  # type: ignore[no-untyped-call]
                    dict(info), scopes=list(SCOPES)
                )
        except (ValueError, KeyError, TypeError, auth_exceptions.GoogleAuthError) as exc:
            raise ConfigError(
                f"invalid value {shown} for parameter {parameter!r}: cannot load {kind} credentials "
                f"({type(exc).__name__})",
                driver=self.name,
            ) from None
        # The type is named only when it is one of Google's: any other text came from a secret.
        known = kind in ("external_account", "external_account_authorized_user", "impersonated_service_account")
        raise ConfigError(
            f"invalid value {shown} for parameter {parameter!r}: expected a service_account or authorized_user "
            f"key, not type {repr(kind) if known else '(hidden)'}",
            driver=self.name,
        )

    def _make_client(self) -> _Client:
        credentials = self._credentials
        if credentials is None:
            import google.auth

            credentials, _ = google.auth.default(scopes=list(SCOPES))
        pool_size = max(16, 2 * self.max_concurrency + 2)  # every worker thread plus the caller
        # Proxies and CA bundle from the environment, read once (requests re-reads them per request).
        proxy = requests.utils.get_environ_proxies(self.endpoint).get(self.endpoint.split(":", 1)[0])
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or _default_ca_bundle()
        # Data and metadata requests go through urllib3 directly: requests costs about
        # half a millisecond of CPU per request, a third of a small request's time.
        options: dict[str, Any] = {
            "maxsize": pool_size,
            "retries": False,  # retries are ours; this also leaves 308 answers alone
            "timeout": urllib3.Timeout(connect=TIMEOUT[0], read=TIMEOUT[1]),
            "ca_certs": bundle,
        }
        if self._skipverify:
            options["cert_reqs"] = "CERT_NONE"
        pool = urllib3.ProxyManager(proxy, **options) if proxy else urllib3.PoolManager(**options)
        http = AuthorizedHttp(credentials, http=pool)  # type: ignore[no-untyped-call]
        # The SDK client (batch deletes, URL signing) keeps its requests session.
        session: Any = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
        if self._skipverify:
            # requests lets REQUESTS_CA_BUNDLE override session.verify unless trust_env is off.
            session.trust_env = False
            session.proxies.update(requests.utils.get_environ_proxies(self.endpoint))
            session.verify = False
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        client_options = ClientOptions(api_endpoint=self.endpoint) if self.custom_endpoint else None
        client = storage.Client(
            project=self.project, credentials=credentials, client_options=client_options, _http=session
        )
        return _Client(client, http, credentials)

    def _http(self) -> Any:
        return self._clients.get().http

    # ------------------------------------------------------------------ HTTP plumbing

    def _send(
        self,
        method: str,
        url: str,
        *,
        what: str,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        json_body: Any = None,
        expect: Iterable[int] = (200,),
        stream: bool = False,
        retry: bool = True,
    ) -> BaseHTTPResponse:
        """One request, retried on transient failures; a status outside ``expect`` raises ``_HTTPError``.

        With ``stream`` the body is left unread (the caller reads and releases it);
        otherwise it is read into ``response.data``.
        """
        expected = frozenset(expect)
        if params:
            url = f"{url}?{urlencode(params)}"
        request_headers = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode()
            request_headers["Content-Type"] = "application/json"

        def attempt() -> BaseHTTPResponse:
            response: BaseHTTPResponse = self._http().urlopen(
                method, url, body=body, headers=request_headers, preload_content=not stream
            )
            if response.status not in expected:
                if stream:
                    response.read()
                    response.release_conn()
                raise _HTTPError.from_response(response, what)
            return response

        if not retry:
            return attempt()
        return self._retry.call(attempt, is_transient=_is_transient, what=what)

    def _object_url(self, key: str) -> str:
        return f"{self._api}/{quote(key, safe='')}"

    def _metadata(self, key: str) -> dict[str, Any] | None:
        """The object resource of ``key``, or ``None`` when there is no live object."""
        try:
            response = self._send(
                "GET",
                self._object_url(key),
                what="stat",
                params={"fields": "name,size,updated,generation,crc32c"},
            )
        except _HTTPError as exc:
            if exc.status == 404:
                return None
            raise
        result: dict[str, Any] = json.loads(response.data)
        return result

    def _delete_key(self, key: str, *, generation: str | None = None) -> bool:
        """Delete one object; False when there was none (or, with ``generation``, another generation)."""
        params = {"ifGenerationMatch": generation} if generation else None
        try:
            self._send("DELETE", self._object_url(key), what="delete", params=params, expect=(200, 204))
        except _HTTPError as exc:
            if exc.status in (404, 412):
                return False
            raise
        return True

    def _list_pages(
        self, prefix: str, *, fields: str, delimiter: str | None = None, page_size: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Listing pages below ``prefix``, following ``nextPageToken``; each page is retried on its own."""
        token: str | None = None
        while True:
            params = {"maxResults": str(page_size or LIST_PAGE_SIZE), "fields": fields}
            if prefix:
                params["prefix"] = prefix
            if delimiter:
                params["delimiter"] = delimiter
            if token:
                params["pageToken"] = token
            page: dict[str, Any] = json.loads(self._send("GET", self._api, what="list", params=params).data)
            yield page
            token = page.get("nextPageToken")
            if not token:
                return

    def _keys_below(self, prefix: str) -> Iterator[str]:
        for page in self._list_pages(prefix, fields="items(name),nextPageToken"):
            for item in page.get("items") or ():
                yield str(item["name"])

    # ------------------------------------------------------------------ single-request uploads

    def _upload_small(
        self, key: str, data: bytes | bytearray | memoryview, params: Mapping[str, str], *, what: str
    ) -> dict[str, Any]:
        """Publish ``data`` at ``key`` in one multipart request; the server checks its CRC32C."""
        crc = _crc_b64(_crc_extend(0, data))
        metadata = json.dumps({"name": key, "contentType": OCTET_STREAM, "crc32c": crc}).encode()
        boundary = "blobdrivers-" + uuid.uuid4().hex
        marker = b"--" + boundary.encode()
        body = b"".join(
            (
                marker,
                b"\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n",
                metadata,
                b"\r\n",
                marker,
                b"\r\nContent-Type: application/octet-stream\r\n\r\n",
                data,
                b"\r\n",
                marker,
                b"--\r\n",
            )
        )
        response = self._send(
            "POST",
            self._upload_api,
            what=what,
            params={"uploadType": "multipart", **params},
            headers={"Content-Type": f'multipart/related; boundary="{boundary}"'},
            body=body,
        )
        resource: dict[str, Any] = json.loads(response.data)
        self._check_crc(resource, crc)
        return resource

    def _check_crc(self, resource: Mapping[str, Any], expected: str | None) -> None:
        got = resource.get("crc32c")
        if expected and got and got != expected:
            raise StorageError(
                f"integrity check failed for {resource.get('name', '?')}: CRC32C {got} where {expected} was sent"
            )

    # ------------------------------------------------------------------ resumable sessions

    def _start_session(self, key: str, params: Mapping[str, str], *, direct: bool) -> _Session:
        response = self._send(
            "POST",
            self._upload_api,
            what="start upload",
            params={"uploadType": "resumable", "name": key, **params},
            headers={"X-Upload-Content-Type": OCTET_STREAM},
            json_body={"name": key, "contentType": OCTET_STREAM},
            expect=(200, 201),
        )
        location = response.headers.get("Location")
        if not location:
            raise StorageError("the server started an upload session but returned no session URI")
        return _Session(uri=location, key=key, direct=direct)

    def _session_request(
        self, session: _Session, data: Any, content_range: str, extra: Mapping[str, str]
    ) -> BaseHTTPResponse:
        """One PUT to a session URI. Transport errors are re-raised without the URI (a bearer secret)."""
        try:
            response: BaseHTTPResponse = self._http().urlopen(
                "PUT", session.uri, body=data, headers={"Content-Range": content_range, **extra}
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ConnectionError(f"{type(exc).__name__} talking to the upload session") from None
        return response

    def _session_status(self, session: _Session) -> dict[str, Any] | None:
        """Ask the session what it persisted; returns the object resource if it is already finished."""
        response = self._session_request(session, b"", "bytes */*", {})
        status = response.status
        if status in (200, 201):
            resource: dict[str, Any] = json.loads(response.data)
            return resource
        if status == 308:
            session.offset = _persisted(response)
            return None
        if status in (404, 410, 499):
            raise _SessionGone(f"the upload session for {session.key} no longer exists (HTTP {status})")
        raise _HTTPError.from_response(response, "query upload")

    def _transmit(
        self, session: _Session, data: memoryview | _FileBody, *, total: int | None, crc: int | None
    ) -> dict[str, Any] | None:
        """Send ``data`` at the session's offset; with ``total``, finish the upload and return the object.

        The server may persist less than was sent (it answers 308 with what it has):
        the rest is re-sent. After a transient failure the session is asked for its
        persisted offset and the upload continues from there, so no byte is sent twice
        into the object and none is skipped.
        """
        start = session.offset
        end = start + len(data)
        if total is not None and total != end:
            raise ValueError("total must be the offset after the final bytes")
        query_first = False

        def one_try() -> dict[str, Any] | None:
            nonlocal query_first
            if query_first:
                finished = self._session_status(session)
                if finished is not None:
                    return finished
            query_first = True
            while True:
                offset = session.offset
                if not start <= offset <= end:
                    raise StorageError(
                        f"the upload session for {session.key} reports offset {offset}, outside {start}-{end}"
                    )
                rest = data[offset - start :]
                extra: dict[str, str] = {}
                if total is None:
                    if not rest:
                        query_first = False
                        return None
                    content_range = f"bytes {offset}-{end - 1}/*"
                else:
                    content_range = f"bytes {offset}-{end - 1}/{total}" if rest else f"bytes */{total}"
                    if crc is not None:
                        extra["X-Goog-Hash"] = f"crc32c={_crc_b64(crc)}"
                extra["Content-Length"] = str(len(rest))
                response = self._session_request(session, rest if len(rest) else b"", content_range, extra)
                status = response.status
                if status in (200, 201):
                    session.offset = end
                    resource: dict[str, Any] = json.loads(response.data)
                    return resource
                if status == 308:
                    persisted = _persisted(response)
                    if persisted <= offset and (rest or total is not None):
                        # Nothing new was kept (or a final request did not finish): do not loop
                        # forever; a retry asks the session where it stands first.
                        raise _HTTPError(503, "noProgress", "upload chunk")
                    session.offset = persisted
                    continue
                if status in (404, 410):
                    raise _SessionGone(f"the upload session for {session.key} no longer exists (HTTP {status})")
                raise _HTTPError.from_response(response, "upload chunk")

        result = self._retry.call(one_try, is_transient=_is_transient, what="upload chunk")
        if result is not None and crc is not None:
            self._check_crc(result, _crc_b64(crc))
        return result

    def _abort_session(self, session: _Session) -> None:
        """Cancel a session (GCS answers 499); best effort, as an abandoned session expires in a week."""
        with contextlib.suppress(urllib3.exceptions.HTTPError, OSError):
            self._http().urlopen("DELETE", session.uri)

    # ------------------------------------------------------------------ put / get / stream

    def _put(self, full: str, source: Source, conditions: Conditions) -> None:
        key = paths.to_key(full)
        params = _generation_param(conditions)
        chunk = self.chunk_size
        size = source.size
        if size is not None and size <= chunk:
            # Small: one request, read in the caller's thread (no pool for a 4 KiB put).
            if source.in_memory:
                data: memoryview = source.read(size)
            else:
                buffer = bytearray(size + 1)
                data = memoryview(buffer)[: source.readinto(buffer)]
            if len(data) <= chunk:
                self._upload_small(key, data, params, what="put")
                return
            source = _Prepended(data, source)
        elif size is not None and source.in_memory:
            # All in memory already: the whole rest in one session request, resumable
            # from any offset the session reports (how gsutil uploads), no chunk round trips.
            view = source.read(size)
            self._put_in_one_request(key, view, params, crc=_crc_extend(0, view))
            return
        elif size is not None and source.file is not None and _seekable(source.file):
            body = _FileBody.open(source.file, size)
            resource = self._put_in_one_request(key, body, params, crc=None)
            # The CRC32C is known only once the file was read, after the headers left: check
            # what GCS computed (this catches corruption after publishing, not before).
            if body.crc is not None:
                self._check_crc(resource, _crc_b64(body.crc))
            return
        self._put_streamed(key, source, params)

    def _put_in_one_request(
        self, key: str, body: memoryview | _FileBody, params: Mapping[str, str], *, crc: int | None
    ) -> dict[str, Any]:
        session = self._start_session(key, params, direct=True)
        try:
            resource = self._transmit(session, body, total=len(body), crc=crc)
        except BaseException:
            self._abort_session(session)
            raise
        assert resource is not None
        return resource

    def _put_streamed(self, key: str, source: Source, params: Mapping[str, str]) -> None:
        """Upload a source of unknown or large size: one request if it ends within a chunk, else a session."""
        chunk = self.chunk_size
        state: dict[str, Any] = {"session": None, "crc": 0, "done": False}

        def upload_part(number: int, view: memoryview) -> None:
            session: _Session | None = state["session"]
            if number == 1 and len(view) < chunk:
                self._upload_small(key, view, params, what="put")
                state["done"] = True
                return
            if session is None:
                session = state["session"] = self._start_session(key, params, direct=True)
            self._race_point("part.upload", "/" + key, number)
            state["crc"] = _crc_extend(state["crc"], view)
            last = len(view) < chunk
            total = session.offset + len(view) if last else None
            self._transmit(session, view, total=total, crc=state["crc"] if last else None)
            state["done"] = last

        try:
            upload_parts(source, itertools.repeat(chunk), upload_part, concurrency=1)
            session = state["session"]
            if not state["done"] and session is not None:
                # The data ended on a chunk boundary: finish with an empty final request.
                self._transmit(session, memoryview(b""), total=session.offset, crc=state["crc"])
        except BaseException:
            if state["session"] is not None and not state["done"]:
                self._abort_session(state["session"])
            raise

    def _get(self, full: str) -> bytes:
        key = paths.to_key(full)

        def attempt() -> bytes:
            response = self._send(
                "GET",
                f"{self._download_api}/{quote(key, safe='')}",
                what="get",
                params={"alt": "media"},
                headers={"Accept-Encoding": "identity"},
                stream=True,
                retry=False,
            )
            try:
                expected = response.headers.get("Content-Length")
                data: bytes = response.read(decode_content=False)
            finally:
                response.release_conn()
            if expected is not None and len(data) != int(expected):
                raise urllib3.exceptions.ProtocolError("the body ended before Content-Length")
            want = _hash_header(response.headers.get("X-Goog-Hash"), response.headers)
            if want is not None and _crc_extend(0, data) != want:
                raise StorageError(f"integrity check failed reading {key}: CRC32C mismatch")
            return data

        return self._retry.call(attempt, is_transient=_is_transient, what="get")

    def _open(self, full: str, offset: int, length: int | None) -> tuple[RangeReader, int | None]:
        key = paths.to_key(full)
        if length == 0:
            if self._metadata(key) is None:
                raise PathNotFoundError(f"no file at {full}")
            return _EmptyReader(), 0
        reader = _MediaReader(self, key, offset, None if length is None else offset + length)
        return reader, reader.remaining

    # ------------------------------------------------------------------ stat / list / walk

    def _stat(self, full: str) -> FileInfo:
        if full not in (self._root, paths.ROOT):
            item = self._metadata(paths.to_key(full))
            if item is not None:
                return _file_info(full, item)
        first = self._first_visible_below(paths.dir_key(full))
        if first is None:
            raise PathNotFoundError(f"nothing at {full}")
        return FileInfo(full, 0, _parse_time(first.get("updated")), is_dir=True)

    def _first_visible_below(self, prefix: str) -> dict[str, Any] | None:
        """The first listed object below ``prefix`` whose key is a valid path (nearly always the very first)."""
        fields = "items(name,updated),nextPageToken"
        first_page = next(self._list_pages(prefix, fields=fields, page_size=1))
        items = first_page.get("items") or []
        if not items:
            return None
        if paths.from_key(str(items[0]["name"])) is not None:
            return dict(items[0])
        # The first key is bookkeeping or foreign (written by another tool): scan on.
        for page in self._list_pages(prefix, fields=fields):
            for item in page.get("items") or ():
                if paths.from_key(str(item["name"])) is not None:
                    return dict(item)
        return None

    def _list(self, full: str) -> Iterator[str]:
        names: list[str] = []
        for page in self._list_pages(paths.dir_key(full), fields="items(name),prefixes,nextPageToken", delimiter="/"):
            names += [str(item["name"]) for item in page.get("items") or ()]
            names += [str(p) for p in page.get("prefixes") or ()]
        holds_valid = lambda prefix: self._first_visible_below(prefix) is not None  # noqa: E731
        return iter(dict.fromkeys(visible_children(names, holds_valid, self.max_concurrency)))

    def _walk(self, full: str) -> Iterator[FileInfo]:
        prefix = paths.dir_key(full)

        def files() -> Iterator[FileInfo]:
            fields = "items(name,size,updated,generation),nextPageToken"
            for page in self._list_pages(prefix, fields=fields):
                for item in page.get("items") or ():
                    path = paths.from_key(str(item["name"]))
                    if path is not None:  # bookkeeping and foreign keys must not invent directories
                        yield _file_info(path, item)

        return walk_flat(files(), full)

    # ------------------------------------------------------------------ move / delete / cat

    def _move(self, src: str, dst: str, conditions: Conditions) -> None:
        params = _generation_param(conditions)
        src_key, dst_key = paths.to_key(src), paths.to_key(dst)
        item = self._metadata(src_key)
        if item is None:
            raise PathNotFoundError(f"no file at {src}")
        generation = str(item["generation"])
        self._rewrite(src_key, dst_key, generation, params)
        self._race_point("move.copied", src)
        # Pinned: if src was replaced meanwhile, the newer content stays.
        self._delete_key(src_key, generation=generation)

    def _rewrite(self, src_key: str, dst_key: str, generation: str, params: Mapping[str, str]) -> dict[str, Any]:
        """Server-side copy of one generation, looping on the rewrite token until done."""
        url = f"{self._object_url(src_key)}/rewriteTo/b/{self.bucket}/o/{quote(dst_key, safe='')}"
        token: str | None = None
        while True:
            query = {"sourceGeneration": generation, **params}
            if token:
                query["rewriteToken"] = token
            answer: dict[str, Any] = json.loads(
                self._send("POST", url, what="rewrite", params=query, json_body={}).data
            )
            if answer.get("done"):
                resource: dict[str, Any] = answer.get("resource") or {}
                return resource
            token = answer.get("rewriteToken")
            if not token:
                raise StorageError(f"rewrite of {src_key} is not done but returned no rewrite token")

    def _delete(self, full: str) -> None:
        key = paths.to_key(full)
        found = self._delete_key(key)
        below = list(self._keys_below(paths.dir_key(full)))
        self._delete_many(below)
        # Bookkeeping and other tools' keys go with the tree, but alone they are not "something there".
        if not found and not any(paths.from_key(name) is not None for name in below):
            raise PathNotFoundError(f"nothing at {full}")

    def _delete_many(self, keys: list[str]) -> None:
        """Delete objects in batch requests (100 calls each, several batches at once); missing ones are fine.

        A server that does not offer batch requests (it answers 404, 405 or 501 to the
        batch endpoint) gets one request per object, from then on for this instance.
        """
        if len(keys) > 1 and self._batch_offered:
            groups = [keys[i : i + BATCH_LIMIT] for i in range(0, len(keys), BATCH_LIMIT)]
            try:
                run_bounded([functools.partial(self._delete_batch, group) for group in groups], self.max_concurrency)
                return
            except api_exceptions.GoogleAPICallError as exc:
                if exc.code not in _NO_BATCH_STATUS:
                    raise
                self._batch_offered = False
                log.debug("gcs: the server answers HTTP %s to batch requests: deleting object by object", exc.code)
        # Objects a batch already deleted answer 404 now, which _delete_key accepts.
        run_bounded([functools.partial(self._delete_key, key) for key in keys], self.max_concurrency)

    def _delete_batch(self, keys: list[str]) -> None:
        pending = keys

        def attempt() -> None:
            nonlocal pending
            # A Batch of our own rather than client.batch(): that one lives on a stack shared by all threads.
            batch = Batch(self._clients.get().storage, raise_exception=False)
            for key in pending:
                batch.api_request(method="DELETE", path=f"/b/{self.bucket}/o/{quote(key, safe='')}")
            responses = batch.finish(raise_exception=False)
            retry_keys = []
            for key, response in zip(pending, responses, strict=True):
                status = int(response.status_code)  # a requests response: the SDK's batch
                if status in (200, 204, 404):
                    continue
                if status in _TRANSIENT_STATUS:
                    retry_keys.append(key)
                    continue
                raise _HTTPError(status, "", "delete")
            pending = retry_keys
            if pending:
                raise _HTTPError(503, "batchPartlyFailed", "delete")

        self._retry.call(attempt, is_transient=_is_transient, what="delete batch")

    def _cat(self, full: str, sources: list[str]) -> None:
        key = paths.to_key(full)
        if not sources:
            self._upload_small(key, b"", {}, what="cat")
            return
        try:
            self._compose([{"name": paths.to_key(source)} for source in sources], key, {})
        except _HTTPError as exc:
            if exc.status != 404:
                raise
            missing = self._first_missing(sources)
            raise PathNotFoundError(
                f"cat source {missing or '(one of the sources)'} does not exist",
                path=paths.strip(self._root, missing) if missing else None,
            ) from exc

    def _first_missing(self, sources: list[str]) -> str | None:
        found = run_bounded(
            [functools.partial(self._metadata, paths.to_key(source)) for source in sources], self.max_concurrency
        )
        return next((source for source, item in zip(sources, found, strict=True) if item is None), None)

    def _compose(self, sources: list[dict[str, str]], key: str, params: Mapping[str, str]) -> dict[str, Any]:
        """Compose ``sources`` into ``key`` (a tree of hidden temporaries when there are more than 32).

        Consecutive runs of 32 are composed into temporaries, in parallel, until at
        most 32 remain; the final compose writes ``key`` under ``params``. The
        temporaries are deleted whatever happens.
        """
        temps: list[str] = []
        try:
            level = list(sources)
            while len(level) > COMPOSE_LIMIT:
                # Each run of 32 turns into one temporary: enough runs to leave at most 32 entries.
                runs = min(-(-(len(level) - COMPOSE_LIMIT) // (COMPOSE_LIMIT - 1)), len(level) // COMPOSE_LIMIT)
                groups = [level[i * COMPOSE_LIMIT : (i + 1) * COMPOSE_LIMIT] for i in range(runs)]
                names = [self._temp_key() for _ in groups]
                temps += names
                run_bounded(
                    [
                        functools.partial(self._compose_call, group, name, {})
                        for group, name in zip(groups, names, strict=True)
                    ],
                    self.max_concurrency,
                )
                level = [{"name": name} for name in names] + level[runs * COMPOSE_LIMIT :]
            return self._compose_call(level, key, params)
        finally:
            self._discard(temps)

    def _compose_call(self, sources: list[dict[str, str]], key: str, params: Mapping[str, str]) -> dict[str, Any]:
        body = {"sourceObjects": sources, "destination": {"contentType": OCTET_STREAM}}
        resource: dict[str, Any] = json.loads(
            self._send("POST", f"{self._object_url(key)}/compose", what="compose", params=params, json_body=body).data
        )
        return resource

    def _discard(self, keys: list[str]) -> None:
        """Delete temporaries, best effort: the operation itself succeeded or failed already.

        A failure here leaves hidden objects under ``~blobdrivers/tmp/`` (invisible to
        list and walk) rather than turning a finished publish into an error.
        """
        try:
            self._delete_many(keys)
        except Exception as exc:
            log.warning("gcs: could not delete %d temporary object(s): %s", len(keys), type(exc).__name__)

    def _temp_key(self) -> str:
        return f"{self._hidden}/tmp/{uuid.uuid4().hex}"

    # ------------------------------------------------------------------ url_for

    def _url_for(self, full: str, method: str, expires_in: int) -> str:
        if method == "PUT":
            raise UnsupportedMethodError(
                "this driver signs GET and HEAD URLs only: a signed PUT would bypass its atomic, "
                "checksummed and conditional publishing"
            )
        client = self._clients.get()
        credentials = client.credentials
        if isinstance(credentials, AnonymousCredentials):
            raise UnsupportedMethodError(
                "cannot sign URLs with anonymous credentials: there is no private key; "
                "give a service-account key (keyfile or credentials)"
            )
        if not isinstance(credentials, Signing) or not getattr(credentials, "service_account_email", None):
            raise UnsupportedMethodError(
                f"cannot sign URLs with {type(credentials).__name__} credentials: they hold no private key; "
                "give a service-account key (keyfile or credentials)"
            )
        blob = client.storage.bucket(self.bucket).blob(paths.to_key(full))
        url: str = blob.generate_signed_url(
            version="v4",
            expiration=timedelta(seconds=expires_in),
            method=method,
            credentials=credentials,
            api_access_endpoint=self.endpoint,
        )
        return url

    # ------------------------------------------------------------------ errors

    def _translate_error(self, exc: Exception, path: str) -> StorageError | None:
        """Map HTTP statuses and SDK errors; messages carry codes and paths only, never URLs or tokens."""
        if isinstance(exc, _HTTPError):
            detail = f"HTTP {exc.status} {exc.reason}".rstrip()
            if exc.status == 404:
                return PathNotFoundError(f"no file at {path}")
            if exc.status == 412:
                return PreconditionFailedError(f"the condition on {path} does not hold ({detail})")
            if exc.status in (401, 403):
                return StorageError(f"{exc.what} {path}: access denied ({detail})")
            return StorageError(f"{exc.what} {path} failed: {detail}")
        if isinstance(exc, api_exceptions.NotFound):
            return PathNotFoundError(f"no file at {path}")
        if isinstance(exc, api_exceptions.PreconditionFailed):
            return PreconditionFailedError(f"the condition on {path} does not hold (HTTP 412)")
        if isinstance(exc, api_exceptions.GoogleAPICallError):
            return StorageError(f"request on {path} failed: HTTP {exc.code} {type(exc).__name__}")
        if isinstance(exc, auth_exceptions.DefaultCredentialsError):
            return StorageError(
                "no Google credentials: give keyfile or credentials, or set up application default credentials"
            )
        if isinstance(exc, auth_exceptions.GoogleAuthError):
            return StorageError(f"authentication failed ({type(exc).__name__})")
        if isinstance(exc, requests.RequestException | urllib3.exceptions.HTTPError | OSError):
            # Their text names the URL, which may carry an upload session id: give the type only.
            return StorageError(f"network error on {path}: {type(exc).__name__}")
        return None

    # ------------------------------------------------------------------ writer

    def _sidecar_key(self, key: str) -> str:
        return f"{self._hidden}/uploads/{hashlib.sha256(key.encode()).hexdigest()}"

    def _take_sidecar(self, key: str) -> _UploadState | None:
        """Read the parked upload's sidecar and delete exactly that generation: the upload is the caller's.

        Of two writers taking one sidecar, one delete succeeds; the other reads again
        and finds none (or a newer one). So a parked upload goes to one writer, and
        a live writer's upload is never in a sidecar another writer can drop.
        """
        sidecar = self._sidecar_key(key)
        for _ in range(5):
            item = self._metadata(sidecar)
            if item is None:
                return None
            generation = str(item["generation"])
            try:
                response = self._send(
                    "GET",
                    f"{self._download_api}/{quote(sidecar, safe='')}",
                    what="read upload state",
                    params={"alt": "media", "generation": generation},
                    headers={"Accept-Encoding": "identity"},
                )
            except _HTTPError as exc:
                if exc.status == 404:
                    continue  # replaced or taken meanwhile
                raise
            if not self._delete_key(sidecar, generation=generation):
                continue
            state = _UploadState.decode(response.data)
            return state if state.target == key else None
        raise StorageError(f"the upload state of /{key} keeps changing; try again")

    def _write_sidecar(self, state: _UploadState) -> None:
        self._upload_small(self._sidecar_key(state.target), state.encode(), {}, what="save upload state")

    def _drop_upload(self, state: _UploadState, *, sidecar: bool) -> None:
        """Cancel the session, delete temporary pieces and (if asked) the sidecar."""
        if state.session is not None:
            self._abort_session(state.session)
            if not state.session.direct:
                self._delete_key(state.session.key)
        self._delete_many([piece.name for piece in state.pieces if piece.temp])
        if sidecar:
            self._delete_key(self._sidecar_key(state.target))

    def _writer(self, full: str, append: bool) -> WriterBackend:
        key = paths.to_key(full)
        if not append:
            try:
                state = self._take_sidecar(key)
            except _UnreadableSidecar:
                state = None  # taken (deleted) before it was decoded; a new upload replaces it anyway
            if state is not None:
                self._drop_upload(state, sidecar=False)
            return _GCSWriter(self, _UploadState(key), has_sidecar=False)
        state = self._take_sidecar(key)
        if state is not None:
            return _GCSWriter(self, self._reconcile(state), has_sidecar=False)
        item = self._metadata(key)
        if item is None:
            raise PathNotFoundError(f"no file at {full} to append to")
        fresh = _UploadState(key, crc=_crc_from_b64(item.get("crc32c")))
        size = int(item.get("size") or 0)
        if size:
            # The committed generation becomes the first compose source at commit.
            fresh.pieces.append(_Piece(key, str(item["generation"]), size, temp=False))
        else:
            fresh.crc = 0
        return _GCSWriter(self, fresh, has_sidecar=False)

    def _reconcile(self, state: _UploadState) -> _UploadState:
        """Match a sidecar against what its session really persisted (a writer may have died after it)."""
        session = state.session
        if session is None:
            return state
        recorded = session.offset
        try:
            finished = self._session_status(session)
        except _SessionGone:
            self._drop_upload(state, sidecar=False)
            raise StorageError(
                f"the upload in progress for /{state.target} cannot be resumed: its session expired or was "
                "cancelled; start a new writer"
            ) from None
        if finished is not None:
            # A commit died after finishing the session: its object is now the first piece.
            size = int(finished.get("size") or 0)
            generation = str(finished.get("generation") or "")
            state.pieces.append(_Piece(str(finished["name"]), generation, size, temp=not session.direct))
            state.session = None
            covered = size - recorded
        else:
            covered = session.offset - recorded
        if covered < 0:
            raise StorageError(f"the upload session for /{state.target} lost data it had acknowledged")
        if covered <= len(state.tail):
            state.tail = state.tail[covered:]
        else:
            # A writer sent more after the sidecar was written, then died: resume at the server's offset.
            state.tail = b""
            state.crc = None
        return state


class _GCSWriter:
    """Writer backend: buffers a chunk, feeds a resumable session, parks its state in a sidecar.

    ``_backlog`` holds 256 KiB-aligned bytes whose send failed; they come before
    the buffer, so progress stays contiguous whatever failed.
    """

    def __init__(self, driver: GCSDriver, state: _UploadState, *, has_sidecar: bool) -> None:
        self._driver = driver
        self._state = state
        self._has_sidecar = has_sidecar
        self._chunk = driver.chunk_size
        self._buffer = PartBuffer(driver.chunk_size)
        self._backlog = b""
        session_bytes = state.session.offset if state.session else 0
        self.size = sum(piece.size for piece in state.pieces) + session_bytes + len(state.tail)
        tail, state.tail = state.tail, b""
        self._send_parts(self._buffer.write(tail))

    def _ensure_session(self) -> _Session:
        state = self._state
        if state.session is None:
            # With pieces to prepend, the new bytes go to a temporary that commit composes after them.
            direct = not state.pieces
            key = state.target if direct else self._driver._temp_key()
            state.session = self._driver._start_session(key, {}, direct=direct)
        return state.session

    def _send_parts(self, parts: list[bytes]) -> None:
        for index, part in enumerate(parts):
            sent = 0
            try:
                session = self._ensure_session()
                start = session.offset
                try:
                    # Part numbers count chunks of the session (a resumed one goes on from its offset).
                    self._driver._race_point("part.upload", "/" + self._state.target, start // self._chunk + 1)
                    self._driver._transmit(session, memoryview(part), total=None, crc=None)
                finally:
                    sent = session.offset - start
            except BaseException:
                self._backlog = part[sent:] + b"".join(parts[index + 1 :])
                raise

    def _take(self) -> bytes:
        rest = self._backlog + self._buffer.take_rest()
        self._backlog = b""
        return rest

    def write(self, data: memoryview) -> None:
        if self._state.crc is not None:
            self._state.crc = _crc_extend(self._state.crc, data)
        parts = self._buffer.write(data)
        if self._backlog:
            parts.insert(0, self._backlog)
            self._backlog = b""
        self._send_parts(parts)

    def close(self) -> None:
        self._park(self._take(), may_start=True)

    def _park(self, rest: bytes, *, may_start: bool) -> None:
        """Send the 256 KiB-aligned part of ``rest`` if a session may take it; record the rest in the sidecar."""
        aligned = len(rest) // ALIGN * ALIGN
        if aligned and (may_start or self._state.session is not None):
            try:
                session = self._ensure_session()
                start = session.offset
                try:
                    self._driver._transmit(session, memoryview(rest)[:aligned], total=None, crc=None)
                finally:
                    rest = rest[session.offset - start :]
            except Exception:
                pass  # the sidecar keeps the bytes; a resume reconciles with the session's offset
        self._state.tail = rest
        if not self._has_sidecar:
            # One parked upload per path: the one parked before this (another writer's) is dropped, not orphaned.
            with contextlib.suppress(_UnreadableSidecar):
                replaced = self._driver._take_sidecar(self._state.target)
                if replaced is not None:
                    self._driver._drop_upload(replaced, sidecar=False)
        self._driver._write_sidecar(self._state)
        self._has_sidecar = True

    def commit(self, conditions: Conditions) -> None:
        driver, state = self._driver, self._state
        rest = self._take()
        params = _generation_param(conditions)
        session = state.session
        start = session.offset if session is not None else 0
        try:
            if not state.pieces and session is None:
                driver._upload_small(state.target, rest, params, what="commit")
            elif not state.pieces:
                assert session is not None
                if params:
                    raise UnsupportedMethodError(
                        "this upload already streams into a resumable session, whose conditions GCS fixes when "
                        "it starts; commit it without conditions, or use put() or move() with the condition"
                    )
                driver._transmit(session, memoryview(rest), total=start + len(rest), crc=state.crc)
                state.session = None
            elif self._unchanged(rest, params):
                pass  # appending nothing to committed content: leave its generation as it is
            else:
                self._finish_into_piece(rest)
                rest, session = b"", None
                try:
                    result = driver._compose([piece.source() for piece in state.pieces], state.target, params)
                except _HTTPError as exc:
                    if exc.status != 404:
                        raise
                    raise PreconditionFailedError(
                        f"a piece of the upload for /{state.target} is gone: the committed content it appends "
                        "to was replaced or deleted, or another writer dropped this upload"
                    ) from exc
                if state.crc is not None:
                    driver._check_crc(result, _crc_b64(state.crc))
        except BaseException:
            # Keep progress parked for writer(path, append=True): only what the session lacks stays in the tail.
            if session is not None and state.session is session:
                rest = rest[max(0, session.offset - start) :]
            with contextlib.suppress(Exception):
                self._park(rest, may_start=False)
            raise
        # Published: what follows is housekeeping, and must not turn the commit into an error.
        cleanup = [piece.name for piece in state.pieces if piece.temp]
        if self._has_sidecar:
            cleanup.append(driver._sidecar_key(state.target))
        driver._discard(cleanup)

    def _unchanged(self, rest: bytes, params: Mapping[str, str]) -> bool:
        state = self._state
        only = state.pieces[0] if len(state.pieces) == 1 else None
        return (
            not rest
            and not params
            and state.session is None
            and only is not None
            and not only.temp
            and only.name == state.target
        )

    def _finish_into_piece(self, rest: bytes) -> None:
        """Turn the session (or the buffered bytes) into a finished temporary appended to the pieces."""
        driver, state = self._driver, self._state
        session = state.session
        if session is not None:
            if session.direct:  # cannot happen: sessions started with pieces present write temporaries
                raise StorageError(f"the upload for /{state.target} mixes committed pieces with a direct session")
            total = session.offset + len(rest)
            resource = driver._transmit(session, memoryview(rest), total=total, crc=None)
            assert resource is not None
            state.session = None
            state.pieces.append(_Piece(session.key, str(resource.get("generation") or ""), total, temp=True))
        elif rest:
            key = driver._temp_key()
            resource = driver._upload_small(key, rest, {}, what="commit")
            state.pieces.append(_Piece(key, str(resource.get("generation") or ""), len(rest), temp=True))

    def cancel(self) -> None:
        self._take()
        self._driver._drop_upload(self._state, sidecar=self._has_sidecar)


def _default_ca_bundle() -> str | None:
    """The CA bundle requests would use (certifi's), so both clients trust the same roots."""
    try:
        import certifi
    except ImportError:
        return None
    return str(certifi.where())


def _persisted(response: BaseHTTPResponse) -> int:
    """Bytes a session has persisted, from a 308 answer's ``Range: bytes=0-N`` (absent: none)."""
    header = response.headers.get("Range")
    if not header:
        return 0
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        raise StorageError(f"unexpected Range header {header!r} from an upload session")
    return int(match.group(1)) + 1


def _hash_header(value: str | None, headers: Mapping[str, str]) -> int | None:
    """The CRC32C in an ``X-Goog-Hash: crc32c=...,md5=...`` header, if it describes the bytes received.

    For an object stored gzip-encoded (written by another tool), GCS may send it
    decompressed while the hash is of the stored bytes: no check then.
    """
    if not value or headers.get("x-goog-stored-content-encoding", "identity") != "identity":
        return None
    for part in value.split(","):
        name, _, encoded = part.strip().partition("=")
        if name == "crc32c":
            return _crc_from_b64(encoded)
    return None


class _Prepended(Source):
    """A source whose first bytes were already read (to size a put) followed by the rest of another."""

    def __init__(self, head: memoryview, rest: Source) -> None:
        def chunks() -> Iterator[memoryview]:
            yield head
            while piece := rest.read(MiB):
                yield piece

        super().__init__(cast(Iterable[bytes], chunks()))


def _seekable(file: Any) -> bool:
    try:
        return bool(file.seekable())
    except (AttributeError, OSError, ValueError):
        return False


@dataclass
class _Checksummed:
    """How far into a file the CRC32C has got (a file position) and its value."""

    start: int
    end: int
    upto: int
    crc: int = 0


class _FileBody:
    """Bytes ``[base, base + length)`` of a seekable file as a request body that can be sent again.

    Slicing gives the body from an offset on (a resumed request re-reads from there);
    iterating seeks and reads 1 MiB blocks. The CRC32C of the whole range is computed
    on the way, each byte counted once however often it is sent.
    """

    BLOCK = MiB

    def __init__(self, file: Any, base: int, length: int, checksum: _Checksummed) -> None:
        self._file = file
        self._base = base
        self._length = length
        self._checksum = checksum

    @classmethod
    def open(cls, file: Any, length: int) -> _FileBody:
        base = int(file.tell())
        return cls(file, base, length, _Checksummed(base, base + length, base))

    @property
    def crc(self) -> int | None:
        """The CRC32C of the whole range once every byte of it was read, else ``None``."""
        return self._checksum.crc if self._checksum.upto == self._checksum.end else None

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, cut: slice) -> _FileBody:
        start = cut.start or 0
        return _FileBody(self._file, self._base + start, self._length - start, self._checksum)

    def __iter__(self) -> Iterator[bytes]:
        position, end = self._base, self._base + self._length
        self._file.seek(position)
        checksum = self._checksum
        while position < end:
            block = self._file.read(min(self.BLOCK, end - position))
            if not block:
                raise StorageError("the file being uploaded got shorter during the upload")
            if position <= checksum.upto < position + len(block):
                checksum.crc = _crc_extend(checksum.crc, block[checksum.upto - position :])
                checksum.upto = position + len(block)
            position += len(block)
            yield block


class _EmptyReader:
    def readinto(self, buffer: memoryview) -> int:
        return 0

    def close(self) -> None:
        pass


class _MediaReader:
    """Sequential reads of one byte range with a streamed GET.

    A connection that breaks mid-body is re-opened at the current position, pinned
    to the generation first read, so a concurrent overwrite can never splice two
    contents. A whole-object read is checked against the object's CRC32C.
    """

    def __init__(self, driver: GCSDriver, key: str, start: int, end: int | None) -> None:
        self._driver = driver
        self._url = f"{driver._download_api}/{quote(key, safe='')}"
        self._key = key
        self._position = start
        self._end = end
        self._generation: str | None = None
        self._response: BaseHTTPResponse | None = None
        self._crc: int | None = None
        self._want_crc: int | None = None
        self._reconnects = 0
        self.remaining: int | None = None
        driver._retry.call(self._connect, is_transient=_is_transient, what="stream")

    def _connect(self) -> None:
        self._close_response()
        headers = {"Accept-Encoding": "identity"}
        whole = self._position == 0 and self._end is None
        if not whole:
            last = "" if self._end is None else str(self._end - 1)
            headers["Range"] = f"bytes={self._position}-{last}"
        params = {"alt": "media"}
        if self._generation:
            params["generation"] = self._generation
        try:
            response = self._driver._send(
                "GET",
                self._url,
                what="stream",
                params=params,
                headers=headers,
                stream=True,
                expect=(200, 206, 416),
                retry=False,
            )
        except _HTTPError as exc:
            if exc.status == 404 and self._generation:
                raise StorageError(f"{self._key} was replaced or deleted while being read") from None
            raise
        if response.status == 416:  # the offset is at or past the end
            response.read()
            response.release_conn()
            self.remaining = 0
            self._end = self._position
            return
        self._response = response
        self._generation = self._generation or response.headers.get("x-goog-generation")
        length = response.headers.get("Content-Length")
        if length is not None:
            self.remaining = int(length)
            self._end = self._position + int(length)
        if whole and response.status == 200:
            self._want_crc = _hash_header(response.headers.get("X-Goog-Hash"), response.headers)
            self._crc = 0 if self._want_crc is not None else None

    def _close_response(self) -> None:
        response, self._response = self._response, None
        if response is not None:
            # A body read to its end goes back to the pool; an abandoned one closes its connection.
            if self._end is None or self._position < self._end:
                response.close()
            response.release_conn()

    def readinto(self, buffer: memoryview) -> int:
        if self._end is not None:
            buffer = buffer[: max(0, self._end - self._position)]
        if not buffer:
            self._finish()
            return 0
        while True:
            response = self._response
            if response is None:
                return 0
            try:
                # read() then one copy, as urllib3's readinto does, but the checksum
                # can use the bytes object itself (google_crc32c takes only bytes).
                data = response.read(len(buffer), decode_content=False)
            except (urllib3.exceptions.HTTPError, OSError):
                data = None
            got = -1 if data is None else len(data)
            if data:
                buffer[:got] = data
                self._position += got
                if self._crc is not None:
                    self._crc = _crc_extend(self._crc, data)
                if self._end is not None and self._position >= self._end:
                    self._finish()  # callers stop at the known size: check the checksum now
                return got
            if got == 0 and (self._end is None or self._position >= self._end):
                self._finish()
                return 0
            # The body ended early or broke: continue from here on a new connection.
            self._reconnects += 1
            if self._reconnects > self._driver._retry.attempts:
                raise StorageError(f"reading {self._key} kept failing after {self._reconnects - 1} reconnections")
            self._crc = self._want_crc = None
            self._driver._retry.call(self._connect, is_transient=_is_transient, what="stream")

    def _finish(self) -> None:
        self._close_response()
        if self._want_crc is not None and self._crc is not None and self._crc != self._want_crc:
            self._want_crc = None
            raise StorageError(f"integrity check failed reading {self._key}: CRC32C mismatch")

    def close(self) -> None:
        self._close_response()


__all__ = ["GCSDriver"]
