"""Spatial cross-validation of the whole workflow: is the 1 m map better than its coarse teacher on
land no training window touched?

For every fold (a region held out of training) and seed, the real workflow runs in its own folder
-- the same Snakefile, rules and `l2h` commands a user runs, with `sampling.train_regions` naming
the training regions -- and the map is scored on the held-out region only, pixels inside training
blocks left out (`l2h score-pixels`), beside the coarse product(s) on the same pixels; `l2h
evaluate`'s held-out reference points are recorded too. Two datasets:

* ``own-data``: examples/own-data.yaml on the 8 real Chesapeake patches of ../shared (NAIP + NLCD
  2011), split into a west and an east fold of 4 patches each (the patches are scattered over
  ~4 x 7 km; patches 3 and 7 lie 350 m apart, so a split by index would put neighbours on both
  sides). Each fold is trained on one half and scored on the other against the Chesapeake 1 m labels
  (4 classes: water, tree canopy, low vegetation, impervious), NLCD read with the usual crosswalk.
* ``demo``: the embedded demo world (generated here), one province held out, scored against the
  world's hidden 1 m truth beside ESA WorldCover, Esri and FROM-GLC10.

Writes JSON (default bench/results/cv.json): per dataset, fold and seed the map's and the
products' OA, per-class IoU and mIoU(tree, low vegetation) (own-data) or mIoU (demo), the training
time, and a summary with the mean and the worst over folds x seeds, for the map and for the map
minus the best product.

Usage:
  python bench/cv.py [--dataset own-data|demo|all] [--seeds 0,1,2] [--set train.steps=300 ...]
                     [--work DIR] [--out bench/results/cv.json] [--cores 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "real" / "chesapeake_wv_train"
# examples/chesapeake_wv/folds.geojson: the footprints (`l2h footprint`) of patches 0, 1, 2, 5 (west)
# and 3, 4, 6, 7 (east), one region per fold
FOLDS = ROOT / "examples" / "chesapeake_wv" / "folds.geojson"
# NLCD 2011 -> the Chesapeake 4-class legend (1 water, 2 tree canopy, 3 low vegetation, 4 impervious)
NLCD_CROSSWALK = {11: 1, 41: 2, 42: 2, 43: 2, 52: 2, 90: 2, 95: 2, 21: 3, 71: 3, 81: 3, 82: 3,
                  22: 4, 23: 4, 24: 4, 31: 4}
DEMO_HELD_OUT = "riverside"
DEMO_SEED = 42


def run(cmd: list[str], cwd: Path, log: Path) -> None:
    """Run a command, its output appended to `log`; stop the bench with the log's tail on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        done = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT)
    if done.returncode:
        tail = log.read_text(encoding="utf-8").splitlines()[-30:]
        sys.exit(f"failed ({done.returncode}): {' '.join(cmd)}\n" + "\n".join(tail))


def parse_sets(items: list[str]) -> dict:
    """--set section.key=value (YAML value) -> nested overrides."""
    out: dict = {}
    for item in items:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        if not name:
            sys.exit(f"--set {item!r}: expected section.key=value, e.g. train.steps=300")
        out.setdefault(section, {})[name] = yaml.safe_load(value)
    return out


def merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def snakemake(workdir: Path, configs: list[Path], cores: int, targets: list[str]) -> float:
    """Run the workflow in `workdir`; the wall time in seconds. A training checkpoint of another
    seed's run is removed first (training refuses to resume one written with other settings)."""
    shutil.rmtree(workdir / "results" / "model" / "training", ignore_errors=True)
    start = time.perf_counter()
    run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
         "--configfile", *map(str, configs), "--cores", str(cores), "--rerun-incomplete", *targets],
        ROOT, workdir / "bench.log")
    return time.perf_counter() - start


def train_seconds(workdir: Path) -> float:
    """The train rule's wall time from its Snakemake benchmark file."""
    rows = (workdir / "benchmarks" / "train.tsv").read_text().splitlines()
    return float(rows[1].split("\t")[0])


