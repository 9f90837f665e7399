"""How the driver reaches GCS: endpoint, credentials, HTTP clients and the JSON API's plain requests.

Data and metadata requests go through urllib3 (google-auth's ``AuthorizedHttp``):
requests costs about half a millisecond of CPU per request, a third of a small
request's time. Batch deletes and URL signing use the ``google-cloud-storage``
client on a requests session. Neither retries on its own: every retry is the
driver's one :class:`~blobdrivers.retry.RetryPolicy`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import requests
import urllib3
from google.api_core.client_options import ClientOptions
from google.auth import exceptions as auth_exceptions
from google.auth.credentials import AnonymousCredentials
from google.auth.transport.requests import AuthorizedSession
from google.auth.transport.urllib3 import AuthorizedHttp
from google.cloud import storage
from urllib3.response import BaseHTTPResponse

from ...clients import ProcessLocal, http_session
from ...errors import ConfigError
from ...params import Params, endpoint_url
from ...redaction import CREDENTIAL_PATTERNS, LogRedactor
from ...retry import RetryPolicy
from .errors import HTTPError, is_transient

DEFAULT_ENDPOINT = "https://storage.googleapis.com"
ENDPOINT_EXAMPLE = "http://localhost:9023"
SCOPES = ("https://www.googleapis.com/auth/devstorage.full_control",)
#: (connect, read) seconds for every request.
TIMEOUT = (20.0, 120.0)
#: Items per listing page (the GCS maximum); a module global so tests can shrink it.
LIST_PAGE_SIZE = 1000

# urllib3 logs every request line at DEBUG, and a resumable session's URI (upload_id=...) is a
# bearer secret; signed URLs carry signatures. Filters apply only where a record is made.
LogRedactor(CREDENTIAL_PATTERNS).install(
    "urllib3",
    "urllib3.connectionpool",
    "urllib3.connection",
    "urllib3.poolmanager",
    "urllib3.response",
    "urllib3.util.retry",
    "requests",
    "google.auth",
    "google.auth._helpers",
    "google.auth.transport.requests",
    "google.auth.transport.urllib3",
    "google.cloud.storage",
    "google.cloud.storage.blob",
    "google.cloud.storage.batch",
    "google.api_core",
)


def resolve_endpoint(endpoint: str | None) -> str:
    """The ``endpoint`` parameter (already checked), else ``STORAGE_EMULATOR_HOST``, else Google's endpoint."""
    if endpoint is not None:
        return endpoint
    emulator = os.environ.get("STORAGE_EMULATOR_HOST")
    if emulator:
        # The emulator convention: STORAGE_EMULATOR_HOST=localhost:9023 means http.
        return endpoint_url(
            emulator.strip(),
            default_scheme="http",
            parameter="STORAGE_EMULATOR_HOST",
            example=ENDPOINT_EXAMPLE,
            driver="gcs",
        )
    return DEFAULT_ENDPOINT


def credentials_param(reader: Params, raw: Any) -> Mapping[str, Any] | None:
    """The ``credentials`` parameter as a mapping: given as one, or as its JSON text."""
    if not (isinstance(raw, str) and raw.strip()):
        return reader.mapping("credentials")
    reader.string("credentials")
    try:
        info = json.loads(raw)
    except ValueError:
        raise ConfigError(
            "invalid value (hidden) for parameter 'credentials': expected a mapping or its JSON text",
            driver="gcs",
        ) from None
    if not isinstance(info, Mapping):
        raise ConfigError(
            "invalid value (hidden) for parameter 'credentials': the JSON text is not an object",
            driver="gcs",
        )
    return info


def load_credentials(
    keyfile: str | None, info: Mapping[str, Any] | None, *, anonymous: bool, shown: Mapping[str, str]
) -> Any:
    """Credentials from ``keyfile``/``credentials`` now (so bad ones fail at once); else anonymous or later.

    ``anonymous`` (an emulator or private endpoint) gives anonymous access when no key
    is given; otherwise ``None`` means application default credentials, looked up on
    first use. ``shown`` is how each parameter may appear in an error.
    """
    if keyfile:
        try:
            with open(keyfile, encoding="utf-8") as file:
                loaded = json.load(file)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"invalid value {keyfile!r} for parameter 'keyfile': cannot read a JSON key ({type(exc).__name__})",
                driver="gcs",
            ) from None
        return _credentials_from(loaded, "keyfile", shown["keyfile"])
    if info is not None:
        return _credentials_from(info, "credentials", shown["credentials"])
    if anonymous:
        return AnonymousCredentials()  # type: ignore[no-untyped-call]
    return None


def _credentials_from(info: Any, parameter: str, shown: str) -> Any:
    """Build credentials of an explicitly allowed type (never whatever type a JSON file claims)."""
    from google.oauth2 import credentials as user_credentials
    from google.oauth2 import service_account

    kind = info.get("type") if isinstance(info, Mapping) else None
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
            f"invalid value {shown} for parameter {parameter!r}: cannot load {kind} credentials ({type(exc).__name__})",
            driver="gcs",
        ) from None
    # The type is named only when it is one of Google's: any other text came from a secret.
    known = kind in ("external_account", "external_account_authorized_user", "impersonated_service_account")
    raise ConfigError(
        f"invalid value {shown} for parameter {parameter!r}: expected a service_account or authorized_user "
        f"key, not type {repr(kind) if known else '(hidden)'}",
        driver="gcs",
    )


@dataclass
class Client:
    """One process's clients."""

    storage: Any  # google.cloud.storage.Client, on a requests session (batch requests, signing)
    http: Any  # google.auth.transport.urllib3.AuthorizedHttp: every other request
    credentials: Any


