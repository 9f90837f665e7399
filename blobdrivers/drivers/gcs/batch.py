"""Deleting many objects: batch requests of 100 calls, or one request each where batches are not offered."""

from __future__ import annotations

import functools
import logging
from urllib.parse import quote

from google.api_core import exceptions as api_exceptions
from google.cloud.storage.batch import Batch

from ...transfer import run_bounded
from .client import Api
from .errors import TRANSIENT_STATUS, HTTPError, is_transient

log = logging.getLogger("blobdrivers.gcs")

#: Calls per batch request (a GCS limit).
BATCH_LIMIT = 100
#: Statuses of a batch request itself saying the server has no batch endpoint.
_NO_BATCH_STATUS = frozenset({404, 405, 501})


class Deleter:
    """Deletes objects of one bucket, several requests at once; objects already gone are fine."""

    def __init__(self, api: Api, concurrency: int) -> None:
        self._api = api
        self._concurrency = concurrency
        #: False once the server refused a batch request.
        self._batch_offered = True

    def delete_many(self, keys: list[str]) -> None:
        """Delete objects in batch requests (100 calls each, several batches at once); missing ones are fine.

        A server that does not offer batch requests (it answers 404, 405 or 501 to the
        batch endpoint) gets one request per object, from then on for this instance.
        """
        if len(keys) > 1 and self._batch_offered:
            groups = [keys[i : i + BATCH_LIMIT] for i in range(0, len(keys), BATCH_LIMIT)]
            try:
                run_bounded([functools.partial(self._delete_batch, group) for group in groups], self._concurrency)
                return
            except api_exceptions.GoogleAPICallError as exc:
                if exc.code not in _NO_BATCH_STATUS:
                    raise
                self._batch_offered = False
                log.debug("gcs: the server answers HTTP %s to batch requests: deleting object by object", exc.code)
        # Objects a batch already deleted answer 404 now, which delete_key accepts.
        run_bounded([functools.partial(self._api.delete_key, key) for key in keys], self._concurrency)

    def _delete_batch(self, keys: list[str]) -> None:
        pending = keys
        api = self._api

        def attempt() -> None:
            nonlocal pending
            # A Batch of our own rather than client.batch(): that one lives on a stack shared by all threads.
            batch = Batch(api.clients.get().storage, raise_exception=False)
            for key in pending:
                batch.api_request(method="DELETE", path=f"/b/{api.bucket}/o/{quote(key, safe='')}")
            responses = batch.finish(raise_exception=False)
            retry_keys = []
            for key, response in zip(pending, responses, strict=True):
                status = int(response.status_code)  # a requests response: the SDK's batch
                if status in (200, 204, 404):
                    continue
                if status in TRANSIENT_STATUS:
                    retry_keys.append(key)
                    continue
                raise HTTPError(status, "", "delete")
            pending = retry_keys
            if pending:
                raise HTTPError(503, "batchPartlyFailed", "delete")

        api.retry.call(attempt, is_transient=is_transient, what="delete batch")

    def discard(self, keys: list[str]) -> None:
        """Delete temporaries, best effort: the operation itself succeeded or failed already.

        A failure here leaves hidden objects under the bookkeeping folder (invisible to
        list and walk) rather than turning a finished publish into an error.
        """
        try:
            self.delete_many(keys)
        except Exception as exc:
            log.warning("gcs: could not delete %d temporary object(s): %s", len(keys), type(exc).__name__)
