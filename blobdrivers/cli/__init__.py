"""The ``blobdrivers`` command: inspect stores and move data between them, by URL.

Locations
    A *location* is ``PATH`` in the default store, or ``URL#PATH`` in the store the
    URL names (``file:///srv/store#/docs/a.txt``, ``memory://test#/a``,
    ``s3://bucket/prefix?region=eu-west-1#/a``). A URL without ``#PATH`` means the
    root of its store. The default store is ``--store URL``, else the environment
    variable ``BLOBDRIVERS_URL``, else the filesystem driver's default root.

    ``cp`` and ``mv`` take two locations or local files: an argument containing
    ``://`` is a location; ``-`` is stdin or stdout; ``~/file``, ``./file``,
    ``dir/file`` and ``file`` are local files; ``/PATH`` is in the default store
    unless its first component exists on this machine, which is refused as
    ambiguous (see :func:`.locations.parse_endpoint`).

Exit codes
    0 success, 1 a storage or I/O error (``blobdrivers: error: ...`` on stderr),
    2 a usage error, 130 interrupted. ``conformance`` passes pytest's code through.

The full reference with examples is ``docs/cli.md`` (``blobdrivers help cli``,
installed with the package: :mod:`.docs`). Here: :func:`main` (parse,
run, report errors); :mod:`.parser` (the argument parser), :mod:`.locations`
(locations, the stores a command opens), :mod:`.commands`, :mod:`.transfers`
(copies and moves), :mod:`.sync` and :mod:`.progress` (progress bars).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Iterator

from ..errors import StorageError
from ..redaction import redact_url
from .locations import (
    ENV_URL,
    PROG,
    CommandError,
    Context,
    LocalFile,
    StoreLocation,
    Stores,
    UsageError,
    parse_endpoint,
    parse_location,
    report_error,
)
from .parser import build_parser, build_parsers

__all__ = ["ENV_URL", "LocalFile", "StoreLocation", "build_parser", "main", "parse_endpoint", "parse_location"]


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    Without ``argv`` this process is taken to be the ``blobdrivers`` command, which
    exits afterwards: writing into any ``memory://`` store then warns that it vanishes.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser, commands = build_parsers()
    try:
        args = _parse(parser, commands, arguments)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except UsageError as exc:
        report_error(exc)
        return 2
    debug = bool(getattr(args, "debug", False))
    with _debug_log() if debug else contextlib.nullcontext():
        return _run(args, debug=debug, one_shot=argv is None)


def _run(args: argparse.Namespace, *, debug: bool, one_shot: bool) -> int:
    stores: Stores | None = None
    try:
        stores = Stores(args.store or os.environ.get(ENV_URL) or None)
        return int(args.handler(args, Context(stores, bool(args.quiet), one_shot)))
    except UsageError as exc:
        report_error(exc)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our stdout went away (| head): stop quietly, as cat(1) does.
        _silence_stdout()
        return 141
    except (StorageError, CommandError, ValueError, OSError, ImportError) as exc:
        # ImportError: a third-party driver (entry point) whose own imports fail.
        if debug:
            _print_traceback(exc, stores)
        report_error(exc)
        return 1


def _parse(
    parser: argparse.ArgumentParser, commands: dict[str, argparse.ArgumentParser], arguments: list[str]
) -> argparse.Namespace:
    head, tail = arguments, []
    if "--" in arguments:
        cut = arguments.index("--")
        head, tail = arguments[:cut], arguments[cut + 1 :]
        if "conformance" not in head:
            raise UsageError(
                "'--' passes arguments to pytest and is accepted only by conformance; "
                "write a local file whose name starts with '-' as ./-name"
            )
    args, unknown = parser.parse_known_args(head)
    if args.command == "conformance":
        args.pytest_args = [*unknown, *tail]
        return args
    if unknown:
        commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def _print_traceback(exc: BaseException, stores: Stores | None) -> None:
    """Print the traceback (with SDK causes) for --debug, with secrets masked.

    Library messages are redacted already, but an SDK's own exception (the
    ``__cause__``) may quote a request URL: mask every parameter value the drivers
    hold as secret and every credential-like query parameter.
    """
    text = "".join(traceback.format_exception(exc))
    names: set[str] = set()
    for driver in stores.drivers() if stores is not None else []:
        text = driver.redact(text)
        names.update(driver.secret_params)
    sys.stderr.write(redact_url(text, names))


@contextlib.contextmanager
def _debug_log() -> Iterator[None]:
    """Log every driver call to stderr for the duration of one command (main() may run many times in a process)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    log = logging.getLogger("blobdrivers")
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def _silence_stdout() -> None:
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
