"""examples/own-data.yaml on real data: NAIP imagery + NLCD 2011 (one custom product, no OSM), scored
against reference points drawn from the Chesapeake 1 m labels, which never reach training."""

import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest
import rasterio
import yaml

from l2h.cli import main

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "real" / "chesapeake_wv_train"
EXAMPLE = ROOT / "examples" / "own-data.yaml"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]
pytestmark = [pytest.mark.workflow,
              pytest.mark.skipif(not DATA.is_dir(), reason=f"real Chesapeake patches not found at {DATA} "
                                                           f"(../shared/data/real is only on the project's machines)")]
# The example as it is (100 AdamW steps of a width-16 net), with fewer bootstrap resamples.
FAST = {"infer": {"threads": 1}, "evaluation": {"points": {"bootstrap": 20}}}

def snakemake(workdir: Path, *args: str, configfiles=(EXAMPLE,)) -> subprocess.CompletedProcess:
    cmd = [*SNAKEMAKE, "-d", str(workdir), "--cores", "2", *args, "--configfile", *map(str, configfiles)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900)


def shell_commands(output: str) -> list[str]:
    return re.findall(r"^(?:Shell command:)?\s*(l2h .*)$", output, flags=re.M)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> str:
    """The example's whole DAG, every shell command printed."""
    result = snakemake(tmp_path_factory.mktemp("dry"), "-n", "-p", "--forceall")
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def test_the_1m_labels_never_reach_training(dry_run, tmp_path):
    model = snakemake(tmp_path, "-n", "-p", "--forceall", "results/model/l2hnet.pt")
    assert model.returncode == 0, model.stderr
    commands = shell_commands(model.stdout + model.stderr)
    assert any(c.startswith("l2h --log logs/train.log train") for c in commands)
    everything = " ".join(commands)  # every job the model depends on, the training job included
    assert "train0_naip.tif" in everything and "train0_nlcd.tif" in everything
    for reference in ("_lc.tif", "points.csv", "strata.csv", "evaluate"):
        assert reference not in everything
    evaluate = [c for c in shell_commands(dry_run) if " evaluate " in c]  # the points do reach the evaluation
    assert len(evaluate) == 1 and "chesapeake_wv/points.csv" in evaluate[0]


def test_a_complete_config_replaces_the_demo_defaults(dry_run, tmp_path):
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", dry_run, flags=re.M))
    assert jobs["fetch_product"] == "1" and "roads" not in jobs and "survey" not in jobs
    assert jobs["infer"] == "17" and jobs["imagery_vrt"] == "1"
    assert "esa_worldcover" not in dry_run and "resources/demo" not in dry_run
    partial = tmp_path / "partial.yaml"  # a second, partial file still merges over the example
    partial.write_text(yaml.safe_dump({"grid": {"block_size": 256}}))
    merged = snakemake(tmp_path, "-n", "--forceall", configfiles=(EXAMPLE, partial))
    assert re.search(r"^infer\s+30$", merged.stdout, flags=re.M), merged.stdout[-2000:]


def test_committed_points_are_the_documented_draw(tmp_path):
    out, areas = tmp_path / "points.csv", tmp_path / "strata.csv"
    labels = sorted(str(p) for p in DATA.glob("train*_lc.tif"))
    assert main(["reference-points", "--raster", *labels, "--n", "2000", "--stratified", "--min-per-class", "100",
                 "--recode", "5=4", "6=4", "--seed", "0", "--out", str(out), "--strata-areas", str(areas)]) == 0
    assert out.read_text() == (ROOT / "examples/chesapeake_wv/points.csv").read_text()
    assert areas.read_text() == (ROOT / "examples/chesapeake_wv/strata.csv").read_text()
    rows = list(csv.DictReader(out.open()))
    for path in labels[:2]:  # spot check: each point's 1 m label, recoded, is its class
        with rasterio.open(path) as src:
            inside = [r for r in rows if src.bounds.left < float(r["x"]) < src.bounds.right
                      and src.bounds.bottom < float(r["y"]) < src.bounds.top]
            values = [v[0] for v in src.sample([(float(r["x"]), float(r["y"])) for r in inside])]
        assert inside and all({5: 4, 6: 4}.get(int(v), int(v)) == int(r["class"]) for v, r in zip(values, inside))


def test_the_map_beats_nlcd_on_tree_and_low_vegetation(tmp_path):
    fast = tmp_path / "fast.yaml"
    fast.write_text(yaml.safe_dump(FAST))
    result = snakemake(tmp_path, "results/reports/accuracy.json", configfiles=(EXAMPLE, fast))
    assert result.returncode == 0, result.stderr[-3000:]
    iou = {(r["source"], r["class"]): float(r["iou"] or "nan")
           for r in csv.DictReader((tmp_path / "results/reports/class_metrics.csv").open())}
    miou = {source: (iou[(source, "2")] + iou[(source, "3")]) / 2 for source in ("map", "nlcd")}
    assert miou["map"] > miou["nlcd"] + 0.01, miou  # measured: 0.659 vs 0.581
    assert iou[("map", "3")] > iou[("nlcd", "3")] + 0.05, iou  # low vegetation, measured: 0.469 vs 0.352
    label = rasterio.open(tmp_path / "resources/labels/chesapeake_wv.tif")
    assert label.res == (10.0, 10.0) and label.crs.to_epsg() == 26917
