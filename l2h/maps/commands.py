"""`l2h` subcommands of maps (rules/infer.smk, mosaic.smk): block inference and the COG mosaics.

Each handler reads its arguments and calls the stage's functions (imported when it runs, so
that `l2h --help` stays fast); `register` adds the subcommands to the parser."""

from __future__ import annotations

import argparse
import contextlib
import logging

from l2h.core.errors import L2HError

log = logging.getLogger(__name__)


def _union_of_regions(paths: list[str]):
    from shapely import union_all

    from l2h.inputs.regions import read_region_geometry

    regions = [read_region_geometry(p) for p in paths]
    return union_all([r.geometry for r in regions]), regions


def _infer(args: argparse.Namespace) -> None:
    from l2h.core.blocks import block_bounds, parse_block_id
    from l2h.maps.chunks import chunk_key
    from l2h.maps.infer import load_onnx, predict_chunk
    from l2h.maps.label_prior import LabelPrior

    _, regions = _union_of_regions(args.mask)
    block_m = args.block_size * args.resolution
    blocks = [(b, block_bounds(*parse_block_id(b), block_m)) for b in args.blocks]
    if args.label_prior > 0 and not args.label_sets:
        raise L2HError("infer: --label-prior needs the class-set labels of the regions (--label-sets)")
    sets = args.label_sets if args.label_prior > 0 else []
    roads = args.roads if args.label_prior > 0 else []
    settings = {k: v for k, v in vars(args).items()
                if k not in ("func", "log", "verbose", "threads", "device", "gpu_concurrency")}
    key = chunk_key(settings, [args.model, *args.mask, *sets, *roads], imagery=args.imagery)
    # the job's threads: blocks in flight, each with its share of onnxruntime's threads
    workers = max(1, min(args.threads, len(blocks)))
    model = load_onnx(args.model, threads=max(1, args.threads // workers), device=args.device,
                      gpu_concurrency=args.gpu_concurrency)
    with contextlib.ExitStack() as stack:
        prior = stack.enter_context(LabelPrior(sets, args.label_prior, interpolation=args.prior_interpolation,
                                               roads=roads)) if sets else None
        stats = predict_chunk(model, args.imagery, blocks, args.resolution, args.crs,
                              {r.slug: r.geometry for r in regions}, args.out_dir, args.manifest, key, args.region,
                              confidence=args.confidence, tile=args.tile, batch=args.batch, strict=args.strict,
                              prior=prior, network=args.network, flips=args.flips, workers=workers)
    seconds = max(stats["seconds"], 1e-9)
    log.info("%d block(s) predicted, %d kept from an interrupted attempt: %d of %d pixels mapped in %.1f s "
             "(%.0f pixels/s, %s)", stats["blocks"] - stats["kept"], stats["kept"], stats["valid_pixels"],
             stats["pixels"], seconds, stats["pixels"] / seconds, ", ".join(model.session.get_providers()))


def _mosaic(args: argparse.Namespace) -> None:
    from l2h.core.quicklook import confidence_quicklook_from_file, quicklook_from_file
    from l2h.maps.mosaic import mosaic

    geometry, regions = _union_of_regions(args.region)
    name = regions[0].name if len(regions) == 1 else args.title
    # a region's mosaic reads, from the chunk manifests, only the blocks touching that region
    region = regions[0].slug if len(regions) == 1 else None
    mosaic(args.blocks, geometry, regions[0].crs, args.resolution, args.out, layer=args.layer, region=region)
    if args.layer == "confidence":
        confidence_quicklook_from_file(args.quicklook, args.out, f"{name}: confidence of the 1 m map")
    elif args.layer == "network":
        quicklook_from_file(args.quicklook, args.out, f"{name}: the network alone (no label prior)")
    else:
        quicklook_from_file(args.quicklook, args.out, f"{name}: 1 m land cover")
    log.info("%s: %s COG written to %s from %d input(s)", name, args.layer, args.out, len(args.blocks))


def register(sub: argparse._SubParsersAction) -> None:
    """Add the maps subcommands to the `l2h` parser."""
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
                   help="the job's threads: as many blocks in flight (at most the chunk's blocks), each "
                        "block's onnxruntime runs with threads // blocks in flight")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="execution provider: cuda (an error at the start if onnxruntime cannot run on the GPU), "
                        "cpu, or auto (CUDA where it starts, else the CPU with a warning)")
    p.add_argument("--gpu-concurrency", type=int, default=1,
                   help="graph runs on the GPU at once (the blocks in flight take turns): each holds its batch's "
                        "activations in GPU memory")
    p.add_argument("--strict", action="store_true", help="a block without imagery is an error")
    p.add_argument("--label-prior", type=float, default=0.0, metavar="NATS",
                   help="bonus on the logits of the classes the coarse label allows (0 = off)")
    p.add_argument("--label-sets", nargs="*", default=[],
                   help="class-set labels (from harmonize) of the regions the blocks touch, for --label-prior")
    p.add_argument("--prior-interpolation", choices=["nearest", "bilinear"], default="nearest",
                   help="the prior at 1 m: each pixel its coarse cell's set (nearest), or the sets' "
                        "membership interpolated between the cells' centres (bilinear: it fades across an edge)")
    p.add_argument("--roads", nargs="*", default=[],
                   help="road surfaces (GeoPackages from `l2h roads`): the prior's road class follows them at 1 m")
    p.add_argument("--flips", type=int, choices=[1, 2, 4], default=1,
                   help="test-time flips: the logits of 1, 2 (left-right) or 4 (and up-down, both) mirrored "
                        "copies of each tile averaged (costs as many model runs)")
    p.add_argument("--network", action="store_true",
                   help="also write <block>_network.tif: the network's own map, without the prior")
    p.set_defaults(func=_infer)

    p = sub.add_parser("mosaic", help="merge block predictions (or region maps) into a clipped COG + quicklook",
                       description="Stream the inputs window by window into a GeoTIFF clipped to the region(s), "
                                   "then a validated Cloud-Optimized GeoTIFF with MODE overviews and the palette.")
    p.add_argument("--blocks", nargs="+", required=True,
                   help="block predictions, chunk manifests (.json) of `l2h infer`, or region COGs")
    p.add_argument("--region", nargs="+", required=True, help="region GeoPackage(s) to clip to")
    p.add_argument("--resolution", type=float, required=True, help="output pixel size in metres")
    p.add_argument("--title", default="national", help="quicklook title when several regions")
    p.add_argument("--layer", choices=["classes", "network", "confidence"], default="classes",
                   help="class maps (palette, MODE overviews), the network's own maps (the same, without the "
                        "label prior) or confidence layers (AVERAGE overviews)")
    p.add_argument("--out", required=True, help="output COG")
    p.add_argument("--quicklook", required=True, help="quicklook PNG with legend")
    p.set_defaults(func=_mosaic)
