"""Where the blob store keeps things on a driver (see ``docs/blobstore.md``).

Below the store's root (``R``, default the driver's root)::

    R/blobs/<alg>/<hex[:2]>/<hex>/data                     the blob's bytes
    R/blobs/<alg>/<hex[:2]>/<hex>/mediatype                its media type, when one was given
    R/repositories/<name>/_layers/<alg>/<hex>/link         the digest, when linked into <name>
    R/repositories/<name>/_layers/<alg>/<hex>/mediatype    <name>'s media type for it, when one was given
    R/_uploads/<id>/startedat                              when upload <id> started (ISO 8601, UTC)
    R/_uploads/<id>/state                                  its size and hash states (JSON), saved on close
    R/_uploads/<id>/data                                   its bytes (staged by the driver's writer)

The blob and link paths are those of distribution's ``docker/registry/v2`` tree,
so a store rooted at ``/docker/registry/v2`` shares blobs with a distribution
registry. Upload sessions are global rather than per repository.
"""

from __future__ import annotations

from .. import paths

BLOBS = "blobs"
REPOSITORIES = "repositories"
LAYERS = "_layers"
UPLOADS = "_uploads"
DATA = "data"
MEDIA_TYPE = "mediatype"
LINK = "link"
STARTED_AT = "startedat"
STATE = "state"


class Layout:
    """Full paths (below the driver's root) of everything the store keeps, for a store rooted at ``root``."""

    def __init__(self, root: str = paths.ROOT) -> None:
        if root != paths.ROOT:
            paths.validate(root)
        #: The store's root as a prefix ("" for the driver's root).
        self.prefix = "" if root == paths.ROOT else root
        #: Folder of all blobs.
        self.blobs = f"{self.prefix}/{BLOBS}"
        #: Folder of all repositories.
        self.repositories = f"{self.prefix}/{REPOSITORIES}"
        #: Folder of all upload sessions.
        self.uploads = f"{self.prefix}/{UPLOADS}"

    def blob_dir(self, algorithm: str, hex_digest: str) -> str:
        """Folder of one blob."""
        return f"{self.blobs}/{algorithm}/{hex_digest[:2]}/{hex_digest}"

    def blob_data(self, algorithm: str, hex_digest: str) -> str:
        """The blob's bytes."""
        return f"{self.blob_dir(algorithm, hex_digest)}/{DATA}"

    def blob_media_type(self, algorithm: str, hex_digest: str) -> str:
        """The blob's global media type, when one was given."""
        return f"{self.blob_dir(algorithm, hex_digest)}/{MEDIA_TYPE}"

    def layers(self, repository: str) -> str:
        """Folder of the blob links of one repository."""
        return f"{self.repositories}/{repository}/{LAYERS}"

    def layer_dir(self, repository: str, algorithm: str, hex_digest: str) -> str:
        """Folder of one blob link of one repository."""
        return f"{self.layers(repository)}/{algorithm}/{hex_digest}"

    def link(self, repository: str, algorithm: str, hex_digest: str) -> str:
        """The link file (content: the digest) making a blob part of a repository."""
        return f"{self.layer_dir(repository, algorithm, hex_digest)}/{LINK}"

    def layer_media_type(self, repository: str, algorithm: str, hex_digest: str) -> str:
        """The repository's own media type for a blob, when one was given."""
        return f"{self.layer_dir(repository, algorithm, hex_digest)}/{MEDIA_TYPE}"

    def upload_dir(self, upload_id: str) -> str:
        """Folder of one upload session."""
        return f"{self.uploads}/{upload_id}"

    def upload_data(self, upload_id: str) -> str:
        """The upload's bytes (written through the driver's resumable writer)."""
        return f"{self.uploads}/{upload_id}/{DATA}"

    def upload_started_at(self, upload_id: str) -> str:
        """When the upload started."""
        return f"{self.uploads}/{upload_id}/{STARTED_AT}"

    def upload_state(self, upload_id: str) -> str:
        """The upload's saved size and hash states."""
        return f"{self.uploads}/{upload_id}/{STATE}"

    def relative(self, base: str, full: str) -> list[str] | None:
        """Components of ``full`` below ``base``, or ``None`` when it is not below it."""
        if not full.startswith(base + "/"):
            return None
        return full[len(base) + 1 :].split("/")
