"""Snakemake's directory lock after a kill: tell a stale lock from a live run (used by `make demo`).

A killed Snakemake (SIGKILL, power loss, an out-of-memory kill) leaves its lock files in
``.snakemake/locks`` and the next run stops with "Directory cannot be locked". The lock is stale
when no Snakemake process still works in that folder; only then is ``snakemake --unlock`` safe.
Processes are found through ``/proc`` (Linux); where that cannot be read the answer is "maybe
running", so a lock is never removed under a live run.

``python -m l2h.core.runlock [DIR]`` exits 0 when DIR holds a stale lock (run ``snakemake --unlock``),
1 when it holds no lock, 2 when a Snakemake process (or one this user cannot inspect) runs there.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PROC = Path("/proc")


def _is_snakemake(argv: list[str]) -> bool:
    """`snakemake ...` (a console script run by Python) or `python -m snakemake ...`."""
    return any(Path(arg).name == "snakemake" for arg in argv[:3])


def snakemake_processes(workdir: str | os.PathLike) -> list[int] | None:
    """PIDs of Snakemake processes whose working directory is `workdir` (Snakemake changes into
    its ``--directory``), including those whose folder this user may not read; None without /proc."""
    if not (PROC / "self" / "cwd").exists():
        return None
    target = os.path.realpath(workdir)
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            if not _is_snakemake(argv):
                continue
            cwd = os.readlink(entry / "cwd")
        except PermissionError:
            found.append(int(entry.name))  # a Snakemake we cannot look into: assume it is ours
            continue
        except (FileNotFoundError, ProcessLookupError):  # it ended while we looked
            continue
        if cwd == target:
            found.append(int(entry.name))
    return sorted(found)


def has_lock(workdir: str | os.PathLike) -> bool:
    """Whether Snakemake's lock files are present in `workdir`."""
    locks = Path(workdir) / ".snakemake" / "locks"
    return locks.is_dir() and any(locks.iterdir())


def stale_lock(workdir: str | os.PathLike) -> bool:
    """True when `workdir` is locked and certainly no Snakemake process runs there."""
    return has_lock(workdir) and snakemake_processes(workdir) == []


def main(argv: list[str] | None = None) -> int:
    """Exit 0 if the folder (argv[0], default ".") holds a stale Snakemake lock, 1 if none, 2 if a run is alive."""
    args = sys.argv[1:] if argv is None else argv
    workdir = args[0] if args else "."
    if not has_lock(workdir):
        return 1
    running = snakemake_processes(workdir)
    if running == []:
        print(f"{os.path.abspath(workdir)}: stale Snakemake lock (no snakemake process runs here)", file=sys.stderr)
        return 0
    what = f"snakemake process(es) {running}" if running else "cannot list processes on this system"
    print(f"{os.path.abspath(workdir)}: locked; {what}: leaving the lock alone", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
