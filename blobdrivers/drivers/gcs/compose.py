"""Server-side concatenation: ``compose``, 32 sources per call, a tree of hidden temporaries beyond."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import Any

from ...transfer import run_bounded
from .batch import Deleter
from .client import Api
from .uploads import OCTET_STREAM

#: Sources per compose call (a GCS limit).
COMPOSE_LIMIT = 32


class Composer:
    """Composes objects of one bucket; ``temp_key`` names a fresh hidden temporary."""

    def __init__(self, api: Api, deleter: Deleter, temp_key: Callable[[], str], concurrency: int) -> None:
        self._api = api
        self._deleter = deleter
        self._temp_key = temp_key
        self._concurrency = concurrency

    def compose(self, sources: list[dict[str, str]], key: str, params: Mapping[str, str]) -> dict[str, Any]:
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
                    self._concurrency,
                )
                level = [{"name": name} for name in names] + level[runs * COMPOSE_LIMIT :]
            return self._compose_call(level, key, params)
        finally:
            self._deleter.discard(temps)

    def _compose_call(self, sources: list[dict[str, str]], key: str, params: Mapping[str, str]) -> dict[str, Any]:
        body = {"sourceObjects": sources, "destination": {"contentType": OCTET_STREAM}}
        url = f"{self._api.object_url(key)}/compose"
        resource: dict[str, Any] = json.loads(
            self._api.send("POST", url, what="compose", params=params, json_body=body).data
        )
        return resource
