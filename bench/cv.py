"""Spatial cross-validation of the whole workflow: is the 1 m map better than its coarse teacher on
land no training window touched?

For every fold (a region held out of training) and seed, the real workflow runs in its own folder
-- the same Snakefile, rules and `l2h` commands a user runs, with `sampling.train_regions` naming
the training regions -- and the map is scored on the held-out region only, pixels inside training
blocks left out (`l2h score-pixels`), beside the coarse product(s) on the same pixels; `l2h
evaluate`'s held-out reference points are recorded too. Two datasets:

* ``own-data``: examples/own-data.yaml on the 8 real Chesapeake patches of examples/chesapeake_wv/
  (NAIP + NLCD 2011; the 1 m labels it scores against are the project's fixtures in ../shared), split into a west and an east fold of 4 patches each (the patches are scattered over
  ~4 x 7 km; patches 3 and 7 lie 350 m apart, so a split by index would put neighbours on both
  sides). Each fold is trained on one half and scored on the other against the Chesapeake 1 m labels
  (4 classes: water, tree canopy, low vegetation, impervious), NLCD read with the usual crosswalk.
* ``demo``: the embedded demo world (generated here, ``--world-seed``; 42 is ``make demo``'s world,
  tune settings on another), one province held out (``--fold``; ``none`` = ``make demo``'s own
  split: every province trains, the pixels outside the training blocks are scored), against the
  world's hidden 1 m truth beside ESA WorldCover, Esri and FROM-GLC10.

Every run is also scored at 1 m (:mod:`l2h.evaluation.detail`): the map, the network alone (the same
model without the label prior), the coarse consensus label (where it has a class), the products and a
map perfect at the coarse cell (10 m for the demo, NLCD's 30 m for own-data) on the same pixels:
class-boundary F1 (2 px), sub-cell OA, mixed-cell OA, building and road IoU.

Writes JSON (default bench/results/cv.json): per dataset, fold and seed every source's scores,
the training time, and a summary with the mean and the worst over folds x seeds of each measure, and
of the map minus the best product.

Usage:
  python bench/cv.py [--dataset own-data|demo|all] [--seeds 0,1,2] [--set train.steps=300 ...]
                     [--world-seed 42] [--fold riverside|cote_verte|northmoor|none]
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

import record
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "real" / "chesapeake_wv_train"
# examples/chesapeake_wv/folds.geojson: the footprints (`l2h footprint`) of patches 0, 1, 2, 5 (west)
# and 3, 4, 6, 7 (east), one region per fold
FOLDS = ROOT / "examples" / "chesapeake_wv" / "folds.geojson"
# NLCD 2011 -> the Chesapeake 4-class legend (1 water, 2 tree canopy, 3 low vegetation, 4 impervious)
NLCD_CROSSWALK = {11: 1, 41: 2, 42: 2, 43: 2, 52: 2, 90: 2, 95: 2, 21: 3, 71: 3, 81: 3, 82: 3,
                  22: 4, 23: 4, 24: 4, 31: 4}
DEMO_REGIONS = ("cote_verte", "northmoor", "riverside")
DEMO_SEED = 42
# measures summarised per source (higher is better); IoU of building (5) and road (11) in the demo's legend
MEASURES = ("oa", "miou", "boundary_f1", "subcell_oa", "mixed_cell_oa", "iou_building", "iou_road")


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


def score(workdir: Path, references: list[str], settings: dict, held_out: str | None, crs: str, products: list[str],
          crosswalks: dict, recode: list[str], cell_size: float, out: Path) -> dict:
    """`l2h score-pixels` of the run in `workdir` (the network alone and the consensus label beside the map)."""
    cmd = ["l2h", "score-pixels", "--map", "results/maps/national.tif", "--reference", *references,
           "--settings", json.dumps(settings), "--blocks", "resources/blocks.csv",
           "--training-blocks", "resources/training_blocks.csv", "--crs", crs, "--cell-size", str(cell_size),
           "--coarse-label", *sorted(str(p.relative_to(workdir)) for p in (workdir / "resources" / "labels").glob(
               "*.tif") if not p.stem.endswith("_sets")), "--out", str(out)]
    if held_out:
        cmd += ["--region", f"resources/regions/{held_out}.gpkg"]
    if (workdir / "results" / "maps" / "network" / "national.tif").exists():
        cmd += ["--extra-map", "network=results/maps/network/national.tif"]
    if recode:
        cmd += ["--recode", *recode]
    for p in products:
        cmd += ["--product", f"resources/raw/{p}/manifest.json"]
    for p, table in crosswalks.items():
        cmd += ["--crosswalk", f"{p}={json.dumps({str(k): v for k, v in table.items()})}"]
    run([str(Path(sys.executable).parent / cmd[0]), *cmd[1:]], workdir, workdir / "bench.log")
    return json.loads(out.read_text())


TARGETS = ["results/maps/national.tif", "results/maps/network/national.tif", "results/reports/accuracy.json"]


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
                                    "train": {"seed": seed},
                                    "evaluation": {"pixels": {"reference": references[:1], "recode": {5: 4, 6: 4},
                                                              "network": True}}})
            override = workdir / "fold.yaml"
            override.write_text(yaml.safe_dump(cfg))
            wall = snakemake(workdir, [ROOT / "examples" / "own-data.yaml", override], cores, TARGETS)
            scores = score(workdir, references, settings, held_out, "EPSG:26917", ["nlcd"], {"nlcd": NLCD_CROSSWALK},
                           ["5=4", "6=4"], 30.0, workdir / f"pixel_scores_seed{seed}.json")
            points = json.loads((workdir / "results" / "reports" / "accuracy.json").read_text())["held_out"]
            results.append(_record("own-data", train, held_out, seed, scores, points, workdir, wall,
                                   miou_classes=("2", "3")))
            _print(results[-1])
    return results


def demo_folds(work: Path, seeds: list[int], overrides: dict, cores: int, world_seed: int = DEMO_SEED,
               fold: str = "riverside") -> list[dict]:
    """The demo world with one province held out (or none: make demo's split) x seeds."""
    world = work / "demo" / f"world{world_seed}"
    if not (world / "manifest.json").exists():
        run([str(Path(sys.executable).parent / "l2h"), "demo-world", str(world), "--seed", str(world_seed)], ROOT,
            work / "demo-world.log")
    base = yaml.safe_load((ROOT / "workflow_config.yaml").read_text())
    truth = str(world / "truth" / "truth_1m.tif")
    paths = {"regions": {"file": str(world / "regions" / "provinces.gpkg")},
             "imagery": {"paths": [str(world / "imagery" / "demo_imagery.tif")]},
             "products": {p: {"base_url": str(world / "mirror" / p)} for p in base["products"]},
             "roads": {"osm": str(world / "osm" / "demo.osm")},
             "evaluation": {"points": {"file": str(world / "reference" / "points.csv"),
                                       "strata": {"areas_csv": str(world / "reference" / "strata.csv")}},
                            "pixels": {"reference": [truth], "network": True},
                            "survey": None}}
    held_out = None if fold == "none" else fold
    train_regions = sorted(set(DEMO_REGIONS) - {held_out}) if held_out else None
    workdir = work / "demo" / f"world{world_seed}_held_out_{fold}"
    workdir.mkdir(parents=True, exist_ok=True)
    settings = merge(base["evaluation"]["points"], paths["evaluation"]["points"])
    results = []
    for seed in seeds:
        cfg = merge(merge(paths, overrides), {"sampling": {"train_regions": train_regions}, "train": {"seed": seed}})
        override = workdir / "fold.yaml"
        override.write_text(yaml.safe_dump(cfg))
        wall = snakemake(workdir, [override], cores, TARGETS)
        scores = score(workdir, [truth], settings, held_out, _run_crs(workdir), sorted(base["products"]), {}, [], 10.0,
                       workdir / f"pixel_scores_seed{seed}.json")
        points = json.loads((workdir / "results" / "reports" / "accuracy.json").read_text())["held_out"]
        results.append(_record(f"demo{world_seed}", "+".join(train_regions or DEMO_REGIONS), fold, seed, scores,
                               points, workdir, wall, miou_classes=None))
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


def _source(s: dict, miou_classes, building: str | None, road: str | None) -> dict:
    return {"oa": s["oa"], "miou": _miou(s, miou_classes), "iou": s["iou"],
            "boundary_f1": s.get("boundary_f1"), "subcell_oa": s.get("subcell_oa"),
            "mixed_cell_oa": s.get("mixed_cell_oa"),
            "iou_building": s["iou"].get(building) if building else None,
            "iou_road": s["iou"].get(road) if road else None}


def _record(dataset, train, held_out, seed, scores, points, workdir, wall, miou_classes) -> dict:
    # the demo's legend is ours (5 building, 11 road); own-data's 4 classes have impervious (4), no road
    building, road = ("5", "11") if miou_classes is None else ("4", None)
    sources = {name: _source(s, miou_classes, building, road) for name, s in scores["sources"].items()}
    labelled = scores.get("where_labelled", {})
    return {"dataset": dataset, "train": train, "held_out": held_out, "seed": seed,
            "pixels": scores["n_pixels"], "pixels_in_training_blocks_left_out": scores["excluded_pixels"],
            "sources": sources,
            "where_labelled": {"pixels": labelled.get("n_pixels"),
                               "sources": {name: _source(s, miou_classes, building, road)
                                           for name, s in labelled.get("sources", {}).items()}},
            "points_held_out": {"n": points["n_points"], "map_oa": points["map"]["oa"],
                                "products_oa": {k: v["oa"] for k, v in points["products"].items()}},
            "train_seconds": train_seconds(workdir), "workflow_seconds": round(wall, 1)}


def _is_product(name: str) -> bool:
    return name not in ("map", "network", "consensus_label") and not name.startswith("perfect_")


def _print(r: dict) -> None:
    def line(sources):
        return "; ".join(f"{k} OA {v['oa']:.3f} BF1 {_f(v['boundary_f1'])} sub {_f(v['subcell_oa'])} "
                         f"bld {_f(v['iou_building'])} road {_f(v['iou_road'])}" for k, v in sources.items())
    print(f"{r['dataset']} train {r['train']} -> {r['held_out']} seed {r['seed']} (training {r['train_seconds']:.0f} s)"
          f"\n  held out: {line(r['sources'])}\n  where labelled: {line(r['where_labelled']['sources'])}"
          f"\n  points: map {r['points_held_out']['map_oa']:.3f}, products "
          f"{', '.join(f'{k} {v:.3f}' for k, v in r['points_held_out']['products_oa'].items())}", flush=True)


def _f(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def _stats(values: list) -> dict | None:
    values = [v for v in values if v is not None]
    return {"mean": _r(sum(values) / len(values)), "worst": _r(min(values))} if values else None


def summarise(results: list[dict]) -> dict:
    """Mean and worst over folds x seeds of every measure of every source, of the map minus the best
    product, and of the held-out reference points."""
    out = {}
    for dataset in sorted({r["dataset"] for r in results}):
        rows = [r for r in results if r["dataset"] == dataset]
        entry = {}
        for scope in ("sources", "where_labelled"):
            get = (lambda r: r[scope]) if scope == "sources" else (lambda r: r[scope]["sources"])
            names = list(get(rows[0]))
            part = {n: {m: _stats([get(r)[n][m] for r in rows]) for m in MEASURES} for n in names}
            lead = {}
            for m in ("oa", "miou"):
                best = [max(get(r)[n][m] for n in names if _is_product(n)) for r in rows]
                lead[m] = _stats([get(r)["map"][m] - b for r, b in zip(rows, best)])
            part["map_minus_best_product"] = lead
            entry[scope] = part
        points = [r["points_held_out"] for r in rows]
        entry["points_held_out"] = {
            "map_oa": _stats([p["map_oa"] for p in points]),
            "map_minus_best_product": _stats([p["map_oa"] - max(p["products_oa"].values()) for p in points])}
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
    parser.add_argument("--world-seed", type=int, default=DEMO_SEED,
                        help="seed of the demo world (42 = make demo's; tune settings on another)")
    parser.add_argument("--fold", choices=[*DEMO_REGIONS, "none"], default="riverside",
                        help="demo province held out of training (none: make demo's split, scored outside the "
                             "training blocks)")
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
        results += demo_folds(work, seeds, overrides, args.cores, args.world_seed, args.fold)
    doc = {"protocol": "spatial cross-validation: train on some regions, score the map on the others (pixels in "
                       "training blocks left out) beside the coarse products on the same pixels",
           "overrides": overrides, "seeds": seeds, "world_seed": args.world_seed, "fold": args.fold,
           "summary": summarise(results), "runs": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    record.write(args.out, doc)
    print(json.dumps(doc["summary"], indent=1))


if __name__ == "__main__":
    main()
