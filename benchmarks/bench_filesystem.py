"""Filesystem driver against a raw Python baseline and fsspec, obstore and OpenDAL local stores.

    python -m benchmarks.bench_filesystem            # 1 GiB and 1,000 x 4 KiB
    python -m benchmarks.bench_filesystem --quick    # 256 MiB and 200 x 4 KiB

Large transfers stream 8 MiB chunks (put) and read into a reused 8 MiB buffer
(get), so peak RSS shows what each implementation itself holds. The blobdrivers
and raw rows fsync file and directory; fsspec, obstore and OpenDAL do not fsync,
so their put rows are given as is and as a ``nosync`` blobdrivers row too.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.harness import Case, MiB, chunks, read_loop, run_all

BUFFER = 8 * MiB


def _root(kind: str) -> str:
    return os.path.join(os.environ.get("BENCH_DIR", tempfile.gettempdir()), f"bd-bench-{kind}-{uuid.uuid4().hex[:8]}")


def _timed_put(write: Any, size: int) -> dict[str, float]:
    started = time.perf_counter()
    write(chunks(size, BUFFER))
    return {"seconds": time.perf_counter() - started, "bytes": size}


# ---------------------------------------------------------------------- large put


def put_blobdrivers(size: int, fsync: bool = True) -> dict[str, float]:
    from blobdrivers.drivers.filesystem import FilesystemDriver

    root = _root("bd")
    store = FilesystemDriver(rootdirectory=root, fsync=fsync)
    try:
        return _timed_put(lambda data: store.put("/blob", data), size)
    finally:
        shutil.rmtree(root)


def put_raw(size: int) -> dict[str, float]:
    root = _root("raw")
    os.makedirs(root)
    try:

        def write(data: Any) -> None:
            tmp = os.path.join(root, "blob.tmp")
            with open(tmp, "wb", buffering=0) as out:
                for chunk in data:
                    out.write(chunk)
                os.fsync(out.fileno())
            os.rename(tmp, os.path.join(root, "blob"))
            fd = os.open(root, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)

        return _timed_put(write, size)
    finally:
        shutil.rmtree(root)


def put_fsspec(size: int) -> dict[str, float]:
    import fsspec

    root = _root("fsspec")
    fs = fsspec.filesystem("file")
    fs.makedirs(root, exist_ok=True)
    try:

        def write(data: Any) -> None:
            with fs.open(f"{root}/blob", "wb") as out:
                for chunk in data:
                    out.write(chunk)

        return _timed_put(write, size)
    finally:
        shutil.rmtree(root)


def put_obstore(size: int) -> dict[str, float]:
    import obstore
    from obstore.store import LocalStore

    root = _root("obstore")
    os.makedirs(root)
    store = LocalStore(root)
    try:
        return _timed_put(lambda data: obstore.put(store, "blob", data), size)
    finally:
        shutil.rmtree(root)


def put_opendal(size: int) -> dict[str, float]:
    import opendal

    root = _root("opendal")
    os.makedirs(root)
    op = opendal.Operator("fs", root=root)
    try:

        def write(data: Any) -> None:
            out = op.open("blob", "wb")
            for chunk in data:
                out.write(chunk)
            out.close()

        return _timed_put(write, size)
    finally:
        shutil.rmtree(root)


# ---------------------------------------------------------------------- large get


def _with_file(size: int, kind: str) -> tuple[str, str]:
    root = _root(kind)
    os.makedirs(root)
    path = os.path.join(root, "blob")
    with open(path, "wb") as out:
        for chunk in chunks(size, BUFFER):
            out.write(chunk)
    return root, path


def get_blobdrivers(size: int) -> dict[str, float]:
    from blobdrivers.drivers.filesystem import FilesystemDriver

    root, _ = _with_file(size, "bd")
    store = FilesystemDriver(rootdirectory=root)
    try:
        started = time.perf_counter()
        with store.stream("/blob") as reader:
            read_loop(reader.readinto, size)
        return {"seconds": time.perf_counter() - started, "bytes": size}
    finally:
        shutil.rmtree(root)


def get_raw(size: int) -> dict[str, float]:
    root, path = _with_file(size, "raw")
    try:
        started = time.perf_counter()
        with open(path, "rb", buffering=0) as source:
            read_loop(source.readinto, size)
        return {"seconds": time.perf_counter() - started, "bytes": size}
    finally:
        shutil.rmtree(root)


def get_fsspec(size: int) -> dict[str, float]:
    import fsspec

    root, path = _with_file(size, "fsspec")
    fs = fsspec.filesystem("file")
    try:
        started = time.perf_counter()
        with fs.open(path, "rb") as source:
            read_loop(source.readinto, size)
        return {"seconds": time.perf_counter() - started, "bytes": size}
    finally:
        shutil.rmtree(root)


def get_obstore(size: int) -> dict[str, float]:
    import obstore
    from obstore.store import LocalStore

    root, _ = _with_file(size, "obstore")
    store = LocalStore(root)
    try:
        started = time.perf_counter()
        total = sum(len(chunk) for chunk in obstore.get(store, "blob").stream(min_chunk_size=BUFFER))
        assert total == size
        return {"seconds": time.perf_counter() - started, "bytes": size}
    finally:
        shutil.rmtree(root)


def get_opendal(size: int) -> dict[str, float]:
    import opendal

    root, _ = _with_file(size, "opendal")
    op = opendal.Operator("fs", root=root)
    try:
        started = time.perf_counter()
        source = op.open("blob", "rb")
        read_loop(source.readinto, size)
        source.close()
        return {"seconds": time.perf_counter() - started, "bytes": size}
    finally:
        shutil.rmtree(root)


# ---------------------------------------------------------------------- small objects


def small_ops(impl: str, op: str, count: int, fsync: bool = True) -> dict[str, float]:
    """``count`` puts, gets or stats of 4 KiB objects under distinct names."""
    payload = os.urandom(4096)
    root = _root(impl)
    os.makedirs(root)
    names = [f"d{i % 16}/obj{i}" for i in range(count)]
    put, get, stat = _small_impl(impl, root, fsync)
    try:
        if op != "put":
            for name in names:
                put(name, payload)
        call = {"put": lambda n: put(n, payload), "get": get, "stat": stat}[op]
        started = time.perf_counter()
        for name in names:
            call(name)
        return {"seconds": time.perf_counter() - started, "ops": count}
    finally:
        shutil.rmtree(root)


def _small_impl(impl: str, root: str, fsync: bool) -> tuple[Any, Any, Any]:
    if impl == "blobdrivers":
        from blobdrivers.drivers.filesystem import FilesystemDriver

        store = FilesystemDriver(rootdirectory=root, fsync=fsync)
        return (lambda n, d: store.put("/" + n, d)), (lambda n: store.get("/" + n)), (lambda n: store.stat("/" + n))
    if impl == "raw":

        def raw_put(name: str, data: bytes) -> None:
            path = os.path.join(root, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{uuid.uuid4().hex}.tmp"
            with open(tmp, "wb", buffering=0) as out:
                out.write(data)
                if fsync:
                    os.fsync(out.fileno())
            os.rename(tmp, path)
            if fsync:
                fd = os.open(os.path.dirname(path), os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)

        return raw_put, (lambda n: Path(root, n).read_bytes()), (lambda n: os.stat(os.path.join(root, n)))
    if impl == "fsspec":
        import fsspec

        fs = fsspec.filesystem("file", auto_mkdir=True)
        return (
            (lambda n, d: fs.pipe_file(f"{root}/{n}", d)),
            (lambda n: fs.cat_file(f"{root}/{n}")),
            (lambda n: fs.info(f"{root}/{n}")),
        )
    if impl == "obstore":
        import obstore
        from obstore.store import LocalStore

        store_ = LocalStore(root)
        return (
            (lambda n, d: obstore.put(store_, n, d)),
            (lambda n: obstore.get(store_, n).bytes()),
            (lambda n: obstore.head(store_, n)),
        )
    if impl == "opendal":
        import opendal

        op = opendal.Operator("fs", root=root)
        return (op.write), (op.read), (op.stat)
    raise ValueError(impl)


def cases(size: int, count: int) -> list[Case]:
    label = f"{size // MiB} MiB"
    peers = [("fsspec LocalFileSystem", "fsspec"), ("obstore LocalStore", "obstore"), ("OpenDAL fs", "opendal")]
    out = [
        Case(
            f"put {label}", "raw open/write/fsync/rename", "benchmarks.bench_filesystem:put_raw", {"size": size}, True
        ),
        Case(f"put {label}", "blobdrivers filesystem", "benchmarks.bench_filesystem:put_blobdrivers", {"size": size}),
        Case(
            f"put {label}",
            "blobdrivers filesystem fsync=false",
            "benchmarks.bench_filesystem:put_blobdrivers",
            {"size": size, "fsync": False},
            note="no fsync, like the peers",
        ),
    ]
    out += [
        Case(f"put {label}", name, f"benchmarks.bench_filesystem:put_{key}", {"size": size}, note="no fsync")
        for name, key in peers
    ]
    out.append(Case(f"get {label}", "raw readinto", "benchmarks.bench_filesystem:get_raw", {"size": size}, True))
    out.append(
        Case(f"get {label}", "blobdrivers filesystem", "benchmarks.bench_filesystem:get_blobdrivers", {"size": size})
    )
    out += [Case(f"get {label}", name, f"benchmarks.bench_filesystem:get_{key}", {"size": size}) for name, key in peers]
    for op in ("put", "get", "stat"):
        for impl, name, baseline in [
            ("raw", "raw (os calls)", True),
            ("blobdrivers", "blobdrivers filesystem", False),
            *[(key, name, False) for name, key in peers],
        ]:
            fsync = op != "put" or impl in ("raw", "blobdrivers")
            note = "" if op != "put" or fsync else "no fsync"
            out.append(
                Case(
                    f"{op} 4 KiB",
                    name,
                    "benchmarks.bench_filesystem:small_ops",
                    {"impl": impl, "op": op, "count": count},
                    baseline,
                    note,
                )
            )
        if op == "put":
            out.append(
                Case(
                    "put 4 KiB",
                    "blobdrivers filesystem fsync=false",
                    "benchmarks.bench_filesystem:small_ops",
                    {"impl": "blobdrivers", "op": "put", "count": count, "fsync": False},
                    note="no fsync, like the peers",
                )
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="256 MiB and 200 small objects")
    parser.add_argument("--out", default="benchmarks/results/filesystem.json")
    args = parser.parse_args()
    size, count = (256 * MiB, 200) if args.quick else (1024 * MiB, 1000)
    print(run_all(cases(size, count), title="Filesystem", out=Path(args.out)))


if __name__ == "__main__":
    main()
