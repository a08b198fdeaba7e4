"""`l2h` subcommands of inputs (rules/regions.smk, download.smk, imagery.smk): region polygons,
product tiles and the OSM extract, imagery.

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


def _region_geometry(args: argparse.Namespace) -> None:
    from l2h.inputs.regions import write_region_geometry

    attrs = write_region_geometry(args.regions, args.region, args.out, args.crs, args.name_field,
                                  layer=args.layer, slug_field=args.slug_field)
    log.info("region %s (%s): %.3f km² written to %s", attrs["slug"], attrs["name"], attrs["area_km2"],
             args.out)


def _download(args: argparse.Namespace) -> None:
    from l2h.inputs.download import download
    from l2h.inputs.fetch_product import fetch_product
    from l2h.inputs.products import resolve_product

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


def _imagery_vrt(args: argparse.Namespace) -> None:
    from l2h.inputs.imagery import build_vrt

    build_vrt(args.paths, args.out)
    log.info("mosaic VRT of %d file(s) written to %s", len(args.paths), args.out)


def _fetch_imagery(args: argparse.Namespace) -> None:
    from l2h.inputs.imagery import cache_imagery, wmts_source, xyz_source
    from l2h.inputs.regions import read_region_geometry

    region = read_region_geometry(args.region)
    out = Path(args.out)
    if args.stac:
        from l2h.inputs.stac import StacSearch
        from l2h.inputs.stac_imagery import cache_stac_imagery

        query = StacSearch.from_config(json.loads(args.stac), "imagery.stac")
        paths = cache_stac_imagery(query, region.geometry, args.crs, args.resolution, args.block_size,
                                   out.with_suffix(""), out, resampling=args.resampling)
    else:
        source = (xyz_source(json.loads(args.xyz)) if args.xyz else wmts_source(json.loads(args.wmts)) if args.wmts
                  else args.source)
        paths = cache_imagery(source, region.geometry, args.crs, args.resolution, args.block_size,
                              out.with_suffix(""), out, resampling=args.resampling)
    log.info("region %s: %d imagery block(s) cached, mosaic %s", region.slug, len(paths), out)


def _footprint(args: argparse.Namespace) -> None:
    from l2h.inputs.regions import write_footprint_region

    info = write_footprint_region(args.paths, args.name, args.out)
    log.info("region %r: footprint of %d file(s), %.3f km² in %s, written to %s", info["name"], info["files"],
             info["area_km2"], info["crs"], args.out)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the inputs subcommands to the `l2h` parser."""
    p = sub.add_parser("region-geometry", help="write one region's polygon in the run's CRS",
                       description="Merge and repair one region's features and write them, reprojected "
                                   "to the run's CRS, as a GeoPackage (layer 'region').")
    region_file_args(p)
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

    p = sub.add_parser("imagery-vrt", help="join many imagery files into one mosaic VRT",
                       description="Write a VRT mosaic of imagery files sharing CRS, band count and data type "
                                   "(finest pixel size, union extent, nodata 0 between files).")
    p.add_argument("paths", nargs="+", help="imagery files")
    p.add_argument("--out", required=True, help="output VRT")
    p.set_defaults(func=_imagery_vrt)

    p = sub.add_parser("fetch-imagery", help="cache a region's imagery block by block as local GeoTIFFs",
                       description="Warp the imagery (a file, a /vsicurl/ COG, an XYZ or WMTS tile service, "
                                   "or the items of a STAC search) onto "
                                   "every block of the region and write local tiled GeoTIFFs (resumable), "
                                   "then a VRT over them.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--source", help="GDAL dataset name of the imagery")
    source.add_argument("--xyz", help='tile service as JSON {"url", "zoom", "bands", "api_key_env"}')
    source.add_argument("--wmts", help='WMTS layer as JSON {"url", "layer", "tile_matrix_set", "style", "bands"}')
    source.add_argument("--stac", help='STAC search as JSON {"url", "collection", "asset", "datetime", "filter", '
                                       '"order", "asset_query"}; also writes <out stem>.items.json')
    p.add_argument("--region", required=True, help="region GeoPackage from region-geometry")
    p.add_argument("--crs", required=True, help="the run's CRS")
    p.add_argument("--resolution", type=float, required=True, help="output pixel size in metres")
    p.add_argument("--block-size", type=int, required=True, help="block side in output pixels")
    p.add_argument("--resampling", default="bilinear", help="resampling when warping")
    p.add_argument("--out", required=True, help="output VRT; blocks go to the folder of the same name")
    p.set_defaults(func=_fetch_imagery)

    p = sub.add_parser("footprint", help="write a region file covering the footprints of raster files",
                       description="Write one region (attribute `name`) whose polygon is the union of the "
                                   "files' extents, in their CRS: the `regions.file` of a small study area "
                                   "(GeoJSON for .geojson/.json, else GeoPackage).")
    p.add_argument("paths", nargs="+", help="raster files (e.g. the imagery)")
    p.add_argument("--name", required=True, help="the region's name")
    p.add_argument("--out", required=True, help="output vector file")
    p.set_defaults(func=_footprint)
