"""The argument parser of the ``blobdrivers`` command: one subcommand per command, each with ``--help``."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from .. import __version__
from .commands import (
    cmd_cleanup,
    cmd_conformance,
    cmd_cp,
    cmd_drivers,
    cmd_get,
    cmd_ls,
    cmd_mv,
    cmd_put,
    cmd_rm,
    cmd_stat,
    cmd_url,
)
from .docs import cmd_help, topics
from .locations import ENV_URL, PROG, Context
from .sync import add_sync_parser

LOCATION_HELP = """\
A LOCATION is PATH in the default store or URL#PATH in the store the URL names:
  /docs/a.txt                                   in the default store
  file:///srv/store#/docs/a.txt                 filesystem driver rooted at /srv/store
  memory://test#/docs/a.txt                     in-memory store "test" (this process only)
  's3://bucket/prefix?region=eu-west-1#/docs'   quote URLs with ? or & for the shell
A URL without #PATH means the root of its store. The default store is --store URL,
else $BLOBDRIVERS_URL, else the filesystem driver's default root."""


def _age(text: str) -> int:
    if text.strip() in {"0", "0s", "0m", "0h", "0d"}:
        return 0
    return _expires(text)


def _expires(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (text[:-1], units[text[-1]]) if text and text[-1] in units else (text, 1)
    try:
        seconds = int(number) * unit
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: use seconds or a number with s, m, h or d"
        ) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: must be positive")
    return seconds


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``blobdrivers`` command (every subcommand has ``--help``)."""
    return build_parsers()[0]


def build_parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The parser and, by name, the parser of each subcommand (for their own usage errors)."""
    subparsers: dict[str, argparse.ArgumentParser] = {}
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Inspect blob stores and move data between them. Stores are selected by URL.",
        epilog=LOCATION_HELP
        + "\n\nRun 'blobdrivers COMMAND --help' for each command; 'blobdrivers help cli' for the reference.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _add_common(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # Options given after the command land on the same names; SUPPRESS keeps values given before it.
    common = argparse.ArgumentParser(add_help=False)
    _add_common(common, suppress=True)

    def command(
        name: str,
        handler: Callable[[argparse.Namespace, Context], int],
        summary: str,
        epilog: str,
        *,
        store: bool = True,
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=summary,
            description=summary,
            epilog=epilog,
            formatter_class=_Formatter,
            parents=[common] if store else [],
        )
        sub.set_defaults(handler=handler)
        subparsers[name] = sub
        return sub

    sub = command(
        "drivers",
        cmd_drivers,
        "List the storage drivers, their URL schemes, and what to install for those whose SDK is missing.",
        "examples:\n  blobdrivers drivers\n  blobdrivers drivers --json",
        store=False,
    )
    sub.add_argument("--json", action="store_true", help="one JSON object per driver and line")

    sub = command(
        "conformance",
        cmd_conformance,
        "Run the conformance suite (pytest) against the store at URL; exit with pytest's code.",
        "Without URL it runs against a filesystem driver in a temporary folder. Every test\n"
        "works in its own sub-folder of the store and leaves it empty. Other arguments go to\n"
        "pytest; put pytest options that take a value after '--'.\n\n"
        "examples:\n"
        "  blobdrivers conformance\n"
        "  blobdrivers conformance -v memory://\n"
        "  blobdrivers conformance 's3://bucket/ci?regionendpoint=http://localhost:9000' -k writer\n"
        "  blobdrivers conformance file:///mnt/nfs/store --large -- -x --maxfail 3",
        store=False,
    )
    sub.add_argument("url", nargs="?", metavar="URL", help="store URL (default: filesystem in a temporary folder)")
    sub.add_argument("--large", action="store_true", help="add the multi-GiB streamed round trip")
    sub.add_argument("-k", metavar="EXPR", help="run only the tests matching this pytest expression")
    sub.add_argument("-v", "--verbose", action="store_true", help="show each test's name and outcome")

    sub = command(
        "ls",
        cmd_ls,
        "List the children of a directory (the root by default); -r lists everything below it.",
        LOCATION_HELP + "\n\n"
        "Plain output is one path per line, with or without -r. -l adds the type (d or -), the\n"
        "size in bytes and the modification time (UTC), and ends directories in '/'. --json\n"
        "prints one JSON object per line with path, is_dir, size, modified and etag. ls of a\n"
        "file shows that file.\n\n"
        "examples:\n"
        "  blobdrivers ls\n"
        "  blobdrivers ls -l /docs\n"
        "  blobdrivers ls -r --json file:///srv/store#/docs",
    )
    sub.add_argument("location", nargs="?", metavar="LOCATION", help="directory to list (default: the root)")
    sub.add_argument("-l", "--long", action="store_true", help="show type, size and modification time")
    sub.add_argument("-r", "--recursive", action="store_true", help="walk everything below, depth first")
    sub.add_argument("--json", action="store_true", help="JSON lines output (implies -l)")

    sub = command(
        "stat",
        cmd_stat,
        "Show the size, modification time, type and etag of a file or directory.",
        LOCATION_HELP + "\n\nexamples:\n  blobdrivers stat /docs/a.txt\n  blobdrivers stat --json memory://t#/a",
    )
    sub.add_argument("location", metavar="LOCATION")
    sub.add_argument("--json", action="store_true", help="print one JSON object: path, is_dir, size, modified, etag")

    sub = command(
        "get",
        cmd_get,
        "Download a file to a local file (written atomically), into a local directory, or to stdout ('-').",
        LOCATION_HELP + "\n\n"
        "DEST is always on the local machine. With -r a directory's files are written below\n"
        "DEST (DEST/relative/path); without DEST into ./NAME, NAME being the directory's name.\n\n"
        "examples:\n"
        "  blobdrivers get /docs/a.txt              # ./a.txt\n"
        "  blobdrivers get /docs/a.txt /tmp/b.txt\n"
        "  blobdrivers get -r /docs                 # ./docs/...\n"
        "  blobdrivers get -r /docs /tmp/docs-copy\n"
        "  blobdrivers get memory://t#/a - | sha256sum",
    )
    sub.add_argument("location", metavar="LOCATION", help="the file (with -r: directory) to download")
    sub.add_argument("dest", nargs="?", metavar="DEST", help="local file, directory or - (default: ., with -r ./NAME)")
    sub.add_argument("-r", "--recursive", action="store_true", help="download the files below a directory")

    sub = command(
        "put",
        cmd_put,
        "Upload a local file or stdin ('-') to a store; the file appears whole or not at all.",
        LOCATION_HELP + "\n\n"
        "A LOCATION that ends in '/', is the root or is an existing directory receives the\n"
        "file under its own name.\n\n"
        "examples:\n"
        "  blobdrivers put layer.tar /blobs/layer.tar\n"
        "  blobdrivers put report.pdf file:///srv/store#/docs/\n"
        "  tar c dir | blobdrivers put - memory://t#/dir.tar\n"
        "  blobdrivers put --if-absent tag.json /tags/latest",
    )
    sub.add_argument("source", metavar="SOURCE", help="local file, or - for stdin")
    sub.add_argument("location", metavar="LOCATION", help="destination file or directory")
    _addwrite_conditions(sub)

    sub = command(
        "cp",
        cmd_cp,
        "Copy a file (or with -r a directory tree) between any two stores, local files and stdin/stdout.",
        LOCATION_HELP + "\n\n"
        "SRC and DST are store locations (URL#PATH, or /PATH in the default store), local\n"
        "files (./file, ../dir/file, dir/file, ~/file) or '-' for stdin/stdout. A /PATH whose\n"
        "first component exists on this machine (/tmp/x, /home/...) is refused as ambiguous:\n"
        "write it relative for the local file or URL#/PATH for the store. Data streams through\n"
        "in bounded memory; each file is published atomically. A DST ending in '/', the root or\n"
        "an existing directory receives the file under its own name. With -r a store\n"
        "directory's files are copied below DST (DST/relative/path), a store or local folder.\n\n"
        "examples:\n"
        "  blobdrivers cp /docs/a.txt /archive/a.txt\n"
        "  blobdrivers cp file:///srv/a#/docs/a.txt 's3://bucket/b?region=eu-west-1#/docs/'\n"
        "  blobdrivers cp -r file:///srv/registry 's3://bucket/registry?region=eu-west-1'\n"
        "  blobdrivers cp ./local.bin memory://t#/x.bin",
    )
    sub.add_argument("src", metavar="SRC")
    sub.add_argument("dst", metavar="DST")
    sub.add_argument("-r", "--recursive", action="store_true", help="copy the files below a directory")
    _addwrite_conditions(sub)

    sub = command(
        "mv",
        cmd_mv,
        "Move a file or a directory tree: a rename within one store, else copy then delete each file.",
        LOCATION_HELP + "\n\n"
        "Within one store (the same URL) each file is moved with the driver's move, which\n"
        "is atomic per file. Across stores, local files included, each file is copied and\n"
        "then deleted from the source. A DST ending in '/' or naming a directory receives a\n"
        "file under its own name; a directory's files go below DST.\n\n"
        "examples:\n"
        "  blobdrivers mv /uploads/u1 /blobs/sha256/abcd\n"
        "  blobdrivers mv /old-dir /new-dir\n"
        "  blobdrivers mv file:///srv/a#/big.bin memory://t#/big.bin",
    )
    sub.add_argument("src", metavar="SRC")
    sub.add_argument("dst", metavar="DST")
    _addwrite_conditions(sub)

    sub = command(
        "rm",
        cmd_rm,
        "Delete files and directories (always recursive, like the driver's delete).",
        LOCATION_HELP + "\n\n"
        "The root '/' is never deleted. A missing path is an error (exit 1) unless -f is given;\n"
        "the remaining locations are still deleted.\n\n"
        "examples:\n  blobdrivers rm /docs/a.txt\n  blobdrivers rm -f /tmp-uploads /cache",
    )
    sub.add_argument("locations", nargs="+", metavar="LOCATION")
    sub.add_argument("-f", "--force", action="store_true", help="ignore missing paths")
    sub.add_argument("-r", "--recursive", action="store_true", help="accepted for habit; rm is always recursive")

    sub = command(
        "url",
        cmd_url,
        "Print a URL that a plain HTTP client can use on a file (drivers without URLs fail with exit 1).",
        LOCATION_HELP + "\n\n"
        "--expires takes seconds or a number with s, m, h or d (default 20m); the driver\n"
        "refuses more than its service allows.\n\n"
        "examples:\n"
        "  blobdrivers url 's3://bucket/registry?region=eu-west-1#/docs/a.txt'\n"
        "  blobdrivers url --method PUT --expires 1h /uploads/new.bin",
    )
    sub.add_argument("location", metavar="LOCATION")
    sub.add_argument(
        "--method", type=str.upper, choices=["GET", "HEAD", "PUT"], default="GET", help="HTTP method (default GET)"
    )
    sub.add_argument("--expires", type=_expires, default=1200, metavar="DURATION", help="validity (default 20m)")

    sub = command(
        "cleanup",
        cmd_cleanup,
        "Remove a filesystem store's staging leftovers (crashed puts, abandoned uploads) older than an age.",
        "Staging entries live in the root's hidden ~blobdrivers folder. Entries touched within\n"
        "--older-than are kept, so this is safe while the store is in use; an abandoned upload\n"
        "that is removed can no longer be resumed.\n\n"
        "examples:\n"
        "  blobdrivers cleanup file:///var/lib/registry --older-than 7d\n"
        "  blobdrivers cleanup --older-than 0   # everything, with the store idle",
    )
    sub.add_argument(
        "url", nargs="?", metavar="URL", help="store URL (default: --store, $BLOBDRIVERS_URL, else the default root)"
    )
    sub.add_argument("--older-than", type=_age, default=86400, metavar="DURATION", help="minimum age (default 1d)")

    subparsers["sync"] = add_sync_parser(commands, parents=[common])

    help_epilog = (
        "The pages are the docs of the installed version (no network, no source checkout).\n\n"
        "examples:\n  blobdrivers help\n  blobdrivers help cli\n  blobdrivers help s3 | less"
    )
    summary = "Print a page of the documentation installed with the package (without TOPIC: the topics)."
    sub = command("help", cmd_help, summary, help_epilog, store=False)
    installed = ", ".join(topics()) or "none installed"
    sub.add_argument("topic", nargs="?", metavar="TOPIC", help=f"a topic: {installed}")
    return parser, subparsers


def _add_common(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    parser.add_argument(
        "--store",
        metavar="URL",
        default=argparse.SUPPRESS if suppress else None,
        help=f"default store for bare /PATH locations (default: ${ENV_URL}, else the filesystem default root)",
    )
    flag = argparse.SUPPRESS if suppress else False
    parser.add_argument("-q", "--quiet", action="store_true", default=flag, help="no progress bars")
    parser.add_argument(
        "--debug", action="store_true", default=flag, help="log every driver call to stderr and show tracebacks"
    )


def _addwrite_conditions(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--if-absent", action="store_true", help="write only if nothing exists at the destination")
    group.add_argument("--if-match", metavar="ETAG", help="write only if the destination's etag (from stat) is ETAG")
