"""Mutation score of the core modules (`make mutation`, a bench: not in CI).

Runs mutmut 3 (configured in pyproject.toml's [tool.mutmut]: which modules it mutates, which tests it runs)
and writes bench/results/mutation.json: per module the mutants mutmut made and how each ended.

score = (killed + timeout) / (total - skipped): a mutant that makes the tests time out is caught (a real
change of behaviour, e.g. a loop that never ends); "no tests" (no selected test calls the function) and
"survived" count against it; "skipped" (# pragma: no mutate, equivalent mutants) are not mutants at all.

    python bench/mutation.py [--max-children N] [--no-run] [MUTANT_GLOB ...]
    (--no-run: only read the last run's results; globs such as "l2h.labels.harmonize*" test those mutants only,
    the others keep the state of the last run, "not_checked" if never run)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import record

ROOT = record.ROOT
OUT = ROOT / "bench" / "results" / "mutation.json"

# mutmut's exit codes (mutmut.stats.status_by_exit_code), folded into the counts reported here.
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no_tests", 33: "no_tests", 34: "skipped",
          36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout", 37: "killed",
          None: "not_checked"}
COUNTS = ("killed", "timeout", "survived", "no_tests", "skipped", "suspicious", "not_checked")


def module_counts(meta: Path) -> dict:
    """Counts of one module's mutants from mutmut's mutants/<path>.meta, the survivors named."""
    codes = json.loads(meta.read_text())["exit_code_by_key"]
    counts = dict.fromkeys(COUNTS, 0)
    survivors = []
    for name, code in sorted(codes.items()):
        status = STATUS.get(code, "suspicious")
        counts[status] += 1
        if status in ("survived", "no_tests"):
            survivors.append(name)
    total = len(codes)
    mutants = total - counts["skipped"]
    score = (counts["killed"] + counts["timeout"]) / mutants if mutants else None
    return {"total": total, **counts, "score": None if score is None else round(score, 4), "survivors": survivors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-children", type=int, default=1, help="mutants tested at once (default 1)")
    parser.add_argument("--no-run", action="store_true", help="only read mutants/ of the last run")
    parser.add_argument("mutants", nargs="*", help="mutant name globs, e.g. 'l2h.evaluation.metrics*' (default all)")
    args = parser.parse_args()
    wall = None
    if not args.no_run:
        start = time.perf_counter()
        mutmut = Path(sys.executable).with_name("mutmut")
        subprocess.run([str(mutmut), "run", "--max-children", str(args.max_children), *args.mutants], cwd=ROOT,
                       check=True)
        wall = round(time.perf_counter() - start, 1)
    metas = sorted((ROOT / "mutants").glob("l2h/**/*.py.meta"))
    if not metas:
        sys.exit("no mutants/**/*.meta: run mutmut first (make mutation)")
    modules = {str(m.relative_to(ROOT / "mutants"))[: -len(".meta")]: module_counts(m) for m in metas}
    modules = {name: c for name, c in modules.items() if c["total"]}
    overall = {key: sum(c[key] for c in modules.values()) for key in ("total", *COUNTS)}
    caught, mutants = overall["killed"] + overall["timeout"], overall["total"] - overall["skipped"]
    overall["score"] = round(caught / mutants, 4) if mutants else None
    doc = {"tool": "mutmut " + _version(), "score_definition": "(killed + timeout) / (total - skipped)",
           "max_children": args.max_children, "mutants_run": None if args.no_run else (args.mutants or "all"), "wall_s": wall, "overall": overall, "modules": modules}
    record.write(OUT, doc)
    for name, c in modules.items():
        print(f"{name:40s} {c['total']:5d} mutants  {c['killed']:5d} killed  {c['survived']:4d} survived  "
              f"{c['no_tests']:4d} no tests  {c['timeout']:3d} timeout  score {c['score']}")
    print(f"{'all':40s} {overall['total']:5d} mutants  score {overall['score']}  -> {OUT.relative_to(ROOT)}")


def _version() -> str:
    """The installed mutmut's version."""
    from importlib.metadata import version
    return version("mutmut")


if __name__ == "__main__":
    main()
