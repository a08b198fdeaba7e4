"""Secrets stay secret: hidden by value (raw and URL-encoded) in every log line, error and file, and
off command lines (URLs name them as ${VARIABLE}; the tile service's key comes from api_key_env)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, quote_plus

import numpy as np
import pytest
import rasterio
import yaml
from helpers import IMAGERY, ROOT, ZOOM, cut_xyz_tiles
from httpserver import serve
from rasterio.transform import from_origin
from shapely.geometry import box

from l2h.core import secrets
from l2h.core.config import load_config
from l2h.core.errors import ConfigError
from l2h.core.io import write_class_raster

L2H = [sys.executable, "-m", "l2h"]
TILE_KEY = "Zq8+Tk=sEcReT 42"  # characters that URL-encode differently with quote and quote_plus
TOKEN = "pr0d+T0ken=zz 9"


def _forms(value: str) -> set[str]:
    return {value, quote(value, safe=""), quote_plus(value), quote(value)}


def _leaks(value: str, *texts: str) -> list[str]:
    return [form for form in _forms(value) for text in texts if form in text]


def _files_text(*folders: Path) -> str:
    return "".join(p.read_bytes().decode("latin-1") for folder in folders for p in folder.rglob("*") if p.is_file())


def test_redact_hides_registered_values_in_every_encoding(monkeypatch):
    monkeypatch.setenv("L2H_TEST_SECRET", "abc+de f/gh")
    url = secrets.expand("https://h/${L2H_TEST_SECRET}/t.tif?q=${L2H_TEST_SECRET}", "products.x.urls[0]")
    assert url == "https://h/abc+de f/gh/t.tif?q=abc+de f/gh"
    text = f"GET {quote('abc+de f/gh', safe='')} and {quote_plus('abc+de f/gh')} and abc+de f/gh"
    assert secrets.redact(text) == "GET *** and *** and ***"
    # names that look secret are hidden even when never registered; passwords in URLs too
    assert secrets.redact("https://u:pw@h/x?tk=1234&api_key=zz&lang=en") == "https://u:***@h/x?tk=***&api_key=***&lang=en"


def test_an_unset_variable_is_one_line_naming_it_and_the_key(monkeypatch):
    monkeypatch.delenv("L2H_NOT_SET", raising=False)
    with pytest.raises(ConfigError, match=r"^products.x.urls\[0\]: the environment variable L2H_NOT_SET "):
        secrets.expand("https://h/${L2H_NOT_SET}", "products.x.urls[0]")


def test_log_filter_redacts_arguments_and_tracebacks(monkeypatch):
    secrets.register("filter-secret-77")
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed %s", ("url?a=filter-secret-77",), None)
    assert secrets.RedactingFilter().filter(record) and record.getMessage() == "failed url?a=***"


def _config(demo_world: Path, **products) -> dict:
    config = yaml.safe_load((ROOT / "workflow_config.yaml").read_text())
    config["regions"]["file"] = str(demo_world / "regions" / "provinces.gpkg")
    config["imagery"]["paths"] = [str(demo_world / IMAGERY)]
    config["roads"]["osm"] = None
    config["evaluation"]["points"]["file"] = str(demo_world / "reference" / "points.csv")
    config["evaluation"]["points"]["strata"]["areas_csv"] = str(demo_world / "reference" / "strata.csv")
    config["evaluation"]["survey"]["table"] = str(demo_world / "survey" / "survey.csv")
    config["evaluation"]["pixels"]["reference"] = [str(demo_world / "truth" / "truth_1m.tif")]
    config["products"] = products or {"p": {"preset": "custom", "urls": ["https://h/a.tif"], "codes": {"1": ["tree"]}}}
    return config


@pytest.mark.parametrize("products, message", [
    ({"p": {"preset": "custom", "urls": ["https://h/a.tif?access_token=abc123"], "codes": {"1": ["tree"]}}},
     r"'products.p.urls\[0\]': https://h/a.tif\?access_token=\*\*\* holds a secret written out"),
    ({"p": {"preset": "custom", "urls": ["https://me:hunter22@h/a.tif"], "codes": {"1": ["tree"]}}},
     r"'products.p.urls\[0\]': https://me:\*\*\*@h/a.tif holds a secret written out \(a password"),
    ({"p": {"preset": "esa_worldcover", "base_url": "ftp://mirror.example/esa"}},
     r"'products.p.base_url': ftp://mirror.example/esa: unsupported URL scheme 'ftp'"),
    ({"p": {"preset": "esa_worldcover", "base_url": "s3://bucket/esa"}}, r"unsupported URL scheme 's3'"),
    ({"p": {"preset": "custom", "urls": ["file://fileserver/share/a.tif"], "codes": {"1": ["tree"]}}},
     r"'products.p.urls\[0\]'.*names the host 'fileserver'"),
])
def test_config_refuses_written_out_secrets_and_unfetchable_urls(small_demo_world, tmp_path, products, message):
    with pytest.raises(ConfigError, match=message):
        load_config(_config(small_demo_world, **products), tmp_path)


def test_config_accepts_variables_checksums_and_local_file_urls(small_demo_world, tmp_path):
    products = {"p": {"preset": "custom", "codes": {"1": ["tree"]}, "urls": [
        "https://h/${MY_TOKEN}/a.tif?sig=${MY_TOKEN}", "file:///data/b.tif",
        {"url": "https://h/c.tif", "sha256": "ab" * 32, "size": 1234}]}}
    assert load_config(_config(small_demo_world, **products), tmp_path)["products"]["p"]["urls"][2]["size"] == 1234
    with pytest.raises(ConfigError, match=r"products.p.urls\[0\].sha256"):
        load_config(_config(small_demo_world, p={"preset": "custom", "codes": {"1": ["tree"]},
                                                 "urls": [{"url": "https://h/c.tif", "sha256": "xyz"}]}), tmp_path)


def test_tile_service_key_never_reaches_logs_output_or_errors(small_demo_world, tmp_path):
    image = small_demo_world / IMAGERY
    assert cut_xyz_tiles(image, tmp_path / "tiles" / TILE_KEY, ZOOM) > 0  # the key is a path segment
    with rasterio.open(image) as src:
        cx, cy = (src.bounds.left + src.bounds.right) / 2, (src.bounds.bottom + src.bounds.top) / 2
    region = tmp_path / "region.gpkg"
    import geopandas as gpd
    gpd.GeoDataFrame({"slug": ["r"], "name": ["R"]}, geometry=[box(cx - 200, cy - 200, cx + 200, cy + 200)],
                     crs=src.crs).to_file(region, layer="region", driver="GPKG")
    env = {**os.environ, "TILES_KEY": TILE_KEY, "CPL_DEBUG": "ON"}  # GDAL's debug lines quote every URL
    outputs = []
    with serve(tmp_path / "tiles") as server:
        xyz = {"url": server.url("") + "{api_key}/{z}/{x}/{y}.png?tk={api_key}", "zoom": ZOOM,
               "api_key_env": "TILES_KEY"}
        args = ["--verbose", "--log", str(tmp_path / "ok.log"), "fetch-imagery", "--xyz", json.dumps(xyz),
                "--region", str(region), "--crs", str(src.crs), "--resolution", "1", "--block-size", "128",
                "--out", str(tmp_path / "cache" / "r.vrt")]
        outputs.append(subprocess.run(L2H + args, capture_output=True, text=True, env=env, timeout=300))
        served = [r for r in server.requests if r.path.startswith(TILE_KEY)]
    assert outputs[0].returncode == 0, outputs[0].stderr[-2000:]
    assert served  # the key did reach the tile server, as a path segment and a query value
    args[2] = str(tmp_path / "failed.log")
    (tmp_path / "cache").rename(tmp_path / "cache_ok")
    outputs.append(subprocess.run(L2H + args, capture_output=True, text=True, env=env, timeout=300))  # server gone
    assert outputs[1].returncode == 1 and "cannot read tile service" in outputs[1].stderr.splitlines()[-1]
    logs = (tmp_path / "ok.log").read_text() + (tmp_path / "failed.log").read_text()
    assert "GDAL" in logs or "WMS" in logs  # the debug lines were written, and cleaned
    texts = [o.stdout + o.stderr for o in outputs] + [logs, _files_text(tmp_path / "cache_ok")]
    assert not _leaks(TILE_KEY, *texts)


def test_product_token_never_reaches_logs_manifest_or_errors(tmp_path):
    served = tmp_path / "server" / TOKEN
    served.mkdir(parents=True)
    write_class_raster(served / "a.tif", np.ones((32, 32), np.uint8), "EPSG:32650", from_origin(0, 32, 1, 1))
    url = "{root}${{PROD_TOKEN}}/{name}?sig=${{PROD_TOKEN}}&x=1"
    env = {**os.environ, "PROD_TOKEN": TOKEN}
    with serve(tmp_path / "server") as server:
        server.unavailable(f"{TOKEN}/a.tif", times=1)  # one retry: its warning quotes the URL
        root = server.url("")
        spec = {"preset": "custom", "codes": {"1": ["tree"]},
                "urls": [url.format(root=root, name="a.tif"), url.format(root=root, name="missing.tif")]}
        args = ["--log", str(tmp_path / "fetch.log"), "download", "--product", "p", "--spec", json.dumps(spec),
                "--bounds", "[[0, 0, 1, 1]]", "--out", str(tmp_path / "raw" / "manifest.json"), "--backoff", "0.01"]
        assert TOKEN not in " ".join(args)  # the command line holds the reference only
        done = subprocess.run(L2H + args, capture_output=True, text=True, env=env, timeout=120)
        got = {r.path for r in server.requests}
    assert done.returncode == 1 and "missing.tif" in done.stderr and "HTTP 404" in done.stderr
    assert f"{TOKEN}/a.tif" in got  # fetched with the real token
    assert (tmp_path / "raw" / "000_a.tif").exists()
    unset = subprocess.run(L2H + args, capture_output=True, text=True, timeout=120,
                           env={k: v for k, v in os.environ.items() if k != "PROD_TOKEN"})
    assert unset.returncode == 1 and "PROD_TOKEN" in unset.stderr and "Traceback" not in unset.stderr
    texts = [done.stdout, done.stderr, (tmp_path / "fetch.log").read_text(), _files_text(tmp_path / "raw")]
    assert "attempt 1 of" in texts[2]
    assert not _leaks(TOKEN, *texts)


def test_workflow_command_lines_carry_the_reference_not_the_secret(small_demo_world, tmp_path):
    config = _config(small_demo_world, p={"preset": "custom", "codes": {"1": ["tree"]},
                                          "urls": ["https://h.example/${PROD_TOKEN}/a.tif"]})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    snakefile = ROOT / "Snakefile"
    done = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(snakefile), "-d", str(tmp_path), "-n", "-p",
                           "resources/raw/p/manifest.json", "--configfile", str(tmp_path / "c.yaml")],
                          capture_output=True, text=True, env={**os.environ, "PROD_TOKEN": TOKEN}, timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "l2h --log" in done.stdout + done.stderr and "${PROD_TOKEN}" in done.stdout + done.stderr
    assert not _leaks(TOKEN, done.stdout, done.stderr)
