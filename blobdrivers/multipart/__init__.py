"""The backend-neutral multipart engine shared by the S3-style drivers (S3, OSS).

Services with the S3 multipart model (initiate, upload part, upload part copy with
a byte range, complete with a part list, abort, list uploads, list parts) differ
only in their SDK calls and limits. A driver implements :class:`MultipartBackend`
(:mod:`.backend`) with its SDK and gets from :class:`MultipartEngine` (:mod:`.engine`):

* ``put``: one request up to the chunk size, else a parallel multipart upload whose
  parts grow so the object fits in ``max_parts``; any failure aborts the upload.
* ``writer``: the resumable :class:`ResumableWriter` (:mod:`.writer`), whose parked
  sessions :mod:`.sessions` keeps on the store so another process can resume at
  exactly ``size``.
* ``cat``: a multipart upload whose parts are server-side copies of the sources;
  small sources are merged through a bounded buffer (planned by :func:`plan_cat` in
  :mod:`.plan`, run by :class:`~.cat.Concatenation` in :mod:`.cat`).
* ``copy``: a parallel multipart copy (for ``move`` of large objects).

Hidden bookkeeping objects (writer session records and claims, intermediate ``cat``
objects) live under the backend's ``hidden_prefix``, whose name contains ``~`` so that
list and walk never show it.
"""

from .backend import CopySource, MultipartBackend, NewUpload, ObjectInfo, PartInfo, TransferSettings, UploadInfo
from .engine import MultipartEngine
from .plan import Piece, PlannedPart, plan_cat
from .sessions import ParkedSession
from .writer import ResumableWriter

__all__ = [
    "CopySource",
    "MultipartBackend",
    "MultipartEngine",
    "NewUpload",
    "ObjectInfo",
    "ParkedSession",
    "PartInfo",
    "Piece",
    "PlannedPart",
    "ResumableWriter",
    "TransferSettings",
    "UploadInfo",
    "plan_cat",
]
