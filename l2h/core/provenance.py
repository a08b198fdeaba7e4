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


def module_file(package_dir: Path, module: str) -> Path | None:
    """The source file of `module` ("l2h.labels.harmonize", "l2h.demo") under `package_dir`, or None."""
    parts = module.split(".")[1:]
    base = package_dir.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(nodes, source: Path, package_dir: Path) -> set[str]:
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
def _statements_cached(source: Path, stamp: tuple[int, int]) -> tuple:
    return tuple(_statements(ast.parse(source.read_text(encoding="utf-8"), filename=str(source)).body))


def _all_statements(source: Path) -> list:
    """Every statement of the module file ``source`` (:func:`_statements`), parsed once per file version
    (the Snakefile asks for every rule's version at each parse)."""
    stat = source.stat()
    return list(_statements_cached(source, (stat.st_mtime_ns, stat.st_size)))


@cache
def _imports_cached(source: Path, package_dir: Path, stamp: tuple[int, int]) -> frozenset[str]:
    return frozenset(imported_modules(_statements_cached(source, stamp), source, package_dir))


def _imports(source: Path, package_dir: Path) -> set[str]:
    """The l2h modules `source` imports anywhere (module level or inside functions); parsed once
    per file version (the Snakefile asks for every rule's version at each parse)."""
    stat = source.stat()
    return set(_imports_cached(source, package_dir, (stat.st_mtime_ns, stat.st_size)))


def import_closure(modules: list[str], package_dir: Path = PACKAGE_DIR, at_import: bool = False) -> list[Path]:
    """The source files of `modules` and of every l2h module they import, transitively, sorted;
    ``at_import``: only through the imports that run when a module is imported (not inside functions)."""
    seen: dict[str, Path] = {}
    todo = list(modules)
    while todo:
        module = todo.pop()
        path = module_file(package_dir, module)
        if path is None or module in seen:
            continue
        seen[module] = path
        parent = module.rsplit(".", 1)[0]
        if parent != "l2h":
            todo.append(parent)  # a subpackage's __init__ runs too
        if at_import:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            todo.extend(imported_modules(import_time_statements(tree.body), path, package_dir))
        else:
            todo.extend(_imports(path, package_dir))
    return sorted(set(seen.values()))


def import_time_statements(nodes) -> list:
    """The statements among ``nodes`` that run when their module is imported, with the blocks nested
    in them (if, try, with, loops, class bodies), but not function bodies."""
    found, todo = [], list(nodes)
    while todo:
        node = todo.pop()
        found.append(node)
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                todo.extend(getattr(node, field, ()) or ())
    return found


def handler_statements(subcommand: str, package_dir: Path = PACKAGE_DIR) -> dict[Path, list]:
    """Source file -> its statements that `l2h <subcommand>` may run: in the handler's module, those run
    at import and in the handler and the module's functions it names (the other handlers' do not count);
    in every l2h module those import, transitively, all of them (imports inside functions included)."""
    from l2h.cli import handler_of  # lazy: the CLI imports the modules whose versions this computes

    handler = handler_of(subcommand)
    source = module_file(package_dir, handler.__module__)
    if source is None:
        raise ValueError(f"code_version: no source for {handler.__module__} under {package_dir}")
    tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    own = import_time_statements(tree.body)
    for name in _called_functions(handler.__name__, functions):
        own += _statements(functions[name].body)
    roots = {"l2h"} | imported_modules(own, source, package_dir)
    found = {source: own}
    for path in import_closure(sorted(roots - {handler.__module__}), package_dir):
        found.setdefault(path, _all_statements(path))
    return found


def handler_sources(subcommand: str, package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """The source files `l2h <subcommand>` runs (:func:`handler_statements`), sorted."""
    return sorted(handler_statements(subcommand, package_dir))


def _called_functions(start: str, functions: dict[str, ast.FunctionDef]) -> set[str]:
    """``start`` and the module's functions it names (calls, or passes on as callbacks), transitively."""
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen or name not in functions:
            continue
        seen.add(name)
        todo.extend(n.id for n in ast.walk(functions[name]) if isinstance(n, ast.Name))
    return seen


def code_version(subcommand: str, package_dir: Path = PACKAGE_DIR) -> str:
    """A short hash of the source of every l2h module ``l2h <subcommand>`` runs, imported directly or
    transitively (see `handler_sources`). ``package_dir``: the l2h package to read (tests)."""
    digest = hashlib.sha256()
    for source in handler_sources(subcommand, package_dir):
        digest.update(source.relative_to(package_dir).as_posix().encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()[:12]
