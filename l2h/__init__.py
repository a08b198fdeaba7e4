"""l2h: 1 m land-cover maps from 10 m products, OSM roads and ~1 m imagery (L2HNet, SinoLC-1 style)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("l2h")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0+unknown"
