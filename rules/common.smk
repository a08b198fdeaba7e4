# Shared helpers: configuration validation, the run's grid and the region list, all at parse time.
import copy
import json
import os
import shlex
import sys
from pathlib import Path

from snakemake.settings.types import DeploymentMethod

from l2h.config import is_complete, load_config
from l2h.download import url_filename
from l2h.errors import L2HError
from l2h.grid import check_label_resolution, resolve_grid
from l2h.provenance import code_version
from l2h.blocks import blocks_for_regions
from l2h.regions import dissolved_regions, region_bounds_lonlat, region_geometries

PROJECT_ROOT = Path(workflow.basedir)

# Every rule runs `l2h`. With --sdm conda the per-group environments (envs/*.yaml) hold the
# third-party packages and envs/bin/l2h runs l2h from this checkout with the environment's Python;
# otherwise the `l2h` installed beside the Python running Snakemake (no activated venv needed).
envvars:
    "PATH",


if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
    _l2h_bin = PROJECT_ROOT / "envs" / "bin"
else:
    _l2h_bin = Path(sys.executable).parent
os.environ["PATH"] = f"{_l2h_bin}{os.pathsep}{os.environ['PATH']}"

# A complete configuration given on the command line (every required section, e.g.
# examples/own-data.yaml) is used as it is; a partial one is merged over workflow_config.yaml.
_cli_config = workflow.config_settings.overwrite_config
if is_complete(_cli_config):
    config.clear()
    config.update(copy.deepcopy(_cli_config))

try:
    CFG = load_config(config, PROJECT_ROOT)
    GRID = resolve_grid(CFG["grid"]["crs"], CFG["grid"]["resolution"], CFG["imagery"]["paths"])
    check_label_resolution(GRID, CFG["labels"]["resolution"])
    _regions = dissolved_regions(CFG["regions"]["file"], CFG["regions"]["name_field"],
                                 layer=CFG["regions"]["layer"], slug_field=CFG["regions"]["slug_field"])
    REGION_BOUNDS = region_bounds_lonlat(_regions)
    BLOCKS = blocks_for_regions(region_geometries(_regions, GRID.crs),
                                CFG["grid"]["block_size"] * GRID.resolution)
except L2HError as exc:
    raise WorkflowError(f"l2h: {exc}") from None

REGION_SLUGS = sorted(_regions.index)
REGION_NAMES = dict(_regions["name"].items())
REGION_FILE_ARGS = " ".join(
    [f"--regions {shlex.quote(CFG['regions']['file'])}", f"--name-field {shlex.quote(CFG['regions']['name_field'])}"]
    + ([f"--layer {shlex.quote(CFG['regions']['layer'])}"] if CFG["regions"]["layer"] else [])
    + ([f"--slug-field {shlex.quote(CFG['regions']['slug_field'])}"] if CFG["regions"]["slug_field"] else [])
)
PRODUCT_IDS = sorted(CFG["products"])
IMAGERY_PATHS = CFG["imagery"]["paths"]
XYZ = CFG["imagery"]["xyz"]
IMAGERY_MOSAIC = "resources/imagery/mosaic.vrt" if len(IMAGERY_PATHS) > 1 else next(iter(IMAGERY_PATHS), None)
IMAGERY_CACHED = bool(XYZ) or CFG["imagery"]["cache"]
OSM = CFG["roads"]["osm"]
OSM_IS_REMOTE = bool(OSM) and OSM.startswith(("http://", "https://"))
OSM_LOCAL = f"resources/raw/osm/{url_filename(OSM)}" if OSM_IS_REMOTE else OSM


def imagery_for_region(region):
    """The imagery a region's jobs read: its block cache, the mosaic VRT or the single file."""
    return f"resources/imagery/{region}.vrt" if IMAGERY_CACHED else IMAGERY_MOSAIC


# Lookups by block and by region, built once: input functions run once per job (tens of thousands
# in a national run), so none of them may scan the whole block list.
BLOCK_TOUCHES = {b.id: b.touches for b in BLOCKS}
REGION_PREDICTIONS = {r: [] for r in REGION_SLUGS}
for _block in BLOCKS:
    for _region in _block.touches:
        REGION_PREDICTIONS[_region].append(f"resources/pred/{_block.region}/{_block.id}.tif")


def block_masks(wildcards):
    """The region polygons a block's prediction is clipped to: the regions it touches (only they
    can hold its pixel centres), not every region of the run."""
    return [f"resources/regions/{r}.gpkg" for r in BLOCK_TOUCHES[wildcards.block]]


def region_block_predictions(wildcards):
    """Every block prediction a region's map needs: the blocks that touch it, whoever owns them."""
    return list(REGION_PREDICTIONS[wildcards.region])


def region_block_confidences(wildcards):
    """The confidence layers of the same blocks (infer.confidence: true)."""
    return [p.replace(".tif", "_confidence.tif") for p in region_block_predictions(wildcards)]


def product_manifests(wildcards=None):
    return expand("resources/raw/{product}/manifest.json", product=PRODUCT_IDS)
