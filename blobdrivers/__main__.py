"""``python -m blobdrivers``: the same command line as the ``blobdrivers`` script."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
