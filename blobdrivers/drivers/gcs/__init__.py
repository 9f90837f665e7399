"""The Google Cloud Storage driver, on the JSON API (urllib3) and google-cloud-storage.

Objects live in one bucket under the key ``<rootdirectory>/<path>`` (no leading
slash). The driver's own bookkeeping lives below ``<rootdirectory>/~blobdrivers/``
(:attr:`StorageDriver.bookkeeping_dir`): ``~`` is outside the path rule, so list,
walk and stat never show it, and it sorts after every valid key.

How each operation meets the service (this class), and where the mechanics live:

* ``put``: one multipart request when the data fits in one chunk; data of known
  size in memory or in a seekable file goes in *one* resumable-session request
  (resumed from the offset the session reports); a stream feeds a session chunk by
  chunk (:mod:`.uploads`). Conditions are ``ifGenerationMatch``; every upload
  carries a CRC32C (:mod:`.crc`).
* ``get`` / ``stream``: ``alt=media`` GETs, reopened at the offset if a body breaks,
  pinned to the first generation, whole objects checked against their CRC32C (:mod:`.reader`).
* ``writer``: a resumable session parked in a hidden sidecar (:mod:`.writer`, :mod:`.sidecar`).
* ``cat``: ``compose`` trees (:mod:`.compose`). ``move``: ``rewrite`` then a
  generation-pinned delete. ``delete``: the object and every key below it, in batch
  requests (:mod:`.batch`). ``url_for``: V4 signed URLs for GET and HEAD.
* endpoint, credentials, clients and the plain JSON requests: :mod:`.client`;
  statuses, retries and error mapping: :mod:`.errors`.
"""

from __future__ import annotations

import itertools
import json
import logging
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import urllib3.exceptions
from google.auth.credentials import AnonymousCredentials, Signing

from ... import paths
from ...capabilities import Capability
from ...clients import ProcessLocal, tls_verify
from ...conditions import Conditions
from ...driver import StorageDriver
from ...errors import ConfigError, PathNotFoundError, StorageError
from ...listing import FileInfo, visible_children, walk_flat
from ...params import GiB, MiB, Params, check_bucket_name
from ...reader import RangeReader
from ...retry import RetryPolicy
from ...transfer import MAX_PARTS, Source, plan_put, upload_parts
from ...writer import WriterBackend
from . import crc
from .batch import Deleter
from .client import (
    DEFAULT_ENDPOINT,
    ENDPOINT_EXAMPLE,
    Api,
    Client,
    credentials_param,
    load_credentials,
    make_client,
    resolve_endpoint,
)
from .compose import Composer
from .errors import HTTPError, UnreadableSidecar, bucket_not_found, is_transient, translate
from .reader import CHECK, EmptyReader, open_range
from .sidecar import Parking, Piece, UploadState
from .uploads import (
    ALIGN,
    FileBody,
    Session,
    abort_session,
    generation_param,
    seekable,
    start_session,
    transmit,
    upload_small,
)
from .writer import GCSWriter

log = logging.getLogger("blobdrivers.gcs")

#: The most parts and requests one transfer runs at a time (``maxconcurrency`` above it is clamped).
MAX_CONCURRENCY = 256


