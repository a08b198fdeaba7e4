# Shared helpers: configuration validation, the run's grid and the region list, all at parse time.
import shlex
import sys
from pathlib import Path

from snakemake.settings.types import DeploymentMethod

from l2h.config import load_config
from l2h.errors import L2HError
from l2h.grid import resolve_grid
from l2h.provenance import code_version
from l2h.regions import list_regions

PROJECT_ROOT = Path(workflow.basedir)

# The command every rule runs. With --sdm conda the per-group environments (envs/*.yaml) hold the
# third-party packages and l2h runs from this checkout; otherwise the installed console script.
if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
    L2H = f"PYTHONPATH={shlex.quote(str(PROJECT_ROOT))} python -m l2h"
else:
    # The `l2h` installed beside the Python running Snakemake (works without an activated venv).
    _beside = Path(sys.executable).parent / "l2h"
    L2H = shlex.quote(str(_beside)) if _beside.exists() else "l2h"

try:
    CFG = load_config(config, PROJECT_ROOT)
    GRID = resolve_grid(CFG["grid"]["crs"], CFG["grid"]["resolution"], CFG["imagery"]["paths"])
    REGIONS = list_regions(CFG["regions"]["file"], CFG["regions"]["name_field"],
                           layer=CFG["regions"]["layer"], slug_field=CFG["regions"]["slug_field"])
except L2HError as exc:
    raise WorkflowError(f"l2h: {exc}") from None

REGION_SLUGS = [r.slug for r in REGIONS]
REGION_NAMES = {r.slug: r.name for r in REGIONS}
