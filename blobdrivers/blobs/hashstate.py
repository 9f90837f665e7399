"""Resumable SHA-256 / SHA-512: a hash whose state survives a process.

An upload may be continued by another process, so the hash of the bytes written
so far must be carried over without reading them again. ``hashlib`` objects
cannot be serialised and the ``rehash`` package does not work with OpenSSL 3, so
the native backend here drives OpenSSL's low-level ``SHA256_Init/Update/Final``
and ``SHA512_*`` functions of ``libcrypto`` through :mod:`ctypes` (the same
assembly code ``hashlib`` uses; ctypes releases the GIL during each update).

The exported state is portable, not a raw struct dump: the eight chaining words,
the byte count and the bytes of the unfinished block (under 64 or 128 bytes),
as JSON-safe values. Restoring sets the chaining words and the bit count of the
whole blocks in a fresh context, then feeds it the unfinished block again, so it
depends only on the documented public fields of ``SHA256_CTX``/``SHA512_CTX``
(``h``, ``Nl``, ``Nh``, ``num``) and works across processes and machines.

When ``libcrypto`` or those functions cannot be loaded (or the environment
variable ``BLOBDRIVERS_HASHSTATE=hashlib`` asks for it), hashes are plain
``hashlib`` objects whose :meth:`ResumableHash.export` returns ``None``: a
resumed upload then re-reads its bytes to rebuild the hash (see
``docs/blobstore.md``).
"""

from __future__ import annotations

import abc
import base64
import ctypes
import ctypes.util
import hashlib
import os
import threading
from collections.abc import Mapping
from typing import Any

from .digest import validate_algorithm

#: Environment variable: ``hashlib`` forces the non-resumable fallback (for tests and odd platforms).
BACKEND_ENV = "BLOBDRIVERS_HASHSTATE"
#: Name of the portable state format written by :meth:`ResumableHash.export`.
STATE_FORMAT = "sha2-blocks-v1"

_COPY_PIECE = 1024 * 1024


class _Sha256Ctx(ctypes.Structure):
    # openssl/sha.h: SHA_LONG h[8]; SHA_LONG Nl, Nh; SHA_LONG data[16]; unsigned int num, md_len;
    _fields_ = [
        ("h", ctypes.c_uint32 * 8),
        ("Nl", ctypes.c_uint32),
        ("Nh", ctypes.c_uint32),
        ("data", ctypes.c_ubyte * 64),
        ("num", ctypes.c_uint),
        ("md_len", ctypes.c_uint),
    ]


class _Sha512Ctx(ctypes.Structure):
    # openssl/sha.h: SHA_LONG64 h[8]; SHA_LONG64 Nl, Nh; union { SHA_LONG64 d[16]; unsigned char p[128]; } u;
    # unsigned int num, md_len;
    _fields_ = [
        ("h", ctypes.c_uint64 * 8),
        ("Nl", ctypes.c_uint64),
        ("Nh", ctypes.c_uint64),
        ("data", ctypes.c_ubyte * 128),
        ("num", ctypes.c_uint),
        ("md_len", ctypes.c_uint),
    ]


class _Spec:
    """The libcrypto entry points and context layout of one algorithm."""

    def __init__(self, lib: ctypes.CDLL, prefix: str, ctx: type[ctypes.Structure], word_bits: int, size: int) -> None:
        self.ctx = ctx
        self.word_bits = word_bits
        self.block = 64 if word_bits == 32 else 128
        self.digest_size = size
        pointer = ctypes.POINTER(ctx)
        self.init = getattr(lib, f"{prefix}_Init")
        self.init.argtypes = [pointer]
        self.init.restype = ctypes.c_int
        self.update = getattr(lib, f"{prefix}_Update")
        self.update.argtypes = [pointer, ctypes.c_void_p, ctypes.c_size_t]
        self.update.restype = ctypes.c_int
        self.final = getattr(lib, f"{prefix}_Final")
        self.final.argtypes = [ctypes.c_void_p, pointer]
        self.final.restype = ctypes.c_int


_specs: dict[str, _Spec] | None = None
_load_error: str | None = None
_load_lock = threading.Lock()