class GCSDriver(StorageDriver):
    """Objects in a Google Cloud Storage bucket.

    Parameters: ``bucket`` (required); ``rootdirectory``; ``keyfile`` (path of a
    service-account JSON key) or ``credentials`` (its content, as a mapping or a
    JSON string), else application default credentials, or anonymous access when
    an endpoint is set; ``project``; ``endpoint`` (default: ``STORAGE_EMULATOR_HOST``
    if set, else ``https://storage.googleapis.com``); ``chunksize`` (multiple of
    256 KiB, default 16 MiB); ``maxconcurrency`` (default 8); ``retries`` (attempts
    per request, the first included, default 5); ``skipverify``.
    """

    name = "gcs"
    url_schemes = ("gs",)
    url_host_param = "bucket"
    declared_capabilities = frozenset(Capability) - {Capability.SIGNED_PUT_URLS, Capability.CONDITIONAL_STREAMED_COMMIT}
    capability_notes = {
        Capability.SIGNED_READ_URLS: "signing needs credentials holding a private key (not anonymous or token ones); "
        "give a service-account key (keyfile or credentials)",
        Capability.SIGNED_PUT_URLS: "a signed PUT would bypass atomic, checksummed and conditional publishing",
        Capability.CONDITIONAL_STREAMED_COMMIT: "GCS fixes a resumable upload's conditions when it starts; commit "
        "without conditions, or use put() or move() with the condition",
    }
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
        credentials_info = credentials_param(reader, params.get("credentials"))
        self.project = reader.string("project")
        endpoint = reader.endpoint("endpoint", default_scheme="http", example=ENDPOINT_EXAMPLE)
        chunk_size = reader.size("chunksize", 16 * MiB, minimum=ALIGN, maximum=5 * GiB, multiple_of=ALIGN)
        self.concurrency = reader.integer("maxconcurrency", 8, minimum=1)
        if self.concurrency > MAX_CONCURRENCY:
            # distribution sets no maximum: a registry's value is taken, at the most this driver runs.
            log.warning(
                "storage driver 'gcs': parameter 'maxconcurrency' %d is more than %d: using %d",
                self.concurrency,
                MAX_CONCURRENCY,
                MAX_CONCURRENCY,
            )
            self.concurrency = MAX_CONCURRENCY
        attempts = reader.attempts()
        skipverify = reader.boolean("skipverify", False)
        reader.done()
        # As distribution, only names no GCS API takes are refused here; the server judges the rest.
        check_bucket_name(bucket, driver=self.name, service="GCS")
        if keyfile and credentials_info is not None:
            raise ConfigError("give 'keyfile' or 'credentials', not both", driver=self.name)
        self.bucket = bucket
        self.endpoint = resolve_endpoint(endpoint)
        super().__init__(params, rootdirectory=rootdirectory, chunk_size=chunk_size)
        shown = {"keyfile": repr(keyfile), "credentials": "(hidden)"}
        self._credentials = load_credentials(keyfile, credentials_info, anonymous=self.custom_endpoint, shown=shown)
        self._verify = tls_verify(self.name, self.endpoint, skipverify=skipverify)
        # GCS asks for exponential backoff from about a second up to 32 s on 429 and 5xx.
        retry = RetryPolicy(attempts=attempts, base_delay=0.5, max_delay=32.0, deadline=300.0)
        root_key = paths.to_key(self._root)
        self._hidden = f"{root_key}/{self.bookkeeping_dir}" if root_key else self.bookkeeping_dir
        self._clients: ProcessLocal[Client] = ProcessLocal(self._make_client)
        self._api = Api(self.endpoint, bucket, self._clients, retry)
        self._deleter = Deleter(self._api, self.concurrency)
        self._composer = Composer(self._api, self._deleter, self._temp_key, self.concurrency)
        self._parking = Parking(self._api, self._deleter, self._hidden)

    @property
    def custom_endpoint(self) -> bool:
        """True when talking to something other than Google's public endpoint (an emulator, a private one)."""
        return self.endpoint != DEFAULT_ENDPOINT

    def _make_client(self) -> Client:
        pool_size = max(16, 2 * self.concurrency + 2)  # every worker thread plus the caller
        return make_client(
            self._credentials, endpoint=self.endpoint, project=self.project, verify=self._verify, pool_size=pool_size
        )

    def _temp_key(self) -> str:
        return f"{self._hidden}/tmp/{uuid.uuid4().hex}"

    def _absent(self, message: str, path: str | None = None) -> StorageError:
        """PathNotFoundError, or BucketNotFoundError when the bucket is what is missing (asked on failure only)."""
        if not self._api.bucket_exists():
            return bucket_not_found(self.bucket)
        return PathNotFoundError(message, path=path)

    # ------------------------------------------------------------------ put / get / stream

    def _put(self, full: str, source: Source, conditions: Conditions) -> None:
        key = paths.to_key(full)
        params = generation_param(conditions)
        size = source.size
        if size is not None and size > self.chunk_size:
            if source.in_memory:
                # All in memory already: the whole rest in one session request, resumable
                # from any offset the session reports (how gsutil uploads), no chunk round trips.
                view = source.read(size)
                self._put_in_one_request(key, view, params, crc32c=crc.extend(0, view))
                return
            if source.file is not None and seekable(source.file):
                body = FileBody.open(source.file, size)
                resource = self._put_in_one_request(key, body, params, crc32c=None)
                # The CRC32C is known only once the file was read, after the headers left: check
                # what GCS computed (this catches corruption after publishing, not before).
                if body.crc is not None:
                    crc.check(resource, crc.to_b64(body.crc))
                return
        if size is None:
            # Streamed chunk after chunk, finishing in one request when the data ends within the
            # first: no chunk needs reading ahead (and copying again) as plan_put would.
            self._put_streamed(key, source, params)
            return
        plan = plan_put(source, self.chunk_size, max_parts=MAX_PARTS, max_part_size=5 * GiB)
        if plan.whole is not None:
            upload_small(self._api, key, plan.whole, params, what="put")
            return
        self._put_streamed(key, plan.source, params)

    def _put_in_one_request(
        self, key: str, body: memoryview | FileBody, params: Mapping[str, str], *, crc32c: int | None
    ) -> dict[str, Any]:
        session = start_session(self._api, key, params, direct=True)
        try:
            resource = transmit(self._api, session, body, total=len(body), crc32c=crc32c)
        except BaseException:
            abort_session(self._api, session)
            raise
        assert resource is not None
        return resource

    def _put_streamed(self, key: str, source: Source, params: Mapping[str, str]) -> None:
        """Feed a session chunk after chunk (the next read while one is sent); the last one finishes it."""
        chunk = self.chunk_size
        session: Session | None = None
        checksum = 0
        done = False

        def upload_part(number: int, view: memoryview) -> None:
            nonlocal session, checksum, done
            if session is None:
                session = start_session(self._api, key, params, direct=True)
            self._race_point("part.upload", "/" + key, number)
            checksum = crc.extend(checksum, view)
            last = len(view) < chunk
            total = session.offset + len(view) if last else None
            transmit(self._api, session, view, total=total, crc32c=checksum if last else None)
            done = last

        try:
            upload_parts(source, itertools.repeat(chunk), upload_part, concurrency=1)
            if not done and session is not None:
                # The data ended on a chunk boundary: finish with an empty final request.
                transmit(self._api, session, memoryview(b""), total=session.offset, crc32c=checksum)
        except BaseException:
            if session is not None and not done:
                abort_session(self._api, session)
            raise

    def _get(self, full: str) -> bytes:
        """One GET read whole into one ``bytes`` (the object is held once), retried whole."""
        key = paths.to_key(full)

        def attempt() -> bytes:
            response = self._api.send(
                "GET",
                self._api.media_url(key),
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
            want = crc.from_hash_header(response.headers)
            if want is not None and crc.extend(0, data) != want:
                raise StorageError(f"{CHECK} mismatch reading {full}: the data was corrupted in transit")
            return data

        return self._api.retry.call(attempt, is_transient=is_transient, what="get")

    def _open(self, full: str, offset: int, length: int | None) -> tuple[RangeReader, int | None]:
        key = paths.to_key(full)
        if length == 0:
            if self._api.metadata(key) is None:
                raise self._absent(f"no file at {full}")
            return EmptyReader(), 0
        return open_range(self._api, key, offset, length)

    # ------------------------------------------------------------------ stat / list / walk

    def _stat(self, full: str) -> FileInfo:
        if full not in (self._root, paths.ROOT):
            item = self._api.metadata(paths.to_key(full))
            if item is not None:
                return _file_info(full, item)
        first = self._first_visible_below(paths.dir_key(full))
        if first is None:
            raise PathNotFoundError(f"nothing at {full}")
        return FileInfo(full, 0, _parse_time(first.get("updated")), is_dir=True)

    def _first_visible_below(self, prefix: str) -> dict[str, Any] | None:
        """The first listed object below ``prefix`` whose key is a valid path (nearly always the very first)."""
        fields = "items(name,updated),nextPageToken"
        first_page = next(self._api.list_pages(prefix, fields=fields, page_size=1))
        items = first_page.get("items") or []
        if not items:
            return None
        if paths.from_key(str(items[0]["name"])) is not None:
            return dict(items[0])
        # The first key is bookkeeping or foreign (written by another tool): scan on.
        for page in self._api.list_pages(prefix, fields=fields):
            for item in page.get("items") or ():
                if paths.from_key(str(item["name"])) is not None:
                    return dict(item)
        return None

    def _list(self, full: str) -> Iterator[str]:
        names: list[str] = []
        fields = "items(name),prefixes,nextPageToken"
        for page in self._api.list_pages(paths.dir_key(full), fields=fields, delimiter="/"):
            names += [str(item["name"]) for item in page.get("items") or ()]
            names += [str(p) for p in page.get("prefixes") or ()]
        holds_valid = lambda prefix: self._first_visible_below(prefix) is not None  # noqa: E731
        return iter(dict.fromkeys(visible_children(names, holds_valid, self.concurrency)))

    def _walk(self, full: str) -> Iterator[FileInfo]:
        prefix = paths.dir_key(full)

        def files() -> Iterator[FileInfo]:
            fields = "items(name,size,updated,generation),nextPageToken"
            for page in self._api.list_pages(prefix, fields=fields):
                for item in page.get("items") or ():
                    path = paths.from_key(str(item["name"]))
                    if path is not None:  # bookkeeping and foreign keys must not invent directories
                        yield _file_info(path, item)

        return walk_flat(files(), full)

    # ------------------------------------------------------------------ move / delete / cat

    def _move(self, src: str, dst: str, conditions: Conditions) -> None:
        params = generation_param(conditions)
        src_key, dst_key = paths.to_key(src), paths.to_key(dst)
        item = self._api.metadata(src_key)
        if item is None:
            raise self._absent(f"no file at {paths.strip(self._root, src)}")
        generation = str(item["generation"])
        self._rewrite(src_key, dst_key, generation, params)
        self._race_point("move.copied", src)
        # Pinned: if src was replaced meanwhile, the newer content stays.
        self._api.delete_key(src_key, generation=generation)

    def _rewrite(self, src_key: str, dst_key: str, generation: str, params: Mapping[str, str]) -> dict[str, Any]:
        """Server-side copy of one generation, looping on the rewrite token until done."""
        url = f"{self._api.object_url(src_key)}/rewriteTo/b/{self.bucket}/o/{quote(dst_key, safe='')}"
        token: str | None = None
        while True:
            query = {"sourceGeneration": generation, **params}
            if token:
                query["rewriteToken"] = token
            answer: dict[str, Any] = json.loads(
                self._api.send("POST", url, what="rewrite", params=query, json_body={}).data
            )
            if answer.get("done"):
                resource: dict[str, Any] = answer.get("resource") or {}
                return resource
            token = answer.get("rewriteToken")
            if not token:
                raise StorageError(f"rewrite of /{src_key} is not done but returned no rewrite token")

    def _delete(self, full: str) -> None:
        found = self._api.delete_key(paths.to_key(full))
        below = list(self._api.keys_below(paths.dir_key(full)))
        self._deleter.delete_many(below)
        # Bookkeeping and other tools' keys go with the tree, but alone they are not "something there".
        if not found and not any(paths.from_key(name) is not None for name in below):
            raise PathNotFoundError(f"nothing at {full}")

    def _cat(self, full: str, sources: list[str]) -> None:
        key = paths.to_key(full)
        if not sources:
            upload_small(self._api, key, b"", {}, what="cat")
            return
        try:
            self._composer.compose([{"name": paths.to_key(source)} for source in sources], key, {})
        except HTTPError as exc:
            if exc.status != 404 or exc.bucket_missing:
                raise
            # Compose does not say which source is missing: the base class finds it.
            raise self._absent("a cat source does not exist") from exc

    # ------------------------------------------------------------------ url_for / errors

    @property
    def capabilities(self) -> frozenset[Capability]:
        """Signed URLs only with credentials holding a private key (a service account), not anonymous ones.

        Known from the configuration; for application default credentials, from their
        lookup, whose failure is a StorageError like that of any call, never the SDK's own.
        """
        credentials = self._credentials
        if credentials is None:
            try:
                credentials = self._clients.get().credentials
            except Exception as exc:
                raise self._wrap(exc, "capabilities", "/") from exc
        signs = isinstance(credentials, Signing) and not isinstance(credentials, AnonymousCredentials)
        if signs and getattr(credentials, "service_account_email", None):
            return self.declared_capabilities
        return self.declared_capabilities - {Capability.SIGNED_READ_URLS}

    def _url_for(self, full: str, method: str, expires_in: int) -> str:
        """A V4 signed GET/HEAD URL; PUT is not declared: it would bypass atomic, checksummed publishing."""
        client = self._clients.get()
        credentials = client.credentials
        blob = client.storage.bucket(self.bucket).blob(paths.to_key(full))
        url: str = blob.generate_signed_url(
            version="v4",
            expiration=timedelta(seconds=expires_in),
            method=method,
            credentials=credentials,
            api_access_endpoint=self.endpoint,
        )
        return url

    def _translate_error(self, exc: Exception, path: str) -> StorageError | None:
        return translate(exc, path, bucket=self.bucket, bucket_exists=self._api.bucket_exists, endpoint=self.endpoint)

    # ------------------------------------------------------------------ writer

    def _writer(self, full: str, append: bool) -> WriterBackend:
        key = paths.to_key(full)
        if not append:
            try:
                state = self._parking.take(key)
            except UnreadableSidecar:
                state = None  # taken (deleted) before it was decoded; a new upload replaces it anyway
            if state is not None:
                self._parking.drop(state, sidecar=False)
            return GCSWriter(self, UploadState(key), has_sidecar=False)
        state = self._parking.take(key)
        if state is not None:
            return GCSWriter(self, self._parking.reconcile(state), has_sidecar=False)
        item = self._api.metadata(key)
        if item is None:
            raise self._absent(f"no file at {full} to append to")
        fresh = UploadState(key, crc=crc.from_b64(item.get("crc32c")))
        size = int(item.get("size") or 0)
        if size:
            # The committed generation becomes the first compose source at commit.
            fresh.pieces.append(Piece(key, str(item["generation"]), size, temp=False))
        else:
            fresh.crc = 0
        return GCSWriter(self, fresh, has_sidecar=False)


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


__all__ = ["GCSDriver"]
