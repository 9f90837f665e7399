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

    @pytest.mark.parametrize("capability", list(REFUSALS), ids=[c.name.lower() for c in REFUSALS])
    def test_an_undeclared_capability_is_refused(self, store: StorageDriver, capability: Capability) -> None:
        if capability in store.capabilities:
            pytest.skip(f"driver declares {capability.value}: its own tests check that it works")
        if capability is Capability.CONDITIONAL_STREAMED_COMMIT and Capability.IF_NONE_MATCH not in store.capabilities:
            pytest.skip(f"driver does not declare {Capability.IF_NONE_MATCH.value}, refused before this one")
        operation, call = REFUSALS[capability]
        events: list[CallEvent] = []
        store.observers.append(events.append)
        try:
            with pytest.raises(UnsupportedMethodError) as caught:
                call(store)
        finally:
            store.observers.remove(events.append)
        assert capability.value in str(caught.value) and caught.value.driver == store.name
        reached = [event for event in events if event.operation == operation]
        assert reached == [], f"{operation} reached the driver's hooks before the refusal: {reached}"
        with pytest.raises(PathNotFoundError):
            store.stat("/refused")
