"""The conformance suite bound to ``--blobdrivers-url`` (default: a filesystem store in a temporary folder).

Each test runs in its own sub-folder of the store (``StorageDriver.below``), which
is removed afterwards, so the URL may point at a store that holds other data.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..driver import StorageDriver
from ..errors import PathNotFoundError
from ..factory import from_url
from .plugin import STORE
from .suite import DriverConformance


class TestConformance(DriverConformance):
    """The whole contract against the store named by ``--blobdrivers-url``."""

    @pytest.fixture
    def driver(self, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorageDriver]:
        """A fresh sub-folder of the store under test."""
        base = request.config.stash.get(STORE, None) or from_url(f"file://{tmp_path}")
        folder = f"/conformance-{uuid.uuid4().hex[:12]}"
        yield base.below(folder)
        with contextlib.suppress(PathNotFoundError):
            base.delete(folder)
