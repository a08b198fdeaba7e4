"""What each workflow rule runs, read from the code: the rule's conda environment and `l2h` subcommand
(from rules/*.smk), and the third-party modules that subcommand imports, following its real import
closure (:mod:`l2h.core.provenance`): everything ``import l2h.cli`` runs at module level, plus the
handler's imports and, for every l2h module those reach, its imports anywhere (module level or inside
functions; a superset of what one run needs, never less)."""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from l2h.core.provenance import PACKAGE_DIR, handler_statements, import_closure, import_time_statements

_RULE = re.compile(r"^\s*rule (\w+):", re.M)
_CONDA = re.compile(r"^\s*conda:\s*\n\s*\"([^\"]+)\"", re.M)
_SUBCOMMAND = re.compile(r"\"l2h --log \{log\} ([\w-]+)")


@dataclass(frozen=True)
class Rule:
    """A workflow rule: its name, the file that defines it, its conda environment (relative to the
    checkout) and the `l2h` subcommand its shell command runs."""

    name: str
    file: Path
    env: str
    subcommand: str


def workflow_rules(root: Path) -> tuple[list[Rule], list[str]]:
    """The rules of rules/*.smk with a conda environment and an `l2h` command, and the names of those
    that lack either."""
    rules, odd = [], []
    for path in sorted((root / "rules").glob("*.smk")):
        text = path.read_text(encoding="utf-8")
        starts = [m.start() for m in _RULE.finditer(text)] + [len(text)]
        for begin, end in zip(starts, starts[1:]):
            block = text[begin:end]
            name = _RULE.match(block).group(1)
            conda, command = _CONDA.search(block), _SUBCOMMAND.search(block)
            if conda is None or command is None:
                odd.append(name)
                continue
            env = (path.parent / conda.group(1)).resolve().relative_to(root.resolve()).as_posix()
            rules.append(Rule(name, path, env, command.group(1)))
    return rules, odd


def _third_party(statements) -> set[str]:
    """Top-level names of the absolute imports among ``statements`` that are neither l2h nor stdlib."""
    names = set()
    for node in statements:
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return {n for n in names if n not in ("l2h", "__future__") and n not in sys.stdlib_module_names}


def _cli_import_time(package_dir: Path) -> dict[Path, list]:
    """Source file -> its statements run at import, for the l2h modules ``import l2h.cli`` runs (the CLI
    imports every stage's subcommands at module level)."""
    return {path: import_time_statements(ast.parse(path.read_text(encoding="utf-8")).body)
            for path in import_closure(["l2h", "l2h.cli"], package_dir, at_import=True)}


def _by_module(parts: dict[Path, list], package_dir: Path, into: dict[str, set[str]]) -> dict[str, set[str]]:
    for path, statements in parts.items():
        for name in _third_party(statements):
            into.setdefault(name, set()).add(path.relative_to(package_dir.parent).as_posix())
    return into


def subcommand_imports(subcommand: str, package_dir: Path = PACKAGE_DIR) -> dict[str, set[str]]:
    """Third-party top-level module -> the l2h files (relative to the checkout) that import it, for
    ``l2h <subcommand>``: what ``import l2h.cli`` runs, then the handler's statements."""
    found = _by_module(_cli_import_time(package_dir), package_dir, {})
    return _by_module(handler_statements(subcommand, package_dir), package_dir, found)


def package_imports(package_dir: Path = PACKAGE_DIR) -> dict[str, set[str]]:
    """Third-party top-level module -> the l2h files that import it, over the whole package."""
    return _by_module({p: list(ast.walk(ast.parse(p.read_text(encoding="utf-8"))))
                       for p in package_dir.rglob("*.py")}, package_dir, {})
