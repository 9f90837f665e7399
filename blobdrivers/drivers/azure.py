"""The Azure Blob Storage driver, on azure-storage-blob, using BlockBlobs only.

Every publish is one atomic call: a Put Blob (small content), or a Put Block List
committing blocks staged before it (put, writer commit, cat, move of large blobs).
Readers therefore see the old or the whole new content, never a part.

Block ids are ``"bd1" + session + index`` (a fixed-width 45-character string,
base64-encoded by the SDK, so every id of a blob has the same length as Azure
requires). The session is a random 128-bit hex id per put, cat or writer, so two
writers staging blocks for the same path can never list each other's blocks: a
commit names only its own session's blocks, and a blob is always exactly one
writer's content. A block re-sent after a timeout goes under the same id and
replaces itself, so a retry can never duplicate data.

Azure discards every uncommitted block of a blob when anyone commits that blob
(Put Blob or Put Block List). So when two multi-block puts race for one path, the
later commit finds its blocks gone. For ``put`` and ``cat`` (single calls whose
duration covers the whole race) the driver then reports success: the call is
ordered just before the concurrent write that replaced it, which is a valid
outcome for concurrent unconditional writes; conditional ones raise instead.

A resumable writer's *session* therefore stages its blocks on a hidden staging
blob of its own, ``<root>/~uploads/<sha256 of the key>.<session>``, which no
commit to the path can touch; its ``commit()`` copies the staging blob into fresh
blocks of the target server-side (Put Block From URL) and commits them at once,
so two writers of one path both commit and the later one wins. ``close()`` parks
the session in a small hidden *marker* blob, ``<root>/~uploads/<sha256 of the
key>`` (one parked session per path), naming the session, its block count and
byte size, and the base (etag and committed blocks) when the upload appends to
committed content. A resuming writer takes the marker over (a delete with
If-Match on what it read, so one parked session goes to one writer), then reads
the staging blob's block list and keeps exactly its session's blocks. The ``~``
keeps markers and staging blobs out of list and walk.

Appending to committed content re-commits the committed block ids followed by the
new ones in one Put Block List guarded by If-Match on the etag read at open, so no
data is copied. A blob that has no reusable block list (written by Put Blob, by
another tool, or a legacy AppendBlob) is first copied into the new session's
blocks: server-side with Put Block From URL where the service has it, else by a
bounded streaming copy.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import hashlib
import io
import itertools
import json
import logging
import os
import random
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.util import find_spec
from itertools import repeat
from typing import Any, Final, cast

import requests
import urllib3
from azure.core import MatchConditions
from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.transport import RequestsTransport
from azure.storage.blob import (
    BlobBlock,
    BlobClient,
    BlobProperties,
    BlobSasPermissions,
    BlobServiceClient,
    BlobType,
    BlockState,
    ContainerClient,
    ExponentialRetry,
    UserDelegationKey,
    generate_blob_sas,
)

# Condition models of the generated layer: the public methods pass them through, and
# the streaming GET (see _BlobReader) calls the generated operation directly.
from azure.storage.blob._generated.models import ModifiedAccessConditions, SourceModifiedAccessConditions

from .. import paths
from ..clients import ProcessLocal
from ..conditions import Conditions
from ..driver import StorageDriver
from ..errors import ConfigError, PathNotFoundError, PreconditionFailedError, StorageError, UnsupportedMethodError
from ..listing import FileInfo, visible_children, walk_flat
from ..params import KiB, MiB, Params
from ..reader import RangeReader
from ..redaction import secret_forms
from ..retry import RetryPolicy
from ..transfer import PartBuffer, Source, growing_part_sizes, part_size_for, run_bounded, upload_parts
from ..writer import WriterBackend

log = logging.getLogger("blobdrivers.azure")

#: Service limits (Put Block / Put Block List, API 2019-12-12 and later).
MAX_BLOCKS: Final = 50_000
MAX_BLOCK_SIZE: Final = 4000 * MiB
#: Largest range one Put Block From URL copies (the documented limit of that call).
MAX_COPY_RANGE: Final = 100 * MiB
#: Largest blob moved with one synchronous Copy Blob From URL.
MAX_SYNC_COPY: Final = 256 * MiB
#: Widest read of the HTTP body per ``readinto`` (bounds the temporary buffer urllib3 allocates).
READ_SLICE: Final = 4 * MiB

_BLOB_CLIENT_CACHE: Final = 1024
_ID_PREFIX: Final = "bd1"
_ID_LENGTH: Final = len(_ID_PREFIX) + 32 + 10
_PUBLISH_META: Final = "bdpublish"
_UPLOADS: Final = "~uploads"
#: Copies of a writer's staged content a commit makes when concurrent commits keep discarding them.
_COMMIT_ATTEMPTS: Final = 3
_SECRETS: Final = frozenset({"accountkey", "connectionstring", "sastoken", "credentials"})
_CONTAINER_NAME = re.compile(r"(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9]))*")
_ACCOUNT_NAME = re.compile(r"[a-z0-9]{3,24}")
_HOST = re.compile(r"[A-Za-z0-9.-]+")
_SIG = re.compile(r"(?i)(sig=)[^&\s'\"]+")
_NOT_IMPLEMENTED_CODES = frozenset({"APINotImplemented", "NotImplemented", "FeatureNotSupported"})


def _block_id(session: str, index: int) -> str:
    """The (unencoded) id of block ``index`` of a session: fixed width, so every id has one length."""
    return f"{_ID_PREFIX}{session}{index:010d}"


def _new_session() -> str:
    return uuid.uuid4().hex


@functools.cache
def _growing_sizes(chunk_size: int) -> tuple[int, ...]:
    """Block sizes for a writer of unknown length: block ``i`` has size ``sizes[i]``."""
    return tuple(growing_part_sizes(chunk_size, max_parts=MAX_BLOCKS, max_part_size=MAX_BLOCK_SIZE))


def _error_code(exc: BaseException) -> str:
    """The storage error code of an SDK exception (``x-ms-error-code``), or ``""``."""
    code = getattr(exc, "error_code", None)
    if code:
        return str(getattr(code, "value", code))
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is not None:
        value = headers.get("x-ms-error-code")
        if value:
            return str(value)
    return ""


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return int(status) if isinstance(status, int) else None


def _is_not_implemented(exc: BaseException) -> bool:
    return isinstance(exc, HttpResponseError) and (_status(exc) == 501 or _error_code(exc) in _NOT_IMPLEMENTED_CODES)


def _is_condition_failure(exc: BaseException) -> bool:
    """A 412 on the target, or the 409 Azure answers to If-None-Match: * on an existing blob."""
    if not isinstance(exc, HttpResponseError):
        return False
    code = _error_code(exc)
    if _status(exc) == 412:
        return code != "SourceConditionNotMet"
    return _status(exc) == 409 and code == "BlobAlreadyExists"


def _is_missing(exc: BaseException) -> bool:
    return isinstance(exc, HttpResponseError) and _status(exc) == 404


def _as_bytes(data: memoryview | bytes | bytearray) -> bytes:
    """``bytes`` for the SDK's single-shot upload, without a copy when ``data`` already is whole bytes."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, memoryview) and isinstance(data.obj, bytes) and data.nbytes == len(data.obj):
        return data.obj
    return bytes(data)


class _SasRedactor(logging.Filter):
    """Removes SAS signatures from urllib3's debug lines, which print request URLs with their query."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "sig=" in message.lower():
            record.msg = _SIG.sub(r"\1REDACTED", message)
            record.args = ()
        return True


_REDACTOR_LOCK = threading.Lock()
_REDACTOR_INSTALLED = False


def _install_log_redaction() -> None:
    """Guard urllib3's request-line log (DEBUG) against SAS tokens; idempotent, process-wide."""
    global _REDACTOR_INSTALLED
    with _REDACTOR_LOCK:
        if not _REDACTOR_INSTALLED:
            logging.getLogger("urllib3.connectionpool").addFilter(_SasRedactor())
            _REDACTOR_INSTALLED = True


