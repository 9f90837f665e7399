"""Conformance: No secret in any form an error can take: str, repr, args, its chain, a traceback, a pickle.

Nor in a driver's ``identity()``, which must tell its store and root apart from others'.
"""

from __future__ import annotations

import base64
import contextlib
import pickle
import traceback
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from ..driver import StorageDriver
from ..errors import StorageError
from .helpers import SuiteBase


def secret_forms(driver: StorageDriver) -> set[str]:
    """The values of ``driver``'s secret parameters (strings of 4+ characters, or such values of a mapping).

    Each in raw, URL-encoded and base64 forms, as a URL, a header or an error body may carry it.
    """
    values: list[str] = []
    for name in driver.secret_params:
        value = driver._params.get(name)
        candidates = value.values() if isinstance(value, Mapping) else [value]
        values.extend(item for item in candidates if isinstance(item, str) and len(item) >= 4)
    forms: set[str] = set()
    for value in values:
        encoded = value.encode()
        forms |= {
            value,
            urllib.parse.quote(value, safe=""),
            urllib.parse.quote_plus(value),
            base64.b64encode(encoded).decode(),
            base64.urlsafe_b64encode(encoded).decode().rstrip("="),
        }
    return {form for form in forms if len(form) >= 4}


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception reachable through ``__cause__`` and ``__context__``, once each."""
    seen: set[int] = set()
    pending = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending.extend(link for link in (current.__cause__, current.__context__) if link is not None)


def error_texts(exc: StorageError) -> list[tuple[str, str]]:
    """Every text ``exc`` can show, each with where it comes from.

    In the formatted traceback, the code locations (file names, function names, source
    lines) are blanked: they are the program's, not the error's, and a short test secret
    such as ``testing`` may well be part of a file name.
    """
    formatted = "".join(traceback.format_exception(exc))
    for current in _chain(exc):
        for frame in traceback.extract_tb(current.__traceback__):
            for code in (frame.filename, frame.name, frame.line):
                if code:
                    formatted = formatted.replace(code, "<code>")
    texts = [("traceback", formatted)]
    for current in _chain(exc):
        name = type(current).__name__
        texts += [
            (f"str({name})", str(current)),
            (f"repr({name})", repr(current)),
            (f"{name}.args", repr(current.args)),
        ]
    copy = pickle.loads(pickle.dumps(exc))
    texts += [("repr of a pickled copy", repr(copy)), ("str of a pickled copy", str(copy))]
    return texts


class ErrorContract(SuiteBase):
    """No secret in any form an error can take: str, repr, args, its chain, a traceback, a pickle."""

    def test_errors_show_no_secret_in_any_form(self, store: StorageDriver, monkeypatch: pytest.MonkeyPatch) -> None:
        errors: list[StorageError] = []

        def provoke(call: Callable[[], Any], *, may_succeed: bool = False) -> None:
            try:
                call()
            except StorageError as exc:
                errors.append(exc)
                return
            assert may_succeed, f"{call} raised no StorageError"

        def read(path: str) -> bytes:
            with store.stream(path) as reader:
                return reader.read()

        store.put("/errors/file", b"content")
        provoke(lambda: store.get("/errors/missing"))
        provoke(lambda: store.stat("/errors/missing"))
        provoke(lambda: store.delete("/errors/missing"))
        provoke(lambda: read("/errors/missing"))
        provoke(lambda: store.move("/errors/missing", "/errors/moved"))
        provoke(lambda: store.cat("/errors/joined", ["/errors/file", "/errors/missing"]))
        # A backend that ignores preconditions (some emulators) publishes instead: nothing to check then.
        provoke(lambda: store.put("/errors/file", b"other", if_none_match="*"), may_succeed=True)
        provoke(lambda: store.get("relative/path"))
        writer = store.writer("/errors/writer")
        writer.write(b"staged")
        writer.close()
        provoke(lambda: writer.write(b"more"))
        store.writer("/errors/writer").cancel()  # drops the upload close() left in progress

        secrets = secret_forms(store)
        if secrets:
            # A backend error quoting the credentials, as SDK errors quote URLs, headers and bodies;
            # it happened while handling another one that quoted them too (a retry's __context__).
            secret = sorted(secrets, key=len)[-1]

            def failing_stat(full: str) -> Any:
                try:
                    raise ConnectionError(f"first attempt to {full}?X-Sig={secret} refused")
                except ConnectionError:
                    raise RuntimeError(f"backend denied {full}: " + " ".join(sorted(secrets))) from None

            monkeypatch.setattr(store, "_stat", failing_stat)
            provoke(lambda: store.stat("/errors/file"))
            planted = errors[-1]
            monkeypatch.undo()
            # Scrubbed, not replaced: the backend's error type and its harmless text stay visible.
            causes = [type(link) for link in _chain(planted)]
            assert RuntimeError in causes and ConnectionError in causes, causes
            assert any("backend denied" in str(link) for link in _chain(planted))

        with contextlib.suppress(StorageError):
            store.delete("/errors")
        assert len(errors) >= 8, [repr(e) for e in errors]
        leaks = [
            f"{form!r} in {where} of {type(exc).__name__} ({exc})"
            for exc in errors
            for where, text in error_texts(exc)
            for form in secrets
            if form in text
        ]
        assert not leaks, "secrets shown by errors:\n" + "\n".join(leaks[:20])
        for exc in errors:
            # args carry the redacted message, so repr() and pickling show what str() shows.
            assert exc.args == (exc.message,), (exc.args, exc.message)
            copy = pickle.loads(pickle.dumps(exc))
            assert (type(copy), str(copy), copy.path) == (type(exc), str(exc), exc.path)

    def test_identity_names_the_store_and_root_and_holds_no_secret(self, store: StorageDriver) -> None:
        # Replication and the CLI decide "same store" and "one root inside the other" by it.
        identity, store_part = store.identity(), store.store_identity()
        assert identity.startswith(store_part) and "/" not in store_part.partition("://")[2]
        assert not any(form in identity for form in secret_forms(store))
        assert pickle.loads(pickle.dumps(store)).identity() == identity
        assert store.same_store(pickle.loads(pickle.dumps(store)))
        child = store.below("/tenant")
        assert child.store_identity() == store_part
        assert child.identity() == identity.removesuffix("/") + "/tenant"
        assert not store.same_store(child)
