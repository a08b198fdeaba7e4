"""Benchmark tables of the docs: rendered from bench/results JSON with where and when each was recorded."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import record  # noqa: E402
from tables import BENCH_SPEC_FENCE, SpecError, provenance, render, render_block  # noqa: E402

RESULT = {
    "recorded": {"date": "2026-01-02", "machine": {"cpu": "Test CPU", "cores": 2}, "commit": "abc1234567"},
    "summary": {"sources": {"map": {"oa": 0.93456, "note": "a|b"}, "label": {"oa": 0.9}, "esa": {}}},
    "runs": [{"dataset": "demo", "seed": 0, "oa": 0.5}, {"dataset": "real", "seed": 1, "oa": 0.75},
             {"dataset": "demo", "seed": 2, "oa": 0.25}],
}


@pytest.fixture
def results(tmp_path):
    (tmp_path / "lab.json").write_text(json.dumps(RESULT))
    return tmp_path


def test_a_mapping_gives_one_row_per_chosen_key_in_order_with_labels_formats_and_gaps(results):
    spec = {"source": "lab.json", "rows": "summary.sources", "only": ["label", "map", "esa"],
            "labels": {"map": "the map"}, "columns": {"": "{label}", "OA": "{r[oa]:.3f}", "note": "{r[note]}"},
            "caption": "one seed"}
    assert render(spec, results) == (
        "|  | OA | note |\n|---|---|---|\n"
        "| label | 0.900 | — |\n"
        "| the map | 0.935 | a\\|b |\n"
        "| esa | — | — |\n\n"
        "<small>one seed — `bench/results/lab.json` · 2026-01-02 · Test CPU, 2 cores · code at `abc1234567`</small>\n")


def test_a_list_is_filtered_by_where_and_keeps_its_order(results):
    spec = {"source": "lab.json", "rows": "runs", "where": {"dataset": "demo"},
            "columns": {"seed": "{r[seed]}", "OA": "{r[oa]:.0%}", "row": "{key}"}}
    table = render(spec, results).split("\n\n")[0]
    assert table == "| seed | OA | row |\n|---|---|---|\n| 0 | 50% | 0 |\n| 2 | 25% | 2 |"


@pytest.mark.parametrize("spec, message", [
    ({"source": "nothing.json", "columns": {"a": "{r}"}}, "no file nothing.json"),
    ({"source": "lab.json", "rows": "summary.missing", "columns": {"a": "{r}"}}, "no 'missing'"),
    ({"source": "lab.json", "rows": "summary.sources", "only": ["map", "ghost"], "columns": {"a": "{r}"}},
     "no row 'ghost'"),
    ({"source": "lab.json"}, "needs 'columns'"),
])
def test_a_spec_that_names_what_is_not_there_is_refused(results, spec, message):
    with pytest.raises(SpecError, match=re.escape(message)):
        render(spec, results)


def test_a_block_body_that_is_not_a_mapping_is_refused(results):
    with pytest.raises(SpecError, match="a YAML mapping"):
        render_block("- just\n- a list\n", results)


def test_an_older_result_without_a_record_says_what_it_has_and_what_it_lacks(tmp_path):
    path = tmp_path / "old.json"
    assert provenance({"date": "2025-05-05", "cpu": "Old CPU"}, path) == (
        "`bench/results/old.json` · 2025-05-05 · Old CPU · commit not recorded")
    assert provenance({}, path) == (
        "`bench/results/old.json` · date not recorded · machine not recorded · commit not recorded")


def test_record_writes_the_result_with_date_machine_and_the_checkouts_commit(tmp_path, monkeypatch):
    monkeypatch.setattr(record, "cpu_model", lambda: "Fake CPU")
    out = tmp_path / "result.json"
    record.write(out, {"value": 1, "recorded": {"date": "stale"}}, gpu="Fake GPU")
    doc = json.loads(out.read_text())
    head = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    assert doc["value"] == 1
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", doc["recorded"]["date"])
    assert doc["recorded"]["machine"]["cpu"] == "Fake CPU" and doc["recorded"]["machine"]["gpu"] == "Fake GPU"
    assert doc["recorded"]["machine"]["cores"] >= 1
    commit = doc["recorded"]["commit"]
    assert commit.removesuffix("+changes") == (head.stdout.strip() if head.returncode == 0 else "unknown")


def test_every_bench_block_of_the_docs_renders_from_its_json():
    blocks = [(page.name, m.group(1)) for page in sorted((ROOT / "docs").glob("*.md"))
              for m in BENCH_SPEC_FENCE.finditer(page.read_text(encoding="utf-8"))]
    assert len(blocks) >= 10
    for page, body in blocks:
        table, caption = render_block(body).split("\n\n<small>")
        rows = [line.strip("| ").split(" | ") for line in table.splitlines()[2:]]
        assert rows and all(any(cell != "—" for cell in row[1:]) for row in rows), (page, body)
        assert "`bench/results/" in caption, page