class _Retry(ExponentialRetry):
    """The SDK's storage retry policy, with the backoff of :class:`~blobdrivers.retry.RetryPolicy`.

    The SDK default waits 15 s and more between attempts; this keeps its choice of
    what to retry (timeouts, 408, 5xx but 501/505, connection errors) and uses full
    jitter: uniform in ``[0, min(max_delay, base_delay * 2**n)]``.
    """

    def __init__(self, policy: RetryPolicy, retries: int) -> None:
        super().__init__(
            retry_total=retries, retry_connect=retries, retry_read=retries, retry_status=retries, initial_backoff=0
        )
        self._policy = policy

    def get_backoff_time(self, settings: dict[str, Any]) -> float:
        """Full-jitter exponential backoff for retry number ``settings["count"]``."""
        count = int(settings.get("count", 0))
        log.debug("azure: retrying a request (retry %d)", count)
        return random.uniform(0, min(self._policy.max_delay, self._policy.base_delay * 2**count))


@dataclass(frozen=True)
class _Auth:
    """How the driver reaches the account, resolved from the parameters (secrets inside; never shown)."""

    account_url: str
    account_name: str | None
    account_key: str | None = None
    sas_token: str | None = None
    credentials: Mapping[str, Any] | None = None

    def __repr__(self) -> str:
        return f"_Auth(account_url={self.account_url!r}, account_name={self.account_name!r})"


@dataclass
class _Clients:
    service: BlobServiceClient
    container: ContainerClient
    pool: ThreadPoolExecutor
    # Building a BlobClient costs about half a millisecond (URL parsing, policies):
    # recently used ones are kept. They share the container's pipeline and are thread-safe.
    blobs: OrderedDict[str, BlobClient] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def blob(self, key: str) -> BlobClient:
        with self.lock:
            client = self.blobs.get(key)
            if client is not None:
                self.blobs.move_to_end(key)
                return client
        client = self.container.get_blob_client(key)
        with self.lock:
            self.blobs[key] = client
            if len(self.blobs) > _BLOB_CLIENT_CACHE:
                self.blobs.popitem(last=False)
        return client


@dataclass(frozen=True)
class _Base:
    """Committed content an upload appends to: its etag, and the committed blocks it re-uses."""

    etag: str
    blocks: int
    size: int


@dataclass(frozen=True)
class _SourceBlob:
    full: str
    client: BlobClient
    etag: str
    size: int


