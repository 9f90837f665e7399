"""Running a ``cat``: the planned parts (:func:`plan_cat`) as part copies, uploads and folds of one upload."""

from __future__ import annotations

import contextlib
import functools
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .. import paths
from ..conditions import Conditions
from ..errors import PathNotFoundError
from ..transfer import part_size_for, run_bounded
from .backend import CopySource, ObjectInfo
from .plan import Piece, PlannedPart, plan_cat

if TYPE_CHECKING:
    from .engine import MultipartEngine

NO_CONDITIONS = Conditions()


class Concatenation:
    """One ``cat``: the concatenation of the objects ``sources`` published at ``key``.

    Sources are pinned by etag, so a source replaced during the ``cat`` fails it
    rather than mixing versions. :meth:`run` raises :class:`PathNotFoundError` for a
    missing source before anything is written. Intermediate objects of folds live
    under the backend's ``hidden_prefix`` and are deleted at the end.
    """

    def __init__(self, engine: MultipartEngine, key: str, sources: Sequence[str]) -> None:
        self._engine = engine
        self._backend = engine.backend
        self._key = key
        self._sources = sources
        self._infos: list[ObjectInfo] = []
        self._scratch: list[str] = []
        self._scratch_lock = threading.Lock()

    def run(self) -> None:
        """Publish the concatenation: one request, one copy or one multipart upload, as the plan says."""
        engine, backend, key, sources = self._engine, self._backend, self._key, self._sources
        infos = run_bounded([functools.partial(backend.head_object, source) for source in sources], engine.concurrency)
        found = self._infos
        for source, info in zip(sources, infos, strict=True):
            if info is None:
                # The full path: the driver shows the caller's path in the message and in .path.
                full = paths.ROOT + source
                raise PathNotFoundError(f"cat source {full} does not exist", path=full)
            found.append(info)
        total = sum(info.size for info in found)
        data_part = max(
            backend.min_part_size,
            part_size_for(total, engine.chunk_size, max_parts=backend.max_parts, max_part_size=backend.max_part_size),
        )
        plan = plan_cat(
            [info.size for info in found],
            min_part=backend.min_part_size,
            max_copy=backend.copy_part_max,
            data_part=data_part,
            max_parts=backend.max_parts,
        )
        if not plan:
            backend.put_object(key, memoryview(b""), NO_CONDITIONS)
            return
        if len(plan) == 1 and plan[0].kind == "data":
            backend.put_object(key, self._download(plan[0].pieces), NO_CONDITIONS)
            return
        if len(plan) == 1 and plan[0].kind == "copy" and plan[0].size == found[plan[0].pieces[0].source].size:
            index = plan[0].pieces[0].source
            backend.copy_object(sources[index], key, NO_CONDITIONS, source_etag=found[index].etag)
            return
        upload_id = engine.create_upload(key)
        try:
            tasks = [self._part_task(upload_id, number, part) for number, part in enumerate(plan, start=1)]
            etags = run_bounded(tasks, engine.concurrency)
            backend.complete(key, upload_id, list(enumerate(etags, start=1)), NO_CONDITIONS)
        except BaseException:
            engine.abort_quietly(key, upload_id)
            raise
        finally:
            if self._scratch:
                with contextlib.suppress(Exception):
                    engine.delete_keys(self._scratch)

    def _part_task(self, upload_id: str, number: int, part: PlannedPart) -> Callable[[], str]:
        engine, backend, key, sources, infos = self._engine, self._backend, self._key, self._sources, self._infos

        def copy() -> str:
            piece = part.pieces[0]
            info = infos[piece.source]
            whole = piece.start == 0 and piece.end == info.size
            byte_range = None if whole else (piece.start, piece.end)
            return backend.copy_part(key, upload_id, number, CopySource(sources[piece.source], byte_range, info.etag))

        def data() -> str:
            return backend.upload_part(key, upload_id, number, self._download(part.pieces))

        def fold() -> str:
            # An intermediate object: the copied piece as part 1, the small data as the
            # (short) last part 2; then this whole object is the part of the final upload.
            hidden = f"{backend.hidden_prefix}cat/{uuid.uuid4().hex}"
            with self._scratch_lock:
                self._scratch.append(hidden)
            inner = engine.create_upload(hidden)
            try:
                piece = part.pieces[0]
                info = infos[piece.source]
                first = backend.copy_part(
                    hidden, inner, 1, CopySource(sources[piece.source], (piece.start, piece.end), info.etag)
                )
                second = backend.upload_part(hidden, inner, 2, self._download(part.data_pieces))
                backend.complete(hidden, inner, [(1, first), (2, second)], NO_CONDITIONS)
            except BaseException:
                engine.abort_quietly(hidden, inner)
                raise
            return backend.copy_part(key, upload_id, number, CopySource(hidden))

        return {"copy": copy, "data": data, "fold": fold}[part.kind]

    def _download(self, pieces: Sequence[Piece]) -> memoryview:
        """The bytes of ``pieces`` in one buffer (each read pinned to its source's etag)."""
        buffer = bytearray(sum(piece.size for piece in pieces))
        view = memoryview(buffer)
        offset = 0
        for piece in pieces:
            self._backend.read_range(
                self._sources[piece.source],
                piece.start,
                view[offset : offset + piece.size],
                etag=self._infos[piece.source].etag,
            )
            offset += piece.size
        return view
