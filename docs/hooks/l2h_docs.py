"""MkDocs hooks of the l2h site: benchmark tables rendered from bench/results/*.json, and the configuration
reference generated from the schema, both at build time (nothing typed by hand can drift from its source)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.tables import BENCH_SPEC_FENCE, SpecError, render_block  # noqa: E402
from l2h.core.config_reference import reference_markdown  # noqa: E402

REFERENCE = "configuration-reference.md"
REFERENCE_INTRO = """# Configuration reference

Every key of the configuration, generated from the schema that validates it
(`l2h/schemas/config.schema.yaml`) when this site is built. The default is the value in
`workflow_config.yaml`, the demo's configuration; a complete configuration of your own (such as
`examples/own-data.yaml`) replaces it rather than merging with it. How to write one: [your own data](own-data.md).

"""


def on_files(files, config):
    """Add the configuration reference page, generated from the schema and workflow_config.yaml."""
    schema = yaml.safe_load((ROOT / "l2h" / "schemas" / "config.schema.yaml").read_text(encoding="utf-8"))
    defaults = yaml.safe_load((ROOT / "workflow_config.yaml").read_text(encoding="utf-8"))
    files.append(File.generated(config, REFERENCE, content=REFERENCE_INTRO + reference_markdown(schema, defaults)))
    return files


def on_page_markdown(markdown, page, config, files):
    """Replace each ```bench block of a page with the table it specifies."""
    def table(match: re.Match) -> str:
        try:
            return render_block(match.group(1))
        except SpecError as exc:
            raise PluginError(f"{page.file.src_uri}: bench block: {exc}") from exc
    return BENCH_SPEC_FENCE.sub(table, markdown)
