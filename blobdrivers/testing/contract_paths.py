"""Conformance: which paths are valid; an invalid path is refused by every operation before any request."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest

from ..driver import StorageDriver
from ..errors import InvalidPathError, PathNotFoundError
from .helpers import SuiteBase

VALID_PATHS = [
    "/a",
    "/a/b/c",
    "/A-Z_a-z.0-9",
    "/...",
    "/a/.hidden",
    "/-",
    "/_",
    "/" + "/".join("d" for _ in range(12)),
    "/" + "n" * 200,
    "/docker/registry/v2/blobs/sha256/ab/ab12/data",
]

INVALID_PATHS: list[Any] = [
    "",
    "a",
    "a/b",
    "//",
    "/a/",
    "/a//b",
    "/.",
    "/..",
    "/a/..",
    "/a/./b",
    "/../etc/passwd",
    "/a b",
    "/a\\b",
    "/a\x00b",
    "/caf\u00e9",
    "/a?b",
    "/a*b",
    "/a:b",
    "/%2e%2e",
    "/a~b",
    "/a\nb",
    b"/bytes",
    None,
    42,
]


class PathContract(SuiteBase):
    """Valid paths round-trip; invalid ones raise InvalidPathError everywhere; the root only for stat, list, walk."""

    @pytest.mark.parametrize("path", VALID_PATHS)
    def test_valid_paths_round_trip(self, store: StorageDriver, path: str) -> None:
        store.put(path, b"content of " + path.encode())
        assert store.get(path) == b"content of " + path.encode()
        assert store.stat(path).path == path
        store.delete(path)
        with pytest.raises(PathNotFoundError):
            store.stat(path)

    @pytest.mark.parametrize("path", INVALID_PATHS, ids=repr)
    def test_invalid_paths_are_refused_everywhere(self, store: StorageDriver, path: Any) -> None:
        store.put("/ok", b"x")
        calls: list[Callable[[], Any]] = [
            lambda: store.put(path, b"data"),
            lambda: store.get(path),
            lambda: store.stream(path),
            lambda: store.writer(path),
            lambda: store.stat(path),
            lambda: store.list(path),
            lambda: list(store.walk(path)),
            lambda: store.delete(path),
            lambda: store.move("/ok", path),
            lambda: store.move(path, "/ok"),
            lambda: store.cat(path, ["/ok"]),
            lambda: store.cat("/ok", [path]),
            lambda: store.url_for(path),
        ]
        for call in calls:
            with pytest.raises(InvalidPathError) as caught:
                call()
            assert isinstance(caught.value, ValueError)
        assert store.get("/ok") == b"x"
        store.delete("/ok")

    def test_root_is_allowed_only_for_stat_list_walk(self, store: StorageDriver) -> None:
        assert store.list("/") == []
        assert list(store.walk("/")) == []
        with contextlib.suppress(PathNotFoundError):
            assert store.stat("/").is_dir
        for call in (
            lambda: store.put("/", b""),
            lambda: store.get("/"),
            lambda: store.delete("/"),
            lambda: store.writer("/"),
            lambda: store.stream("/"),
        ):
            with pytest.raises(InvalidPathError):
                call()
