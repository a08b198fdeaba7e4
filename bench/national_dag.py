"""The national DAG on paper: `snakemake -n` of examples/china.yaml over 34 synthetic provinces.

Writes bench/results/national_dag.json. Usage: python bench/national_dag.py [--counts 1 4 16 34]
[--largest-alone] (also the largest province's map as the only target) [--profile N] (N of the
counts once more under cProfile: Snakefile parse vs DAG construction) [--block-size PX]
[--blocks-per-job N] [--out F].

The provinces are a seeded Voronoi partition of a wobbly outline of China's area (9.6 million
km² in the config's equal-area CRS), written in EPSG:4326 (densified first, as a user's file would
be) with the `name`/`pinyin` attributes examples/china.yaml expects. For each count n the first n
provinces (alphabetical) are dry-run with examples/china.yaml, only `regions.file` changed. Each
dry run is a fresh process that reports its peak resident memory (VmHWM) and wall time at exit;
the job counts per rule come from Snakemake's "Job stats" table (an `infer` job predicts
infer.blocks_per_job blocks). A dry run must not create anything but .snakemake/ (nothing is
downloaded). SLURM submissions = jobs of rules that are not local, the groups of
profiles/slurm/config.yaml (a region's label chain, training + export) counted as one each.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pstats
import re
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import geopandas as gpd
import numpy as np
import record
import shapely
import shapely.affinity
import yaml
from pyproj import Transformer
from shapely.geometry import MultiPoint, Polygon

from l2h.core.blocks import blocks_for_regions
from l2h.inputs.regions import dissolved_regions, region_geometries

ROOT = Path(__file__).resolve().parents[1]
CHINA = ROOT / "examples" / "china.yaml"
SLURM_PROFILE = ROOT / "profiles" / "slurm" / "config.yaml"
OUT = ROOT / "bench" / "results" / "national_dag.json"
AREA_KM2 = 9.6e6
CENTRE_LONLAT = (104.0, 35.0)
# China's 34 provincial-level divisions (the polygons are synthetic, only the names are real)
PINYIN = ("anhui beijing chongqing fujian gansu guangdong guangxi guizhou hainan hebei heilongjiang henan "
          "hong_kong hubei hunan inner_mongolia jiangsu jiangxi jilin liaoning macau ningxia qinghai shaanxi "
          "shandong shanghai shanxi sichuan taiwan tianjin tibet xinjiang yunnan zhejiang").split()
TARGETS = {"dag_seconds": 60, "peak_rss_mb": 4096, "infer_submissions": 5000}

_CHILD = """
import atexit, re, sys, time
t0 = time.perf_counter()
def _report():
    hwm = re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)
    print(f"L2H_BENCH {hwm} {time.perf_counter() - t0:.3f} {time.process_time():.3f}", file=sys.__stderr__,
          flush=True)
atexit.register(_report)
from snakemake.cli import main
profile_out, sys.argv = sys.argv[1], ["snakemake", *sys.argv[2:]]
if profile_out:
    import cProfile
    cProfile.run("main()", profile_out)
else:
    main()
"""


def synthetic_provinces(n: int = 34, seed: int = 0, crs: str = "ESRI:102025") -> gpd.GeoDataFrame:
    """n Voronoi provinces of a wobbly ellipse of AREA_KM2 (in `crs`, equal-area), in EPSG:4326."""
    rng = np.random.default_rng(seed)
    cx, cy = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(*CENTRE_LONLAT)
    t = np.linspace(0, 2 * np.pi, 720, endpoint=False)
    wobble = 1 + sum(rng.uniform(0.02, 0.08) * np.cos(k * t + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5, 9))
    outline = Polygon(np.c_[cx + 1.7 * wobble * np.cos(t), cy + wobble * np.sin(t)])
    scale = math.sqrt(AREA_KM2 * 1e6 / outline.area)
    outline = shapely.affinity.scale(outline, scale, scale, origin=(cx, cy))
    xmin, ymin, xmax, ymax = outline.bounds
    seeds = []
    while len(seeds) < n:  # denser in the east and south, as China's provinces are
        x, y = rng.uniform(xmin, xmax), rng.uniform(ymin, ymax)
        east = (x - xmin) / (xmax - xmin)
        if outline.contains(shapely.Point(x, y)) and rng.uniform() < 0.15 + 0.85 * east ** 2:
            seeds.append((x, y))
    cells = shapely.voronoi_polygons(MultiPoint(seeds), extend_to=outline.buffer(1e5))
    polygons = [shapely.segmentize(cell.intersection(outline), 5000) for cell in cells.geoms]
    frame = gpd.GeoDataFrame({"name": [p.replace("_", " ").title() for p in PINYIN[:n]], "pinyin": PINYIN[:n]},
                             geometry=polygons, crs=crs)
    return frame.to_crs("EPSG:4326")


def submissions(counts: dict[str, int], local: set[str], groups: dict[str, str]) -> dict:
    """SLURM submissions: one per non-local job; the rules of a group (one job each per region or
    per run) count once per job of the group's most frequent rule."""
    per_group: dict[str, int] = {}
    single = 0
    for rule, n in counts.items():
        if rule in local or rule == "all":
            continue
        if rule in groups:
            per_group[groups[rule]] = max(per_group.get(groups[rule], 0), n)
        else:
            single += n
    return {"infer_submissions": counts.get("infer", 0), "group_submissions": per_group,
            "total": single + sum(per_group.values())}