def _load() -> dict[str, _Spec] | None:
    global _specs, _load_error
    if _specs is not None or _load_error is not None:
        return _specs
    with _load_lock:
        if _specs is not None or _load_error is not None:
            return _specs
        if os.environ.get(BACKEND_ENV, "").strip().lower() == "hashlib":
            _load_error = f"disabled by {BACKEND_ENV}=hashlib"
            return None
        name = ctypes.util.find_library("crypto")
        if name is None:
            _load_error = "libcrypto not found"
            return None
        try:
            lib = ctypes.CDLL(name)
            specs = {
                "sha256": _Spec(lib, "SHA256", _Sha256Ctx, 32, 32),
                "sha512": _Spec(lib, "SHA512", _Sha512Ctx, 64, 64),
            }
            _self_test(specs)
        except (OSError, AttributeError, AssertionError) as exc:
            _load_error = f"{name}: {type(exc).__name__}: {exc}"
            return None
        _specs = specs
        return _specs


def _self_test(specs: dict[str, _Spec]) -> None:
    """Check the struct layout against hashlib once, including an export/restore across a block edge."""
    sample = bytes(range(256)) * 3
    for algorithm, spec in specs.items():
        first = _NativeHash(algorithm, spec)
        first.update(sample[:77])
        state = first.export()
        again = _NativeHash.from_state(algorithm, spec, state)
        again.update(sample[77:])
        if again.hexdigest() != hashlib.new(algorithm, sample).hexdigest():
            raise AssertionError(f"{algorithm} context layout does not match this libcrypto")


def native_available() -> bool:
    """True when hash states can be exported (libcrypto's SHA functions are usable here)."""
    return _load() is not None


def native_unavailable_reason() -> str | None:
    """Why the native backend is not used, or ``None`` when it is."""
    _load()
    return _load_error