def make_client(credentials: Any, *, endpoint: str, project: str | None, verify: bool | str, pool_size: int) -> Client:
    """Build the clients (``credentials`` ``None``: application default credentials, looked up now)."""
    if credentials is None:
        import google.auth

        credentials, _ = google.auth.default(scopes=list(SCOPES))
    # Proxies and CA bundle from the environment, read once (requests re-reads them per request).
    proxy = requests.utils.get_environ_proxies(endpoint).get(endpoint.split(":", 1)[0])
    options: dict[str, Any] = {
        "maxsize": pool_size,
        "retries": False,  # retries are ours; this also leaves 308 answers alone
        "timeout": urllib3.Timeout(connect=TIMEOUT[0], read=TIMEOUT[1]),
    }
    if verify is False:
        options["cert_reqs"] = "CERT_NONE"
    else:
        options["ca_certs"] = verify if isinstance(verify, str) else _default_ca_bundle()
    pool = urllib3.ProxyManager(proxy, **options) if proxy else urllib3.PoolManager(**options)
    http = AuthorizedHttp(credentials, http=pool)  # type: ignore[no-untyped-call]
    session = http_session(
        endpoint,
        verify=verify,
        pool_size=pool_size,
        session=AuthorizedSession(credentials),  # type: ignore[no-untyped-call]
    )
    client_options = ClientOptions(api_endpoint=endpoint) if endpoint != DEFAULT_ENDPOINT else None
    client = storage.Client(project=project, credentials=credentials, client_options=client_options, _http=session)
    return Client(client, http, credentials)


def _default_ca_bundle() -> str | None:
    """The CA bundle requests would use (certifi's), so both clients trust the same roots."""
    try:
        import certifi
    except ImportError:
        return None
    return str(certifi.where())


class Api:
    """The JSON API of one bucket: plain requests under the retry policy, object metadata, listings."""

    def __init__(self, endpoint: str, bucket: str, clients: ProcessLocal[Client], retry: RetryPolicy) -> None:
        self.endpoint = endpoint
        self.bucket = bucket
        self.clients = clients
        self.retry = retry
        self.objects = f"{endpoint}/storage/v1/b/{bucket}/o"
        self.uploads = f"{endpoint}/upload/storage/v1/b/{bucket}/o"
        self.downloads = f"{endpoint}/download/storage/v1/b/{bucket}/o"

    def http(self) -> Any:
        """The urllib3 client of the current process."""
        return self.clients.get().http

    def send(
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
        """One request, retried on transient failures; a status outside ``expect`` raises ``HTTPError``.

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
            response: BaseHTTPResponse = self.http().urlopen(
                method, url, body=body, headers=request_headers, preload_content=not stream
            )
            if response.status not in expected:
                if stream:
                    response.read()
                    response.release_conn()
                raise HTTPError.from_response(response, what)
            return response

        if not retry:
            return attempt()
        return self.retry.call(attempt, is_transient=is_transient, what=what)

    def object_url(self, key: str) -> str:
        """The JSON-API URL of the object ``key``."""
        return f"{self.objects}/{quote(key, safe='')}"

    def media_url(self, key: str) -> str:
        """The download URL of the object ``key`` (with ``alt=media``)."""
        return f"{self.downloads}/{quote(key, safe='')}"

    def metadata(self, key: str) -> dict[str, Any] | None:
        """The object resource of ``key``, or ``None`` when there is no live object."""
        try:
            response = self.send(
                "GET", self.object_url(key), what="stat", params={"fields": "name,size,updated,generation,crc32c"}
            )
        except HTTPError as exc:
            if exc.status == 404 and not exc.bucket_missing:
                return None
            raise
        result: dict[str, Any] = json.loads(response.data)
        return result

    def delete_key(self, key: str, *, generation: str | None = None) -> bool:
        """Delete one object; False when there was none (or, with ``generation``, another generation)."""
        params = {"ifGenerationMatch": generation} if generation else None
        try:
            self.send("DELETE", self.object_url(key), what="delete", params=params, expect=(200, 204))
        except HTTPError as exc:
            if (exc.status == 404 and not exc.bucket_missing) or exc.status == 412:
                return False
            raise
        return True

    def bucket_exists(self) -> bool:
        """Whether the bucket exists; asked only to explain a 404 that did not say (any doubt: it does)."""
        try:
            self.send("GET", f"{self.endpoint}/storage/v1/b/{self.bucket}", what="bucket", params={"fields": "name"})
        except HTTPError as exc:
            return exc.status != 404
        except Exception:
            return True
        return True

    def list_pages(
        self, prefix: str, *, fields: str, delimiter: str | None = None, page_size: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Listing pages below ``prefix``, following ``nextPageToken``; each page is retried on its own.

        A listing answers 404 only when the bucket does not exist.
        """
        token: str | None = None
        while True:
            params = {"maxResults": str(page_size or LIST_PAGE_SIZE), "fields": fields}
            if prefix:
                params["prefix"] = prefix
            if delimiter:
                params["delimiter"] = delimiter
            if token:
                params["pageToken"] = token
            try:
                page: dict[str, Any] = json.loads(self.send("GET", self.objects, what="list", params=params).data)
            except HTTPError as exc:
                if exc.status == 404:
                    exc.bucket_missing = True
                raise
            yield page
            token = page.get("nextPageToken")
            if not token:
                return

    def keys_below(self, prefix: str) -> Iterator[str]:
        """Every key below ``prefix``, hidden and foreign ones included."""
        for page in self.list_pages(prefix, fields="items(name),nextPageToken"):
            for item in page.get("items") or ():
                yield str(item["name"])
