"""The `l2h` console script: discoverable subcommands and errors without tracebacks."""

import subprocess
import sys

import pytest

from l2h.cli import build_parser, main

SUBCOMMANDS = {"demo-world", "region-geometry", "download", "roads", "harmonize", "block-stats",
               "imagery-vrt", "fetch-imagery", "sample", "train", "export", "infer", "mosaic",
               "model-info", "evaluate", "survey", "footprint", "reference-points", "score-pixels", "stac",
               "view"}


def _run(*args):
    return subprocess.run([sys.executable, "-m", "l2h", *args], capture_output=True, text=True)


def test_help_lists_every_subcommand():
    result = _run("--help")
    assert result.returncode == 0
    for name in SUBCOMMANDS:
        assert name in result.stdout


def test_parser_has_exactly_the_documented_subcommands():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == SUBCOMMANDS


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_each_subcommand_has_help(name):
    result = _run(name, "--help")
    assert result.returncode == 0 and "usage: l2h " + name in result.stdout


def test_user_error_is_one_line_without_traceback(tmp_path, capsys):
    bad = tmp_path / "regions.gpkg"
    bad.write_bytes(b"garbage")
    code = main(["region-geometry", "--regions", str(bad), "--region", "a", "--crs", "EPSG:32650",
                 "--name-field", "name", "--out", str(tmp_path / "a.gpkg")])
    err = capsys.readouterr().err
    assert code == 1
    assert "regions.gpkg: cannot be read" in err and "Traceback" not in err
    assert not (tmp_path / "a.gpkg").exists()


def test_file_system_error_is_one_line_naming_the_path(tmp_path, capsys):
    """An OSError (here: an output folder under a plain file; a full disk or a read-only folder
    alike) is reported in one line naming the path, with a non-zero exit code."""
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a user's file")
    code = main(["demo-world", str(blocker / "world")])
    err = capsys.readouterr().err
    assert code == 1
    assert f"{blocker / 'world'}: Not a directory" in err and "Traceback" not in err
    assert blocker.read_text() == "a user's file"


def test_unreadable_raster_is_one_line_naming_it(tmp_path, capsys):
    """rasterio's "Read failed. See previous exception" gets GDAL's message, which names the file."""
    import numpy as np
    from rasterio.transform import from_origin

    from l2h.core.io import write_class_raster

    label = tmp_path / "label.tif"
    rng = np.random.default_rng(0)
    write_class_raster(label, rng.integers(1, 10, (300, 300)).astype(np.uint8), "EPSG:32650", from_origin(0, 3000, 10, 10))
    whole = label.read_bytes()
    label.write_bytes(whole[:len(whole) * 2 // 3])
    regions = tmp_path / "regions.gpkg"
    import geopandas as gpd
    from shapely.geometry import box
    gpd.GeoDataFrame({"name": ["A"]}, geometry=[box(0, 0, 3000, 3000)], crs="EPSG:32650").to_file(regions)
    code = main(["block-stats", "--regions", str(regions), "--name-field", "name", "--region", "a", "--crs",
                 "EPSG:32650", "--resolution", "1", "--block-size", "500", "--label", str(label), "--out",
                 str(tmp_path / "stats.csv")])
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 1 and "ERROR" in last and "label.tif" in last and "Traceback" not in last


def test_log_file_receives_messages(tmp_path):
    log = tmp_path / "logs" / "x.log"
    bad = tmp_path / "regions.gpkg"
    bad.write_bytes(b"garbage")
    main(["--log", str(log), "region-geometry", "--regions", str(bad), "--region", "a", "--crs",
          "EPSG:32650", "--name-field", "name", "--out", str(tmp_path / "a.gpkg")])
    assert "cannot be read" in log.read_text()


def test_model_info_reports_the_models_size_and_cost(capsys):
    from l2h.model.l2hnet import L2HNet, count_parameters, flops_per_pixel

    assert main(["model-info", "--width", "64", "--in-channels", "3"]) == 0
    out = capsys.readouterr().out
    model = L2HNet(3, 11, 64)
    assert f"{count_parameters(model):,}" in out and f"{flops_per_pixel(model):,}" in out
    assert "receptive_field_px   23" in out


@pytest.mark.parametrize("module", ["l2h", "l2h.cli"])
def test_python_dash_m_runs_the_cli(module):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", module, "model-info", "--width", "16"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "parameters" in done.stdout, done.stderr
    bad = subprocess.run([sys.executable, "-m", module, "no-such-command"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
