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
import subprocess
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


# --------------------------------------------------------------------------- layering
# The package's own imports point one way (docs/architecture.md): checked on the
# source with ast, so a violation names the file and line without importing anything.

PACKAGE = ROOT / "blobdrivers"
#: The only modules that may name a concrete driver module: the drivers themselves and the factory.
DRIVER_IMPORTERS = ("blobdrivers/drivers/", "blobdrivers/factory.py")
MAX_MODULE_LINES = 600


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.Module, *, module_level: bool) -> list[ast.Import | ast.ImportFrom]:
    """The import statements of a module; ``module_level``: only those run when it is imported.

    Imports inside functions and under ``if TYPE_CHECKING:`` do not run at import time.
    """
    if not module_level:
        return [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        elif isinstance(node, ast.If) and _is_type_checking(node):
            pending.extend(node.orelse)
        else:
            pending.extend(ast.iter_child_nodes(node))
    return found


def _targets(module: str, path: Path, node: ast.Import | ast.ImportFrom, known: dict[str, Path]) -> set[str]:
    """The blobdrivers modules an import statement in ``module`` loads."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            package = module if path.name == "__init__.py" else module.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{node.module}" if node.module else package
        else:
            base = node.module or ""
        # ``from pkg import name`` loads the module pkg.name when there is one, else takes name from pkg.
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
    return {name for name in names if name in known}


def _graph(*, module_level: bool) -> dict[str, dict[str, int]]:
    """For each blobdrivers module, the blobdrivers modules it imports, each with the line importing it."""
    known = _modules()
    graph: dict[str, dict[str, int]] = {}
    for module, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        edges = graph.setdefault(module, {})
        for node in _import_nodes(tree, module_level=module_level):
            for target in _targets(module, path, node, known):
                if target != module:
                    edges.setdefault(target, node.lineno)
    return graph


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle through each strongly connected group of modules (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_no_import_cycle_among_the_package_modules() -> None:
    graph = _graph(module_level=True)
    problems = []
    for group in _cycles(graph):
        members = set(group)
        edges = [f"{a} -> {b} (line {line})" for a in group for b, line in graph[a].items() if b in members]
        problems.append("import cycle among " + ", ".join(group) + ":\n    " + "\n    ".join(edges))
    assert not problems, "\n".join(problems)


def test_concrete_drivers_are_imported_only_by_drivers_and_the_factory() -> None:
    # Every import counts here, inside functions too: the rest of the package reaches
    # drivers through the StorageDriver contract and the factory.
    problems = []
    for module, edges in _graph(module_level=False).items():
        where = str(_modules()[module].relative_to(ROOT))
        if where.startswith(DRIVER_IMPORTERS):
            continue
        problems += [
            f"{where}:{line} imports {target}"
            for target, line in edges.items()
            if target.startswith("blobdrivers.drivers.")
        ]
    assert not problems, "\n".join(problems)


def test_importing_the_package_loads_neither_argparse_nor_the_cli() -> None:
    code = (
        "import sys, blobdrivers; "
        "print(sorted(m for m in sys.modules if m == 'argparse' or m.startswith('blobdrivers.cli')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_no_module_is_over_600_lines() -> None:
    sizes = {path: len(path.read_text(encoding="utf-8").splitlines()) for path in _modules().values()}
    too_long = {str(path.relative_to(ROOT)): lines for path, lines in sizes.items() if lines > MAX_MODULE_LINES}
    assert not too_long, f"split these modules (at most {MAX_MODULE_LINES} lines each): {too_long}"
