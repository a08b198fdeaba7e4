"""Command-line arguments several stages share."""

from __future__ import annotations

import argparse


def region_file_args(p: argparse.ArgumentParser) -> None:
    """The --regions/--name-field/--slug-field/--layer arguments that name the regions file."""
    p.add_argument("--regions", required=True, help="regions vector file")
    p.add_argument("--name-field", required=True, help="attribute holding region names")
    p.add_argument("--slug-field", default=None, help="attribute holding ASCII identifiers")
    p.add_argument("--layer", default=None, help="layer of a multi-layer file")
