"""Conformance: what a driver declares is what it does; each undeclared capability is refused before any request.

The tests of each declared capability live with the operation (url_for in
contract_io, conditions in contract_conditions, ...) and are skipped, by
declaration, for a driver that lacks it; here each capability the driver does
not declare is checked to raise :class:`UnsupportedMethodError` naming it, with
no request made and nothing changed.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ..calls import CallEvent
from ..capabilities import Capability
from ..driver import StorageDriver
from ..errors import PathNotFoundError, UnsupportedMethodError
from .helpers import SuiteBase, payload


def _streamed_commit(driver: StorageDriver) -> None:
    writer = driver.writer("/refused")
    writer.write(payload(SuiteBase.multi_chunk(driver)))
    try:
        writer.commit(if_none_match="*")
    finally:
        driver.writer("/refused").cancel()  # a fresh writer drops the session the refusal parked


#: Per refusable capability: the operation refused, and a call needing the capability.
REFUSALS: dict[Capability, tuple[str, Callable[[StorageDriver], object]]] = {
    Capability.SIGNED_READ_URLS: ("url_for", lambda driver: driver.url_for("/refused")),
    Capability.SIGNED_PUT_URLS: ("url_for", lambda driver: driver.url_for("/refused", method="PUT")),
    Capability.IF_NONE_MATCH: ("put", lambda driver: driver.put("/refused", b"x", if_none_match="*")),
    Capability.IF_MATCH: ("put", lambda driver: driver.put("/refused", b"x", if_match="some-etag")),
    Capability.CONDITIONAL_STREAMED_COMMIT: ("commit", _streamed_commit),
    Capability.RESUMABLE_WRITERS: ("writer", lambda driver: driver.writer("/refused", append=True)),
}


class CapabilityContract(SuiteBase):
    """``capabilities`` is a frozenset of :class:`Capability`; what is not in it is refused."""

    def test_capabilities_are_declared(self, store: StorageDriver) -> None:
        capabilities = store.capabilities
        assert isinstance(capabilities, frozenset)
        assert all(isinstance(capability, Capability) for capability in capabilities)
        assert capabilities <= type(store).declared_capabilities, "configuration may narrow the class's declaration"

    def test_every_undeclared_capability_is_refused(self, store: StorageDriver) -> None:
        undeclared = [capability for capability in REFUSALS if capability not in store.capabilities]
        if Capability.IF_NONE_MATCH not in store.capabilities:
            # A streamed conditional commit is refused for its condition first.
            undeclared = [c for c in undeclared if c is not Capability.CONDITIONAL_STREAMED_COMMIT]
        for capability in undeclared:
            self._check_refused(store, capability)

    def _check_refused(self, store: StorageDriver, capability: Capability) -> None:
        operation, call = REFUSALS[capability]
        events: list[CallEvent] = []
        store.observers.append(events.append)
        try:
            call(store)
        except UnsupportedMethodError as refusal:
            assert capability.value in str(refusal) and refusal.driver == store.name, (
                f"{capability.value}: refused with {refusal!r}"
            )
        else:
            pytest.fail(f"the driver does not declare {capability.value}, but {operation} did not refuse it")
        finally:
            store.observers.remove(events.append)
        reached = [event for event in events if event.operation == operation]
        assert reached == [], f"{operation} reached the driver's hooks before refusing {capability.value}: {reached}"
        with pytest.raises(PathNotFoundError):
            store.stat("/refused")
