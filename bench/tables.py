"""Markdown tables of benchmark results, rendered from bench/results/*.json when the docs are built.

A docs page holds a fenced ```bench block whose body is a YAML spec; the site shows the table instead:

    source: detail_demo.json          # a file in bench/results/
    rows: summary.demo42.sources      # dotted path to a list or a mapping (one row per entry)
    only: [map, esa_worldcover]       # optional: keep these keys (or indices), in this order
    where: {dataset: own-data}        # optional: keep list rows whose fields equal these
    labels: {map: the map}            # optional: a row's name in the "{label}" column
    columns:                          # header: a str.format template over the row
      "": "{label}"
      OA: "{r[oa][mean]:.3f} ({r[oa][worst]:.3f})"
    caption: mean (worst) of 3 seeds  # optional

`{r}` is the row, `{key}` its key or index, `{label}` its label (its key when none is given), `{doc}` the
whole JSON. A cell whose value is absent is "—". Under the table: the file, and when, where and from which
commit it was recorded (bench/record.py; for older files the commit that last changed the file).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BENCH_SPEC_FENCE = re.compile(r"^```bench[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
MISSING = "—"


class SpecError(ValueError):
    """A bench block the renderer cannot follow (unknown file, path, or key)."""


def _follow(doc, path: str):
    node = doc
    for part in filter(None, path.split(".")):
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise SpecError(f"rows: no '{part}' in '{path}'") from exc
    return node


def _rows(doc, spec: dict) -> list[tuple[object, dict]]:
    node = _follow(doc, spec.get("rows", ""))
    entries = list(node.items()) if isinstance(node, dict) else list(enumerate(node if isinstance(node, list)
                                                                                else [node]))
    where = spec.get("where", {})
    entries = [(k, r) for k, r in entries if all(isinstance(r, dict) and r.get(f) == v for f, v in where.items())]
    if "only" in spec:
        by_key = dict(entries)
        missing = [k for k in spec["only"] if k not in by_key]
        if missing:
            raise SpecError(f"only: no row {missing[0]!r} in {spec['source']} {spec.get('rows', '')}")
        entries = [(k, by_key[k]) for k in spec["only"]]
    return entries


def _cell(template: str, **fields) -> str:
    try:
        text = template.format(**fields)
    except (KeyError, IndexError, TypeError, ValueError):
        return MISSING
    return text.replace("|", "\\|").replace("\n", " ")


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def provenance(doc: dict, path: Path) -> str:
    """When, on what machine and from which commit a result was recorded, as one line of Markdown."""
    recorded = doc.get("recorded", {})
    legacy = doc.get("machine") if isinstance(doc.get("machine"), dict) else {}
    date = recorded.get("date") or doc.get("date") or _git("log", "-1", "--format=%cs", "--", str(path))
    machine = recorded.get("machine") or legacy
    cpu = machine.get("cpu") or doc.get("cpu")
    where = "machine not recorded"
    if cpu:
        cores = machine.get("cores")  # a top-level "cores" is a run's setting, not the machine's
        where = (cpu + (f", {cores} core{'s' * (cores != 1)}" if cores else "")
                 + (f", {machine['gpu']}" if machine.get("gpu") else ""))
    if recorded.get("commit"):
        code = f"code at `{recorded['commit']}`"
    else:
        last = _git("log", "-1", "--format=%h", "--", str(path))
        code = f"file committed in `{last}`" if last else "commit not recorded"
    return f"`bench/results/{path.name}` · {date or 'date not recorded'} · {where} · {code}"


def render(spec: dict, results: Path = RESULTS) -> str:
    """The Markdown table a bench spec asks for, with its caption and provenance line."""
    for key in ("source", "columns"):
        if key not in spec:
            raise SpecError(f"a bench block needs '{key}'")
    path = results / spec["source"]
    if not path.is_file():
        raise SpecError(f"source: no file {path.name} in bench/results")
    doc = json.loads(path.read_text(encoding="utf-8"))
    labels, columns = spec.get("labels", {}), spec["columns"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for key, row in _rows(doc, spec):
        label = labels.get(key, str(key))
        lines.append("| " + " | ".join(_cell(t, r=row, key=key, label=label, doc=doc) for t in columns.values())
                     + " |")
    caption = f"{spec['caption']} — " if spec.get("caption") else ""
    return "\n".join(lines) + f"\n\n<small>{caption}{provenance(doc, path)}</small>\n"


def render_block(text: str, results: Path = RESULTS) -> str:
    """Render the YAML body of one ```bench block."""
    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"not YAML: {exc}") from exc
    if not isinstance(spec, dict):
        raise SpecError("a bench block is a YAML mapping")
    return render(spec, results)
