"""The Azure Blob Storage driver, on azure-storage-blob, using BlockBlobs only.

Every publish is one atomic call: a Put Blob (small content), or a Put Block List
committing blocks staged before it (put, writer commit, cat, move of large blobs).
Readers therefore see the old or the whole new content, never a part.

The driver class below is the map of how each operation meets the service; the
mechanics live beside it:

- ``auth``: the authentication parameters, connection strings, SAS signing;
- ``client``: the SDK clients of a process, the pipeline's retry policy;
- ``errors``: what an SDK error means, and the contract error it becomes;
- ``blocks``: block ids, Put Blob and Put Block List (with the discarded-blocks case);
- ``copies``: server-side copies and their streaming fallbacks, legacy AppendBlobs;
- ``reader``: streaming ranged GETs, reopened after a cut;
- ``sessions`` and ``writer``: resumable writers staging on hidden staging blobs.
"""

from __future__ import annotations

import functools
import io
import logging
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Final
from urllib.parse import quote

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import (
    BlobClient,
    BlobProperties,
    BlobSasPermissions,
    BlobType,
    ContainerClient,
    UserDelegationKey,
)

from ... import paths
from ...capabilities import Capability
from ...clients import ProcessLocal, tls_verify
from ...conditions import Conditions
from ...driver import StorageDriver
from ...errors import ConfigError, PathNotFoundError, PreconditionFailedError, StorageError
from ...listing import FileInfo, visible_children, walk_flat
from ...params import KiB, MiB, Params
from ...reader import RangeReader
from ...redaction import MASK, secret_forms
from ...retry import RetryPolicy
from ...transfer import Source, part_size_for, plan_put, run_bounded, upload_parts
from ...writer import WriterBackend
from . import blocks, sessions
from .auth import Signer, resolve_auth
from .blocks import MAX_BLOCK_SIZE, MAX_BLOCKS, SourceBlob
from .client import Clients, install_log_redaction, make_clients
from .copies import Copier
from .errors import error_code, is_missing, is_missing_blob, status, translate
from .reader import open_range, read_range
from .sessions import Session
from .writer import AzureWriter

log = logging.getLogger("blobdrivers.azure")

_SECRETS: Final = frozenset({"accountkey", "connectionstring", "sastoken", "credentials"})
_CONTAINER_NAME = re.compile(r"(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9]))*")
#: Names per Blob Batch request (the service's limit).
_BATCH: Final = 256