def dry_run(config: Path, workdir: Path, profile_out: str = "", targets: tuple[str, ...] = ()) -> dict:
    """One `snakemake -n [targets]` in a fresh process: job counts, wall seconds, peak RSS."""
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-c", _CHILD, profile_out, *targets, "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
           "-n", "--quiet", "rules", "--workflow-profile", "none", "--configfile", str(config)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
    wall = time.perf_counter() - start
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"dry run failed:\n{output[-3000:]}")
    hwm_kb, inner, cpu = re.search(r"L2H_BENCH (\d+) ([\d.]+) ([\d.]+)", proc.stderr).groups()
    table = output.split("Job stats:", 1)[1].split("total", 1)[0]
    counts = {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}
    created = sorted(p.name for p in workdir.iterdir() if p.name != ".snakemake")
    if created:
        raise RuntimeError(f"the dry run wrote {created} into {workdir}")
    return {"jobs": counts, "total_jobs": sum(counts.values()), "dag_seconds": round(float(inner), 2),
            "cpu_seconds": round(float(cpu), 2), "process_seconds": round(wall, 2),
            "peak_rss_mb": round(int(hwm_kb) / 1024, 1), "load_average_1min": round(os.getloadavg()[0], 2)}


def parse_only(config: Path, workdir: Path) -> dict:
    """Seconds and peak RSS of parsing the Snakefile alone (`snakemake --list-rules`): the
    configuration, the regions and the block list, no DAG."""
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-c", _CHILD, "", "-s", str(ROOT / "Snakefile"), "-d", str(workdir), "--list-rules",
           "--workflow-profile", "none", "--configfile", str(config)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir, check=True)
    hwm_kb, inner, cpu = re.search(r"L2H_BENCH (\d+) ([\d.]+) ([\d.]+)", proc.stderr).groups()
    return {"parse_seconds": round(float(inner), 2), "parse_cpu_seconds": round(float(cpu), 2),
            "parse_peak_rss_mb": round(int(hwm_kb) / 1024, 1)}


