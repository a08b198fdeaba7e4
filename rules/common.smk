# Shared helpers: configuration validation, the run's grid and the region list, all at parse time.
import copy
import json
import os
import shlex
import sys
from pathlib import Path

from snakemake.settings.types import DeploymentMethod

from l2h.core.config import is_complete, load_config
from l2h.inputs.download import url_filename
from l2h.core.errors import L2HError
from l2h.core.grid import check_label_resolution, resolve_grid
from l2h.core.provenance import code_version
from l2h.core.blocks import blocks_for_regions
from l2h.maps.chunks import chunk_blocks, chunk_manifest_path
from l2h.inputs.regions import dissolved_regions, region_bounds_lonlat, region_geometries

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
except L2HError as exc:  # the user's mistake: the message alone, no traceback
    print(f"l2h: {exc}", file=sys.stderr)
    sys.exit(1)

REGION_SLUGS = sorted(_regions.index)
REGION_NAMES = dict(_regions["name"].items())
REGION_FILE_ARGS = " ".join(
    [f"--regions {shlex.quote(CFG['regions']['file'])}", f"--name-field {shlex.quote(CFG['regions']['name_field'])}"]
    + ([f"--layer {shlex.quote(CFG['regions']['layer'])}"] if CFG["regions"]["layer"] else [])
    + ([f"--slug-field {shlex.quote(CFG['regions']['slug_field'])}"] if CFG["regions"]["slug_field"] else [])
)
PRODUCT_IDS = sorted(CFG["products"])
IMAGERY_PATHS = CFG["imagery"]["paths"]
# a tile service or a STAC search ({key: its section}): fetched block by block, not read as files
IMAGERY_SERVICE = next(({k: CFG["imagery"][k]} for k in ("xyz", "wmts", "stac") if CFG["imagery"].get(k)), None)
IMAGERY_STAC = "stac" in (IMAGERY_SERVICE or {})
IMAGERY_MOSAIC = "resources/imagery/mosaic.vrt" if len(IMAGERY_PATHS) > 1 else next(iter(IMAGERY_PATHS), None)
IMAGERY_CACHED = bool(IMAGERY_SERVICE) or CFG["imagery"]["cache"]
EVAL_PIXELS = (CFG.get("evaluation") or {}).get("pixels")
NETWORK_MAP = bool(EVAL_PIXELS and EVAL_PIXELS.get("network"))
OSM = CFG["roads"]["osm"]
OSM_IS_REMOTE = bool(OSM) and OSM.startswith(("http://", "https://"))
OSM_LOCAL = f"resources/raw/osm/{url_filename(OSM)}" if OSM_IS_REMOTE else OSM
PRIOR_ROADS = bool(OSM) and CFG["infer"]["prior_roads"]  # the prior draws roads at 1 m from their surfaces


def _imagery_context():
    """Region -> the other regions whose block caches hold the context of its own blocks: a region
    caches the blocks touching it, but its inference halo and training windows reach into the ring of
    blocks around the blocks it owns, some of which touch only a neighbour."""
    owner = {(b.col, b.row): b.region for b in BLOCKS}
    cached = {(b.col, b.row, r) for b in BLOCKS for r in b.touches}
    context = {r: set() for r in REGION_SLUGS}
    for b in BLOCKS:
        for dc in (-1, 0, 1):
            for dr in (-1, 0, 1):
                near = owner.get((b.col + dc, b.row + dr))
                if near and near != b.region and (b.col + dc, b.row + dr, b.region) not in cached:
                    context[b.region].add(near)
    return {r: sorted(c) for r, c in context.items()}


IMAGERY_CONTEXT = _imagery_context() if IMAGERY_CACHED else {}


def imagery_for_region(region):
    """The imagery a region's jobs read: its block cache (with its neighbours' where they hold the
    context of its blocks), the mosaic VRT or the single file."""
    if not IMAGERY_CACHED:
        return IMAGERY_MOSAIC
    return f"resources/imagery/context/{region}.vrt" if IMAGERY_CONTEXT[region] else f"resources/imagery/{region}.vrt"


# Lookups by chunk and by region, built once: input functions run once per job (thousands in a
# national run), so none of them may scan the whole block list. An inference job predicts one
# chunk: `infer.blocks_per_job` consecutive blocks of the region owning them (l2h.maps.chunks).
CHUNKS = chunk_blocks(BLOCKS, CFG["infer"]["blocks_per_job"])
_touching_chunks = {r: set() for r in REGION_SLUGS}
for _region, _chunks in CHUNKS.items():
    for _n, _chunk in enumerate(_chunks):
        for _block in _chunk:
            for _touched in _block.touches:
                _touching_chunks[_touched].add((_region, _n))
REGION_CHUNKS = {r: [chunk_manifest_path(*c) for c in sorted(chunks)] for r, chunks in _touching_chunks.items()}


def chunk_of(wildcards):
    """The blocks of an inference job."""
    return CHUNKS[wildcards.region][int(wildcards.chunk)]


def chunk_masks(wildcards):
    """The region polygons a chunk's predictions are clipped to: the regions its blocks touch (only
    they can hold their pixel centres), not every region of the run."""
    return sorted({f"resources/regions/{r}.gpkg" for b in chunk_of(wildcards) for r in b.touches})


def chunk_label_sets(wildcards):
    """The class-set labels of the regions a chunk's blocks touch, when the map uses the coarse
    label as a prior (infer.label_prior > 0); none otherwise."""
    if not CFG["infer"]["label_prior"]:
        return []
    return sorted({f"resources/labels/{r}_sets.tif" for b in chunk_of(wildcards) for r in b.touches})


def chunk_roads(wildcards):
    """The OSM road surfaces of the regions a chunk's blocks touch, when the prior draws roads at
    1 m (infer.prior_roads, with a label prior and roads.osm); none otherwise."""
    if not (CFG["infer"]["label_prior"] and PRIOR_ROADS):
        return []
    return sorted({f"resources/roads/{r}.gpkg" for b in chunk_of(wildcards) for r in b.touches})


def region_chunk_manifests(wildcards):
    """The chunk manifests a region's map needs: every chunk with a block touching the region,
    whoever owns it (the mosaic reads only those blocks from them)."""
    return list(REGION_CHUNKS[wildcards.region])


def product_manifests(wildcards=None):
    return expand("resources/raw/{product}/manifest.json", product=PRODUCT_IDS)
