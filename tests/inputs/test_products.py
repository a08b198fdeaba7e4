"""Product presets resolve to the real servers' URLs; fetching a product through a real local
HTTP server records tiles the server does not have, and fails clearly on anything else."""

import hashlib
import json

import pytest
from httpserver import serve

from l2h.core.classes import GRASS, SHRUB
from l2h.core.errors import ConfigError, InputError
from l2h.inputs.download import DownloadError
from l2h.inputs.fetch_product import fetch_product, read_manifest
from l2h.inputs.products import resolve_product, utm_crs_of_zone

WUHAN = (114.25, 30.5, 114.35, 30.6)


def test_esa_urls_match_the_official_bucket():
    product = resolve_product("esa", {"preset": "esa_worldcover", "edition": "v200"}, [WUHAN])
    assert [f.url for f in product.files] == [
        "https://esa-worldcover.s3.eu-central-1.amazonaws.com/v200/2021/map/ESA_WorldCover_10m_2021_v200_N30E114_Map.tif"]
    v100 = resolve_product("esa", {"preset": "esa_worldcover", "edition": "v100"}, [WUHAN])
    assert v100.files[0].url.endswith("/v100/2020/map/ESA_WorldCover_10m_2020_v100_N30E114_Map.tif")
    assert product.files[0].expected_crs == "EPSG:4326" and product.missing_ok


def test_esri_editions_and_zone_crs():
    annual = resolve_product("esri", {"preset": "esri_lulc", "edition": "2021"}, [WUHAN])
    assert [f.url for f in annual.files] == [
        "https://lulctimeseries.blob.core.windows.net/lulctimeseriesv003/lc2021/50R_20210101-20220101.tif"]
    assert annual.files[0].expected_crs == "EPSG:32650"
    assert annual.codes[11].classes == {GRASS, SHRUB}
    y2024 = resolve_product("esri", {"preset": "esri_lulc", "edition": "2024"}, [WUHAN])
    assert y2024.files[0].url.endswith("lc2024/50R_20240101-20241231.tif")
    original = resolve_product("esri", {"preset": "esri_lulc", "edition": "2020-10class"}, [WUHAN])
    assert original.files[0].url == ("https://ai4edataeuwest.blob.core.windows.net/io-lulc/"
                                     "io-lulc-model-001-v01-composite-v03-supercell-v02-clip-v01/50R_20200101-20210101.tif")
    assert original.codes[6].classes == {SHRUB} and 11 not in original.codes
    assert utm_crs_of_zone("23K") == "EPSG:32723"


def test_fromglc10_url():
    product = resolve_product("from", {"preset": "fromglc10"}, [WUHAN])
    assert [f.url for f in product.files] == [
        "https://data.ess.tsinghua.edu.cn/data/fromglc10_2017v01/fromglc10v01_30_114.tif"]


def test_base_url_mirror_keeps_the_server_layout():
    product = resolve_product("esa", {"preset": "esa_worldcover", "edition": "v200", "base_url": "/data/mirror/"},
                              [WUHAN, (114.0, 29.5, 114.1, 29.6)])
    assert [f.url for f in product.files] == [
        "/data/mirror/v200/2021/map/ESA_WorldCover_10m_2021_v200_N27E114_Map.tif",
        "/data/mirror/v200/2021/map/ESA_WorldCover_10m_2021_v200_N30E114_Map.tif"]


def test_bad_edition_and_custom_codes_are_config_errors():
    with pytest.raises(ConfigError, match=r"'products.esa.edition': 'v300'.*v100, v200"):
        resolve_product("esa", {"preset": "esa_worldcover", "edition": "v300"}, [WUHAN])
    with pytest.raises(ConfigError, match=r"'products.nlcd.codes' is required"):
        resolve_product("nlcd", {"preset": "custom", "files": ["x.tif"]}, [WUHAN])
    with pytest.raises(ConfigError, match=r"'products.nlcd.codes.41': unknown class\(es\) \['forest'\]"):
        resolve_product("nlcd", {"preset": "custom", "files": ["x.tif"], "codes": {"41": ["forest"]}}, [WUHAN])


