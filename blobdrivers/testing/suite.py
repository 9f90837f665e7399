"""The conformance suite every driver must pass.

Subclass :class:`DriverConformance` and give it one fixture, ``driver``, returning
a driver on an empty store (a fresh bucket, container or folder)::

    class TestMyDriver(DriverConformance):
        @pytest.fixture
        def driver(self, tmp_path):
            return MyDriver(rootdirectory=str(tmp_path))

The suite makes "another instance of the same store" with ``pickle`` (drivers
pickle by their parameters), and takes its sizes from ``driver.chunk_size`` so
multipart and multi-block paths really run. Every test leaves the store empty;
the suite checks it after each test (the ``store`` fixture of
:class:`~blobdrivers.testing.helpers.SuiteBase`).

Each part of the contract is one ``contract_*`` module; this class composes them.
"""

from __future__ import annotations

from .contract_capabilities import CapabilityContract
from .contract_conditions import ConditionContract
from .contract_errors import ErrorContract
from .contract_instances import InstanceContract
from .contract_io import ReadWriteContract
from .contract_listing import ListingContract
from .contract_moves import MoveContract
from .contract_namespace import NamespaceContract
from .contract_paths import INVALID_PATHS, VALID_PATHS, PathContract
from .contract_races import RaceContract
from .contract_rules import UniformRulesContract
from .contract_writers import WriterIsolationContract
from .helpers import SuiteBase

__all__ = ["INVALID_PATHS", "VALID_PATHS", "DriverConformance"]


class DriverConformance(
    PathContract,
    ReadWriteContract,
    ListingContract,
    MoveContract,
    ConditionContract,
    CapabilityContract,
    InstanceContract,
    WriterIsolationContract,
    RaceContract,
    NamespaceContract,
    ErrorContract,
    UniformRulesContract,
    SuiteBase,
):
    """The contract of :class:`~blobdrivers.StorageDriver`, as tests. Provide the ``driver`` fixture."""
