"""Code versions for Snakemake `params:` so that editing any module a rule's command runs reruns it.

A rule names its `l2h` subcommand; :func:`code_version` hashes the source of every l2h module the
subcommand's handler imports, directly or through other l2h modules (imports read with `ast`, lazy
imports inside functions included), so the list cannot drift from the code.
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the l2h package


def _module_file(package_dir: Path, module: str) -> Path | None:
    """The source file of `module` ("l2h.labels.harmonize", "l2h.demo") under `package_dir`, or None."""
    parts = module.split(".")[1:]
    base = package_dir.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports_of_nodes(nodes, source: Path, package_dir: Path) -> set[str]:
    """The l2h modules named by the import statements among `nodes` of the module file `source`."""
    found: set[str] = set()
    package = ".".join(["l2h", *source.relative_to(package_dir).parent.parts])
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "l2h")
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x, from ..core import y
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            if module.split(".")[0] != "l2h":
                continue
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names)  # `from l2h import harmonize`
    return found


def _statements(nodes) -> list:
    """Every statement in `nodes` and in the blocks nested in them (function and class bodies, if,
    try, with, loops, match): where imports can be, without walking expressions."""
    found, todo = [], list(nodes)
    while todo:
        node = todo.pop()
        found.append(node)
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            todo.extend(getattr(node, field, ()) or ())
    return found


@cache
def _imports_cached(source: Path, package_dir: Path, stamp: tuple[int, int]) -> frozenset[str]:
    tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    return frozenset(_imports_of_nodes(_statements(tree.body), source, package_dir))


def _imports(source: Path, package_dir: Path) -> set[str]:
    """The l2h modules `source` imports anywhere (module level or inside functions); parsed once
    per file version (the Snakefile asks for every rule's version at each parse)."""
    stat = source.stat()
    return set(_imports_cached(source, package_dir, (stat.st_mtime_ns, stat.st_size)))


def import_closure(modules: list[str], package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """The source files of `modules` and of every l2h module they import, transitively, sorted."""
    seen: dict[str, Path] = {}
    todo = list(modules)
    while todo:
        module = todo.pop()
        path = _module_file(package_dir, module)
        if path is None or module in seen:
            continue
        seen[module] = path
        parent = module.rsplit(".", 1)[0]
        if parent != "l2h":
            todo.append(parent)  # a subpackage's __init__ runs too
        todo.extend(_imports(path, package_dir))
    return sorted(set(seen.values()))


def _handler_sources(subcommand: str, package_dir: Path) -> list[Path]:
    """The source files `l2h <subcommand>` runs: its handler's module (whose other handlers' lazy
    imports do not count), that module's l2h imports at module level, the imports inside the handler
    function, and everything those import in turn."""
    from l2h.cli import handler_of  # lazy: the CLI imports the modules whose versions this computes

    handler = handler_of(subcommand)
    source = _module_file(package_dir, handler.__module__)
    if source is None:
        raise ValueError(f"code_version: no source for {handler.__module__} under {package_dir}")
    tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    roots = {"l2h"}
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            roots |= _imports_of_nodes([node], source, package_dir)
        elif isinstance(node, ast.FunctionDef) and node.name == handler.__name__:
            roots |= _imports_of_nodes(_statements(node.body), source, package_dir)
    return sorted({source, *import_closure(sorted(roots - {handler.__module__}), package_dir)})


def code_version(subcommand: str, package_dir: Path = PACKAGE_DIR) -> str:
    """A short hash of the source of every l2h module ``l2h <subcommand>`` runs, imported directly or
    transitively (see `_handler_sources`). ``package_dir``: the l2h package to read (tests)."""
    digest = hashlib.sha256()
    for source in _handler_sources(subcommand, package_dir):
        digest.update(source.relative_to(package_dir).as_posix().encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()[:12]
