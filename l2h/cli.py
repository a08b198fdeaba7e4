"""The `l2h` command: one subcommand per workflow step; each Snakemake rule calls one of them."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from l2h import __version__
from l2h.errors import L2HError

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
    p.add_argument("--regions", required=True, help="regions vector file")
    p.add_argument("--region", required=True, help="region identifier (slug)")
    p.add_argument("--crs", required=True, help="the run's CRS, e.g. EPSG:32650")
    p.add_argument("--name-field", required=True, help="attribute holding region names")
    p.add_argument("--slug-field", default=None, help="attribute holding ASCII identifiers")
    p.add_argument("--layer", default=None, help="layer of a multi-layer file")
    p.add_argument("--out", required=True, help="output GeoPackage")
    p.set_defaults(func=_region_geometry)
    return parser


def _setup_logging(verbose: bool, logfile: str | None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if logfile:
        Path(logfile).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(logfile, encoding="utf-8"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `l2h` console script; returns the process exit code."""
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose, args.log)
    try:
        args.func(args)
    except L2HError as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