class AzureDriver(StorageDriver):
    """Azure Blob Storage (BlockBlobs only); see ``docs/drivers/azure.md`` for the parameters."""

    name = "azure"
    #: Azure blob names are at most 1,024 characters (paths are ASCII, so bytes); session
    #: markers (``~uploads/<sha256>``) and other bookkeeping keys need at most 160 bytes below the root.
    max_key_bytes = 1024
    bookkeeping_key_bytes = 160
    secret_params = _SECRETS
    #: Account-key SAS could be valid for years, user-delegation SAS for at most 7 days:
    #: the driver caps every URL at 7 days.
    max_url_expiry = 7 * 24 * 3600

    def __init__(self, **params: Any) -> None:
        reader = Params(self.name, params, secrets=_SECRETS)
        account_name = reader.string("accountname")
        account_key = reader.string("accountkey")
        container = reader.required_string("container")
        connection_string = reader.string("connectionstring")
        sas_token = reader.string("sastoken")
        credentials = reader.mapping("credentials")
        realm = reader.string("realm", "core.windows.net") or "core.windows.net"
        service_url = reader.string("serviceurl")
        rootdirectory = reader.string("rootdirectory", "") or ""
        chunk_size = reader.size("chunksize", 4 * MiB, minimum=16 * KiB, maximum=MAX_BLOCK_SIZE)
        self.max_concurrency = reader.integer("maxconcurrency", 8, minimum=1, maximum=64)
        self.retries = reader.integer("retries", 5, minimum=0, maximum=20, aliases=("maxretries",))
        self._skipverify = reader.boolean("skipverify", False)
        reader.done()
        if not _CONTAINER_NAME.fullmatch(container):
            raise ConfigError(
                f"invalid value {container!r} for parameter 'container': 3-63 lowercase letters, digits and "
                "single dashes, starting and ending with a letter or digit",
                driver=self.name,
            )
        self._container = container
        self._auth = _resolve_auth(
            account_name=account_name,
            account_key=account_key,
            connection_string=connection_string,
            sas_token=sas_token,
            credentials=credentials,
            realm=realm,
            service_url=service_url,
        )
        super().__init__(params, rootdirectory=rootdirectory, chunk_size=chunk_size)
        self._retry_policy = RetryPolicy.with_attempts(self.retries + 1)
        self._clients: ProcessLocal[_Clients] = ProcessLocal(self._make_clients)
        # Whether the service copies from URLs (Put Block From URL, Put Blob From URL):
        # None until the first attempt tells.
        self._copy_from_url: bool | None = None
        self._legacy_lock = threading.Lock()
        self._delegation: tuple[UserDelegationKey, datetime] | None = None
        self._delegation_lock = threading.Lock()
        _install_log_redaction()
        if self._skipverify:
            log.warning("azure: skipverify is set: TLS certificates of %s are NOT verified", self._auth.account_url)

    # ------------------------------------------------------------------ clients

    def _make_clients(self) -> _Clients:
        session = requests.Session()
        # A pool wide enough for every part in flight plus callers' own threads; the
        # SDK's retry policy retries, so urllib3 must not.
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=4,
            pool_maxsize=max(32, 2 * self.max_concurrency),
            max_retries=urllib3.util.Retry(total=False, redirect=False, raise_on_status=False),
        )
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        # requests re-reads proxy and CA settings from os.environ on every request
        # (about half a millisecond each); read them once per process instead.
        session.trust_env = False
        session.proxies.update(requests.utils.get_environ_proxies(self._auth.account_url))
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        # The transport passes its own verify setting with every request, overriding the session's.
        verify: bool | str = False if self._skipverify else (bundle or True)
        session.verify = verify
        transport = RequestsTransport(session=session, session_owner=True, connection_verify=verify)
        options: dict[str, Any] = {
            "transport": transport,
            "retry_policy": _Retry(self._retry_policy, self.retries),
            "max_single_put_size": self.chunk_size,
            "max_block_size": self.chunk_size,
            "max_single_get_size": self.chunk_size,
            "max_chunk_get_size": self.chunk_size,
        }
        auth = self._auth
        credential: Any
        if auth.account_key is not None:
            credential = AzureNamedKeyCredential(auth.account_name or "", auth.account_key)
        elif auth.sas_token is not None:
            credential = AzureSasCredential(auth.sas_token)
        else:
            credential = _token_credential(auth.credentials or {})
        service = BlobServiceClient(auth.account_url, credential=credential, **options)
        pool = ThreadPoolExecutor(max_workers=2 * self.max_concurrency, thread_name_prefix="blobdrivers-azure")
        return _Clients(service, service.get_container_client(self._container), pool)

    def _container_client(self) -> ContainerClient:
        return self._clients.get().container

    def _blob(self, full: str) -> BlobClient:
        return self._clients.get().blob(paths.to_key(full))

    def _logical(self, full: str) -> str:
        return paths.strip(self._root, full)

    # ------------------------------------------------------------------ errors

    def _translate_error(self, exc: Exception, path: str) -> StorageError | None:
        # Messages are built from status codes, error codes and paths only: an SDK
        # message can quote request URLs, and those may carry a SAS token (the base
        # driver has masked them in ``exc`` itself, which stays the cause).
        if isinstance(exc, HttpResponseError):
            status, code = _status(exc), _error_code(exc) or "no error code"
            if status == 404 and code == "ContainerNotFound":
                return StorageError(f"container {self._container!r} does not exist")
            if status == 404:
                return PathNotFoundError(f"no file at {path}")
            if _is_condition_failure(exc):
                return PreconditionFailedError(f"the condition on {path} is false ({code})")
            if status == 412:
                return StorageError(f"a source of {path} changed during the operation ({code})")
            if status in (401, 403):
                return StorageError(f"access to {path} denied: HTTP {status} {code}; check the credentials")
            return StorageError(f"request for {path} failed: HTTP {status} {code}")
        if isinstance(exc, ServiceRequestError | ServiceResponseError | requests.RequestException):
            return StorageError(f"connection to the service failed for {path}: {type(exc).__name__}")
        if isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError):
            return StorageError(f"connection to the service failed for {path}: {type(exc).__name__}")
        if isinstance(exc, AzureError) or type(exc).__module__.startswith("azure."):
            return StorageError(f"{type(exc).__name__} for {path}")
        return None

    def _secrets(self) -> list[str]:
        auth = self._auth
        values = [auth.account_key, auth.sas_token, self._params.get("connectionstring")]
        if auth.credentials:
            values.extend(str(value) for value in auth.credentials.values())
        return [value for value in values if isinstance(value, str) and len(value) >= 4]

    def redact(self, text: str) -> str:
        """``text`` without secret values: parameters, the key inside a connection string, SAS signatures."""
        text = super().redact(text)
        for secret in self._secrets():
            for form in secret_forms(secret):
                text = text.replace(form, "***")
        return _SIG.sub(r"\1REDACTED", text)

    # ------------------------------------------------------------------ conditions

    @staticmethod
    def _condition_kwargs(conditions: Conditions) -> dict[str, Any]:
        if conditions.if_none_match:
            return {"match_condition": MatchConditions.IfMissing}
        if conditions.if_match is not None:
            return {"etag": conditions.if_match, "match_condition": MatchConditions.IfNotModified}
        return {}

    def _published(self, blob: BlobClient, publish: str) -> bool:
        """Tell whether our own earlier attempt of a failed conditional publish landed.

        A conditional publish carries a random id in its metadata. If a response is
        lost and the SDK retries, the retry finds its own write and fails the
        condition; the id tells that apart from a real competitor.
        """
        try:
            metadata = blob.get_blob_properties().metadata or {}
        except HttpResponseError:
            return False
        return metadata.get(_PUBLISH_META) == publish

    def _put_blob(self, blob: BlobClient, data: memoryview | bytes | bytearray, conditions: Conditions) -> None:
        """One Put Blob: a BlockBlob of ``data`` (which replaces a blob of any type atomically)."""
        publish = _new_session() if conditions else None
        try:
            blob.upload_blob(
                _as_bytes(data),
                length=len(data),
                blob_type=BlobType.BLOCKBLOB,
                overwrite=not conditions.if_none_match,
                metadata={_PUBLISH_META: publish} if publish else None,
                **self._condition_kwargs(conditions),
            )
        except HttpResponseError as exc:
            if publish and _is_condition_failure(exc) and self._published(blob, publish):
                return
            raise

    def _commit(
        self,
        blob: BlobClient,
        blocks: list[BlobBlock],
        conditions: Conditions,
        *,
        session: str,
        staged: int,
        overwritten_is_success: bool,
    ) -> None:
        """Put Block List: publish ``blocks`` atomically under ``conditions``.

        When the session's ``staged`` blocks were discarded by a concurrent commit
        or delete of the blob, either report success (the caller is a single
        unconditional call that the concurrent write superseded) or raise.
        """
        publish = _new_session() if conditions else None
        try:
            blob.commit_block_list(
                blocks,
                metadata={_PUBLISH_META: publish} if publish else None,
                **self._condition_kwargs(conditions),
            )
        except HttpResponseError as exc:
            if publish and _is_condition_failure(exc) and self._published(blob, publish):
                return
            if _error_code(exc) != "InvalidBlockList" or not self._discarded(blob, session, staged):
                raise
            if overwritten_is_success:
                log.debug("azure: a concurrent write replaced %s while its blocks were staged", blob.blob_name)
                return
            raise StorageError(
                f"the blocks staged for {self._logical('/' + blob.blob_name)} were discarded by a concurrent "
                "write to that path; nothing was published"
            ) from exc

    def _discarded(self, blob: BlobClient, session: str, staged: int) -> bool:
        if staged == 0:
            return False
        try:
            _, uncommitted = blob.get_block_list("uncommitted")
        except HttpResponseError as exc:
            if _is_missing(exc):
                return True
            raise
        present = {block.id for block in uncommitted}
        return any(_block_id(session, index) not in present for index in range(staged))

    # ------------------------------------------------------------------ staging

    def _stage(self, blob: BlobClient, block_id: str, data: memoryview | bytes) -> int:
        """Put Block; a legacy AppendBlob at the path is converted first (see :meth:`_replace_legacy`)."""
        # A memoryview goes to urllib3 as one buffer, without a copy (the SDK's stub says bytes).
        body = cast(Any, data)
        try:
            blob.stage_block(block_id, body, length=len(data))
        except HttpResponseError as exc:
            if _error_code(exc) != "InvalidBlobType":
                raise
            self._replace_legacy(blob)
            blob.stage_block(block_id, body, length=len(data))
        return len(data)

    def _replace_legacy(self, blob: BlobClient) -> None:
        """Turn a legacy AppendBlob (or PageBlob) into a BlockBlob with the same content.

        No block can be staged on an AppendBlob, and Copy Blob keeps the blob type,
        so the content is rewritten as a BlockBlob with one atomic call guarded by
        If-Match: Put Blob From URL (server-side) where the service has it, else a
        download and Put Blob when it fits in one chunk. Readers see the same bytes
        throughout. Larger legacy blobs on services without Put Blob From URL are
        refused with a clear error rather than replaced non-atomically.
        """
        with self._legacy_lock:
            props = blob.get_blob_properties()
            if props.blob_type == BlobType.BLOCKBLOB:
                return  # another thread converted it
            guard: dict[str, Any] = {"etag": props.etag, "match_condition": MatchConditions.IfNotModified}
            source = self._source_url(blob, 3600)
            if source is not None and self._copy_from_url is not False:
                try:
                    blob.upload_blob_from_url(source, overwrite=True, **guard)
                    self._copy_from_url = True
                    log.debug("azure: replaced legacy %s at %s server-side", props.blob_type, blob.blob_name)
                    return
                except HttpResponseError as exc:
                    if not _is_not_implemented(exc):
                        raise
                    self._note_no_copy_from_url()
            if props.size > self.chunk_size:
                raise StorageError(
                    f"a legacy {props.blob_type} of {props.size} bytes is at "
                    f"{self._logical('/' + blob.blob_name)}; this service cannot replace it atomically by a "
                    "BlockBlob (no Put Blob From URL): delete it first"
                )
            data = self._read_range(blob, 0, props.size, props.etag)
            blob.upload_blob(bytes(data), length=len(data), blob_type=BlobType.BLOCKBLOB, overwrite=True, **guard)
            log.debug("azure: replaced legacy %s at %s by a BlockBlob", props.blob_type, blob.blob_name)

    def _note_no_copy_from_url(self) -> None:
        if self._copy_from_url is not False:
            self._copy_from_url = False
            log.debug("azure: the service has no Put Block/Blob From URL; copies stream through this client")

    def _copy_into_blocks(
        self,
        target: BlobClient,
        session: str,
        sources: list[_SourceBlob],
        start: int,
        block_size: int,
        *,
        allow_streaming: bool = True,
    ) -> list[int] | None:
        """Stage the concatenation of ``sources`` as blocks ``start, start+1, ...`` of ``target``.

        Server-side (Put Block From URL, ranges of up to 100 MiB) when the service
        supports it, else downloading and re-staging ranges of ``block_size`` with
        ``maxconcurrency`` in flight (or, without ``allow_streaming``, return None).
        Returns the staged block sizes.
        """
        can_sign = bool(sources) and self._source_url(sources[0].client, 60) is not None
        if can_sign and self._copy_from_url is not False:
            ranges = self._ranges(sources, max(block_size, MAX_COPY_RANGE))
            if not ranges:
                return []
            try:
                self._stage_from_url(target, session, start, ranges[0])
            except HttpResponseError as exc:
                if not _is_not_implemented(exc):
                    raise
                self._note_no_copy_from_url()
            else:
                if self._copy_from_url is None:
                    self._copy_from_url = True
                    log.debug("azure: the service copies blocks from URLs; copies run server-side")
                log.debug("azure: staging %d ranges into %s server-side", len(ranges), target.blob_name)
                tasks = [
                    functools.partial(self._stage_from_url, target, session, start + i, item)
                    for i, item in enumerate(ranges[1:], start=1)
                ]
                run_bounded(tasks, self.max_concurrency)
                return [length for _, _, length in ranges]
        if not allow_streaming:
            return None
        ranges = self._ranges(sources, block_size)
        log.debug("azure: staging %d ranges into %s by streaming copy", len(ranges), target.blob_name)

        def copy(index: int, source: _SourceBlob, offset: int, length: int) -> int:
            data = self._read_range(source.client, offset, length, source.etag)
            return self._stage(target, _block_id(session, start + index), memoryview(data))

        tasks = [functools.partial(copy, i, *item) for i, item in enumerate(ranges)]
        return run_bounded(tasks, self.max_concurrency)

    @staticmethod
    def _ranges(sources: list[_SourceBlob], size: int) -> list[tuple[_SourceBlob, int, int]]:
        ranges = []
        for source in sources:
            for offset in range(0, source.size, size):
                ranges.append((source, offset, min(size, source.size - offset)))
        return ranges

    def _stage_from_url(self, target: BlobClient, session: str, index: int, item: tuple[_SourceBlob, int, int]) -> int:
        source, offset, length = item
        url = self._source_url(source.client, 3600)
        if url is None:
            raise StorageError("cannot authorize a copy source")
        target.stage_block_from_url(
            _block_id(session, index),
            url,
            source_offset=offset,
            source_length=length,
            source_modified_access_conditions=SourceModifiedAccessConditions(source_if_match=source.etag),
        )
        return length

    # ------------------------------------------------------------------ put / get

    def _put(self, full: str, source: Source, conditions: Conditions) -> None:
        blob = self._blob(full)
        size = source.size
        if size is not None and size <= self.chunk_size:
            self._put_blob(blob, source.read(size), conditions)
            return
        if size is None:
            # Unknown length: a first chunk that is short is all there is (one Put Blob).
            head = bytearray(self.chunk_size)
            got = source.readinto(head)
            if got < self.chunk_size:
                self._put_blob(blob, memoryview(head)[:got], conditions)
                return
            source = Source(_Chained(memoryview(head), source))
            sizes: Any = growing_part_sizes(self.chunk_size, max_parts=MAX_BLOCKS, max_part_size=MAX_BLOCK_SIZE)
        else:
            part = part_size_for(size, self.chunk_size, max_parts=MAX_BLOCKS, max_part_size=MAX_BLOCK_SIZE)
            sizes = repeat(part)
        if conditions:
            self._precheck(blob, conditions)
        session = _new_session()
        staged = upload_parts(
            source,
            sizes,
            lambda number, data: self._stage_part(full, blob, session, number - 1, data),
            concurrency=self.max_concurrency,
        )
        blocks = [BlobBlock(_block_id(session, i), BlockState.UNCOMMITTED) for i in range(len(staged))]
        self._commit(
            blob, blocks, conditions, session=session, staged=len(staged), overwritten_is_success=not conditions
        )

    def _precheck(self, blob: BlobClient, conditions: Conditions) -> None:
        """Fail a conditional multi-block put before uploading anything when its condition is already false.

        Only a shortcut: the condition is enforced by the commit itself.
        """
        try:
            etag: str | None = str(blob.get_blob_properties().etag)
        except HttpResponseError as exc:
            if not _is_missing(exc) or _error_code(exc) == "ContainerNotFound":
                raise
            etag = None
        if conditions.if_none_match and etag is not None:
            raise PreconditionFailedError(f"{self._logical('/' + blob.blob_name)} already exists")
        if conditions.if_match is not None and etag != conditions.if_match:
            raise PreconditionFailedError(
                f"the etag of {self._logical('/' + blob.blob_name)} is not {conditions.if_match!r}"
            )

    def _open(self, full: str, offset: int, length: int | None) -> tuple[RangeReader, int | None]:
        blob = self._blob(full)
        if length == 0:
            blob.get_blob_properties()  # the path must exist
            return io.BytesIO(b""), 0
        reader = _BlobReader(self, blob, offset, length, etag=None)
        return reader, reader.remaining

    def _read_range(self, blob: BlobClient, offset: int, length: int, etag: str) -> bytearray:
        """Exactly ``length`` bytes from ``offset`` of a blob whose etag must still be ``etag``."""
        buffer = bytearray(length)
        if not length:
            return buffer
        reader = _BlobReader(self, blob, offset, length, etag=etag)
        try:
            view = memoryview(buffer)
            filled = 0
            while filled < length:
                got = reader.readinto(view[filled:])
                if not got:
                    raise StorageError(f"{blob.blob_name} ended before {offset + length} bytes")
                filled += got
        finally:
            reader.close()
        return buffer

    # ------------------------------------------------------------------ stat / list / walk

    def _stat(self, full: str) -> FileInfo:
        if full != (self._root or paths.ROOT):
            try:
                props = self._blob(full).get_blob_properties()
            except HttpResponseError as exc:
                if not _is_missing(exc) or _error_code(exc) == "ContainerNotFound":
                    raise
            else:
                return _file_info(full, props)
        first = self._first_valid_below(paths.dir_key(full))
        if first is None:
            raise PathNotFoundError(f"nothing at {self._logical(full)}")
        return FileInfo(full, 0, first.last_modified, is_dir=True)

    def _first_valid_below(self, prefix: str) -> BlobProperties | None:
        """The first blob below ``prefix`` whose name is a valid path (one small page when that is the first)."""
        for props in self._container_client().list_blobs(name_starts_with=prefix, results_per_page=50):
            if paths.from_key(props.name) is not None and props.name.startswith(prefix):
                return props
        return None

    def _list(self, full: str) -> Iterator[str]:
        prefix = paths.dir_key(full)
        names = [
            item.name
            for item in self._container_client().walk_blobs(name_starts_with=prefix or None, delimiter="/")
            if item.name.startswith(prefix)
        ]
        holds_valid = lambda below: self._first_valid_below(below) is not None  # noqa: E731
        return iter(visible_children(names, holds_valid, self.max_concurrency))

    def _walk(self, full: str) -> Iterator[FileInfo]:
        prefix = paths.dir_key(full)
        listing = self._container_client().list_blobs(name_starts_with=prefix or None)
        files = (
            _file_info("/" + props.name, props)
            for props in listing
            if props.name.startswith(prefix) and paths.from_key(props.name) is not None
        )
        return walk_flat(files, full)

    # ------------------------------------------------------------------ move / delete

    def _move(self, src: str, dst: str, conditions: Conditions) -> None:
        source = self._blob(src)
        props = source.get_blob_properties()
        if props.blob_type != BlobType.BLOCKBLOB:
            # Copy Blob From URL and Put Block From URL read block blobs: convert a legacy source first.
            self._replace_legacy(source)
            props = source.get_blob_properties()
        target = self._blob(dst)
        try:
            self._copy(source, props, target, conditions)
        except HttpResponseError as exc:
            if _error_code(exc) != "InvalidBlobType":
                raise
            # Copy Blob keeps the source type and refuses a destination of another type.
            self._replace_legacy(target)
            self._copy(source, props, target, conditions)
        self._race_point("move.copied", src)
        try:
            source.delete_blob(etag=props.etag, match_condition=MatchConditions.IfNotModified)
        except HttpResponseError as exc:
            if not (_is_missing(exc) or _status(exc) == 412):
                raise
            # Someone deleted or rewrote the source meanwhile: that content is theirs to keep.
            log.debug("azure: move left %s alone: it changed after the copy", source.blob_name)

    def _copy(self, source: BlobClient, props: BlobProperties, target: BlobClient, conditions: Conditions) -> None:
        """Server-side copy of ``source`` (as of ``props``) to ``target``, published atomically.

        Small blobs: one synchronous Copy Blob From URL. Large ones: Put Block From
        URL of every range and one Put Block List (atomic, unlike a pending async
        copy); where the service lacks that, a polled asynchronous Copy Blob.
        """
        source_guard: dict[str, Any] = {
            "source_etag": props.etag,
            "source_match_condition": MatchConditions.IfNotModified,
        }
        url = self._source_url(source, 7 * 24 * 3600) or source.url
        publish = _new_session() if conditions else None
        metadata = {_PUBLISH_META: publish} if publish else None
        try:
            if props.size <= MAX_SYNC_COPY:
                try:
                    target.start_copy_from_url(
                        url, metadata=metadata, requires_sync=True, **source_guard, **self._condition_kwargs(conditions)
                    )
                    return
                except HttpResponseError as exc:
                    if not _is_not_implemented(exc):
                        raise
            else:
                info = _SourceBlob("", source, props.etag, props.size)
                block = part_size_for(props.size, self.chunk_size, max_parts=MAX_BLOCKS, max_part_size=MAX_BLOCK_SIZE)
                session = _new_session()
                staged = self._copy_into_blocks(target, session, [info], 0, block, allow_streaming=False)
                if staged is not None:
                    blocks = [BlobBlock(_block_id(session, i), BlockState.UNCOMMITTED) for i in range(len(staged))]
                    self._commit(
                        target, blocks, conditions, session=session, staged=len(staged), overwritten_is_success=False
                    )
                    return
            self._async_copy(url, target, metadata, source_guard, conditions)
        except HttpResponseError as exc:
            if publish and _is_condition_failure(exc) and self._published(target, publish):
                return
            if not conditions and _status(exc) == 412:
                # Only the source is guarded, so it changed (Azurite says ConditionNotMet, not SourceConditionNotMet).
                raise StorageError(
                    f"a source of {self._logical('/' + target.blob_name)} changed during the operation "
                    f"({_error_code(exc) or 'HTTP 412'})"
                ) from exc
            raise

    def _async_copy(
        self,
        url: str,
        target: BlobClient,
        metadata: dict[str, str] | None,
        source_guard: dict[str, Any],
        conditions: Conditions,
    ) -> None:
        started = target.start_copy_from_url(
            url, metadata=metadata, **source_guard, **self._condition_kwargs(conditions)
        )
        status = str(started.get("copy_status") or "pending")
        copy_id = str(started.get("copy_id") or "")
        delay, deadline = 0.05, time.monotonic() + 3600
        while status == "pending":
            if time.monotonic() > deadline:
                target.abort_copy(copy_id)
                raise StorageError(f"copy to {target.blob_name} did not finish within an hour; aborted")
            time.sleep(delay)
            delay = min(2.0, delay * 2)
            copy = target.get_blob_properties().copy
            status = str(copy.status or "pending")
        if status != "success":
            raise StorageError(f"copy to {target.blob_name} ended with status {status}; the source is untouched")

    def _delete(self, full: str) -> None:
        try:
            self._blob(full).delete_blob(delete_snapshots="include")
            return
        except HttpResponseError as exc:
            if not _is_missing(exc) or _error_code(exc) == "ContainerNotFound":
                raise
        container = self._container_client()
        found = False
        batch: list[str] = []
        for props in container.list_blobs(name_starts_with=paths.dir_key(full)):
            # Hidden bookkeeping (upload markers) goes with the tree, but alone it is not "something there".
            found = found or paths.from_key(props.name) is not None
            batch.append(props.name)
            if len(batch) == 256:
                self._delete_batch(container, batch)
                batch = []
        if batch:
            self._delete_batch(container, batch)
        if not found:
            raise PathNotFoundError(f"nothing at {self._logical(full)}")

    def _delete_batch(self, container: ContainerClient, names: list[str]) -> None:
        """Blob Batch delete of up to 256 names; parallel single deletes where batches are refused."""
        try:
            responses = container.delete_blobs(*names, delete_snapshots="include", raise_on_any_failure=False)
            failed = [
                name for name, response in zip(names, responses, strict=True) if response.status_code not in (202, 404)
            ]
        except HttpResponseError as exc:
            if _status(exc) not in (400, 501):
                raise
            failed = list(names)
        if failed:
            run_bounded([functools.partial(self._delete_one, container, name) for name in failed], self.max_concurrency)

    @staticmethod
    def _delete_one(container: ContainerClient, name: str) -> None:
        try:
            container.delete_blob(name, delete_snapshots="include")
        except HttpResponseError as exc:
            if not _is_missing(exc):
                raise

    # ------------------------------------------------------------------ cat

    def _cat(self, full: str, sources: list[str]) -> None:
        target = self._blob(full)
        infos = []
        for source in sources:
            client = self._blob(source)
            try:
                props = client.get_blob_properties()
            except HttpResponseError as exc:
                if _is_missing(exc) and _error_code(exc) != "ContainerNotFound":
                    raise PathNotFoundError(f"no file at {self._logical(source)}") from exc
                raise
            infos.append(_SourceBlob(source, client, props.etag, props.size))
        total = sum(info.size for info in infos)
        if total <= self.chunk_size:
            joined = bytearray()
            for info in infos:
                joined += self._read_range(info.client, 0, info.size, info.etag)
            self._put_blob(target, joined, Conditions())
            return
        block = part_size_for(total, self.chunk_size, max_parts=MAX_BLOCKS, max_part_size=MAX_BLOCK_SIZE)
        session = _new_session()
        staged = self._copy_into_blocks(target, session, infos, 0, block)
        assert staged is not None  # streaming is allowed, so there is always a result
        if len(staged) > MAX_BLOCKS:
            raise StorageError(f"cat of {len(sources)} sources needs {len(staged)} blocks; Azure allows {MAX_BLOCKS}")
        blocks = [BlobBlock(_block_id(session, i), BlockState.UNCOMMITTED) for i in range(len(staged))]
        self._commit(target, blocks, Conditions(), session=session, staged=len(staged), overwritten_is_success=True)

    # ------------------------------------------------------------------ url_for

    def _source_url(self, blob: BlobClient, expires_in: int) -> str | None:
        """``blob``'s URL with a read SAS, for the service to fetch it; None when the driver cannot sign."""
        if self._auth.sas_token is not None:
            return f"{blob.url}?{self._auth.sas_token}"
        try:
            return self._signed(blob, BlobSasPermissions(read=True), expires_in)
        except (HttpResponseError, ServiceRequestError, ServiceResponseError):
            return None

    def _signed(self, blob: BlobClient, permission: BlobSasPermissions, expires_in: int) -> str | None:
        auth = self._auth
        expiry = datetime.now(UTC) + timedelta(seconds=expires_in)
        if auth.account_key is not None and auth.account_name:
            token = generate_blob_sas(
                auth.account_name,
                self._container,
                blob.blob_name,
                account_key=auth.account_key,
                permission=permission,
                expiry=expiry,
            )
        elif auth.credentials is not None and auth.account_name:
            token = generate_blob_sas(
                auth.account_name,
                self._container,
                blob.blob_name,
                user_delegation_key=self._delegation_key(expiry),
                permission=permission,
                expiry=expiry,
            )
        else:
            return None
        return f"{blob.url}?{token}"

    def _delegation_key(self, needed_until: datetime) -> UserDelegationKey:
        """A user delegation key valid until ``needed_until``, cached (the service allows up to 7 days)."""
        with self._delegation_lock:
            cached = self._delegation
            if cached is not None and cached[1] >= needed_until:
                return cached[0]
            start = datetime.now(UTC) - timedelta(minutes=5)
            expiry = start + timedelta(days=7)
            key = self._clients.get().service.get_user_delegation_key(start, expiry)
            self._delegation = (key, expiry)
            return key

    def _url_for(self, full: str, method: str, expires_in: int) -> str:
        blob = self._blob(full)
        # A PUT URL creates or overwrites one blob (the client sends x-ms-blob-type: BlockBlob).
        permission = BlobSasPermissions(create=True, write=True) if method == "PUT" else BlobSasPermissions(read=True)
        if self._auth.sas_token is not None:
            raise UnsupportedMethodError(
                "with a sastoken the driver cannot sign URLs with a chosen expiry; use accountkey or credentials"
            )
        url = self._signed(blob, permission, expires_in)
        if url is None:
            raise StorageError("no account key or credentials to sign a URL with")
        return url

    # ------------------------------------------------------------------ writer

    def _marker(self, full: str) -> BlobClient:
        return self._container_client().get_blob_client(f"{self._uploads_prefix(full)}")

    def _staging(self, full: str, session: str) -> BlobClient:
        """The hidden blob a writer session stages its blocks on.

        Never the target: any commit to the target (another writer's, a put's)
        discards every uncommitted block there, so a writer's blocks live on a blob
        of their own until its commit copies them over server-side.
        """
        return self._container_client().get_blob_client(f"{self._uploads_prefix(full)}.{session}")

    def _uploads_prefix(self, full: str) -> str:
        digest = hashlib.sha256(paths.to_key(full).encode()).hexdigest()
        return f"{paths.dir_key(self._root or paths.ROOT)}{_UPLOADS}/{digest}"

    def _stage_part(self, full: str, blob: BlobClient, session: str, index: int, data: memoryview | bytes) -> int:
        """Stage block ``index`` of a put or writer, after the ``"part.upload"`` race point (part ``index + 1``)."""
        self._race_point("part.upload", full, index + 1)
        return self._stage(blob, _block_id(session, index), data)

    def _writer(self, full: str, append: bool) -> WriterBackend:
        blob = self._blob(full)
        marker = self._marker(full)
        if not append:
            parked = self._take_marker(marker)
            if parked is not None:
                self._drop_staging(full, str(parked["session"]))
            return _AzureWriter(self, full, blob, marker, _new_session(), [], None)
        state = self._take_marker(marker)
        if state is not None:
            return self._resume(full, blob, marker, state)
        return self._append_to_committed(full, blob, marker)

    def _drop_staging(self, full: str, session: str) -> None:
        """Delete a session's staging blob (best effort: it is hidden, and Azure drops stale blocks in a week)."""
        try:
            self._staging(full, session).delete_blob()
        except HttpResponseError as exc:
            if not _is_missing(exc):
                log.debug("azure: could not delete the staging blob of %s: %s", self._logical(full), _error_code(exc))

    def _take_marker(self, marker: BlobClient) -> dict[str, Any] | None:
        """Read the parked session's marker and delete it (If-Match on what was read): the session is ours.

        Two writers taking one marker: exactly one delete succeeds; the other reads
        again and finds none (or a newer one).
        """
        for _ in range(5):
            try:
                downloader = marker.download_blob()
                raw = downloader.readall()
            except HttpResponseError as exc:
                if _is_missing(exc) and _error_code(exc) != "ContainerNotFound":
                    return None
                raise
            try:
                marker.delete_blob(etag=downloader.properties.etag, match_condition=MatchConditions.IfNotModified)
            except HttpResponseError as exc:
                if _is_missing(exc) or _status(exc) == 412:
                    continue  # another writer took it (or parked anew) meanwhile
                raise
            try:
                state = json.loads(raw)
                if not isinstance(state, dict) or state.get("v") != 1:
                    raise ValueError("unknown marker version")
                return state
            except ValueError:
                log.debug("azure: dropped an unreadable upload marker %s", marker.blob_name)
                return None
        raise StorageError(f"the upload marker {marker.blob_name} keeps changing; try again")

    def _resume(self, full: str, blob: BlobClient, marker: BlobClient, state: dict[str, Any]) -> _AzureWriter:
        session = str(state["session"])
        count = int(state["blocks"])
        base_state = state.get("base")
        base = (
            _Base(str(base_state["etag"]), int(base_state["blocks"]), int(base_state["size"])) if base_state else None
        )
        sizes: dict[int, int] = {}
        if count:
            try:
                committed, uncommitted = self._staging(full, session).get_block_list("all")
            except HttpResponseError as exc:
                if not _is_missing(exc) or _error_code(exc) == "ContainerNotFound":
                    raise
                committed, uncommitted = [], []
            prefix = _ID_PREFIX + session
            # A block staged again after a failed commit is newer than its committed twin.
            for block in [*committed, *uncommitted]:
                block_id = str(block.id)
                if len(block_id) == _ID_LENGTH and block_id.startswith(prefix) and block_id[len(prefix) :].isdigit():
                    sizes[int(block_id[len(prefix) :])] = int(block.size or 0)
        staged = [sizes.get(index) for index in range(count)]
        total = (base.size if base else 0) + sum(size or 0 for size in staged)
        if any(size is None for size in staged) or total != int(state["size"]):
            self._drop_staging(full, session)
            raise StorageError(
                f"the upload in progress for {self._logical(full)} was lost: its staged blocks are gone; "
                "start the upload again"
            )
        return _AzureWriter(self, full, blob, marker, session, [int(s or 0) for s in staged], base)

    def _append_to_committed(self, full: str, blob: BlobClient, marker: BlobClient) -> _AzureWriter:
        for _ in range(5):
            props = blob.get_blob_properties()
            if props.blob_type != BlobType.BLOCKBLOB:
                self._replace_legacy(blob)
                continue
            try:
                committed, _ = blob.get_block_list(
                    "committed", etag=props.etag, match_condition=MatchConditions.IfNotModified
                )
            except HttpResponseError as exc:
                if _status(exc) == 412:
                    continue  # rewritten between the two calls: read again
                raise
            session = _new_session()
            if _reusable(committed, props.size):
                base = _Base(str(props.etag), len(committed), int(props.size))
                return _AzureWriter(self, full, blob, marker, session, [], base)
            # No block list to re-use (written by Put Blob or another tool): copy it
            # into this session's first blocks, then append after them.
            info = _SourceBlob(full, blob, props.etag, props.size)
            staged = self._copy_into_blocks(self._staging(full, session), session, [info], 0, self.chunk_size)
            assert staged is not None  # streaming is allowed, so there is always a result
            base = _Base(str(props.etag), 0, 0)
            return _AzureWriter(self, full, blob, marker, session, staged, base)
        raise StorageError(f"{self._logical(full)} keeps changing; cannot append to it")


