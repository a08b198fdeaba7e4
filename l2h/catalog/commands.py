"""`l2h stac` (rules/stac.smk): the STAC Collection of the run's maps.

Each handler reads its arguments and calls the stage's functions (imported when it runs, so
that `l2h --help` stays fast); `register` adds the subcommands to the parser."""

from __future__ import annotations

import argparse
import logging

from l2h.core.errors import L2HError

log = logging.getLogger(__name__)


def _stac(args: argparse.Namespace) -> None:
    import json
    from pathlib import Path

    from l2h.catalog.stac import MapFile, write_collection
    from l2h.core.onnx_metadata import onnx_metadata
    from l2h.inputs.regions import read_region_geometry

    names = {(r := read_region_geometry(p)).slug: r.name for p in args.regions}
    names["national"] = f"{args.name} (national)"
    maps = []
    for layer, paths in (("classes", args.maps), ("confidence", args.confidence)):
        for path in map(Path, paths):
            if path.stem not in names:
                raise L2HError(f"stac: {path} is neither national.tif nor the map of a region given by --regions")
            maps.append(MapFile(path, layer, path.stem, names[path.stem]))
    try:
        settings = json.loads(args.settings)
    except ValueError as exc:
        raise L2HError(f"stac: --settings is not JSON: {exc}") from None
    provenance = {"training_settings": settings, "model": {"file": Path(args.model).name,
                                                           **onnx_metadata(args.model)}}
    imagery = {}
    for path in map(Path, args.imagery_items):
        try:
            imagery[path.name.removesuffix(".items.json")] = json.loads(path.read_text(encoding="utf-8"))["items"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise L2HError(f"stac: imagery provenance {path} does not read ({exc}); delete it to fetch again") from None
    collection = write_collection(maps, args.out, args.name, provenance, args.accuracy, imagery)
    log.info("STAC collection %s: %d items written to %s", collection.id, len(maps), args.out)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the catalogue subcommand to the `l2h` parser."""
    p = sub.add_parser("stac", help="describe the run's map COGs as a STAC Collection with one Item per COG",
                       description="Write a self-contained STAC Collection (pystac, rio-stac): one Item per map "
                                   "COG with the proj, raster, classification and file (checksum) extensions, "
                                   "and the model's provenance and accuracy summary on the Collection.")
    p.add_argument("--maps", nargs="+", required=True, help="class-map COGs (<region>.tif and national.tif)")
    p.add_argument("--confidence", nargs="*", default=[], help="confidence COGs, named like the maps")
    p.add_argument("--regions", nargs="+", required=True, help="region GeoPackages (for the regions' names)")
    p.add_argument("--model", required=True, help="the exported ONNX model (its metadata is the provenance)")
    p.add_argument("--settings", required=True, help="the training settings (JSON)")
    p.add_argument("--accuracy", default=None, help="accuracy.json of `l2h evaluate` (optional)")
    p.add_argument("--imagery-items", nargs="*", default=[],
                   help="<region>.items.json of fetch-imagery --stac: the imagery items each map derives from")
    p.add_argument("--name", required=True, help="the run's name (the Collection is l2h-<name>)")
    p.add_argument("--out", required=True, help="the Collection's JSON; Items go beside it")
    p.set_defaults(func=_stac)
