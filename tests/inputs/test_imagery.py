"""Imagery: mosaic VRTs, XYZ tile services through GDAL WMS (a real local tile server), block cache."""

from __future__ import annotations

import logging
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import rasterio
from helpers import HALF, IMAGERY, ZOOM, cut_xyz_tiles
from httpserver import serve
from rasterio.enums import ColorInterp
from rasterio.transform import from_origin
from shapely.geometry import box

from l2h.core.blocks import parse_block_id
from l2h.core.errors import ConfigError, InputError
from l2h.inputs import imagery
from l2h.inputs.imagery import build_vrt, cache_imagery, imagery_info, region_blocks, xyz_wms_xml

KEY = "SECRET123"


def _write(path: Path, data: np.ndarray, west: float, north: float, res: float = 1.0,
           crs: str = "EPSG:32650") -> Path:
    rgb = dict(photometric="RGB", alpha="unspecified") if data.dtype == np.uint8 else {}
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1],
                       count=data.shape[0], dtype=data.dtype, crs=crs, nodata=0,
                       transform=from_origin(west, north, res, res), **rgb) as dst:
        dst.write(data)
    return path


def _random(shape, seed) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 256, shape, dtype=np.uint8)


# ---------------------------------------------------------------- build_vrt

def test_build_vrt_mosaics_files_with_a_gap(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a, b, c = _random((4, 20, 30), 1), _random((4, 20, 25), 2), _random((4, 10, 15), 3)
    _write(tmp_path / "a.tif", a, 1000, 5000)  # cols 0..29, rows 0..19
    _write(tmp_path / "b.tif", b, 1040, 5000)  # cols 40..64: a 10 px gap after a
    _write(tmp_path / "c.tif", c, 1010, 4970)  # cols 10..24, rows 30..39: below a gap of 10 rows
    out = build_vrt(["a.tif", "b.tif", "c.tif"], "mosaic/m.vrt")  # relative names
    assert out == Path("mosaic/m.vrt") and not [p for p in out.parent.iterdir() if p.name != "m.vrt"]
    text = out.read_text()
    assert str(tmp_path / "a.tif") in text and 'relativeToVRT="1"' not in text
    monkeypatch.chdir("/")
    with rasterio.open(tmp_path / "mosaic/m.vrt") as vrt:
        assert vrt.crs.to_epsg() == 32650 and vrt.res == (1.0, 1.0) and vrt.nodata == 0
        assert tuple(vrt.bounds) == (1000, 4960, 1065, 5000) and vrt.shape == (40, 65)
        assert vrt.count == 4 and vrt.dtypes[0] == "uint8"
        assert vrt.colorinterp[:3] == (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
        assert vrt.colorinterp[3] == ColorInterp.undefined
        got = vrt.read()
    expected = np.zeros((4, 40, 65), np.uint8)
    expected[:, 0:20, 0:30] = a
    expected[:, 0:20, 40:65] = b
    expected[:, 30:40, 10:25] = c
    np.testing.assert_array_equal(got, expected)
    assert (got[:, :, 30:40] == 0).all() and (got[:, 20:30, :] == 0).all()


def test_build_vrt_uses_the_finest_pixel_size(tmp_path):
    fine, coarse = _random((3, 4, 4), 4), _random((3, 2, 2), 5)
    _write(tmp_path / "fine.tif", fine, 0, 4)
    _write(tmp_path / "coarse.tif", coarse, 4, 4, res=2.0)
    with rasterio.open(build_vrt([str(tmp_path / "coarse.tif"), str(tmp_path / "fine.tif")],
                                 tmp_path / "m.vrt")) as vrt:
        assert vrt.res == (1.0, 1.0) and vrt.shape == (4, 8)
        got = vrt.read()
    np.testing.assert_array_equal(got[:, :, :4], fine)
    np.testing.assert_array_equal(got[:, :, 4:], coarse.repeat(2, axis=1).repeat(2, axis=2))


@pytest.mark.parametrize("problem", ["crs", "bands", "dtype"])
def test_build_vrt_rejects_inconsistent_files(tmp_path, problem):
    good = _write(tmp_path / "good.tif", _random((4, 8, 8), 6), 0, 8)
    if problem == "crs":
        bad = _write(tmp_path / "bad.tif", _random((4, 8, 8), 7), 0, 8, crs="EPSG:32649")
    elif problem == "bands":
        bad = _write(tmp_path / "bad.tif", _random((3, 8, 8), 7), 8, 8)
    else:
        bad = _write(tmp_path / "bad.tif", _random((4, 8, 8), 7).astype(np.uint16), 8, 8)
    with pytest.raises(InputError) as err:
        build_vrt([str(good), str(bad)], tmp_path / "m.vrt")
    message = str(err.value)
    assert str(bad) in message and str(good) in message
    expected = {"crs": ["EPSG:32649", "EPSG:32650"], "bands": ["3 bands", "4"], "dtype": ["uint16", "uint8"]}
    assert all(word in message for word in expected[problem])
    assert not (tmp_path / "m.vrt").exists()


# ---------------------------------------------------------------- XYZ through GDAL WMS

def test_xyz_wms_xml_describes_the_tile_service():
    xml = xyz_wms_xml("https://tiles.example.com/{z}/{x}/{y}.jpg?lang=en&key={api_key}", 17, api_key="a/b c")
    root = ET.fromstring(xml)
    assert root.find("Service").get("name") == "TMS"
    assert root.findtext("Service/ServerUrl") == "https://tiles.example.com/${z}/${x}/${y}.jpg?lang=en&key=a%2Fb%20c"
    assert root.findtext("DataWindow/TileLevel") == "17" and root.findtext("DataWindow/YOrigin") == "top"
    assert float(root.findtext("DataWindow/UpperLeftX")) == pytest.approx(-HALF)
    assert float(root.findtext("DataWindow/LowerRightY")) == pytest.approx(-HALF)
    assert root.findtext("Projection") == "EPSG:3857" and root.findtext("BandsCount") == "3"
    assert root.findtext("ZeroBlockHttpCodes") == "204,404"
    assert root.find("Cache") is None and root.find("UnsafeSSL") is None
    assert 1 <= int(root.findtext("MaxConnections")) <= 8
    tms = ET.fromstring(xyz_wms_xml("http://h/{z}/{x}/{-y}.png", 3, bands=4, tile_size=512))
    assert tms.findtext("DataWindow/YOrigin") == "bottom"
    assert tms.findtext("Service/ServerUrl") == "http://h/${z}/${x}/${y}.png"
    assert tms.findtext("BlockSizeX") == "512" and tms.findtext("BandsCount") == "4"
    for template, key in [("http://h/{z}/{x}.png", None), ("http://h/{z}/{x}/{y}.png?k={api_key}", None),
                          ("http://h/{s}/{z}/{x}/{y}.png", None), ("http://h/{z}/{x}/{y}.png", "k")]:
        with pytest.raises(ConfigError):
            xyz_wms_xml(template, 17, api_key=key)





def _files_text(folder: Path) -> str:
    return "".join(p.read_bytes().decode("latin-1") for p in folder.rglob("*") if p.is_file())


def _count_block_writes(monkeypatch) -> list[Path]:
    """Record the path of every block file `cache_imagery` writes from now on (in this process)."""
    written: list[Path] = []

    def counting(path, *args, **kwargs):
        written.append(Path(path))
        return real(path, *args, **kwargs)

    real = imagery.write_block
    monkeypatch.setattr(imagery, "write_block", counting)
    return written


def test_cache_imagery_from_a_local_xyz_tile_server(small_demo_world, tmp_path, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    image = small_demo_world / IMAGERY
    assert cut_xyz_tiles(image, tmp_path / "tiles", ZOOM) > 0
    with rasterio.open(image) as src:  # a 600 m box inside the demo country
        cx, cy = (src.bounds.left + src.bounds.right) / 2, (src.bounds.bottom + src.bounds.top) / 2
    region = box(cx - 300, cy - 300, cx + 300, cy + 300)
    out_dir, vrt_path = tmp_path / "cache", tmp_path / "imagery.vrt"

    with serve(tmp_path / "tiles") as server, rasterio.Env(CPL_DEBUG=True):  # GDAL debug lines quote URLs
        xml = xyz_wms_xml(server.url("") + "{z}/{x}/{y}.png?key={api_key}", ZOOM, api_key=KEY)
        info = imagery_info(xml)
        assert info["crs"] == "EPSG:3857" and info["count"] == 3 and info["dtype"] == "uint8"
        assert info["resolution"][0] == pytest.approx(2 * HALF / 2 ** ZOOM / 256)
        paths = cache_imagery(xml, region, "EPSG:32650", 1.0, 256, out_dir, vrt_path, progress=False)
        tile_requests = [r for r in server.requests if r.path.startswith(f"{ZOOM}/")]
        assert tile_requests and all(r.query == f"key={KEY}" for r in tile_requests)
        n_requests = len(server.requests)

        # every block of the 256 m grid overlapping the box, named by its global row and column
        cols = range(math.floor((cx - 300) / 256), math.ceil((cx + 300) / 256))
        rows = range(math.floor((cy - 300) / 256), math.ceil((cy + 300) / 256))
        assert sorted(p.name for p in paths) == sorted(f"c{c}_r{r}.tif" for r in rows for c in cols)
        assert sorted(p.name for p in out_dir.iterdir()) == sorted(p.name for p in paths)
        for path in paths:
            with rasterio.open(path) as block:
                col, row = parse_block_id(path.stem)
                assert block.transform == from_origin(col * 256, (row + 1) * 256, 1, 1)
                assert block.shape == (256, 256) and block.nodata == 0 and block.block_shapes[0] == (256, 256)
                assert block.profile["compress"] == "deflate"
                assert block.colorinterp == (ColorInterp.red, ColorInterp.green, ColorInterp.blue)

        # rerun: nothing fetched, no block written; after deleting one block only that one comes back
        written = _count_block_writes(monkeypatch)
        assert cache_imagery(xml, region, "EPSG:32650", 1.0, 256, out_dir, vrt_path, progress=False) == paths
        assert len(server.requests) == n_requests and written == []
        paths[0].unlink()
        cache_imagery(xml, region, "EPSG:32650", 1.0, 256, out_dir, vrt_path, progress=False)
        assert paths[0].exists() and len(server.requests) > n_requests
        assert written == [paths[0]]  # the other blocks were not rewritten

    # the cached RGB matches the original over the same pixels (after two bilinear resamplings)
    with rasterio.open(vrt_path) as vrt, rasterio.open(image) as src:
        assert vrt.crs.to_epsg() == 32650 and vrt.res == (1.0, 1.0) and vrt.count == 3
        cached = vrt.read().astype(float)
        original = src.read([1, 2, 3], window=src.window(*vrt.bounds), boundless=True, fill_value=0).astype(float)
    valid = (cached > 0).all(0) & (original > 0).all(0)
    assert valid.mean() > 0.8
    mad = np.abs(cached - original)[:, valid].mean()
    corr = np.corrcoef(cached[:, valid].ravel(), original[:, valid].ravel())[0, 1]
    assert mad < 2.0 and corr > 0.995, (mad, corr)  # a 1 px shift gives ~2.9 and ~0.991

    assert caplog.records and KEY not in caplog.text
    assert "key=***" in caplog.text  # GDAL's debug lines were there, redacted
    assert KEY not in _files_text(out_dir) and KEY not in vrt_path.read_text()
    assert not list(Path.cwd().glob("gdalwmscache*"))


def test_cache_imagery_missing_tiles_read_as_nodata(small_demo_world, tmp_path):
    (tmp_path / "empty").mkdir()
    with serve(tmp_path / "empty") as server:  # every tile is a 404
        xml = xyz_wms_xml(server.url("") + "{z}/{x}/{y}.png", ZOOM)
        paths = cache_imagery(xml, box(0, 0, 64, 64), "EPSG:32650", 1.0, 64, tmp_path / "c",
                              tmp_path / "c.vrt", progress=False)
        assert server.requests
    with rasterio.open(paths[0]) as block:
        assert block.shape == (64, 64) and not block.read().any()


def test_cache_imagery_errors_name_the_block_and_hide_the_key(tmp_path, caplog):
    with serve(tmp_path) as server:
        url = server.url("")
    # the server is gone: connections are refused
    xml = xyz_wms_xml(url + "{z}/{x}/{y}.png?api_key={api_key}", ZOOM, api_key=KEY)
    with pytest.raises(InputError) as err:
        cache_imagery(xml, box(1000, 2000, 1100, 2100), "EPSG:32650", 1.0, 128, tmp_path / "c",
                      tmp_path / "c.vrt", progress=False)
    message = str(err.value)
    # the first block, north first; the source named by its tile URL with the key's value masked
    assert message.startswith("imagery block c7_r16: cannot read tile service "
                              f"{url}${{z}}/${{x}}/${{y}}.png?api_key=***: ")
    assert KEY not in message and KEY not in caplog.text and "<GDAL_WMS>" not in message
    assert not list((tmp_path / "c").glob("*"))


def test_cache_imagery_from_a_local_file_and_region_checks(small_demo_world, tmp_path):
    image = small_demo_world / IMAGERY
    with rasterio.open(image) as src:
        west, north = src.bounds.left, src.bounds.top
        original = src.read(window=src.window(west, north - 512, west + 512, north))
    # the demo grid is snapped to 512 m, so 512 px blocks coincide with its pixels: nearest is exact
    region = box(west + 10, north - 500, west + 500, north - 10)
    paths = cache_imagery(str(image), region, "EPSG:32650", 1.0, 512, tmp_path / "c", tmp_path / "c.vrt",
                          resampling="nearest", progress=False)
    assert [p.name for p in paths] == [f"c{round(west) // 512}_r{round(north) // 512 - 1}.tif"]
    with rasterio.open(paths[0]) as block:
        np.testing.assert_array_equal(block.read(), original)
        assert block.colorinterp[3] == ColorInterp.undefined and block.descriptions[3] == "nir"
    with pytest.raises(InputError, match="empty"):
        cache_imagery(str(image), box(0, 0, 0, 0), "EPSG:32650", 1.0, 512, tmp_path / "d", tmp_path / "d.vrt")
    with pytest.raises(ConfigError, match="resampling"):
        cache_imagery(str(image), region, "EPSG:32650", 1.0, 512, tmp_path / "d", tmp_path / "d.vrt",
                      resampling="blurry")


def test_region_blocks_use_interior_overlap():
    ids = [b.id for b in region_blocks(box(0, 0, 512, 512), 2.0, 128)]  # blocks of 256 m
    assert ids == ["c0_r1", "c1_r1", "c0_r0", "c1_r0"]
    assert [b.id for b in region_blocks(box(-10, -10, -1, -1), 1.0, 256)] == ["cm1_rm1"]


# ---------------------------------------------------------------- imagery_info

def test_imagery_info(small_demo_world, tmp_path):
    info = imagery_info(str(small_demo_world / IMAGERY))
    assert info["crs"] == "EPSG:32650" and info["count"] == 4 and info["dtype"] == "uint8"
    assert info["resolution"] == (1.0, 1.0) and info["nodata"] == 0
    assert info["bounds"][2] - info["bounds"][0] == info["width"]
    missing = tmp_path / "nowhere" / "missing.tif"
    with pytest.raises(InputError, match=str(missing)):
        imagery_info(str(missing))
    with pytest.raises(InputError) as err:
        imagery_info(f"/vsicurl/http://127.0.0.1:1/x.tif?token={KEY}")
    assert "token=***" in str(err.value) and KEY not in str(err.value)