def score(workdir: Path, references: list[str], settings: dict, held_out: str, crs: str, products: list[str],
          crosswalks: dict, recode: list[str], out: Path) -> dict:
    cmd = ["l2h", "score-pixels", "--map", "results/maps/national.tif", "--reference", *references,
           "--settings", json.dumps(settings), "--region", f"resources/regions/{held_out}.gpkg",
           "--blocks", "resources/blocks.csv", "--training-blocks", "resources/training_blocks.csv", "--crs", crs,
           "--out", str(out)]
    if recode:
        cmd += ["--recode", *recode]
    for p in products:
        cmd += ["--product", f"resources/raw/{p}/manifest.json"]
    for p, table in crosswalks.items():
        cmd += ["--crosswalk", f"{p}={json.dumps({str(k): v for k, v in table.items()})}"]
    run([str(Path(sys.executable).parent / cmd[0]), *cmd[1:]], workdir, workdir / "bench.log")
    return json.loads(out.read_text())


def own_data_folds(work: Path, seeds: list[int], overrides: dict, cores: int) -> list[dict]:
    """The Chesapeake west/east folds x seeds."""
    if not SHARED.is_dir():
        print(f"own-data skipped: {SHARED} is absent")
        return []
    example = yaml.safe_load((ROOT / "examples" / "own-data.yaml").read_text())
    settings = example["evaluation"]["points"]
    references = [str(SHARED / f"train{i}_lc.tif") for i in range(8)]
    results = []
    for train, held_out in (("west", "east"), ("east", "west")):
        workdir = work / "own-data" / f"train_{train}"
        workdir.mkdir(parents=True, exist_ok=True)
        for seed in seeds:
            cfg = merge(overrides, {"regions": {"file": str(FOLDS)},
                                    "sampling": {"train_regions": [train]},
                                    "train": {"seed": seed}})
            override = workdir / "fold.yaml"
            override.write_text(yaml.safe_dump(cfg))
            wall = snakemake(workdir, [ROOT / "examples" / "own-data.yaml", override], cores,
                             ["results/maps/national.tif", "results/reports/accuracy.json"])
            scores = score(workdir, references, settings, held_out, "EPSG:26917", ["nlcd"], {"nlcd": NLCD_CROSSWALK},
                           ["5=4", "6=4"], workdir / f"pixel_scores_seed{seed}.json")
            points = json.loads((workdir / "results" / "reports" / "accuracy.json").read_text())["held_out"]
            results.append(_record("own-data", train, held_out, seed, scores, points, workdir, wall,
                                   miou_classes=("2", "3")))
            _print(results[-1])
    return results


def demo_folds(work: Path, seeds: list[int], overrides: dict, cores: int) -> list[dict]:
    """The demo world with one province held out x seeds."""
    world = work / "demo" / "world"
    if not (world / "manifest.json").exists():
        run([str(Path(sys.executable).parent / "l2h"), "demo-world", str(world), "--seed", str(DEMO_SEED)], ROOT,
            work / "demo-world.log")
    base = yaml.safe_load((ROOT / "workflow_config.yaml").read_text())
    paths = {"regions": {"file": str(world / "regions" / "provinces.gpkg")},
             "imagery": {"paths": [str(world / "imagery" / "demo_imagery.tif")]},
             "products": {p: {"base_url": str(world / "mirror" / p)} for p in base["products"]},
             "roads": {"osm": str(world / "osm" / "demo.osm")},
             "evaluation": {"points": {"file": str(world / "reference" / "points.csv"),
                                       "strata": {"areas_csv": str(world / "reference" / "strata.csv")}},
                            "survey": None}}
    train_regions = sorted({"northmoor", "cote_verte", "riverside"} - {DEMO_HELD_OUT})
    workdir = work / "demo" / f"held_out_{DEMO_HELD_OUT}"
    workdir.mkdir(parents=True, exist_ok=True)
    settings = merge(base["evaluation"]["points"], paths["evaluation"]["points"])
    results = []
    for seed in seeds:
        cfg = merge(merge(paths, overrides), {"sampling": {"train_regions": train_regions}, "train": {"seed": seed}})
        override = workdir / "fold.yaml"
        override.write_text(yaml.safe_dump(cfg))
        wall = snakemake(workdir, [override], cores, ["results/maps/national.tif", "results/reports/accuracy.json"])
        scores = score(workdir, [str(world / "truth" / "truth_1m.tif")], settings, DEMO_HELD_OUT,
                       _run_crs(workdir), sorted(base["products"]), {}, [], workdir / f"pixel_scores_seed{seed}.json")
        points = json.loads((workdir / "results" / "reports" / "accuracy.json").read_text())["held_out"]
        results.append(_record("demo", "+".join(train_regions), DEMO_HELD_OUT, seed, scores, points, workdir, wall,
                               miou_classes=None))
        _print(results[-1])
    return results


