"""The `l2h` command: one subcommand per workflow step; each Snakemake rule calls one of them."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
from pathlib import Path

from l2h import __version__
from l2h.errors import L2HError
from l2h.secrets import RedactingFilter

log = logging.getLogger("l2h")


def _demo_world(args: argparse.Namespace) -> None:
    from l2h.demo import generate_demo_world

    start = time.perf_counter()
    manifest = generate_demo_world(Path(args.outdir), seed=args.seed, width_m=args.width_m,
                                   height_m=args.height_m)
    log.info("demo world (seed %d, %d x %d m) written to %s in %.1f s", args.seed, args.width_m,
             args.height_m, args.outdir, time.perf_counter() - start)
    for product, agreement in manifest.get("product_agreement", {}).items():
        log.info("  %s agrees with the truth's 10 m majority on %.1f %% of the country", product,
                 100 * agreement)


def _region_geometry(args: argparse.Namespace) -> None:
    from l2h.regions import write_region_geometry

    attrs = write_region_geometry(args.regions, args.region, args.out, args.crs, args.name_field,
                                  layer=args.layer, slug_field=args.slug_field)
    log.info("region %s (%s): %.3f km² written to %s", attrs["slug"], attrs["name"], attrs["area_km2"],
             args.out)


def _download(args: argparse.Namespace) -> None:
    from l2h.download import download
    from l2h.fetch import fetch_product
    from l2h.products import resolve_product

    if args.url:
        download(args.url, args.out, retries=args.retries, backoff=args.backoff, timeout=args.timeout,
                 progress=not args.no_progress)
        return
    if not (args.spec and args.bounds):
        raise L2HError("l2h download --product needs --spec and --bounds")
    product = resolve_product(args.product, json.loads(args.spec), [tuple(b) for b in json.loads(args.bounds)])
    manifest = fetch_product(product, args.out, max_workers=args.max_workers, retries=args.retries,
                             backoff=args.backoff, timeout=args.timeout, progress=not args.no_progress)
    log.info("product %s: %d file(s) ready, %d tile(s) not on the server", args.product, len(manifest["files"]),
             len(manifest["missing"]))


def _roads(args: argparse.Namespace) -> None:
    from l2h.regions import read_region_geometry
    from l2h.roads import extract_roads, write_roads

    region = read_region_geometry(args.region)
    roads = extract_roads(args.osm, region.geometry, region.crs, json.loads(args.widths))
    if roads.empty:
        log.warning("region %s: the OSM file %s has no roads of the configured types inside it; the label "
                    "gets no road class", region.slug, args.osm)
    write_roads(roads, args.out)
    log.info("region %s: %d road segment(s) written to %s", region.slug, len(roads), args.out)


def _harmonize(args: argparse.Namespace) -> None:
    from l2h.fetch import read_manifest
    from l2h.harmonize import harmonize_region
    from l2h.labelstats import summarize, write_stats
    from l2h.quicklook import quicklook_from_file
    from l2h.regions import read_region_geometry
    from l2h.roads import read_roads, road_burner

    region = read_region_geometry(args.region)
    products = [read_manifest(m) for m in args.product]
    burn = road_burner(read_roads(args.roads), args.min_cover) if args.roads else None
    stats = harmonize_region(region.geometry, region.crs, products, args.out, resolution=args.resolution,
                             rule=args.agreement, window=args.window, burn=burn, region_name=region.slug,
                             sets_out=args.sets_out)
    summary = summarize(stats, region.slug)
    write_stats(summary, args.stats_csv, args.stats_json)
    quicklook_from_file(args.quicklook, args.out, f"{region.name}: training label ({args.resolution:g} m)")
    log.info("region %s: %.1f %% of the region labelled, %.1f %% ignored (products disagree)", region.slug,
             100 * summary["labelled_share"], 100 * summary["ignored_share"])


def _region_file_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--regions", required=True, help="regions vector file")
    p.add_argument("--name-field", required=True, help="attribute holding region names")
    p.add_argument("--slug-field", default=None, help="attribute holding ASCII identifiers")
    p.add_argument("--layer", default=None, help="layer of a multi-layer file")


def _block_stats(args: argparse.Namespace) -> None:
    from l2h.blocks import blocks_for_regions
    from l2h.blockstats import block_counts, write_table
    from l2h.regions import dissolved_regions, region_geometries

    regions = dissolved_regions(args.regions, args.name_field, args.layer, args.slug_field)
    blocks = [b for b in blocks_for_regions(region_geometries(regions, args.crs), args.block_size * args.resolution)
              if args.region in b.touches]
    if args.expect_blocks is not None and len(blocks) != args.expect_blocks:
        raise L2HError(f"region {args.region}: {len(blocks)} blocks touch it here, but the Snakefile computed "
                       f"{args.expect_blocks}; are Snakemake and this job using different shapely/PROJ versions?")
    table = block_counts(args.label, args.region, blocks)
    write_table(table, args.out)
    log.info("region %s: pixel counts of %d block(s) written to %s", args.region, len(table), args.out)


def _evaluate(args: argparse.Namespace) -> None:
    from l2h.blockstats import training_block_bounds
    from l2h.evaluate import evaluate
    from l2h.regions import dissolved_regions

    regions = dissolved_regions(args.regions, args.name_field, args.layer, args.slug_field)
    training = None
    if args.training_blocks:
        if not (args.blocks and args.crs):
            raise L2HError("evaluate: --training-blocks needs --blocks (the block table) and --crs (the run's CRS)")
        training = (training_block_bounds(args.blocks, args.training_blocks), args.crs)
    doc = evaluate(json.loads(args.settings), args.map, args.product, args.out_dir, regions=regions,
                   run_name=args.run_name, training_blocks=training)
    for part in ("held_out", "in_training_blocks"):
        if part in doc:
            log.info("accuracy, %s: map OA %.3f on %d points; %s", part.replace("_", " "), doc[part]["map"]["oa"],
                     doc[part]["map"]["n_points"],
                     ", ".join(f"{k} OA {v['oa']:.3f}" for k, v in doc[part]["products"].items()))
    log.info("accuracy, all points: map OA %.3f on %d points; %s", doc["map"]["oa"], doc["map"]["n_points"],
             ", ".join(f"{k} OA {v['oa']:.3f}" for k, v in doc["products"].items()))


def _survey(args: argparse.Namespace) -> None:
    from l2h.regions import dissolved_regions
    from l2h.survey import compare_survey

    regions = dissolved_regions(args.regions, args.name_field, args.layer, args.slug_field)
    names = dict(regions["name"].items())
    maps = {Path(m).stem: m for m in args.map}
    unknown = sorted(set(maps) - set(names))
    if unknown:
        raise L2HError(f"survey: map(s) {', '.join(unknown)} are not regions of {args.regions}")
    compare_survey(json.loads(args.settings), maps, {s: names[s] for s in maps}, args.out_dir)


def _imagery_vrt(args: argparse.Namespace) -> None:
    from l2h.imagery import build_vrt

    build_vrt(args.paths, args.out)
    log.info("mosaic VRT of %d file(s) written to %s", len(args.paths), args.out)


def _fetch_imagery(args: argparse.Namespace) -> None:
    import os

    from l2h.imagery import cache_imagery, xyz_wms_xml
    from l2h.regions import read_region_geometry
    from l2h.secrets import expand as expand_secrets
    from l2h.secrets import register as register_secret

    if args.xyz:
        xyz = json.loads(args.xyz)
        key = None
        if xyz.get("api_key_env"):
            key = os.environ.get(xyz["api_key_env"])
            if not key:
                raise L2HError(f"imagery.xyz.api_key_env: the environment variable {xyz['api_key_env']} "
                               f"is not set; export it with the tile service's API key")
            register_secret(key)
        url = expand_secrets(xyz["url"], "imagery.xyz.url")
        source = xyz_wms_xml(url, xyz["zoom"], bands=xyz.get("bands", 3), api_key=key)
    else:
        source = args.source
    region = read_region_geometry(args.region)
    out = Path(args.out)
    paths = cache_imagery(source, region.geometry, args.crs, args.resolution, args.block_size,
                          out.with_suffix(""), out, resampling=args.resampling)
    log.info("region %s: %d imagery block(s) cached, mosaic %s", region.slug, len(paths), out)


def _sample(args: argparse.Namespace) -> None:
    import pandas as pd

    from l2h.io import atomic_path
    from l2h.samplemap import plot_selection
    from l2h.sampling import select_training_blocks

    from l2h.blockstats import merge_block_counts, write_table

    blocks = merge_block_counts([pd.read_csv(p, dtype={"block_id": str, "region": str, "label_region": str})
                                 for p in args.blocks])
    result = select_training_blocks(
        blocks, target_fraction=args.target_fraction, tolerance=args.tolerance,
        min_blocks_per_region=args.min_blocks_per_region, min_labelled_share=args.min_labelled_share,
        train_regions=json.loads(args.train_regions) if args.train_regions else None, seed=args.seed,
        time_limit=args.time_limit)
    write_table(blocks, args.all_blocks)
    with atomic_path(args.out) as tmp:
        pd.DataFrame({"block_id": result.selected}).to_csv(tmp, index=False)
    with atomic_path(args.shares) as tmp:
        result.shares.to_csv(tmp, index=False, float_format="%.6f")
    with atomic_path(args.summary) as tmp:
        Path(tmp).write_text(json.dumps(result.summary(), indent=1))
    plot_selection(args.region, blocks, result.selected, args.map,
                   f"Training blocks: {len(result.selected)} of {len(blocks)}, "
                   f"{100 * result.selected_fraction:.1f} % of the area")
    gap = "n/a" if result.gap is None else f"{result.gap:.2g}"
    log.info("%d of %d blocks chosen (%.1f %% of the area; %s, status %s, gap %s, %.1f s); largest class-share "
             "deviation %.2f percentage points", len(result.selected), len(blocks), 100 * result.selected_fraction,
             result.method, result.status, gap, result.seconds, 100 * result.max_share_deviation())


def _union_of_regions(paths: list[str]):
    from shapely import union_all

    from l2h.regions import read_region_geometry

    regions = [read_region_geometry(p) for p in paths]
    return union_all([r.geometry for r in regions]), regions


def _train(args: argparse.Namespace) -> None:
    import shutil

    from l2h.data import load_training_specs, training_class_areas
    from l2h.imagery import band_names
    from l2h.io import atomic_path
    from l2h.train import TrainConfig, train

    imagery = json.loads(args.imagery)
    specs = load_training_specs(args.blocks, args.training_blocks, args.labels, imagery, crs=args.crs,
                                resolution=args.resolution, label_sets=args.label_sets)
    cfg = TrainConfig.from_dict(json.loads(args.settings))
    summary = train(specs, band_names(specs[0].imagery), cfg, args.out, Path(args.work_dir),
                    class_areas=training_class_areas(args.blocks, args.training_blocks))
    with atomic_path(args.metrics) as tmp:
        shutil.copyfile(Path(args.work_dir) / "metrics.csv", tmp)
    final = summary["metrics"]["final"]
    log.info("trained %d steps on %s in %.0f s (%.0f training pixels/s); last steps: loss %.3f, agreement with "
             "the coarse label %.1f %%, confident share %.1f %%", summary["steps"], summary["device"],
             summary["seconds"], summary["pixels_per_s"], final["total"], 100 * final["agreement"],
             100 * final["confident_share"])


def _export(args: argparse.Namespace) -> None:
    from l2h.export import export_onnx

    report = export_onnx(args.model, args.out, args.parity)
    log.info("ONNX model %s written; torch vs onnxruntime max abs diff %.2e (tolerance %.0e)", args.out,
             report["max_abs_diff"], report["tolerance"])


def _model_info(args: argparse.Namespace) -> None:
    from l2h.model import L2HNet, count_parameters, flops_per_pixel, load_model, receptive_field

    if args.model:
        model, meta = load_model(args.model)
        source = f"{args.model} (bands {', '.join(meta.get('bands', []))})"
    else:
        model, source = L2HNet(args.in_channels, 11, args.width), "untrained"
    info = {"width": model.width, "in_channels": model.in_channels, "num_classes": model.num_classes,
            "blocks": model.num_blocks, "parameters": count_parameters(model),
            "flops_per_pixel": flops_per_pixel(model), "receptive_field_px": receptive_field(model)}
    print(f"L2HNet, {source}")
    for key, value in info.items():
        print(f"  {key:<20} {value:,}" if isinstance(value, int) else f"  {key:<20} {value}")
    print(f"  {'GFLOP per km² at 1 m':<20} {info['flops_per_pixel'] * 1e6 / 1e9:,.1f}")


def _infer(args: argparse.Namespace) -> None:
    from l2h.blocks import block_bounds, parse_block_id
    from l2h.chunks import chunk_key
    from l2h.infer import load_onnx, predict_chunk
    from l2h.labelprior import LabelPrior

    _, regions = _union_of_regions(args.mask)
    block_m = args.block_size * args.resolution
    blocks = [(b, block_bounds(*parse_block_id(b), block_m)) for b in args.blocks]
    settings = {k: v for k, v in vars(args).items() if k not in ("func", "log", "verbose", "threads", "device")}
    if Path(args.imagery).is_file():  # a mosaic VRT or a file rewritten since: new imagery (too big to hash)
        stat = Path(args.imagery).stat()
        settings["imagery_file"] = [stat.st_size, stat.st_mtime_ns]
    if args.label_prior > 0 and not args.label_sets:
        raise L2HError("infer: --label-prior needs the class-set labels of the regions (--label-sets)")
    sets = args.label_sets if args.label_prior > 0 else []
    key = chunk_key(settings, [args.model, *args.mask, *sets])
    model = load_onnx(args.model, threads=args.threads, device=args.device)
    with contextlib.ExitStack() as stack:
        prior = stack.enter_context(LabelPrior(sets, args.label_prior)) if sets else None
        stats = predict_chunk(model, args.imagery, blocks, args.resolution, args.crs,
                              {r.slug: r.geometry for r in regions}, args.out_dir, args.manifest, key, args.region,
                              confidence=args.confidence, tile=args.tile, batch=args.batch, strict=args.strict,
                              prior=prior, post_threads=args.threads)
    seconds = max(stats["seconds"], 1e-9)
    log.info("%d block(s) predicted, %d kept from an interrupted attempt: %d of %d pixels mapped in %.1f s "
             "(%.0f pixels/s, %s)", stats["blocks"] - stats["kept"], stats["kept"], stats["valid_pixels"],
             stats["pixels"], seconds, stats["pixels"] / seconds, ", ".join(model.session.get_providers()))


def _mosaic(args: argparse.Namespace) -> None:
    from l2h.mosaic import mosaic
    from l2h.quicklook import confidence_quicklook_from_file, quicklook_from_file

    geometry, regions = _union_of_regions(args.region)
    name = regions[0].name if len(regions) == 1 else args.title
    # a region's mosaic reads, from the chunk manifests, only the blocks touching that region
    region = regions[0].slug if len(regions) == 1 else None
    mosaic(args.blocks, geometry, regions[0].crs, args.resolution, args.out, layer=args.layer, region=region)
    if args.layer == "confidence":
        confidence_quicklook_from_file(args.quicklook, args.out, f"{name}: confidence of the 1 m map")
    else:
        quicklook_from_file(args.quicklook, args.out, f"{name}: 1 m land cover")
    log.info("%s: %s COG written to %s from %d input(s)", name, args.layer, args.out, len(args.blocks))


def _footprint(args: argparse.Namespace) -> None:
    from l2h.regions import write_footprint_region

    info = write_footprint_region(args.paths, args.name, args.out)
    log.info("region %r: footprint of %d file(s), %.3f km² in %s, written to %s", info["name"], info["files"],
             info["area_km2"], info["crs"], args.out)


def _parse_recode(items: list[str]) -> dict[int, int]:
    recode = {}
    for item in items:
        src, sep, dst = item.partition("=")
        if not sep or not src.strip().isdigit() or not dst.strip().isdigit():
            raise L2HError(f"--recode {item!r}: expected FROM=TO with integer codes, e.g. 6=5")
        recode[int(src)] = int(dst)
    return recode


def _reference_points(args: argparse.Namespace) -> None:
    from l2h.refpoints import draw_reference_points, write_points, write_strata_areas

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
    from l2h.blockstats import training_block_bounds
    from l2h.evaluate import Legend
    from l2h.fetch import read_manifest
    from l2h.io import atomic_path
    from l2h.pixelscore import score_pixels
    from l2h.regions import read_region_geometry

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
    result = score_pixels(args.map, args.reference, legend, _parse_recode(args.recode),
                          [read_manifest(m) for m in args.product], crosswalks, regions, exclude)
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    log.info("%s pixels scored (%s in training blocks left out): %s", f"{result['n_pixels']:,}",
             f"{result['excluded_pixels']:,}",
             ", ".join(f"{k} OA {v['oa']:.3f} mIoU {v['miou']:.3f}" for k, v in result["sources"].items()))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="l2h", description="1 m land-cover mapping from 10 m products, OSM roads and ~1 m imagery "
                                "(L2HNet). Each subcommand is one step of the Snakemake workflow.")
    parser.add_argument("--version", action="version", version=f"l2h {__version__}")
    parser.add_argument("--log", metavar="FILE", help="also write log messages to FILE (appended)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug-level messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("demo-world", help="generate the embedded demo country (imagery, products, OSM, "
                                          "regions, reference points, survey) deterministically",
                       description="Generate a small fictional country of 3 provinces in the real "
                                   "formats of the real sources, with its hidden 1 m truth.")
    p.add_argument("outdir", help="folder to write the demo world into")
    p.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")
    p.add_argument("--width-m", type=int, default=4096, help="country extent east-west in metres")
    p.add_argument("--height-m", type=int, default=3072, help="country extent north-south in metres")
    p.set_defaults(func=_demo_world)

    p = sub.add_parser("region-geometry", help="write one region's polygon in the run's CRS",
                       description="Merge and repair one region's features and write them, reprojected "
                                   "to the run's CRS, as a GeoPackage (layer 'region').")
    _region_file_args(p)
    p.add_argument("--region", required=True, help="region identifier (slug)")
    p.add_argument("--crs", required=True, help="the run's CRS, e.g. EPSG:32650")
    p.add_argument("--out", required=True, help="output GeoPackage")
    p.set_defaults(func=_region_geometry)

    p = sub.add_parser("download", help="fetch a product's tiles, or one file (resumable, verified)",
                       description="With --product: resolve a `products.<id>` config entry to the files the "
                                   "regions need, fetch them and write a manifest for harmonize. With --url: "
                                   "fetch one file. http(s) (Range resume, retries), file:// and local paths.")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--product", metavar="ID", help="product identifier (the key under `products`)")
    what.add_argument("--url", help="one file to fetch to --out")
    p.add_argument("--spec", help="with --product: the product's config entry as JSON")
    p.add_argument("--bounds", help="with --product: JSON list of region bounds [west, south, east, north] in degrees")
    p.add_argument("--out", required=True, help="manifest path (tiles land in its folder), or the file for --url")
    p.add_argument("--max-workers", type=int, default=4, help="parallel transfers")
    p.add_argument("--retries", type=int, default=5, help="retries per file")
    p.add_argument("--backoff", type=float, default=1.0, help="first back-off delay in seconds")
    p.add_argument("--timeout", type=float, default=120, help="per-request timeout in seconds")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_download)

    p = sub.add_parser("roads", help="extract a region's OSM roads as buffered surfaces",
                       description="Read highway lines with GDAL's OSM driver, keep the configured types and "
                                   "buffer each by its width in the run's CRS; writes a GeoPackage.")
    p.add_argument("--osm", required=True, help="OSM extract (.osm.pbf or .osm)")
    p.add_argument("--region", required=True, help="region GeoPackage from region-geometry")
    p.add_argument("--widths", required=True, help="JSON object {highway type: width in metres}")
    p.add_argument("--out", required=True, help="output GeoPackage (layer 'roads')")
    p.set_defaults(func=_roads)

    p = sub.add_parser("harmonize", help="consensus 10 m training label of one region (+ roads, stats, quicklook)",
                       description="Reproject every product onto the region's label grid (nearest), map codes "
                                   "to class sets, keep the class the products agree on (255 elsewhere), burn "
                                   "roads as class 11; writes the label, statistics and a quicklook PNG.")
    p.add_argument("--region", required=True, help="region GeoPackage from region-geometry")
    p.add_argument("--product", required=True, action="append", help="product manifest (repeat per product)")
    p.add_argument("--roads", default=None, help="road surfaces GeoPackage from `l2h roads`")
    p.add_argument("--min-cover", type=float, default=0.3, help="road share of a cell that makes it road")
    p.add_argument("--resolution", type=float, default=10.0, help="label pixel size in metres")
    p.add_argument("--agreement", choices=["all", "majority"], default="all", help="agreement rule")
    p.add_argument("--window", type=int, default=1024, help="processing window in label pixels")
    p.add_argument("--out", required=True, help="label GeoTIFF")
    p.add_argument("--sets-out", default=None, help="class-set label GeoTIFF (uint16 bitmask of the classes "
                                                  "the products leave possible)")
    p.add_argument("--stats-csv", required=True, help="class statistics CSV")
    p.add_argument("--stats-json", required=True, help="full statistics JSON")
    p.add_argument("--quicklook", required=True, help="quicklook PNG")
    p.set_defaults(func=_harmonize)

    p = sub.add_parser("block-stats", help="per-block labelled share and class shares of a region's label",
                       description="List the region's blocks (the same grid the Snakefile computes) and "
                                   "write, per block, its area in the region, labelled share and class shares.")
    _region_file_args(p)
    p.add_argument("--region", required=True, help="region identifier (slug)")
    p.add_argument("--crs", required=True, help="the run's CRS")
    p.add_argument("--resolution", type=float, required=True, help="output pixel size in metres")
    p.add_argument("--block-size", type=int, required=True, help="block side in output pixels")
    p.add_argument("--label", required=True, help="the region's training label (from harmonize)")
    p.add_argument("--expect-blocks", type=int, default=None, help="fail unless this many blocks touch the region")
    p.add_argument("--out", required=True, help="output CSV of pixel counts per block touching the region")
    p.set_defaults(func=_block_stats)

    p = sub.add_parser("imagery-vrt", help="join many imagery files into one mosaic VRT",
                       description="Write a VRT mosaic of imagery files sharing CRS, band count and data type "
                                   "(finest pixel size, union extent, nodata 0 between files).")
    p.add_argument("paths", nargs="+", help="imagery files")
    p.add_argument("--out", required=True, help="output VRT")
    p.set_defaults(func=_imagery_vrt)

    p = sub.add_parser("fetch-imagery", help="cache a region's imagery block by block as local GeoTIFFs",
                       description="Warp the imagery (a file, a /vsicurl/ COG, or an XYZ tile service) onto "
                                   "every block of the region and write local tiled GeoTIFFs (resumable), "
                                   "then a VRT over them.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--source", help="GDAL dataset name of the imagery")
    source.add_argument("--xyz", help='tile service as JSON {"url", "zoom", "bands", "api_key_env"}')
    p.add_argument("--region", required=True, help="region GeoPackage from region-geometry")
    p.add_argument("--crs", required=True, help="the run's CRS")
    p.add_argument("--resolution", type=float, required=True, help="output pixel size in metres")
    p.add_argument("--block-size", type=int, required=True, help="block side in output pixels")
    p.add_argument("--resampling", default="bilinear", help="resampling when warping")
    p.add_argument("--out", required=True, help="output VRT; blocks go to the folder of the same name")
    p.set_defaults(func=_fetch_imagery)

    p = sub.add_parser("sample", help="choose the training blocks with an integer program (PuLP/CBC)",
                       description="Choose ~target_fraction of the area as training blocks whose class shares "
                                   "match the overall ones, with a minimum per region; writes the selection, "
                                   "the merged block table, a class-share table, a summary and a map.")
    p.add_argument("--blocks", nargs="+", required=True, help="per-region block pixel counts (from block-stats)")
    p.add_argument("--region", nargs="+", required=True, help="region GeoPackages (for the map)")
    p.add_argument("--target-fraction", type=float, default=0.30, help="share of the area to select")
    p.add_argument("--tolerance", type=float, default=0.02, help="allowed deviation of the area share")
    p.add_argument("--min-blocks-per-region", type=int, default=1, help="minimum blocks per region")
    p.add_argument("--min-labelled-share", type=float, default=0.2, help="exclude blocks labelled less")
    p.add_argument("--train-regions", default=None, help="JSON list of region identifiers to train on")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--time-limit", type=float, default=60, help="solver time limit in seconds")
    p.add_argument("--out", required=True, help="selected blocks CSV (column block_id)")
    p.add_argument("--all-blocks", required=True, help="merged block statistics CSV")
    p.add_argument("--shares", required=True, help="class shares CSV: overall vs selected")
    p.add_argument("--summary", required=True, help="solver summary JSON")
    p.add_argument("--map", required=True, help="map PNG")
    p.set_defaults(func=_sample)

    p = sub.add_parser("evaluate", help="score the map and every product at reference points",
                       description="Sample our map and each product (its own tiles and CRS) at the reference points, "
                                   "score them in the reference legend (OA, kappa, per-class accuracies, F1, IoU, "
                                   "OA per region, bootstrap intervals, area-weighted estimates when stratified) and "
                                   "write accuracy.json, CSV tables and PNG figures.")
    p.add_argument("--settings", required=True, help="the config's evaluation.points section as JSON")
    p.add_argument("--map", required=True, help="our map (results/maps/national.tif)")
    p.add_argument("--product", action="append", default=[], help="product manifest (repeat)")
    _region_file_args(p)
    p.add_argument("--run-name", default="run", help="run name for the report")
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
    _region_file_args(p)
    p.add_argument("--out-dir", required=True, help="folder for survey_shares.csv, survey_error.csv, survey.png")
    p.set_defaults(func=_survey)

    p = sub.add_parser("train", help="train L2HNet on the training blocks (resumes from its checkpoint)",
                       description="Train L2HNet with the low-to-high loss on random windows of the training blocks "
                                   "(imagery at 1 m, the 10 m consensus label brought to 1 m); checkpoints every N "
                                   "steps; a rerun after a kill resumes from the last checkpoint.")
    p.add_argument("--blocks", required=True, help="block table (resources/blocks.csv)")
    p.add_argument("--training-blocks", required=True, help="selected blocks (resources/training_blocks.csv)")
    p.add_argument("--labels", required=True, help="label path template with {region}")
    p.add_argument("--label-sets", default=None, help="class-set label path template with {region} (for "
                                                       "train.partial_labels)")
    p.add_argument("--imagery", required=True, help="JSON object {region: imagery GDAL dataset name}")
    p.add_argument("--crs", required=True, help="the run's CRS")
    p.add_argument("--resolution", type=float, required=True, help="output pixel size in metres")
    p.add_argument("--settings", required=True, help="the config's `train` section as JSON")
    p.add_argument("--work-dir", required=True, help="folder for the checkpoint and per-step metrics")
    p.add_argument("--out", required=True, help="final model (.pt, with its metadata)")
    p.add_argument("--metrics", required=True, help="copy of the per-step metrics CSV")
    p.set_defaults(func=_train)

    p = sub.add_parser("export", help="export the model to ONNX and check parity with torch",
                       description="Export to ONNX (opset 17, dynamic batch/height/width, metadata), run torch and "
                                   "onnxruntime on the same random input and fail unless they agree (1e-4).")
    p.add_argument("--model", required=True, help="trained model (.pt)")
    p.add_argument("--out", required=True, help="ONNX file")
    p.add_argument("--parity", required=True, help="parity report JSON")
    p.set_defaults(func=_export)

    p = sub.add_parser("model-info", help="parameters, FLOPs per pixel and receptive field of L2HNet",
                       description="Print the size and cost of L2HNet: of a trained model (--model) or of an "
                                   "untrained one of the given width and band count.")
    p.add_argument("--model", default=None, help="trained model (.pt); otherwise --width/--in-channels")
    p.add_argument("--width", type=int, default=32, help="channels C of the backbone (untrained model)")
    p.add_argument("--in-channels", type=int, default=4, help="imagery bands (untrained model)")
    p.set_defaults(func=_model_info)

    p = sub.add_parser("infer", help="predict a chunk of blocks with the ONNX model (onnxruntime)",
                       description="For each block: read its imagery in tiles with a halo of the model's receptive "
                                   "field, run the ONNX model (CUDA execution provider when present, else CPU) and "
                                   "write the tiles' cores: a uint8 class GeoTIFF with the palette, nodata 0. Then "
                                   "write the chunk's manifest. Rerun after a kill, it keeps the finished blocks.")
    p.add_argument("--model", required=True, help="ONNX model from `l2h export`")
    p.add_argument("--imagery", required=True, help="GDAL dataset name of the imagery on the run's grid")
    p.add_argument("--blocks", nargs="+", required=True, help="block ids, e.g. c410_r6488 c411_r6488")
    p.add_argument("--block-size", type=int, required=True, help="block side in output pixels")
    p.add_argument("--resolution", type=float, required=True, help="output pixel size in metres")
    p.add_argument("--crs", required=True, help="the run's CRS")
    p.add_argument("--mask", nargs="+", required=True, help="region GeoPackages: pixels outside all are nodata")
    p.add_argument("--region", required=True, help="slug of the region owning the blocks")
    p.add_argument("--out-dir", required=True, help="folder of the blocks' GeoTIFFs (<block>.tif)")
    p.add_argument("--manifest", required=True, help="the chunk's manifest (JSON), written last")
    p.add_argument("--confidence", action="store_true",
                   help="also write <block>_confidence.tif (max class probability x 255)")
    p.add_argument("--tile", type=int, default=512, help="tile core size in pixels")
    p.add_argument("--batch", type=int, default=4, help="tiles per onnxruntime call")
    p.add_argument("--threads", type=int, default=1,
                   help="the job's threads: onnxruntime intra-op threads, and as many post-processing threads")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="execution provider")
    p.add_argument("--strict", action="store_true", help="a block without imagery is an error")
    p.add_argument("--label-prior", type=float, default=0.0, metavar="NATS",
                   help="bonus on the logits of the classes the coarse label allows (0 = off)")
    p.add_argument("--label-sets", nargs="*", default=[],
                   help="class-set labels (from harmonize) of the regions the blocks touch, for --label-prior")
    p.set_defaults(func=_infer)

    p = sub.add_parser("footprint", help="write a region file covering the footprints of raster files",
                       description="Write one region (attribute `name`) whose polygon is the union of the "
                                   "files' extents, in their CRS: the `regions.file` of a small study area "
                                   "(GeoJSON for .geojson/.json, else GeoPackage).")
    p.add_argument("paths", nargs="+", help="raster files (e.g. the imagery)")
    p.add_argument("--name", required=True, help="the region's name")
    p.add_argument("--out", required=True, help="output vector file")
    p.set_defaults(func=_footprint)

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
    p.add_argument("--out", required=True, help="output JSON")
    p.set_defaults(func=_score_pixels)

    p = sub.add_parser("mosaic", help="merge block predictions (or region maps) into a clipped COG + quicklook",
                       description="Stream the inputs window by window into a GeoTIFF clipped to the region(s), "
                                   "then a validated Cloud-Optimized GeoTIFF with MODE overviews and the palette.")
    p.add_argument("--blocks", nargs="+", required=True,
                   help="block predictions, chunk manifests (.json) of `l2h infer`, or region COGs")
    p.add_argument("--region", nargs="+", required=True, help="region GeoPackage(s) to clip to")
    p.add_argument("--resolution", type=float, required=True, help="output pixel size in metres")
    p.add_argument("--title", default="national", help="quicklook title when several regions")
    p.add_argument("--layer", choices=["classes", "confidence"], default="classes",
                   help="class maps (palette, MODE overviews) or confidence layers (AVERAGE overviews)")
    p.add_argument("--out", required=True, help="output COG")
    p.add_argument("--quicklook", required=True, help="quicklook PNG with legend")
    p.set_defaults(func=_mosaic)
    return parser


def _setup_logging(verbose: bool, logfile: str | None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if logfile:
        Path(logfile).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(logfile, encoding="utf-8"))
    for handler in handlers:  # secrets are hidden by value in every line, whoever logs it
        handler.addFilter(RedactingFilter())
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def handler_of(subcommand: str):
    """The function that runs ``l2h <subcommand>`` (for :func:`l2h.provenance.code_version`)."""
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            if subcommand in action.choices:
                return action.choices[subcommand].get_default("func")
            raise ValueError(f"no l2h subcommand {subcommand!r}; known: {', '.join(sorted(action.choices))}")
    raise ValueError("the l2h parser has no subcommands")


def _os_error_line(exc: OSError) -> str:
    """One line for a file-system or GDAL error: the file it names, what went wrong, and GDAL's own
    message (which names the dataset) when rasterio only says "Read failed. See previous exception"."""
    where = f"{exc.filename}: " if exc.filename else ""
    text = exc.strerror if exc.errno and exc.strerror else str(exc)
    cause = exc.__cause__ or exc.__context__  # GDAL's last error: it names the dataset and band
    if cause is not None and not exc.filename and str(cause) not in text:
        text = f"{text.removesuffix(' See previous exception for details.')} {cause}"
    return " ".join(f"{where}{text}".split())


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `l2h` console script; returns the process exit code."""
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose, args.log)
    try:
        args.func(args)
    except L2HError as exc:
        log.error("%s", exc)
        return 1
    except OSError as exc:  # a full disk, a read-only or missing folder, an unreadable raster (rasterio's too)
        log.error("%s", _os_error_line(exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
