"""Code versions for Snakemake `params:` so that editing a module reruns the rules that use it."""

from __future__ import annotations

import hashlib
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def code_version(*modules: str) -> str:
    """A short hash of the source of the named l2h modules (e.g. "regions", "io", "demo").

    A name may be a module (`l2h/<name>.py`) or a subpackage (`l2h/<name>/`, all its .py files).
    """
    digest = hashlib.sha256()
    for name in sorted(set(modules)):
        target = _PACKAGE_DIR / name
        sources = sorted(target.rglob("*.py")) if target.is_dir() else [target.with_suffix(".py")]
        if not sources or not all(s.exists() for s in sources):
            raise ValueError(f"code_version: no l2h module or subpackage named {name!r}")
        for source in sources:
            digest.update(source.relative_to(_PACKAGE_DIR).as_posix().encode())
            digest.update(source.read_bytes())
    return digest.hexdigest()[:12]