def _reusable(committed: list[BlobBlock], size: int) -> bool:
    """Whether committed blocks can be named again in a commit next to ours (same id length, whole content)."""
    total = 0
    for block in committed:
        block_id = block.id
        if not isinstance(block_id, str) or len(block_id) != _ID_LENGTH or not block_id.isascii():
            return False
        total += int(block.size or 0)
    return total == size


def _file_info(full: str, props: BlobProperties) -> FileInfo:
    return FileInfo(path=full, size=int(props.size), modified=props.last_modified, etag=str(props.etag))


class _Chained(io.RawIOBase):
    """A read-once stream: ``head`` (bytes already read), then the rest of ``source``."""

    def __init__(self, head: memoryview, source: Source) -> None:
        super().__init__()
        self._head = head
        self._source = source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(target), len(self._head))
            target[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        return self._source.readinto(target)


class _BlobReader:
    """One ranged GET streamed from the socket; on a broken connection it re-requests the rest.

    The re-request carries If-Match on the etag of the first answer, so a blob
    rewritten mid-read fails the read instead of mixing two versions.
    """

    def __init__(
        self, driver: AzureDriver, blob: BlobClient, offset: int, length: int | None, *, etag: str | None
    ) -> None:
        self._driver = driver
        self._blob = blob
        self._position = offset
        self._end = None if length is None else offset + length
        self._etag = etag
        self._response: Any = None
        self._raw: Any = None
        self.remaining: int | None = 0
        self._attempts = 0
        self._open()

    def _open(self) -> None:
        if self._end is not None and self._position >= self._end:
            self.remaining = 0
            return
        if self._position == 0 and self._end is None:
            header = None
        elif self._end is None:
            header = f"bytes={self._position}-"
        else:
            header = f"bytes={self._position}-{self._end - 1}"
        conditions = ModifiedAccessConditions(if_match=self._etag) if self._etag else None
        try:
            # The generated operation streams the body (the public downloader buffers
            # whole ranges); the SDK pipeline still signs, retries and raises.
            pipeline_response = self._blob._client.blob.download(
                range=header, modified_access_conditions=conditions, cls=lambda response, _body, _headers: response
            )
        except HttpResponseError as exc:
            if _status(exc) == 416:  # offset at or beyond the end: the blob exists, the range is empty
                self.remaining = 0
                return
            if _status(exc) == 412 and self._etag:
                raise StorageError(f"{self._blob.blob_name} changed while it was being read") from exc
            raise
        response = pipeline_response.http_response
        self._response = response.internal_response
        self._raw = self._response.raw
        length = int(response.headers.get("Content-Length", "0"))
        if self._etag is None:
            self._etag = response.headers.get("ETag")
        self.remaining = length
        self._end = self._position + length

    def readinto(self, buffer: memoryview) -> int:
        """Fill up to ``len(buffer)`` bytes (at most 4 MiB per call); 0 only at the end of the range."""
        while True:
            if not self.remaining or self._raw is None:
                return 0
            view = buffer[: min(len(buffer), self.remaining, READ_SLICE)]
            try:
                got = int(self._raw.readinto(view) or 0)
                if got == 0:
                    raise urllib3.exceptions.ProtocolError("connection closed before the end of the range")
            except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
                self._reopen(exc)
                continue
            self._position += got
            self.remaining -= got
            return got

    def _reopen(self, exc: BaseException) -> None:
        self._attempts += 1
        self._release(drop=True)
        if self._attempts >= self._driver._retry_policy.attempts:
            raise exc
        log.debug("azure: resuming a read of %s at byte %d after %s", self._blob.blob_name, self._position, exc)
        time.sleep(random.uniform(0, min(1.0, 0.05 * 2**self._attempts)))
        end = self._end
        self._open()
        self._end = end

    def _release(self, *, drop: bool) -> None:
        raw, self._raw = self._raw, None
        response, self._response = self._response, None
        if raw is None or response is None:
            return
        if drop:
            response.close()  # an unfinished body: the connection cannot be reused
        else:
            raw.release_conn()

    def close(self) -> None:
        """Return the connection to the pool when the body was read to its end, else drop it."""
        self._release(drop=bool(self.remaining))


class _AzureWriter:
    """Writer backend: one session staging blocks on its own hidden staging blob, in the background.

    ``close()`` parks the session in the path's marker (one parked session per
    path: parking replaces, and drops, the one parked before). ``commit()`` makes
    the staging blob readable (Put Block List there), copies it server-side into
    fresh blocks of the target (Put Block From URL) and commits those after the
    re-used committed blocks of an append base, in one Put Block List. Staged
    blocks never sit on the target while the writer is open, so no other commit to
    the path can discard them: two writers' commits both succeed, the later one's
    content wins.
    """

    def __init__(
        self,
        driver: AzureDriver,
        full: str,
        blob: BlobClient,
        marker: BlobClient,
        session: str,
        staged: list[int],
        base: _Base | None,
    ) -> None:
        self._driver = driver
        self._full = full
        self._blob = blob
        self._marker = marker
        self._session = session
        self._staging = driver._staging(full, session)
        self._sizes = list(staged)  # size of each block staged (or being staged), by index
        self._base = base
        self._sizes_table = _growing_sizes(driver.chunk_size)
        self._buffer = PartBuffer(self._part_size())
        self._inflight: list[Future[int]] = []
        self._failure: BaseException | None = None  # a block that could not be staged breaks the writer
        self._first_failed: int | None = None  # index of the lowest block that failed: the prefix before it is safe
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(driver.max_concurrency)
        self.size = (base.size if base else 0) + sum(staged)

    def _part_size(self) -> int:
        index = min(len(self._sizes), len(self._sizes_table) - 1)
        return self._sizes_table[index]

    # -- staging

    def _submit(self, data: bytes) -> None:
        self._raise_failures()
        index = len(self._sizes)
        if index >= MAX_BLOCKS:
            raise StorageError(f"an upload to {self._driver._logical(self._full)} reached {MAX_BLOCKS} blocks")
        self._sizes.append(len(data))
        self._slots.acquire()  # at most maxconcurrency blocks in flight: memory stays bounded
        try:
            future = self._driver._clients.get().pool.submit(self._stage, index, data)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        self._inflight.append(future)

    def _stage(self, index: int, data: bytes) -> int:
        try:
            return self._driver._stage_part(self._full, self._staging, self._session, index, data)
        except BaseException:
            with self._lock:
                self._first_failed = index if self._first_failed is None else min(index, self._first_failed)
            raise

    def _raise_failures(self) -> None:
        if self._failure is not None:
            raise self._failure
        done = [future for future in self._inflight if future.done()]
        for future in done:
            self._inflight.remove(future)
            error = future.exception()
            if error is not None:
                self._failure = error
                raise error

    def _drain(self) -> None:
        """Wait for every block in flight; raise the first failure (then and on every later call)."""
        for future in self._inflight:
            error = future.exception()
            self._failure = self._failure or error
        self._inflight.clear()
        if self._failure is not None:
            raise self._failure

    def _flush(self) -> None:
        rest = self._buffer.take_rest()
        if rest:
            self._submit(rest)
        self._drain()

    # -- WriterBackend

    def write(self, data: memoryview) -> None:
        """Buffer ``data``; every full block is staged in the background."""
        for part in self._buffer.write(data):
            self._submit(part)
            self._buffer.part_size = self._part_size()

    def close(self) -> None:
        """Stage what is buffered and park the session in the marker, for a resume.

        After a block failed, only the blocks before the first failed one are
        parked (nothing past it became durable), and the failure is raised so the
        caller knows that less than everything written was kept.
        """
        try:
            self._flush()
        except Exception:
            if not self._truncate():
                raise
            self._park()
            raise
        self._park()

    def _truncate(self) -> bool:
        """After a failed block: wait for the others, keep the blocks before the first failed one; say if one did."""
        with contextlib.suppress(Exception):
            self._drain()
        if self._first_failed is None:
            return False
        self._sizes = self._sizes[: self._first_failed]
        return True

    def _park(self) -> None:
        state = {
            "v": 1,
            "session": self._session,
            "blocks": len(self._sizes),
            "size": (self._base.size if self._base else 0) + sum(self._sizes),
            "base": (
                {"etag": self._base.etag, "blocks": self._base.blocks, "size": self._base.size} if self._base else None
            ),
        }
        replaced = self._driver._take_marker(self._marker)
        if replaced is not None and replaced.get("session") != self._session:
            self._driver._drop_staging(self._full, str(replaced["session"]))
        self._marker.upload_blob(json.dumps(state).encode(), overwrite=True)

    def commit(self, conditions: Conditions) -> None:
        """Publish: one Put Blob when everything is still buffered, else one Put Block List on the target."""
        driver = self._driver
        if not self._sizes and self._base is None:
            data = self._buffer.take_rest()
            try:
                driver._put_blob(self._blob, data, conditions)
            except Exception:
                self._keep(data)
                raise
            return
        try:
            self._flush()
        except Exception:
            if self._truncate():
                with contextlib.suppress(Exception):  # best effort, as in _keep: the block's failure is what counts
                    self._park()
            raise
        effective = self._effective(conditions)
        base: list[BlobBlock] = []
        if self._base is not None and self._base.blocks:
            base = [BlobBlock(block.id, BlockState.COMMITTED) for block in self._committed_base()]
        try:
            staged = self._readable_staging()
            for attempt in itertools.count(1):
                # Fresh blocks on the target, copied from the staging blob, committed at once.
                session = _new_session()
                sizes = driver._copy_into_blocks(self._blob, session, staged, 0, driver.chunk_size) if staged else []
                assert sizes is not None  # streaming is allowed, so there is always a result
                blocks = base + [BlobBlock(_block_id(session, i), BlockState.UNCOMMITTED) for i in range(len(sizes))]
                try:
                    driver._commit(
                        self._blob, blocks, effective, session=session, staged=len(sizes), overwritten_is_success=False
                    )
                    break
                except StorageError:
                    # A concurrent commit to the path discarded the copies in the short window before
                    # ours: the staging blob still holds everything, so copy again.
                    if attempt == _COMMIT_ATTEMPTS:
                        raise
        except Exception:
            self._keep(b"")  # a false condition or a failed request keeps the progress for a resume
            raise
        driver._drop_staging(self._full, self._session)

    def _readable_staging(self) -> list[_SourceBlob]:
        """Commit the session's blocks on its staging blob, so they can be copied; ``[]`` when there are none."""
        if not self._sizes:
            return []
        self._staging.commit_block_list(
            [BlobBlock(_block_id(self._session, i), BlockState.LATEST) for i in range(len(self._sizes))]
        )
        props = self._staging.get_blob_properties()
        return [_SourceBlob(self._full, self._staging, str(props.etag), int(props.size))]

    def _effective(self, conditions: Conditions) -> Conditions:
        """The user's conditions combined with If-Match on the base an append started from."""
        if self._base is None:
            return conditions
        if conditions.if_none_match or (conditions.if_match is not None and conditions.if_match != self._base.etag):
            self._park()
            raise PreconditionFailedError(
                f"{self._driver._logical(self._full)} exists with etag {self._base.etag}, so the condition is false"
            )
        return Conditions(if_match=self._base.etag)

    def _committed_base(self) -> list[BlobBlock]:
        try:
            committed, _ = self._blob.get_block_list(
                "committed", etag=self._base.etag if self._base else None, match_condition=MatchConditions.IfNotModified
            )
        except HttpResponseError as exc:
            if _status(exc) in (404, 412):
                self._park()
                raise PreconditionFailedError(
                    f"{self._driver._logical(self._full)} changed since this append started; nothing was published"
                ) from exc
            raise
        if self._base is None or len(committed) != self._base.blocks:
            self._park()
            raise PreconditionFailedError(f"{self._driver._logical(self._full)} changed since this append started")
        return committed

    def _keep(self, data: bytes) -> None:
        """After a failed commit: stage what was buffered and park, so a resume loses nothing.

        Best effort: when the service is unreachable this fails too, and the
        original error is what the caller sees.
        """
        try:
            if data:
                self._submit(data)
            self._drain()
            self._park()
        except Exception as exc:
            log.debug(
                "azure: could not park the upload of %s after a failed commit: %s",
                self._blob.blob_name,
                type(exc).__name__,
            )

    def cancel(self) -> None:
        """Forget the upload: delete the session's staging blob. The path keeps what it had."""
        for future in self._inflight:
            future.exception()
        self._inflight.clear()
        self._driver._drop_staging(self._full, self._session)


def _resolve_auth(
    *,
    account_name: str | None,
    account_key: str | None,
    connection_string: str | None,
    sas_token: str | None,
    credentials: Mapping[str, Any] | None,
    realm: str,
    service_url: str | None,
) -> _Auth:
    """Check the authentication parameters and reduce them to one :class:`_Auth`."""
    if not _HOST.fullmatch(realm):
        raise ConfigError(f"invalid value {realm!r} for parameter 'realm': expected a DNS suffix", driver="azure")
    if service_url is not None and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", service_url):
        raise ConfigError(
            f"invalid value {service_url!r} for parameter 'serviceurl': expected http(s)://host[:port][/path]",
            driver="azure",
        )
    if account_name is not None and not _ACCOUNT_NAME.fullmatch(account_name):
        raise ConfigError(
            f"invalid value {account_name!r} for parameter 'accountname': 3-24 lowercase letters and digits",
            driver="azure",
        )
    given = [
        name
        for name, value in (
            ("accountkey", account_key),
            ("connectionstring", connection_string),
            ("sastoken", sas_token),
            ("credentials", credentials),
        )
        if value is not None
    ]
    if len(given) != 1:
        raise ConfigError(
            "give exactly one of the parameters 'accountkey', 'connectionstring', 'sastoken' or 'credentials'"
            + (f" (got {', '.join(given)})" if given else ""),
            driver="azure",
        )
    if connection_string is not None:
        if account_name is not None or service_url is not None:
            raise ConfigError(
                "parameter 'connectionstring' names the account and endpoint; do not also give "
                "'accountname' or 'serviceurl'",
                driver="azure",
            )
        return _parse_connection_string(connection_string, realm)
    if account_name is None:
        raise ConfigError(
            "parameter 'accountname' is required (with accountkey, sastoken or credentials)", driver="azure"
        )
    account_url = (service_url or f"https://{account_name}.blob.{realm}").rstrip("/")
    if account_key is not None:
        try:
            base64.b64decode(account_key, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(
                "invalid value (hidden) for parameter 'accountkey': expected the base64 account key", driver="azure"
            ) from None
        return _Auth(account_url, account_name, account_key=account_key)
    if sas_token is not None:
        token = sas_token.lstrip("?")
        if "sig=" not in token:
            raise ConfigError(
                "invalid value (hidden) for parameter 'sastoken': expected a SAS query string with sig=",
                driver="azure",
            )
        return _Auth(account_url, account_name, sas_token=token)
    assert credentials is not None
    _check_credentials(credentials)
    return _Auth(account_url, account_name, credentials=dict(credentials))


def _parse_connection_string(connection_string: str, realm: str) -> _Auth:
    fields: dict[str, str] = {}
    for part in connection_string.split(";"):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise ConfigError(
                "invalid value (hidden) for parameter 'connectionstring': expected Key=Value pairs separated by ';'",
                driver="azure",
            )
        fields[key.strip().lower()] = value.strip()
    if fields.get("usedevelopmentstorage", "").lower() == "true":
        from_azurite = "http://127.0.0.1:10000/devstoreaccount1"
        key = (
            "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="  # public dev key
        )
        return _Auth(from_azurite, "devstoreaccount1", account_key=key)
    name = fields.get("accountname")
    endpoint = fields.get("blobendpoint")
    if endpoint is None and name is not None:
        protocol = fields.get("defaultendpointsprotocol", "https")
        endpoint = f"{protocol}://{name}.blob.{fields.get('endpointsuffix', realm)}"
    if endpoint is None:
        raise ConfigError(
            "invalid value (hidden) for parameter 'connectionstring': it names neither AccountName nor BlobEndpoint",
            driver="azure",
        )
    endpoint = endpoint.rstrip("/")
    if "accountkey" in fields:
        if name is None:
            raise ConfigError(
                "invalid value (hidden) for parameter 'connectionstring': AccountKey needs AccountName", driver="azure"
            )
        return _Auth(endpoint, name, account_key=fields["accountkey"])
    if "sharedaccesssignature" in fields:
        return _Auth(endpoint, name, sas_token=fields["sharedaccesssignature"].lstrip("?"))
    raise ConfigError(
        "invalid value (hidden) for parameter 'connectionstring': it holds neither AccountKey nor "
        "SharedAccessSignature",
        driver="azure",
    )


_CREDENTIAL_TYPES = {"client_secret": ("clientid", "tenantid", "secret"), "default_credentials": ()}


def _check_credentials(credentials: Mapping[str, Any]) -> None:
    kind = str(credentials.get("type", "")).lower()
    if kind == "default":
        kind = "default_credentials"
    if kind not in _CREDENTIAL_TYPES:
        raise ConfigError(
            "invalid value (hidden) for parameter 'credentials': 'type' must be client_secret or default_credentials",
            driver="azure",
        )
    missing = [field for field in _CREDENTIAL_TYPES[kind] if not credentials.get(field)]
    if missing:
        raise ConfigError(
            f"invalid value (hidden) for parameter 'credentials': type {kind} needs {', '.join(missing)}",
            driver="azure",
        )
    if find_spec("azure.identity") is None:
        raise ConfigError(
            "parameter 'credentials' needs azure-identity, which is not installed: pip install azure-identity",
            driver="azure",
        )


def _token_credential(credentials: Mapping[str, Any]) -> Any:
    import azure.identity

    kind = str(credentials.get("type", "")).lower()
    if kind == "client_secret":
        return azure.identity.ClientSecretCredential(
            str(credentials["tenantid"]), str(credentials["clientid"]), str(credentials["secret"])
        )
    return azure.identity.DefaultAzureCredential()


__all__ = ["AzureDriver"]
