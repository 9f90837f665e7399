"""Model-based fuzzing of the local drivers (network drivers run it in their own test files)."""

from __future__ import annotations

import tempfile
import uuid

from hypothesis import HealthCheck, settings

from blobdrivers.drivers.filesystem import FilesystemDriver
from blobdrivers.drivers.inmemory import InMemoryDriver
from tests.model import machine_for
from tests.scale import SCALE

_SETTINGS = settings(
    max_examples=150 * SCALE, stateful_step_count=30, deadline=None, suppress_health_check=list(HealthCheck)
)
_ROOT = tempfile.mkdtemp(prefix="bd-model-")

TestInMemoryModel = machine_for(lambda: InMemoryDriver(chunksize=16)).TestCase
TestInMemoryModel.settings = _SETTINGS

TestFilesystemModel = machine_for(
    lambda: FilesystemDriver(rootdirectory=f"{_ROOT}/{uuid.uuid4().hex}", fsync=False, chunksize=4096)
).TestCase
TestFilesystemModel.settings = _SETTINGS