class ResumableHash(abc.ABC):
    """An incremental SHA-256 or SHA-512, like a ``hashlib`` object, whose state may be exported.

    Not safe for concurrent use by several threads (like ``hashlib`` objects).
    """

    algorithm: str
    #: Bytes hashed so far.
    size: int

    @abc.abstractmethod
    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Hash ``data`` after what was hashed so far."""

    @abc.abstractmethod
    def hexdigest(self) -> str:
        """The hex digest of everything hashed so far (the hash stays usable)."""

    @abc.abstractmethod
    def export(self) -> dict[str, Any] | None:
        """A JSON-safe state that :func:`restore` turns back into this hash, or ``None`` if not exportable."""

    def digest(self) -> str:
        """The OCI digest (``algorithm:hex``) of everything hashed so far."""
        return f"{self.algorithm}:{self.hexdigest()}"


class _NativeHash(ResumableHash):
    def __init__(self, algorithm: str, spec: _Spec) -> None:
        self.algorithm = algorithm
        self.size = 0
        self._spec = spec
        self._ctx = spec.ctx()
        self._ptr = ctypes.pointer(self._ctx)
        if spec.init(self._ptr) != 1:
            raise RuntimeError(f"{algorithm} init failed")

    @classmethod
    def from_state(cls, algorithm: str, spec: _Spec, state: Mapping[str, Any]) -> _NativeHash:
        size, words, tail = _check_state(algorithm, spec, state)
        new = cls(algorithm, spec)
        ctx: Any = new._ctx
        for index, word in enumerate(words):
            ctx.h[index] = word
        bits = (size - len(tail)) * 8
        mask = (1 << spec.word_bits) - 1
        ctx.Nl = bits & mask
        ctx.Nh = bits >> spec.word_bits
        ctx.num = 0
        new.size = size - len(tail)
        new.update(tail)
        return new

    def update(self, data: bytes | bytearray | memoryview) -> None:
        if isinstance(data, bytes):
            self._feed(data, len(data))
            return
        view = memoryview(data).cast("B") if not isinstance(data, memoryview) or data.format != "B" else data
        if not view.nbytes:
            return
        if not view.readonly and view.contiguous:
            self._feed((ctypes.c_char * view.nbytes).from_buffer(view), view.nbytes)
            return
        # A read-only view of something other than bytes: ctypes cannot point into it; copy in pieces.
        for start in range(0, view.nbytes, _COPY_PIECE):
            piece = view[start : start + _COPY_PIECE].tobytes()
            self._feed(piece, len(piece))

    def _feed(self, pointer: Any, length: int) -> None:
        if length:
            if self._spec.update(self._ptr, pointer, length) != 1:
                raise RuntimeError(f"{self.algorithm} update failed")
            self.size += length

    def _copy_ctx(self) -> Any:
        return self._spec.ctx.from_buffer_copy(self._ctx)

    def hexdigest(self) -> str:
        ctx = self._copy_ctx()
        out = (ctypes.c_ubyte * self._spec.digest_size)()
        if self._spec.final(out, ctypes.pointer(ctx)) != 1:
            raise RuntimeError(f"{self.algorithm} final failed")
        return bytes(out).hex()

    def export(self) -> dict[str, Any]:
        ctx: Any = self._ctx
        block = self._spec.block
        num = int(ctx.num)
        bits = (int(ctx.Nh) << self._spec.word_bits) | int(ctx.Nl)
        if num != self.size % block or bits != self.size * 8:
            raise RuntimeError(f"{self.algorithm} context does not match the bytes hashed")
        return {
            "format": STATE_FORMAT,
            "algorithm": self.algorithm,
            "size": self.size,
            "h": [int(word) for word in ctx.h],
            "tail": base64.b64encode(bytes(ctx.data[:num])).decode("ascii"),
        }


def _check_state(algorithm: str, spec: _Spec, state: Mapping[str, Any]) -> tuple[int, list[int], bytes]:
    """Validate an exported state; raise ``ValueError`` naming what is wrong."""
    if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
        raise ValueError(f"not a {STATE_FORMAT} hash state")
    if state.get("algorithm") != algorithm:
        raise ValueError(f"hash state is for {state.get('algorithm')!r}, not {algorithm!r}")
    size, words = state.get("size"), state.get("h")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError("hash state has no valid size")
    limit = 1 << spec.word_bits
    if (
        not isinstance(words, list)
        or len(words) != 8
        or not all(isinstance(w, int) and not isinstance(w, bool) and 0 <= w < limit for w in words)
    ):
        raise ValueError("hash state has no valid chaining words")
    try:
        tail = base64.b64decode(str(state.get("tail", "")), validate=True)
    except ValueError as exc:
        raise ValueError("hash state tail is not base64") from exc
    if len(tail) != size % spec.block:
        raise ValueError("hash state tail does not match its size")
    return size, list(words), tail


class _HashlibHash(ResumableHash):
    """The fallback: a plain hashlib object, whose state cannot leave the process."""

    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm
        self.size = 0
        self._hash = hashlib.new(algorithm)

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._hash.update(data)
        self.size += memoryview(data).nbytes

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def export(self) -> None:
        return None


def new(algorithm: str) -> ResumableHash:
    """A fresh hash of ``algorithm`` (``sha256`` or ``sha512``): native when possible, else hashlib."""
    validate_algorithm(algorithm)
    specs = _load()
    if specs is None:
        return _HashlibHash(algorithm)
    return _NativeHash(algorithm, specs[algorithm])


def restore(state: Mapping[str, Any] | None) -> ResumableHash | None:
    """The hash an :meth:`ResumableHash.export` described, or ``None`` when this process cannot rebuild it.

    ``None`` means: no native backend here, or the state is malformed (then the
    caller re-reads the data instead).
    """
    specs = _load()
    if specs is None or not isinstance(state, Mapping):
        return None
    algorithm = state.get("algorithm")
    spec = specs.get(algorithm) if isinstance(algorithm, str) else None
    if spec is None or not isinstance(algorithm, str):
        return None
    try:
        return _NativeHash.from_state(algorithm, spec, state)
    except ValueError:
        return None


__all__ = ["BACKEND_ENV", "ResumableHash", "native_available", "native_unavailable_reason", "new", "restore"]
