"""`l2h` subcommands of sampling (rules/sampling.smk): block statistics and the training-block selection.

Each handler reads its arguments and calls the stage's functions (imported when it runs, so
that `l2h --help` stays fast); `register` adds the subcommands to the parser."""

from __future__ import annotations

import argparse
import json
import logging

from l2h.core.arguments import region_file_args
from l2h.core.errors import L2HError

log = logging.getLogger(__name__)


def _block_stats(args: argparse.Namespace) -> None:
    from l2h.core.blocks import blocks_for_regions
    from l2h.inputs.regions import dissolved_regions, region_geometries
    from l2h.sampling.block_stats import block_counts, write_table

    regions = dissolved_regions(args.regions, args.name_field, args.layer, args.slug_field)
    blocks = [b for b in blocks_for_regions(region_geometries(regions, args.crs), args.block_size * args.resolution)
              if args.region in b.touches]
    if args.expect_blocks is not None and len(blocks) != args.expect_blocks:
        raise L2HError(f"region {args.region}: {len(blocks)} blocks touch it here, but the Snakefile computed "
                       f"{args.expect_blocks}; are Snakemake and this job using different shapely/PROJ versions?")
    table = block_counts(args.label, args.region, blocks)
    write_table(table, args.out)
    log.info("region %s: pixel counts of %d block(s) written to %s", args.region, len(table), args.out)


def _sample(args: argparse.Namespace) -> None:
    import pandas as pd

    from l2h.sampling.block_stats import merge_block_counts, write_table
    from l2h.sampling.sample import select_training_blocks, write_selection
    from l2h.sampling.sample_map import plot_selection

    blocks = merge_block_counts([pd.read_csv(p, dtype={"block_id": str, "region": str, "label_region": str})
                                 for p in args.blocks])
    result = select_training_blocks(
        blocks, target_fraction=args.target_fraction, tolerance=args.tolerance,
        min_blocks_per_region=args.min_blocks_per_region, min_labelled_share=args.min_labelled_share,
        train_regions=json.loads(args.train_regions) if args.train_regions else None, seed=args.seed,
        time_limit=args.time_limit)
    write_table(blocks, args.all_blocks)
    write_selection(result, args.out, args.shares, args.summary)
    plot_selection(args.region, blocks, result.selected, args.map,
                   f"Training blocks: {len(result.selected)} of {len(blocks)}, "
                   f"{100 * result.selected_fraction:.1f} % of the area")
    gap = "n/a" if result.gap is None else f"{result.gap:.2g}"
    log.info("%d of %d blocks chosen (%.1f %% of the area; %s, status %s, gap %s, %.1f s); largest class-share "
             "deviation %.2f percentage points", len(result.selected), len(blocks), 100 * result.selected_fraction,
             result.method, result.status, gap, result.seconds, 100 * result.max_share_deviation())


def register(sub: argparse._SubParsersAction) -> None:
    """Add the sampling subcommands to the `l2h` parser."""
    p = sub.add_parser("block-stats", help="per-block labelled share and class shares of a region's label",
                       description="List the region's blocks (the same grid the Snakefile computes) and "
                                   "write, per block, its area in the region, labelled share and class shares.")
    region_file_args(p)
    p.add_argument("--region", required=True, help="region identifier (slug)")
    p.add_argument("--crs", required=True, help="the run's CRS")
    p.add_argument("--resolution", type=float, required=True, help="output pixel size in metres")
    p.add_argument("--block-size", type=int, required=True, help="block side in output pixels")
    p.add_argument("--label", required=True, help="the region's training label (from harmonize)")
    p.add_argument("--expect-blocks", type=int, default=None, help="fail unless this many blocks touch the region")
    p.add_argument("--out", required=True, help="output CSV of pixel counts per block touching the region")
    p.set_defaults(func=_block_stats)

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
    p.add_argument("--time-limit", type=float, default=600,
                   help="wall-clock safety stop in seconds (the searches stop on fixed budgets)")
    p.add_argument("--out", required=True, help="selected blocks CSV (column block_id)")
    p.add_argument("--all-blocks", required=True, help="merged block statistics CSV")
    p.add_argument("--shares", required=True, help="class shares CSV: overall vs selected")
    p.add_argument("--summary", required=True, help="solver summary JSON")
    p.add_argument("--map", required=True, help="map PNG")
    p.set_defaults(func=_sample)
