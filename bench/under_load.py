"""Tests under load: run test files N times in a row (pytest-repeat) while stress-ng keeps every core busy,
and record how many runs of each test passed (bench/results/under_load.json).

A test whose result depends on how fast the machine is shows up here as a failure under load. Example:

    python bench/under_load.py --count 20 tests/maps/test_chunks.py tests/inputs/test_download.py
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from record import write

ROOT = Path(__file__).resolve().parent.parent


def summary(tests: dict[str, dict[str, int]]) -> dict[str, int]:
    """Tests, runs, and runs failed (failure or error) or skipped, over every test."""
    runs = Counter()
    for counts in tests.values():
        runs.update(counts)
    return {"tests": len(tests), "runs": sum(runs.values()), "passed": runs["passed"],
            "failed": runs["failure"] + runs["error"], "skipped": runs["skipped"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="test files or ids")
    parser.add_argument("--count", type=int, default=20, help="runs of each test")
    parser.add_argument("--hogs", type=int, default=len(os.sched_getaffinity(0)),
                        help="stress-ng CPU workers (default: one per core)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "under_load.json")
    args = parser.parse_args()
    if shutil.which("stress-ng") is None:
        sys.exit("stress-ng is not installed (Debian: apt-get install stress-ng)")
    stress = subprocess.Popen(["stress-ng", "--cpu", str(args.hogs), "--quiet"], stdout=subprocess.DEVNULL)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "junit.xml"
            start = time.monotonic()
            done = subprocess.run([sys.executable, "-m", "pytest", "-q", "--count",
                                   str(args.count), "--repeat-scope", "function", f"--junitxml={report}",
                                   *args.files], cwd=ROOT)
            seconds = time.monotonic() - start
            if not report.exists():
                sys.exit(f"pytest wrote no report (exit {done.returncode})")
            cases = ET.parse(report).getroot().iter("testcase")
            outcomes: dict[str, Counter] = {}
            for case in cases:
                name = re.sub(r"\[\d+-\d+\]$", "", f"{case.get('classname')}::{case.get('name')}")
                name = re.sub(r"-\d+-\d+\]$", "]", name)  # the repeat's index after a test's own parameters
                kind = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
                outcomes.setdefault(name, Counter())[kind] += 1
    finally:
        stress.terminate()
        stress.wait()
    tests = {name: dict(counts) for name, counts in sorted(outcomes.items())}
    doc = {"benchmark": "under_load", "files": args.files, "count": args.count, "stress_ng_cpu_workers": args.hogs,
           "pytest_exit": done.returncode, "seconds": round(seconds, 1), "summary": summary(tests), "tests": tests}
    write(args.out, doc)
    print(f"{sum(sum(c.values()) for c in outcomes.values())} runs of {len(outcomes)} tests, "
          f"{sum(c['failure'] + c['error'] for c in outcomes.values())} failed, in {seconds:.0f} s -> {args.out}")


if __name__ == "__main__":
    main()
