"""Where a benchmark result came from: the date, the machine and the commit, written into its JSON.

Every benchmark writes its result with `write`, which adds a `recorded` object; the docs render each
table with that line (bench/tables.py), so a number is never shown without when, where and from what code.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), or the platform's processor string elsewhere."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def commit() -> str:
    """The checkout's commit (short hash), with "+changes" when files differ from it; "unknown" outside git."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    try:
        head = git("rev-parse", "--short=10", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+changes" if dirty else "")


def stamp(gpu: str | None = None) -> dict:
    """The `recorded` object: today's date (UTC), the machine (CPU model, cores usable, GPU if any), the commit."""
    machine = {"cpu": cpu_model(), "cores": len(os.sched_getaffinity(0))}
    if gpu:
        machine["gpu"] = gpu
    return {"date": datetime.datetime.now(datetime.UTC).date().isoformat(), "machine": machine, "commit": commit()}


def write(path: Path | str, doc: dict, gpu: str | None = None) -> None:
    """Write a benchmark's result as indented JSON with its `recorded` object (replacing an older one)."""
    doc = {**doc, "recorded": stamp(gpu)}
    Path(path).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
