"""blobdrivers: one storage-driver interface for every blob store.

>>> import blobdrivers
>>> store = blobdrivers.from_url("memory://")
>>> store.put("/hello.txt", b"hi")
>>> store.get("/hello.txt")
b'hi'
"""

from __future__ import annotations

from . import errors
from .capabilities import Capability
from .driver import CallEvent, StorageDriver
from .factory import available_drivers, create, from_config, from_url, register
from .listing import FileInfo
from .reader import Reader
from .replicate import ReplicationReport, replicate
from .writer import Writer

__version__ = "0.1.0"

__all__ = [
    "CallEvent",
    "Capability",
    "FileInfo",
    "Reader",
    "ReplicationReport",
    "StorageDriver",
    "Writer",
    "available_drivers",
    "create",
    "errors",
    "from_config",
    "from_url",
    "register",
    "replicate",
]
