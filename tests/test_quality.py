"""Lint and type checks run as part of the test command, so CI enforces them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


def test_ruff_is_clean() -> None:
    ruff = shutil.which("ruff") or "ruff"
    result = _run(ruff, "check", "blobdrivers", "tests", "benchmarks", "examples")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    ruff = shutil.which("ruff") or "ruff"
    result = _run(ruff, "format", "--check", "blobdrivers", "tests", "benchmarks", "examples")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    result = _run(sys.executable, "-m", "mypy", "--strict", "blobdrivers")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_public_name_has_a_docstring() -> None:
    # Dunder methods and __init__ are documented by their protocol and their class docstring.
    ruff = shutil.which("ruff") or "ruff"
    result = _run(ruff, "check", "--select", "D1", "--ignore", "D105,D107", "blobdrivers")
    assert result.returncode == 0, result.stdout
