"""`l2h` subcommands of the embedded demo world.

Each handler reads its arguments and calls the stage's functions (imported when it runs, so
that `l2h --help` stays fast); `register` adds the subcommands to the parser."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)


def _demo_world(args: argparse.Namespace) -> None:
    from l2h.demo.world import generate_demo_world

    start = time.perf_counter()
    manifest = generate_demo_world(Path(args.outdir), seed=args.seed, width_m=args.width_m,
                                   height_m=args.height_m)
    log.info("demo world (seed %d, %d x %d m) written to %s in %.1f s", args.seed, args.width_m,
             args.height_m, args.outdir, time.perf_counter() - start)
    for product, agreement in manifest.get("product_agreement", {}).items():
        log.info("  %s agrees with the truth's 10 m majority on %.1f %% of the country", product,
                 100 * agreement)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the demo subcommands to the `l2h` parser."""
    p = sub.add_parser("demo-world", help="generate the embedded demo country (imagery, products, OSM, "
                                          "regions, reference points, survey) deterministically",
                       description="Generate a small fictional country of 3 provinces in the real "
                                   "formats of the real sources, with its hidden 1 m truth.")
    p.add_argument("outdir", help="folder to write the demo world into")
    p.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")
    p.add_argument("--width-m", type=int, default=4096, help="country extent east-west in metres")
    p.add_argument("--height-m", type=int, default=3072, help="country extent north-south in metres")
    p.set_defaults(func=_demo_world)
