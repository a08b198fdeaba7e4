"""The Snakemake workflow for real: parse-time validation, dry run, lint, a run, the DAG picture."""

import re
from pathlib import Path

import geopandas as gpd
import pytest
import yaml
from helpers import ROOT, demo_overrides, snakemake

pytestmark = pytest.mark.workflow








@pytest.fixture(scope="module")
def demo_config(demo_world, tmp_path_factory) -> Path:
    """A configuration pointing the default workflow at the session's demo world."""
    path = tmp_path_factory.mktemp("config") / "demo.yaml"
    path.write_text(yaml.safe_dump(demo_overrides(demo_world)))
    return path


def test_dry_run_lists_every_region(demo_config, tmp_path):
    result = snakemake(tmp_path, "-n", configfile=demo_config)
    assert result.returncode == 0, result.stderr
    for slug in ("cote_verte", "northmoor", "riverside"):
        assert f"resources/regions/{slug}.gpkg" in result.stdout + result.stderr


def test_lint_is_clean(demo_config, tmp_path):
    result = snakemake(tmp_path, "--lint", configfile=demo_config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr


def test_run_writes_regions_in_the_run_crs(demo_config, tmp_path):
    result = snakemake(tmp_path, "resources/regions/cote_verte.gpkg", configfile=demo_config)
    assert result.returncode == 0, result.stderr
    region = gpd.read_file(tmp_path / "resources/regions/cote_verte.gpkg", engine="pyogrio")
    assert region.crs.to_epsg() == 32650 and region["name"][0] == "Côte Verte"
    assert region.geometry[0].area / 1e6 >= 3.0
    assert (tmp_path / "logs/region_geometry/cote_verte.log").read_text()
    assert (tmp_path / "benchmarks/region_geometry/cote_verte.tsv").exists()
    again = snakemake(tmp_path, "resources/regions/cote_verte.gpkg", configfile=demo_config)
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.parametrize("override, expected", [
    ({"grid": {"resolution": "1 m"}}, "config key 'grid.resolution': expected number or null"),
    ({"regions": {"nmae_field": "name"}}, "unknown key(s) 'regions.nmae_field'"),
    ({"imagery": {"paths": ["/nonexistent/img.tif"]}}, "'imagery.paths[0]': file not found: /nonexistent/img.tif"),
    ({"regions": {"name_field": "NAME_1"}}, "has no attribute 'NAME_1' (config key regions.name_field)"),
    ({"grid": {"crs": "EPSG:4326"}}, "not a projected CRS in metres"),
])
def test_bad_config_stops_before_any_job(demo_config, tmp_path, override, expected):
    merged = yaml.safe_load(demo_config.read_text())
    for key, value in override.items():
        merged.setdefault(key, {}).update(value)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(merged))
    result = snakemake(tmp_path / "run", configfile=bad)
    assert result.returncode != 0
    assert expected in result.stderr
    assert not (tmp_path / "run" / "resources").exists()


def test_committed_rulegraph_shows_every_rule(demo_config, tmp_path):
    """docs/rulegraph.svg (README's DAG picture) is regenerated when rules change: `make rulegraph`."""
    result = snakemake(tmp_path, "--rulegraph", configfile=demo_config)
    assert result.returncode == 0, result.stderr
    rules = set(re.findall(r'label = "(\w+)"', result.stdout))
    svg = (ROOT / "docs" / "rulegraph.svg").read_text()
    drawn = set(re.findall(r"<text[^>]*>(\w+)</text>", svg))
    assert rules and rules == drawn, f"docs/rulegraph.svg is stale: run `make rulegraph` ({rules} vs {drawn})"


def test_nested_config_on_the_command_line_takes_numbers_written_as_text(demo_config, tmp_path):
    """The docs' `--config train='{width: 32, steps: 600}'`: Snakemake hands the nested values over as
    text; a number key takes a number written as text, and anything else is one clean line."""
    result = snakemake(tmp_path, "-n", "-p", "--config", "train={width: 32, steps: 600}", "infer={label_prior: 0}",
                       configfile=demo_config)
    assert result.returncode == 0, result.stderr
    assert '"width": 32' in result.stdout and '"steps": 600' in result.stdout
    assert "--label-prior" not in result.stdout  # label_prior 0: no prior
    bad = snakemake(tmp_path, "-n", "--config", "train={width: wide}", configfile=demo_config)
    assert bad.returncode != 0
    assert "l2h: invalid configuration:\n  - config key 'train.width': expected integer, got 'wide' (string)" in bad.stderr
    assert 'File "' not in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("section, key, word", [("train", "lr", ".nan"), ("infer", "label_prior", ".inf")])
def test_nan_or_inf_in_the_config_stops_the_dry_run_in_one_line(demo_config, tmp_path, section, key, word):
    """YAML's .nan and .inf are floats that the schema's number checks let through: `snakemake -n`
    refuses them in one line naming the key, before any job (not later, inside one)."""
    merged = yaml.safe_load(demo_config.read_text())
    merged.setdefault(section, {})[key] = float(word.replace(".", ""))
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(merged))
    assert f"{key}: {word}" in bad.read_text()  # written as YAML writes it
    result = snakemake(tmp_path / "run", "-n", configfile=bad)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"\nl2h: config key '{section}.{key}' is {word}; expected a finite number\n" in result.stderr, output
    assert "Traceback" not in output and 'File "' not in output
    assert not (tmp_path / "run" / "resources").exists()