def _run_crs(workdir: Path) -> str:
    import rasterio

    with rasterio.open(workdir / "results" / "maps" / "national.tif") as src:
        return src.crs.to_string()


def _miou(source: dict, classes) -> float:
    if classes is None:
        return source["miou"]
    return sum(source["iou"][c] for c in classes) / len(classes)


def _record(dataset, train, held_out, seed, scores, points, workdir, wall, miou_classes) -> dict:
    sources = {name: {"oa": s["oa"], "miou": _miou(s, miou_classes), "iou": s["iou"]}
               for name, s in scores["sources"].items()}
    return {"dataset": dataset, "train": train, "held_out": held_out, "seed": seed,
            "pixels": scores["n_pixels"], "pixels_in_training_blocks_left_out": scores["excluded_pixels"],
            "sources": sources,
            "points_held_out": {"n": points["n_points"], "map_oa": points["map"]["oa"],
                                "products_oa": {k: v["oa"] for k, v in points["products"].items()}},
            "train_seconds": train_seconds(workdir), "workflow_seconds": round(wall, 1)}


def _print(r: dict) -> None:
    others = ", ".join(f"{k} {v['oa']:.3f}/{v['miou']:.3f}" for k, v in r["sources"].items() if k != "map")
    m = r["sources"]["map"]
    print(f"{r['dataset']} train {r['train']} -> {r['held_out']} seed {r['seed']}: map OA {m['oa']:.3f} mIoU "
          f"{m['miou']:.3f} ({others}); training {r['train_seconds']:.0f} s", flush=True)


def summarise(results: list[dict]) -> dict:
    """Mean and worst over folds x seeds of the map, each product and map minus the best product."""
    out = {}
    for dataset in sorted({r["dataset"] for r in results}):
        rows = [r for r in results if r["dataset"] == dataset]
        names = list(rows[0]["sources"])
        entry = {}
        for metric in ("oa", "miou"):
            per = {n: [r["sources"][n][metric] for r in rows] for n in names}
            best_product = [max(r["sources"][n][metric] for n in names if n != "map") for r in rows]
            lead = [m - b for m, b in zip(per["map"], best_product)]
            entry[metric] = {**{n: {"mean": _r(sum(v) / len(v)), "worst": _r(min(v))} for n, v in per.items()},
                             "map_minus_best_product": {"mean": _r(sum(lead) / len(lead)), "worst": _r(min(lead))}}
        entry["runs"] = len(rows)
        entry["train_seconds_mean"] = _r(sum(r["train_seconds"] for r in rows) / len(rows), 1)
        out[dataset] = entry
    return out


def _r(v: float, digits: int = 4) -> float:
    return round(float(v), digits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=["own-data", "demo", "all"], default="all")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="configuration override for every run, e.g. train.steps=300 (repeat)")
    parser.add_argument("--work", default="/tmp/l2h-cv", help="folder for the runs (kept for inspection)")
    parser.add_argument("--fresh", action="store_true", help="delete --work first")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "cv.json"))
    args = parser.parse_args()
    work = Path(args.work)
    if args.fresh and work.exists():
        shutil.rmtree(work)
    seeds = [int(s) for s in args.seeds.split(",")]
    overrides = parse_sets(args.set)
    results = []
    if args.dataset in ("own-data", "all"):
        results += own_data_folds(work, seeds, overrides, args.cores)
    if args.dataset in ("demo", "all"):
        results += demo_folds(work, seeds, overrides, args.cores)
    doc = {"protocol": "spatial cross-validation: train on some regions, score the map on the others (pixels in "
                       "training blocks left out) beside the coarse products on the same pixels",
           "overrides": overrides, "seeds": seeds, "summary": summarise(results), "runs": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(doc["summary"], indent=1))


if __name__ == "__main__":
    main()