def _tile(folder, relative, size=50_000):
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"II*\x00" + bytes(range(256)) * (size // 256))  # a GeoTIFF's first bytes: the content check
    return path


def test_fetch_through_http_records_missing_ocean_tiles(tmp_path):
    mirror = tmp_path / "mirror"
    _tile(mirror, "v200/2021/map/ESA_WorldCover_10m_2021_v200_N30E114_Map.tif")
    with serve(mirror) as server:
        spec = {"preset": "esa_worldcover", "edition": "v200", "base_url": server.url("")}
        product = resolve_product("esa", spec, [WUHAN, (112.0, 29.0, 112.1, 29.1)])  # N27E111 is "ocean"
        manifest = fetch_product(product, tmp_path / "raw" / "manifest.json", progress=False, backoff=0)
    assert manifest["missing"] == ["esa tile N27E111"]
    assert [f["label"] for f in manifest["files"]] == ["esa tile N30E114"]
    assert (tmp_path / "raw" / "v200" / "N30E114.tif").read_bytes() == (mirror / "v200/2021/map/"
                                                                "ESA_WorldCover_10m_2021_v200_N30E114_Map.tif").read_bytes()
    back = read_manifest(tmp_path / "raw" / "manifest.json")
    assert back.paths == [str(tmp_path / "raw" / "v200" / "N30E114.tif")] and back.codes[50].classes == {5}
    assert back.refetchable == [True]
    assert json.loads((tmp_path / "raw" / "manifest.json").read_text())["id"] == "esa"
    # a manifest of another l2h version (a field missing) is named, with the remedy
    old = json.loads((tmp_path / "raw" / "manifest.json").read_text())
    del old["files"][0]["refetchable"]
    (tmp_path / "old.json").write_text(json.dumps(old))
    with pytest.raises(InputError, match=r"old\.json: lacks or mangles 'refetchable'.*delete it to fetch again"):
        read_manifest(tmp_path / "old.json")


def test_fetch_fails_when_no_tile_exists(tmp_path):
    (tmp_path / "empty").mkdir()
    with serve(tmp_path / "empty") as server:
        product = resolve_product("esa", {"preset": "esa_worldcover", "base_url": server.url("")}, [WUHAN])
        with pytest.raises(Exception, match="none of its 1 tile"):
            fetch_product(product, tmp_path / "raw" / "manifest.json", progress=False, backoff=0)
    assert not (tmp_path / "raw" / "manifest.json").exists()


def test_custom_url_404_is_an_error_naming_the_file(tmp_path):
    (tmp_path / "srv").mkdir()
    with serve(tmp_path / "srv") as server:
        spec = {"preset": "custom", "urls": [server.url("nlcd_2019.tif")], "codes": {"11": ["water"]}}
        product = resolve_product("nlcd", spec, [WUHAN])
        with pytest.raises(DownloadError, match=r"nlcd file 0: cannot download .*nlcd_2019.tif: not found"):
            fetch_product(product, tmp_path / "raw" / "manifest.json", progress=False, backoff=0)
    assert not (tmp_path / "raw" / "manifest.json").exists()


def test_editions_do_not_share_downloaded_files():
    v100 = resolve_product("esa", {"preset": "esa_worldcover", "edition": "v100"}, [WUHAN])
    v200 = resolve_product("esa", {"preset": "esa_worldcover", "edition": "v200"}, [WUHAN])
    assert v100.files[0].name != v200.files[0].name


def test_custom_urls_with_the_same_file_name_and_bad_codes():
    spec = {"preset": "custom", "urls": ["https://a.example/2020/map.tif", "https://a.example/2021/map.tif"],
            "codes": {"1": ["tree"]}}
    names = [f.name for f in resolve_product("lc", spec, [WUHAN]).files]
    assert len(set(names)) == 2
    with pytest.raises(ConfigError, match="code 300 is outside 0..255"):
        resolve_product("lc", {**spec, "codes": {"300": ["tree"]}}, [WUHAN])


def test_custom_product_checksum_and_size_are_verified(tmp_path):
    tile = _tile(tmp_path / "mirror", "a.tif")
    digest = hashlib.sha256(tile.read_bytes()).hexdigest()
    good = {"url": tile.as_uri(), "sha256": digest, "size": tile.stat().st_size}
    spec = {"preset": "custom", "codes": {"1": ["tree"]}, "urls": [good]}
    manifest = fetch_product(resolve_product("mine", spec, [WUHAN]), tmp_path / "ok" / "manifest.json", progress=False)
    assert len(manifest["files"]) == 1
    for wrong, message in (({"sha256": "0" * 64}, "sha256 mismatch"), ({"size": 10}, "size mismatch")):
        spec["urls"] = [{**good, **wrong}]
        with pytest.raises(DownloadError, match=message):
            fetch_product(resolve_product("mine", spec, [WUHAN]), tmp_path / "bad" / "manifest.json", progress=False)
        assert not (tmp_path / "bad" / "manifest.json").exists() and not (tmp_path / "bad" / "000_a.tif").exists()