def profile_split(stats_path: str) -> dict:
    """Cumulative seconds of the parse (Workflow.include of the Snakefile) and of the DAG steps."""
    stats = pstats.Stats(stats_path).stats
    wanted = {
        "parse_snakefile": ("snakemake/workflow.py", "include"),
        "l2h_parse_blocks_for_regions": ("l2h/core/blocks.py", "blocks_for_regions"),
        "l2h_parse_read_regions": ("l2h/inputs/regions.py", "dissolved_regions"),
        "dag_init": ("snakemake/dag.py", "init"),
        "dag_update_needrun": ("snakemake/dag.py", "update_needrun"),
        "dag_postprocess": ("snakemake/dag.py", "postprocess"),
        "input_function_region_chunk_manifests": ("common.smk", "region_chunk_manifests"),
    }
    out = {}
    for name, (file_end, func) in wanted.items():
        hits = [v[3] for (f, _, fn), v in stats.items() if f.endswith(file_end) and fn == func]
        out[name] = round(max(hits), 2) if hits else None
    top = sorted(((v[3], f"{Path(f).name}:{fn}") for (f, _, fn), v in stats.items()), reverse=True)
    out["top_cumulative"] = [[name, round(s, 2)] for s, name in top[:25]]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 4, 16, 34])
    parser.add_argument("--profile", type=int, metavar="N", help="also dry-run N provinces under cProfile")
    parser.add_argument("--block-size", type=int, help="instead of examples/china.yaml's grid.block_size")
    parser.add_argument("--blocks-per-job", type=int, help="instead of examples/china.yaml's infer.blocks_per_job")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--largest-alone", action="store_true",
                        help="also dry-run the largest province's map alone (the largest count's config)")
    args = parser.parse_args()
    china = yaml.safe_load(CHINA.read_text())
    if args.block_size:
        china["grid"]["block_size"] = args.block_size
    if args.blocks_per_job:
        china["infer"]["blocks_per_job"] = args.blocks_per_job
    slurm = yaml.safe_load(SLURM_PROFILE.read_text()) if SLURM_PROFILE.exists() else {}
    block_m = china["grid"]["block_size"] * china["grid"]["resolution"]
    results = {"config": "examples/china.yaml", "crs": china["grid"]["crs"], "block_size": china["grid"]["block_size"],
               "block_km2": (block_m / 1000) ** 2, "blocks_per_job": china["infer"]["blocks_per_job"],
               "slurm_profile": str(SLURM_PROFILE.relative_to(ROOT)) if slurm else None, "runs": []}
    with TemporaryDirectory() as tmp:
        provinces = synthetic_provinces()
        area = provinces.to_crs(china["grid"]["crs"]).area / 1e6
        results["provinces"] = {"count": len(provinces), "total_km2": round(float(area.sum())),
                                "min_km2": round(float(area.min())), "max_km2": round(float(area.max()))}
        # the local rules (rules/*.smk `localrule: True`) of this configuration: downloads, a tile
        # service's cache and the small VRTs joining a region's cache with its neighbours'
        fetched = any(china["imagery"].get(k) for k in ("xyz", "wmts", "stac"))
        cached = fetched or china["imagery"]["cache"]
        local = ({"fetch_product", "fetch_osm"} | ({"fetch_imagery"} if fetched else set())
                 | ({"imagery_context"} if cached else set()))
        for n in args.counts:
            regions = Path(tmp) / f"provinces_{n}.gpkg"
            provinces.sort_values("pinyin").head(n).to_file(regions, engine="pyogrio")
            config = Path(tmp) / f"china_{n}.yaml"
            config.write_text(yaml.safe_dump({**china, "regions": {**china["regions"], "file": str(regions)}}))
            geometries = region_geometries(dissolved_regions(regions, "name"), china["grid"]["crs"])
            run = {"provinces": n, "inference_blocks": len(blocks_for_regions(geometries, block_m)),
                   **dry_run(config, Path(tmp) / f"work_{n}"), **parse_only(config, Path(tmp) / f"parse_{n}")}
            run["slurm"] = submissions(run["jobs"], local, slurm.get("groups") or {})
            results["runs"].append(run)
            print(json.dumps({k: run[k] for k in ("provinces", "inference_blocks", "total_jobs", "dag_seconds",
                                                  "cpu_seconds", "peak_rss_mb")}))
        n = max(args.counts)
        if args.largest_alone:  # one province's map as the target: only its blocks are in the DAG
            used = provinces.assign(km2=area).sort_values("pinyin").head(n)
            target = f"results/maps/{used.sort_values('km2').iloc[-1]['pinyin']}.tif"
            run = {"provinces": n, "target": target,
                   **dry_run(Path(tmp) / f"china_{n}.yaml", Path(tmp) / "work_one", targets=(target,))}
            results["largest_province_alone"] = run
            print(json.dumps({k: run[k] for k in ("target", "total_jobs", "dag_seconds", "peak_rss_mb")}))
        if args.profile:
            prof = str(Path(tmp) / "dag.prof")
            timed = dry_run(Path(tmp) / f"china_{args.profile}.yaml", Path(tmp) / "work_profiled", profile_out=prof)
            results["profile"] = {"provinces": args.profile, "jobs": timed["total_jobs"],
                                  "dag_seconds_under_cprofile": timed["dag_seconds"], **profile_split(prof)}
    whole = results["runs"][-1]
    results["targets"] = TARGETS
    results["meets_targets"] = {"dag_seconds": whole["dag_seconds"] <= TARGETS["dag_seconds"],
                                "peak_rss_mb": whole["peak_rss_mb"] <= TARGETS["peak_rss_mb"],
                                "infer_submissions": whole["slurm"]["infer_submissions"]
                                <= TARGETS["infer_submissions"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record.write(args.out, results)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
