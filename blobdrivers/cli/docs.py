"""``blobdrivers help [TOPIC]``: the user documentation shipped inside the package (``blobdrivers/docs``).

The package's ``docs`` folder is the repository's ``docs/`` (a link in the source
tree, files in the wheel), so the documentation a user has is the one of the
version installed, with no network and no source checkout.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from importlib.resources.abc import Traversable

from .locations import PROG, CommandError, Context, UsageError

#: The topic whose page ``help`` without TOPIC points at first.
MAIN_TOPIC = "cli"


def topics() -> dict[str, Traversable]:
    """Every documentation page by topic: the file's name without ``.md`` (``cli``, ``contract``, ``s3``)."""
    root = resources.files("blobdrivers") / "docs"
    found: dict[str, Traversable] = {}
    for folder in (root, root / "drivers"):
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if entry.name.endswith(".md") and entry.is_file():
                found.setdefault(entry.name[: -len(".md")], entry)
    return dict(sorted(found.items()))


def title(page: Traversable) -> str:
    """The first heading of a page, without the ``#`` and backquotes."""
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip().replace("`", "")
    return ""


def cmd_help(args: argparse.Namespace, ctx: Context) -> int:
    """Print the page of TOPIC, or without one the list of topics."""
    pages = topics()
    if not pages:
        raise CommandError("this installation has no documentation pages (blobdrivers/docs is missing)")
    if args.topic is None:
        width = max(len(name) for name in pages)
        print(f"Documentation topics (run '{PROG} help TOPIC'; start with '{PROG} help {MAIN_TOPIC}'):")
        for name, page in pages.items():
            print(f"  {name.ljust(width)}  {title(page)}")
        return 0
    chosen = pages.get(args.topic.lower().removesuffix(".md"))
    if chosen is None:
        raise UsageError(f"no help topic {args.topic!r}; topics: {', '.join(pages)}")
    sys.stdout.write(chosen.read_text(encoding="utf-8"))
    return 0
