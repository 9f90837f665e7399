"""The README's test command installs every distribution the package and its tests import.

``bash scripts/install-test-deps.sh`` installs ``.[all,test]``; on a fresh machine
nothing else is there. Every module imported (at the top or inside a function) by
``blobdrivers/`` and ``tests/`` must therefore come from a distribution named in
those extras themselves, not only pulled in by another package that happens to
depend on it today.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Imported on purpose to show what a driver with a missing SDK does (tests/fake_drivers).
NEVER_INSTALLED = {"definitely_not_an_installed_sdk"}
FIRST_PARTY = {"blobdrivers", "tests"}


def _name(requirement: str) -> str:
    """The normalised distribution name of a requirement string."""
    return re.sub(r"[-_.]+", "-", re.split(r"[\s<>=!~;\[]", requirement.strip(), maxsplit=1)[0]).lower()


def _declared(extras: dict[str, list[str]], wanted: list[str]) -> set[str]:
    """Distributions the extras ``wanted`` name, following ``blobdrivers[...]`` references."""
    names: set[str] = set()
    pending, seen = list(wanted), set()
    while pending:
        extra = pending.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for requirement in extras[extra]:
            if _name(requirement) == "blobdrivers":
                inner = re.search(r"\[(.*)\]", requirement)
                pending.extend(part.strip() for part in (inner.group(1) if inner else "").split(","))
            else:
                names.add(_name(requirement))
    return names


def _imports() -> dict[str, set[str]]:
    """Absolute modules imported by the package and the tests, each with the files importing it."""
    found: dict[str, set[str]] = {}
    for folder in ("blobdrivers", "tests"):
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in FIRST_PARTY | NEVER_INSTALLED:
                        found.setdefault(module, set()).add(str(path.relative_to(ROOT)))
    return found


def _providers(module: str, by_top: dict[str, list[str]]) -> set[str]:
    """The installed distributions holding ``module`` (namespace packages such as ``azure`` have many)."""
    parts = module.split(".")
    candidates = by_top.get(parts[0], [])
    best: set[str] = set()
    # The longest package prefix some candidate ships decides: azure.identity is azure-identity's.
    for depth in range(len(parts), 0, -1):
        folder = "/".join(parts[:depth])
        for dist in candidates:
            files = importlib.metadata.distribution(dist).files or []
            if any(str(file).startswith((f"{folder}/", f"{folder}.")) for file in files):
                best.add(_name(dist))
        if best:
            return best
    return {_name(dist) for dist in candidates}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a parent package is missing
        return False


def test_every_imported_distribution_is_declared_in_the_test_extras() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    declared = _declared(extras, ["all", "test"])
    by_top = importlib.metadata.packages_distributions()
    problems = []
    for module, files in sorted(_imports().items()):
        providers = _providers(module, by_top) if _installed(module) else set()
        where = ", ".join(sorted(files)[:3])
        if not providers:
            problems.append(f"{module} (imported by {where}) is not installed")
        elif not providers & declared:
            problems.append(f"{module} (imported by {where}) comes from {sorted(providers)}, in no extra")
    assert not problems, "\n".join(problems)
