"""Model-based testing: random operation sequences against a driver and a simple reference model.

``machine_for(make_driver)`` builds a hypothesis ``RuleBasedStateMachine`` that runs
put, writer write/close/resume/commit/cancel, cat, move, delete, list, walk and stat
against a driver (``make_driver()`` returns a driver on an empty store, called once
per example) and checks every result against a dict-based model.

Files live only at depth two (``/dir/name``) so every backend can hold every state:
a filesystem cannot have a file ``/a`` and a file ``/a/b`` at once, an object store
can; the contract does not ask for either.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable

import hypothesis.strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from blobdrivers import StorageDriver
from blobdrivers.errors import PathNotFoundError, PreconditionFailedError
from blobdrivers.listing import walk_key

DIRS = ["a", "a-b", "b"]
NAMES = ["f", "f-1", "g"]
FILES = st.sampled_from([f"/{d}/{n}" for d in DIRS for n in NAMES])
ANY_PATH = st.one_of(FILES, st.sampled_from([f"/{d}" for d in DIRS]))
DATA = st.one_of(st.binary(max_size=64), st.sampled_from([b"", b"\x00" * 3000, bytes(range(256)) * 9]))


def machine_for(make_driver: Callable[[], StorageDriver]) -> type[RuleBasedStateMachine]:
    """A state machine class testing drivers made by ``make_driver``."""

    class DriverModel(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.driver = make_driver()
            self.files: dict[str, bytes] = {}
            self.uploads: dict[str, bytes] = {}  # parked (closed) writer progress by path

        def teardown(self) -> None:
            for path in list(self.uploads):
                self.driver.writer(path, append=True).cancel()
            for directory in {p.split("/")[1] for p in self.files}:
                self.driver.delete(f"/{directory}")

        # ------------------------------------------------------------ changes

        @rule(path=FILES, data=DATA)
        def put(self, path: str, data: bytes) -> None:
            self.driver.put(path, data)
            self.files[path] = data

        @rule(path=FILES, data=DATA)
        def put_if_absent(self, path: str, data: bytes) -> None:
            if path in self.files:
                try:
                    self.driver.put(path, data, if_none_match="*")
                except PreconditionFailedError:
                    return
                raise AssertionError("if_none_match='*' put over an existing file succeeded")
            self.driver.put(path, data, if_none_match="*")
            self.files[path] = data

        @rule(path=FILES, data=DATA, fresh_instance=st.booleans())
        def write_and_close(self, path: str, data: bytes, fresh_instance: bool) -> None:
            writer = self.driver.writer(path)
            writer.write(data)
            writer.close()
            self.uploads[path] = data
            if fresh_instance:
                self.driver = pickle.loads(pickle.dumps(self.driver))

        @rule(path=FILES, data=DATA, action=st.sampled_from(["commit", "close", "cancel"]))
        def resume(self, path: str, data: bytes, action: str) -> None:
            if path in self.uploads:
                base = self.uploads.pop(path)
            elif path in self.files:
                base = self.files[path]
            else:
                try:
                    self.driver.writer(path, append=True)
                except PathNotFoundError:
                    return
                raise AssertionError(f"append to missing {path} did not raise")
            writer = self.driver.writer(path, append=True)
            assert writer.size == len(base), (writer.size, len(base))
            writer.write(data)
            if action == "commit":
                writer.commit()
                self.files[path] = base + data
            elif action == "close":
                writer.close()
                self.uploads[path] = base + data
            else:
                writer.cancel()

        @rule(destination=FILES, sources=st.lists(FILES, max_size=3))
        def cat(self, destination: str, sources: list[str]) -> None:
            if all(source in self.files for source in sources):
                self.driver.cat(destination, sources)
                self.files[destination] = b"".join(self.files[s] for s in sources)
            else:
                try:
                    self.driver.cat(destination, sources)
                except PathNotFoundError:
                    return
                raise AssertionError("cat with a missing source succeeded")

        @rule(src=FILES, dst=FILES)
        def move(self, src: str, dst: str) -> None:
            if src not in self.files:
                try:
                    self.driver.move(src, dst)
                except PathNotFoundError:
                    return
                raise AssertionError("move of a missing source succeeded")
            self.driver.move(src, dst)
            data = self.files.pop(src)
            self.files[dst] = data

        @rule(path=ANY_PATH)
        def delete(self, path: str) -> None:
            doomed = [p for p in self.files if p == path or p.startswith(path + "/")]
            if not doomed:
                try:
                    self.driver.delete(path)
                except PathNotFoundError:
                    return
                raise AssertionError(f"delete of missing {path} succeeded")
            self.driver.delete(path)
            for p in doomed:
                del self.files[p]

        # ------------------------------------------------------------ reads

        @precondition(lambda self: bool(self.files))
        @rule(data=st.data())
        def read_back(self, data: st.DataObject) -> None:
            path = data.draw(st.sampled_from(sorted(self.files)))
            content = self.files[path]
            assert self.driver.get(path) == content
            offset = data.draw(st.integers(0, len(content) + 2))
            assert self.driver.stream(path, offset).read() == content[offset:]

        @invariant()
        def listings_match(self) -> None:
            dirs = sorted({"/" + p.split("/")[1] for p in self.files})
            assert self.driver.list("/") == dirs
            walked = list(self.driver.walk("/"))
            assert walked == sorted(walked, key=walk_key)
            assert {(e.path, e.size) for e in walked if not e.is_dir} == {(p, len(d)) for p, d in self.files.items()}
            assert [e.path for e in walked if e.is_dir] == sorted(dirs, key=lambda d: d + "/")
            for directory in dirs:
                children = sorted(p for p in self.files if p.startswith(directory + "/"))
                assert self.driver.list(directory) == children
                assert self.driver.stat(directory).is_dir

    return DriverModel
