"""`l2h` subcommands of training labels (rules/labels.smk): OSM roads and the consensus label.

Each handler reads its arguments and calls the stage's functions (imported when it runs, so
that `l2h --help` stays fast); `register` adds the subcommands to the parser."""

from __future__ import annotations

import argparse
import json
import logging

log = logging.getLogger(__name__)


def _roads(args: argparse.Namespace) -> None:
    from l2h.inputs.regions import read_region_geometry
    from l2h.labels.roads import extract_roads, write_roads

    region = read_region_geometry(args.region)
    roads = extract_roads(args.osm, region.geometry, region.crs, json.loads(args.widths))
    if roads.empty:
        log.warning("region %s: the OSM file %s has no roads of the configured types inside it; the label "
                    "gets no road class", region.slug, args.osm)
    write_roads(roads, args.out)
    log.info("region %s: %d road segment(s) written to %s", region.slug, len(roads), args.out)


def _harmonize(args: argparse.Namespace) -> None:
    from l2h.core.quicklook import quicklook_from_file
    from l2h.inputs.fetch_product import read_manifest
    from l2h.inputs.regions import read_region_geometry
    from l2h.labels.harmonize import harmonize_region
    from l2h.labels.label_stats import summarize, write_stats
    from l2h.labels.roads import read_roads, road_burner

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


def register(sub: argparse._SubParsersAction) -> None:
    """Add the labels subcommands to the `l2h` parser."""
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
