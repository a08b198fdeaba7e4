"""`l2h` subcommands of evaluation (rules/evaluate.smk): reference points, pixel scores, survey comparison.

Each handler reads its arguments and calls the stage's functions (imported when it runs, so
that `l2h --help` stays fast); `register` adds the subcommands to the parser."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from l2h.core.arguments import region_file_args
from l2h.core.errors import L2HError

log = logging.getLogger(__name__)


def _parse_recode(items: list[str]) -> dict[int, int]:
    recode = {}
    for item in items:
        src, sep, dst = item.partition("=")
        if not sep or not src.strip().isdigit() or not dst.strip().isdigit():
            raise L2HError(f"--recode {item!r}: expected FROM=TO with integer codes, e.g. 6=5")
        recode[int(src)] = int(dst)
    return recode


def _evaluate(args: argparse.Namespace) -> None:
    from l2h.evaluation.evaluate import evaluate
    from l2h.inputs.regions import dissolved_regions
    from l2h.sampling.block_stats import training_block_bounds

    regions = dissolved_regions(args.regions, args.name_field, args.layer, args.slug_field)
    training = None
    if args.training_blocks:
        if not (args.blocks and args.crs):
            raise L2HError("evaluate: --training-blocks needs --blocks (the block table) and --crs (the run's CRS)")
        training = (training_block_bounds(args.blocks, args.training_blocks), args.crs)
    unpredictable = []
    if args.model:
        from l2h.core.onnx_metadata import onnx_metadata

        meta = onnx_metadata(args.model)
        unpredictable = meta.get("unpredictable_classes", meta.get("extra", {}).get("suppressed_classes") or [])
    doc = evaluate(json.loads(args.settings), args.map, args.product, args.out_dir, regions=regions,
                   run_name=args.run_name, training_blocks=training, unpredictable=unpredictable)
    if doc["classes_the_model_cannot_predict"]:
        log.warning("the model can never predict %s: no training label showed them (their reference points count "
                    "as errors of the map)", ", ".join(f"{c['code']} {c['class']}"
                                                       for c in doc["classes_the_model_cannot_predict"]))
    for part, entry in [(p.replace("_", " "), doc[p]) for p in ("held_out", "in_training_blocks") if p in doc] + [
            ("all points", doc)]:
        log.info("accuracy, %s: map OA %s on %d points; %s", part, _fmt(entry["map"]["oa"]), entry["map"]["n_points"],
                 ", ".join(f"{k} OA {_fmt(v['oa'])}" for k, v in entry["products"].items()))


def _survey(args: argparse.Namespace) -> None:
    from l2h.evaluation.survey import compare_survey
    from l2h.inputs.regions import dissolved_regions

    regions = dissolved_regions(args.regions, args.name_field, args.layer, args.slug_field)
    names = dict(regions["name"].items())
    maps = {Path(m).stem: m for m in args.map}
    unknown = sorted(set(maps) - set(names))
    if unknown:
        raise L2HError(f"survey: map(s) {', '.join(unknown)} are not regions of {args.regions}")
    compare_survey(json.loads(args.settings), maps, {s: names[s] for s in maps}, args.out_dir)


def _reference_points(args: argparse.Namespace) -> None:
    from l2h.evaluation.reference_points import draw_reference_points, write_points, write_strata_areas

    points, stats = draw_reference_points(args.raster, args.n, seed=args.seed, stratified=args.stratified,
                                          min_per_class=args.min_per_class, recode=_parse_recode(args.recode),
                                          exclude=args.exclude)
    write_points(points, args.out)
    if args.strata_areas:
        write_strata_areas(stats, args.strata_areas)
    log.info("%d reference points written to %s (%s): %s", len(points), args.out,
             "stratified by class" if args.stratified else "simple random",
             ", ".join(f"class {c}: {s['points']} of {s['pixels']} px" for c, s in stats.items()))


def _score_pixels(args: argparse.Namespace) -> None:
    from l2h.core.io import atomic_path
    from l2h.evaluation.evaluate import Legend
    from l2h.evaluation.score_pixels import score_pixels
    from l2h.inputs.fetch_product import read_manifest
    from l2h.inputs.regions import read_region_geometry
    from l2h.sampling.block_stats import training_block_bounds

    settings = json.loads(args.settings)
    legend = Legend.from_config(settings["legend"], settings["mapping"])
    crosswalks = {}
    for item in args.crosswalk:
        pid, sep, table = item.partition("=")
        try:
            crosswalks[pid] = json.loads(table) if sep else None
        except json.JSONDecodeError:
            crosswalks[pid] = None
        if not isinstance(crosswalks[pid], dict):
            raise L2HError(f"--crosswalk {item!r}: expected PRODUCT={{\"code\": reference class, ...}}")
    regions = None
    if args.region:
        geoms = [read_region_geometry(r) for r in args.region]
        regions = ([g.geometry for g in geoms], geoms[0].crs)
    exclude = None
    if args.training_blocks:
        if not (args.blocks and args.crs):
            raise L2HError("score-pixels: --training-blocks needs --blocks (the block table) and --crs")
        exclude = (training_block_bounds(args.blocks, args.training_blocks), args.crs)
    maps = {"map": args.map}
    for item in args.extra_map:
        name, sep, path = item.partition("=")
        if not sep or not name or not path or name in maps:
            raise L2HError(f"--extra-map {item!r}: expected NAME=PATH with a new name, e.g. network=results/maps/"
                           f"network/national.tif")
        maps[name] = path
    labels = {"consensus_label": args.coarse_label} if args.coarse_label else None
    recode = _parse_recode(args.recode)
    result = score_pixels(maps, args.reference, legend, recode, [read_manifest(m) for m in args.product], crosswalks,
                          regions, exclude, labels=labels, cell_size=args.cell_size, tolerance=args.boundary_tolerance)
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    for scope, part in (("held-out pixels", result), ("where the label has a class", result.get("where_labelled"))):
        if part:
            log.info("%s (%s): %s", scope, f"{part['n_pixels']:,}", "; ".join(
                f"{k} OA {v['oa']:.3f}, boundary F1 {_fmt(v['boundary_f1'])}, sub-cell OA {_fmt(v['subcell_oa'])}"
                for k, v in part["sources"].items()))
    if args.figure:
        from l2h.evaluation.detail_figure import detail_figure

        detail_figure(args.figure, args.imagery, args.reference[0], maps["map"], args.coarse_label, legend,
                      recode, exclude)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def register(sub: argparse._SubParsersAction) -> None:
    """Add the evaluation subcommands to the `l2h` parser."""
    p = sub.add_parser("evaluate", help="score the map and every product at reference points",
                       description="Sample our map and each product (its own tiles and CRS) at the reference points, "
                                   "score them in the reference legend (OA, kappa, per-class accuracies, F1, IoU, "
                                   "OA per region, bootstrap intervals, area-weighted estimates when stratified) and "
                                   "write accuracy.json, CSV tables and PNG figures.")
    p.add_argument("--settings", required=True, help="the config's evaluation.points section as JSON")
    p.add_argument("--map", required=True, help="our map (results/maps/national.tif)")
    p.add_argument("--product", action="append", default=[], help="product manifest (repeat)")
    region_file_args(p)
    p.add_argument("--run-name", default="run", help="run name for the report")
    p.add_argument("--model", default=None, help="the ONNX model (its metadata names the classes it cannot predict)")
    p.add_argument("--blocks", default=None, help="block table (resources/blocks.csv)")
    p.add_argument("--training-blocks", default=None,
                   help="selected blocks (resources/training_blocks.csv): score the points outside them "
                        "(held out) and inside them apart")
    p.add_argument("--crs", default=None, help="the run's CRS (of the block table)")
    p.add_argument("--out-dir", required=True, help="folder for accuracy.json, tables and figures")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("survey", help="compare the map's class shares per region with survey statistics",
                       description="Class shares of each region's map (in the survey's legend) against the survey "
                                   "table, and the weighted error sum_c w_c |share difference| (w = survey share) "
                                   "per region and over all regions.")
    p.add_argument("--settings", required=True, help="the config's evaluation.survey section as JSON")
    p.add_argument("--map", nargs="+", required=True, help="the regions' maps results/maps/<region>.tif")
    region_file_args(p)
    p.add_argument("--out-dir", required=True, help="folder for survey_shares.csv, survey_error.csv, survey.png")
    p.set_defaults(func=_survey)

    p = sub.add_parser("reference-points", help="draw random reference points from reference class rasters",
                       description="Draw simple or stratified random pixel centres from the valid pixels of one "
                                   "or more (non-overlapping) class rasters, e.g. a 1 m land-cover map, and "
                                   "write them as the CSV the evaluation reads (x, y, crs, class).")
    p.add_argument("--raster", nargs="+", required=True, help="reference class raster(s)")
    p.add_argument("--n", type=int, required=True, help="number of points")
    p.add_argument("--stratified", action="store_true",
                   help="stratify by class: --min-per-class each, the rest by area share")
    p.add_argument("--min-per-class", type=int, default=50, help="points per class at least (stratified)")
    p.add_argument("--recode", nargs="*", default=[], metavar="FROM=TO",
                   help="merge codes before drawing, e.g. 6=5 (roads count as impervious)")
    p.add_argument("--exclude", nargs="*", type=int, default=[], metavar="CODE",
                   help="codes never drawn (besides each raster's nodata value)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--out", required=True, help="output CSV (x, y, crs, class)")
    p.add_argument("--strata-areas", default=None, help="also write stratum,area_km2 per class")
    p.set_defaults(func=_reference_points)

    p = sub.add_parser("score-pixels", help="score the map and products pixel by pixel against reference rasters",
                       description="Wall-to-wall accuracy against reference class rasters (e.g. a 1 m land-cover "
                                   "map): the map and each product on the same pixels, in the reference legend, "
                                   "optionally only inside some regions and outside the training blocks (spatial "
                                   "cross-validation). Writes a JSON of OA, kappa, per-class IoU and confusion.")
    p.add_argument("--map", required=True, help="our map (a region or the national COG)")
    p.add_argument("--reference", nargs="+", required=True, help="reference class raster(s)")
    p.add_argument("--settings", required=True,
                   help="JSON with the reference `legend` and the `mapping` of our classes (the config's "
                        "evaluation.points section serves)")
    p.add_argument("--recode", nargs="*", default=[], metavar="FROM=TO",
                   help="merge reference codes first, e.g. 5=4 6=4")
    p.add_argument("--product", action="append", default=[], help="product manifest to score too (repeat)")
    p.add_argument("--crosswalk", action="append", default=[], metavar="PRODUCT=JSON",
                   help='hard mapping of a product\'s codes to reference classes, e.g. nlcd=\'{"41": 2, "21": 3}\' '
                        "(default: a code is right when the reference is in its class set)")
    p.add_argument("--region", action="append", default=[],
                   help="region GeoPackage (from region-geometry) to score inside (repeat; default everywhere)")
    p.add_argument("--blocks", default=None, help="block table (resources/blocks.csv)")
    p.add_argument("--training-blocks", default=None, help="leave out the pixels of these blocks")
    p.add_argument("--crs", default=None, help="the run's CRS (of the block table)")
    p.add_argument("--extra-map", action="append", default=[], metavar="NAME=PATH",
                   help="another map to score beside --map, e.g. network=results/maps/network/national.tif (repeat)")
    p.add_argument("--coarse-label", nargs="*", default=[],
                   help="the coarse training label (resources/labels/<region>.tif of every region): scored where "
                        "it has a class, beside the maps on the same pixels")
    p.add_argument("--cell-size", type=float, default=10.0,
                   help="coarse cell size in reference CRS units (cells at its multiples) for the sub-cell and "
                        "mixed-cell measures and the perfect coarse map (default 10)")
    p.add_argument("--boundary-tolerance", type=float, default=2.0,
                   help="class-boundary F1: an edge counts as found within this many reference pixels (default 2)")
    p.add_argument("--figure", default=None, help="also draw the 1 m detail figure (PNG): imagery, coarse label, "
                                                  "map and reference at the held-out windows with most detail")
    p.add_argument("--imagery", nargs="*", default=[], help="the imagery (files composited in order), for --figure")
    p.add_argument("--out", required=True, help="output JSON")
    p.set_defaults(func=_score_pixels)
