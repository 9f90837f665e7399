"""The SDK clients of one process: the service and container clients over one requests session.

Requests go through the SDK pipeline (signing, the storage retry policy) and a
``RequestsTransport`` on a session from :func:`~blobdrivers.clients.http_session`,
whose adapter never retries: the pipeline makes every attempt, so ``retries`` (the
attempts of one request, the first included) is exactly the number of requests a
failing server sees.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final

from azure.core.pipeline.transport import RequestsTransport
from azure.storage.blob import BlobClient, BlobServiceClient, ContainerClient, ExponentialRetry

from ...clients import http_session
from ...redaction import CREDENTIAL_PATTERNS, LogRedactor
from ...retry import RetryPolicy
from .auth import Auth

log = logging.getLogger("blobdrivers.azure")

_BLOB_CLIENT_CACHE: Final = 1024
#: urllib3 prints every request URL at DEBUG, with a SAS token's signature when the driver uses one.
_URL_LOG_REDACTOR: Final = LogRedactor(CREDENTIAL_PATTERNS)


class SdkRetry(ExponentialRetry):
    """The SDK's storage retry policy, with the attempts and backoff of the driver's :class:`RetryPolicy`.

    It keeps the SDK's choice of what to retry (timeouts, 408, 5xx but 501/505,
    connection errors); the SDK counts retries after the first attempt, hence
    ``attempts - 1``. The SDK default waits 15 s and more between attempts; this
    waits :meth:`RetryPolicy.backoff`.
    """

    def __init__(self, policy: RetryPolicy) -> None:
        retries = policy.attempts - 1
        super().__init__(
            retry_total=retries, retry_connect=retries, retry_read=retries, retry_status=retries, initial_backoff=0
        )
        self._policy = policy

    def get_backoff_time(self, settings: dict[str, Any]) -> float:
        """The wait before retry number ``settings["count"]`` (the SDK counts from 1)."""
        count = int(settings.get("count", 0))
        log.debug("azure: retrying a request (retry %d)", count)
        return self._policy.backoff(max(1, count))


@dataclass
class Clients:
    """The SDK clients and the worker pool of one process."""

    service: BlobServiceClient
    container: ContainerClient
    pool: ThreadPoolExecutor
    # Building a BlobClient costs about half a millisecond (URL parsing, policies):
    # recently used ones are kept. They share the container's pipeline and are thread-safe.
    blobs: OrderedDict[str, BlobClient] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def blob(self, key: str) -> BlobClient:
        """The (cached) client of the blob named ``key``."""
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


def make_clients(
    auth: Auth, container: str, *, concurrency: int, chunk_size: int, retry: RetryPolicy, verify: bool | str
) -> Clients:
    """Build this process's clients: a pool wide enough for every block in flight plus callers' own threads."""
    session = http_session(auth.account_url, verify=verify, pool_size=max(32, 2 * concurrency))
    # The transport passes its own verify setting with every request, overriding the session's.
    transport = RequestsTransport(session=session, session_owner=True, connection_verify=verify)
    service = BlobServiceClient(
        auth.account_url,
        credential=auth.sdk_credential(),
        transport=transport,
        retry_policy=SdkRetry(retry),
        max_single_put_size=chunk_size,
        max_block_size=chunk_size,
        max_single_get_size=chunk_size,
        max_chunk_get_size=chunk_size,
    )
    pool = ThreadPoolExecutor(max_workers=2 * concurrency, thread_name_prefix="blobdrivers-azure")
    return Clients(service, service.get_container_client(container), pool)


def install_log_redaction() -> None:
    """Mask SAS signatures in urllib3's request lines and the SDK's HTTP log; idempotent, process-wide.

    The SDK's log writes ``REDACTED`` for the header values it hides; the filter turns
    that into the one mask text too.
    """
    _URL_LOG_REDACTOR.install("urllib3.connectionpool", "azure.core.pipeline.policies.http_logging_policy")