class AzureDriver(StorageDriver):
    """Azure Blob Storage (BlockBlobs only); see ``docs/drivers/azure.md`` for the parameters."""

    name = "azure"
    url_schemes = ("azure",)
    url_host_param = "container"
    declared_capabilities = frozenset(Capability)  # fewer with a sastoken: see capabilities
    capability_notes = dict.fromkeys(
        (Capability.SIGNED_READ_URLS, Capability.SIGNED_PUT_URLS),
        "signing needs accountkey or credentials; a sastoken cannot sign URLs with a chosen expiry",
    )
    #: Azure blob names are at most 1,024 characters (paths are ASCII, so bytes); session
    #: markers (``~blobdrivers/uploads/<sha256>``) and staging blobs need at most 160 bytes below the root.
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
        service_url = reader.endpoint(
            "serviceurl", default_scheme="https", example="https://account.blob.core.windows.net", allow_path=True
        )
        rootdirectory = reader.string("rootdirectory", "") or ""
        chunk_size = reader.size("chunksize", 4 * MiB, minimum=16 * KiB, maximum=MAX_BLOCK_SIZE)
        self.concurrency = reader.integer("maxconcurrency", 8, minimum=1, maximum=64)
        #: Attempts of one request, the first included (the SDK pipeline's and the reader's reopens).
        self.retries = reader.attempts(aliases=("maxretries",))
        skipverify = reader.boolean("skipverify", False)
        reader.done()
        if not _CONTAINER_NAME.fullmatch(container):
            raise ConfigError(
                f"container name {container!r} is invalid: Azure container names are 3-63 characters of lowercase "
                "letters, digits and single hyphens, starting and ending with a letter or digit",
                driver=self.name,
            )
        self._container = container
        self._auth = resolve_auth(
            account_name=account_name,
            account_key=account_key,
            connection_string=connection_string,
            sas_token=sas_token,
            credentials=credentials,
            realm=realm,
            service_url=service_url,
        )
        super().__init__(params, rootdirectory=rootdirectory, chunk_size=chunk_size)
        self._retry_policy = RetryPolicy.with_attempts(self.retries)
        self._verify = tls_verify(self.name, self._auth.account_url, skipverify=skipverify)
        self._clients: ProcessLocal[Clients] = ProcessLocal(self._make_clients)
        self._signer = Signer(self._auth, container, self._user_delegation_key)
        self._copier = Copier(self)
        install_log_redaction()

    # ------------------------------------------------------------------ clients, paths, errors

    def _make_clients(self) -> Clients:
        return make_clients(
            self._auth,
            self._container,
            concurrency=self.concurrency,
            chunk_size=self.chunk_size,
            retry=self._retry_policy,
            verify=self._verify,
        )

    def _user_delegation_key(self, start: datetime, expiry: datetime) -> UserDelegationKey:
        return self._clients.get().service.get_user_delegation_key(start, expiry)

    def _container_client(self) -> ContainerClient:
        return self._clients.get().container

    def _blob(self, full: str) -> BlobClient:
        return self._clients.get().blob(paths.to_key(full))

    def _logical(self, full: str) -> str:
        return paths.strip(self._root, full)

    def _shown(self, blob: BlobClient) -> str:
        """The caller's path of a blob, for messages (never the root-prefixed key)."""
        return self._logical("/" + blob.blob_name)

    def _translate_error(self, exc: Exception, path: str) -> StorageError | None:
        return translate(exc, path, self._container, self._auth.account_url)

    def store_identity(self) -> str:
        """``azure://endpoint=…&container=…``: the account's blob endpoint, however the account was given.

        A connection string, an account name or a service URL naming one account give
        one identity; the endpoint never carries a secret (a SAS lives in its own field).
        """
        endpoint = self._auth.account_url.split("?", 1)[0].rstrip("/")
        return f"{self.name}://endpoint={quote(endpoint, safe='')}&container={self._container}"

    def redact(self, text: str) -> str:
        """``text`` without secret values: parameters, the key inside a connection string, SAS signatures."""
        text = super().redact(text)
        for secret in self._auth.secrets():
            for form in secret_forms(secret):
                text = text.replace(form, MASK)
        return text

    # ------------------------------------------------------------------ put / get

    def _put(self, full: str, source: Source, conditions: Conditions) -> None:
        """One Put Blob up to a chunk; above it Put Block of each block in parallel, one Put Block List."""
        blob = self._blob(full)
        plan = plan_put(source, self.chunk_size, max_parts=MAX_BLOCKS, max_part_size=MAX_BLOCK_SIZE)
        if plan.whole is not None:
            blocks.put_blob(blob, plan.whole, conditions)
            return
        if conditions:
            self._precheck(blob, conditions)
        session = blocks.new_session()
        staged = upload_parts(
            plan.source,
            plan.part_sizes,
            lambda number, data: self._stage_part(full, blob, session, number - 1, data),
            concurrency=self.concurrency,
        )
        blocks.commit_session(
            blob, session, len(staged), conditions, overwritten_is_success=not conditions, path=self._logical(full)
        )

    def _stage_part(self, full: str, blob: BlobClient, session: str, index: int, data: memoryview | bytes) -> int:
        """Stage block ``index`` of a put or writer, after the ``"part.upload"`` race point (part ``index + 1``)."""
        self._race_point("part.upload", full, index + 1)
        return self._copier.stage(blob, blocks.block_id(session, index), data)

    def _precheck(self, blob: BlobClient, conditions: Conditions) -> None:
        """Fail a conditional multi-block put before uploading anything when its condition is already false.

        Only a shortcut: the condition is enforced by the commit itself.
        """
        try:
            etag: str | None = str(blob.get_blob_properties().etag)
        except HttpResponseError as exc:
            if not is_missing_blob(exc):
                raise
            etag = None
        if conditions.if_none_match and etag is not None:
            raise PreconditionFailedError(f"{self._shown(blob)} already exists")
        if conditions.if_match is not None and etag != conditions.if_match:
            raise PreconditionFailedError(f"the etag of {self._shown(blob)} is not {conditions.if_match!r}")

    def _open(self, full: str, offset: int, length: int | None) -> tuple[RangeReader, int | None]:
        """One streaming GET (ranged for an offset or length), reopened with If-Match after a cut."""
        blob = self._blob(full)
        if length == 0:
            blob.get_blob_properties()  # the path must exist
            return io.BytesIO(b""), 0
        return open_range(blob, self._logical(full), offset, length, etag=None, retry=self._retry_policy)

    def _read_range(self, blob: BlobClient, offset: int, length: int, etag: str) -> bytearray:
        """Exactly ``length`` bytes from ``offset`` of a blob whose etag must still be ``etag``."""
        return read_range(blob, self._shown(blob), offset, length, etag=etag, retry=self._retry_policy)

    # ------------------------------------------------------------------ stat / list / walk

    def _stat(self, full: str) -> FileInfo:
        """Get Blob Properties; for a directory, a one-page prefix listing."""
        if full != (self._root or paths.ROOT):
            try:
                props = self._blob(full).get_blob_properties()
            except HttpResponseError as exc:
                if not is_missing_blob(exc):
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
        """A listing with delimiter ``/``, paginated by the SDK."""
        prefix = paths.dir_key(full)
        names = [
            item.name
            for item in self._container_client().walk_blobs(name_starts_with=prefix or None, delimiter="/")
            if item.name.startswith(prefix)
        ]
        holds_valid = lambda below: self._first_valid_below(below) is not None  # noqa: E731
        return iter(visible_children(names, holds_valid, self.concurrency))

    def _walk(self, full: str) -> Iterator[FileInfo]:
        """One flat listing; directories inferred."""
        prefix = paths.dir_key(full)
        listing = self._container_client().list_blobs(name_starts_with=prefix or None)
        files = (
            _file_info("/" + props.name, props)
            for props in listing
            if props.name.startswith(prefix) and paths.from_key(props.name) is not None
        )
        return walk_flat(files, full)

    # ------------------------------------------------------------------ move / delete / cat

    def _move(self, src: str, dst: str, conditions: Conditions) -> None:
        """A server-side copy, then a delete of the source guarded by If-Match on the etag copied."""
        source = self._blob(src)
        props = source.get_blob_properties()
        if props.blob_type != BlobType.BLOCKBLOB:
            # Copy Blob From URL and Put Block From URL read block blobs: convert a legacy source first.
            self._copier.replace_legacy(source)
            props = source.get_blob_properties()
        target = self._blob(dst)
        try:
            self._copier.copy_blob(source, props, target, conditions)
        except HttpResponseError as exc:
            if error_code(exc) != "InvalidBlobType":
                raise
            # Copy Blob keeps the source type and refuses a destination of another type.
            self._copier.replace_legacy(target)
            self._copier.copy_blob(source, props, target, conditions)
        self._race_point("move.copied", src)
        try:
            source.delete_blob(etag=props.etag, match_condition=MatchConditions.IfNotModified)
        except HttpResponseError as exc:
            if not (is_missing(exc) or status(exc) == 412):
                raise
            # Someone deleted or rewrote the source meanwhile: that content is theirs to keep.
            log.debug("azure: move left %s alone: it changed after the copy", source.blob_name)

    def _delete(self, full: str) -> None:
        """Delete Blob (with snapshots); for a directory, a flat listing deleted in Blob Batch requests."""
        try:
            self._blob(full).delete_blob(delete_snapshots="include")
            return
        except HttpResponseError as exc:
            if not is_missing_blob(exc):
                raise
        container = self._container_client()
        found = False
        batch: list[str] = []
        for props in container.list_blobs(name_starts_with=paths.dir_key(full)):
            # Hidden bookkeeping (upload markers) goes with the tree, but alone it is not "something there".
            found = found or paths.from_key(props.name) is not None
            batch.append(props.name)
            if len(batch) == _BATCH:
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
            if status(exc) not in (400, 501):
                raise
            failed = list(names)
        if failed:
            run_bounded([functools.partial(_delete_one, container, name) for name in failed], self.concurrency)

    def _cat(self, full: str, sources: list[str]) -> None:
        """Up to a chunk in all: read and one Put Blob. Else every range a block of the target, one commit."""
        target = self._blob(full)
        infos = []
        for source in sources:
            client = self._blob(source)
            try:
                props = client.get_blob_properties()
            except HttpResponseError as exc:
                if is_missing_blob(exc):
                    raise PathNotFoundError(f"cat source {source} does not exist", path=source) from exc
                raise
            infos.append(SourceBlob(source, client, props.etag, props.size))
        total = sum(info.size for info in infos)
        if total <= self.chunk_size:
            joined = bytearray()
            for info in infos:
                joined += self._read_range(info.client, 0, info.size, info.etag)
            blocks.put_blob(target, joined, Conditions())
            return
        block = part_size_for(total, self.chunk_size, max_parts=MAX_BLOCKS, max_part_size=MAX_BLOCK_SIZE)
        session = blocks.new_session()
        staged = self._copier.copy_into_blocks(target, session, infos, 0, block)
        assert staged is not None  # streaming is allowed, so there is always a result
        if len(staged) > MAX_BLOCKS:
            raise StorageError(f"cat of {len(sources)} sources needs {len(staged)} blocks; Azure allows {MAX_BLOCKS}")
        blocks.commit_session(
            target, session, len(staged), Conditions(), overwritten_is_success=True, path=self._logical(full)
        )

    # ------------------------------------------------------------------ url_for / writer

    @property
    def capabilities(self) -> frozenset[Capability]:
        """Signed URLs need an account key or credentials (user delegation); a sastoken cannot choose an expiry."""
        auth = self._auth
        signer = auth.account_key is not None or auth.credentials is not None
        if auth.sas_token is None and auth.account_name and signer:
            return self.declared_capabilities
        return self.declared_capabilities - {Capability.SIGNED_READ_URLS, Capability.SIGNED_PUT_URLS}

    def _url_for(self, full: str, method: str, expires_in: int) -> str:
        """A blob SAS: read for GET/HEAD, create and write for PUT (the client sends x-ms-blob-type)."""
        permission = BlobSasPermissions(create=True, write=True) if method == "PUT" else BlobSasPermissions(read=True)
        url = self._signer.signed(self._blob(full), permission, expires_in)
        if url is None:
            raise StorageError("no account key or credentials to sign a URL with")
        return url

    def _writer(self, full: str, append: bool) -> WriterBackend:
        """A session of its own; ``append`` takes over the parked one, or appends to committed content."""
        blob = self._blob(full)
        parked = sessions.take_marker(self, full)
        if not append:
            if parked is not None:
                sessions.drop_staging(self, full, str(parked["session"]))
            return AzureWriter(self, full, blob, Session())
        if parked is not None:
            return AzureWriter(self, full, blob, sessions.resume(self, full, parked))
        return AzureWriter(self, full, blob, sessions.append_to_committed(self, full, blob))


def _delete_one(container: ContainerClient, name: str) -> None:
    try:
        container.delete_blob(name, delete_snapshots="include")
    except HttpResponseError as exc:
        if not is_missing(exc):
            raise


def _file_info(full: str, props: BlobProperties) -> FileInfo:
    return FileInfo(path=full, size=int(props.size), modified=props.last_modified, etag=str(props.etag))


__all__ = ["AzureDriver"]
