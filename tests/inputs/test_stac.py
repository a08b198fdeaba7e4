"""Imagery and products from STAC (static catalogs, ItemCollections and a STAC API served on
127.0.0.1) and imagery from a WMTS layer: searching, the order items are laid down in, byte ranges,
provenance, resumption, and bad input (each one line, nothing left under a final name)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.warp import transform_bounds
from served_sources import published
from shapely.geometry import box, mapping

from l2h.core.errors import ConfigError, InputError
from l2h.core.secrets import RedactingFilter
from l2h.inputs import stac_imagery
from l2h.inputs.download import DownloadError
from l2h.inputs.fetch_product import fetch_product
from l2h.inputs.imagery import cache_imagery, open_source, wmts_source
from l2h.inputs.products import resolve_product
from l2h.inputs.stac import StacSearch, search
from l2h.inputs.stac_imagery import ITEMS_TAG, cache_stac_imagery, provenance_path

WEST, NORTH = 208384.0, 3323904.0  # the demo world's corner: on the 512 m block grid


def _isolated(fn, *args, **kwargs):
    """`fn(*args, **kwargs)` in a forked process: GDAL opens a /vsicurl/ or WMTS dataset holding the
    GIL, so the test server's thread in this process could not answer it."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        return pool.submit(fn, *args, **kwargs).result()


def _wmts_failure(wmts: dict) -> tuple[str, str]:
    """(the InputError's message, every log record at DEBUG through the `l2h` CLI's redacting
    handler) of opening a bad WMTS layer."""
    records = []
    handler = logging.Handler(logging.DEBUG)
    handler.addFilter(RedactingFilter())
    handler.emit = lambda record: records.append(handler.format(record))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.DEBUG)
    try:
        wmts_source(wmts)
    except InputError as exc:
        return str(exc), "\n".join(records)
    raise AssertionError("the layer opened")


def _served_file(server, url: str) -> Path:
    """The file on disk behind a URL of the test server."""
    return Path(server.directory) / url.split("/", 3)[3]


def _band_count(source: str) -> int:
    with open_source(source) as src:
        return src.count


@pytest.fixture(scope="module")
def served(demo_world, tmp_path_factory):
    """The demo world as a static STAC catalog and a WMTS layer, on a local HTTP server."""
    with published(demo_world, tmp_path_factory.mktemp("served")) as server:
        yield server


def _imagery(server, **extra) -> StacSearch:
    return StacSearch.from_config({"url": server.url("stac/catalog.json"), "collection": "demo-imagery",
                                   "asset": "image", **extra}, "imagery.stac")


def _blocks_equal_source(blocks: list[Path], source: Path) -> None:
    with rasterio.open(source) as src:
        for block in blocks:
            with rasterio.open(block) as cached:
                window = rasterio.windows.from_bounds(*cached.bounds, transform=src.transform)
                expected = src.read(window=window.round_offsets().round_lengths(), boundless=True, fill_value=0)
                np.testing.assert_array_equal(cached.read(), expected, err_msg=block.name)


# ---------------------------------------------------------------- search

def test_search_keeps_the_collection_area_time_and_filter_newest_first(served, demo_world):
    with rasterio.open(demo_world / "imagery" / "demo_imagery.tif") as src:
        whole = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    found = search(_imagery(served), whole)
    # parts are dated 1..4 May 2021 in row-major order; newest first
    assert [f.id for f in found] == ["part_1_1", "part_1_0", "part_0_1", "part_0_0"]
    assert all(f.href.startswith(served.url("stac/demo-imagery/")) and f.href.endswith(".tif") for f in found)
    assert [f.id for f in search(_imagery(served, order="oldest"), whole)] == [
        "part_0_0", "part_0_1", "part_1_0", "part_1_1"]
    # cloud cover 0, 5, 10, 15 in the same order
    assert [f.id for f in search(_imagery(served, filter={"eo:cloud_cover": {"lt": 10}}), whole)] == [
        "part_0_1", "part_0_0"]
    assert [f.id for f in search(_imagery(served, datetime="2021-05-02/2021-05-03"), whole)] == [
        "part_1_0", "part_0_1"]
    west, south, east, north = whole
    north_west = (west, (south + north) / 2 + 0.001, (west + east) / 2 - 0.001, north)
    assert [f.id for f in search(_imagery(served), north_west)] == ["part_0_0"]
    # the products' checksums come with their items: file:checksum (a multihash) as the sha256 in hex
    esa = search(StacSearch.from_config({"url": served.url("stac/catalog.json"), "collection": "esa-worldcover",
                                         "asset": "map"}, "p"), whole)
    assert esa
    for found in esa:
        local = _served_file(served, found.href)
        assert found.checksum == hashlib.sha256(local.read_bytes()).hexdigest()
        assert found.size == local.stat().st_size


def test_an_item_collection_file_is_a_saved_search(served, tmp_path):
    catalog = pystac.Catalog.from_file(served.url("stac/catalog.json"))
    items = [i for i in catalog.get_items(recursive=True) if i.collection_id == "demo-imagery"]
    for item in items:
        item.make_asset_hrefs_absolute()
    saved = tmp_path / "search.json"
    saved.write_text(json.dumps(pystac.ItemCollection(items).to_dict()))
    query = StacSearch.from_config({"url": str(saved), "asset": "image"}, "imagery.stac")
    found = search(query, (-180, -90, 180, 90))
    assert sorted(f.id for f in found) == sorted(i.id for i in items)
    assert all(f.href.startswith("http://127.0.0.1") for f in found)


class _StacApi(BaseHTTPRequestHandler):
    """A minimal STAC API: a landing page with a search link; /search answers the items of the
    asked collections (GET or POST), recording each request's parameters."""

    items: list[dict] = []
    searches: list[dict] = []

    def log_message(self, *args) -> None:
        pass

    def _json(self, data: dict) -> None:
        body = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _root(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def do_GET(self) -> None:
        if self.path.startswith("/search"):
            from urllib.parse import parse_qs, urlsplit

            return self._search({k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()})
        self._json({"type": "Catalog", "id": "api", "description": "test API", "stac_version": "1.0.0",
                    "conformsTo": ["https://api.stacspec.org/v1.0.0/core",
                                   "https://api.stacspec.org/v1.0.0/item-search"],
                    "links": [{"rel": "self", "href": self._root() + "/"},
                              {"rel": "root", "href": self._root() + "/"},
                              {"rel": "search", "href": self._root() + "/search", "method": "POST",
                               "type": "application/geo+json"}]})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        self._search(json.loads(self.rfile.read(length) or b"{}"))

    def _search(self, params: dict) -> None:
        type(self).searches.append(params)
        collections = params.get("collections")
        if isinstance(collections, str):
            collections = collections.split(",")
        chosen = [i for i in self.items if not collections or i.get("collection") in collections]
        self._json({"type": "FeatureCollection", "features": chosen, "links": []})


def test_a_stac_api_is_searched_with_pystac_client(served):
    catalog = pystac.Catalog.from_file(served.url("stac/catalog.json"))
    items = []
    for item in catalog.get_items(recursive=True):
        item.make_asset_hrefs_absolute()
        items.append({**item.to_dict(include_self_link=False), "links": []})
    _StacApi.items, _StacApi.searches = items, []
    api = ThreadingHTTPServer(("127.0.0.1", 0), _StacApi)
    thread = threading.Thread(target=api.serve_forever, daemon=True)
    thread.start()
    try:
        query = StacSearch.from_config({"url": f"http://127.0.0.1:{api.server_address[1]}/",
                                        "collection": "demo-imagery", "asset": "image", "datetime": "2021",
                                        "filter": {"eo:cloud_cover": {"gte": 10}}}, "imagery.stac")
        found = search(query, (113.9, 29.9, 114.1, 30.1))
    finally:
        api.shutdown()
        api.server_close()
    assert [f.id for f in found] == ["part_1_1", "part_1_0"]
    asked = _StacApi.searches[0]
    assert "demo-imagery" in str(asked["collections"]) and asked["bbox"] and "2021" in str(asked["datetime"])


# ---------------------------------------------------------------- imagery from STAC

def _region(blocks_x: tuple[int, int], blocks_y: tuple[int, int]):
    """A region covering whole 512 m blocks of the demo world (block columns and rows from its corner)."""
    return box(WEST + 512 * blocks_x[0] + 1, NORTH - 512 * blocks_y[1] + 1,
               WEST + 512 * blocks_x[1] - 1, NORTH - 512 * blocks_y[0] - 1)


def test_stac_imagery_is_the_source_pixel_for_pixel_and_reads_only_its_tiles(served, demo_world, tmp_path):
    region = _region((3, 5), (2, 4))  # 2 x 2 blocks across the four items' corner
    before = served.bytes_sent("stac/demo-imagery/")
    paths = _isolated(cache_stac_imagery, _imagery(served), region, "EPSG:32650", 1.0, 512, tmp_path / "r",
                      tmp_path / "r.vrt", progress=False)
    fetched = served.bytes_sent("stac/demo-imagery/") - before
    assert len(paths) == 4
    _blocks_equal_source(paths, demo_world / "imagery" / "demo_imagery.tif")
    # the COG tiles under the blocks, from the items' own tile index
    tiles = 0
    for found in search(_imagery(served), (-180, -90, 180, 90)):
        local = Path(served.directory) / found.href.split("/", 3)[3]
        with rasterio.open(local) as src:
            for block in paths:
                with rasterio.open(block) as b:
                    window = rasterio.windows.from_bounds(*b.bounds, transform=src.transform)
                col, row = round(window.col_off) // 512, round(window.row_off) // 512
                if 0 <= col < src.width // 512 and 0 <= row < src.height // 512:
                    tiles += int(src.get_tag_item(f"BLOCK_SIZE_{col}_{row}", "TIFF", bidx=1))
    assert tiles > 0 and fetched <= 1.5 * tiles, (fetched, tiles)
    record = json.loads(provenance_path(tmp_path / "r.vrt").read_text())
    assert {b: ids for b, ids in record["blocks"].items()} == {p.stem: [json.loads(
        rasterio.open(p).tags()[ITEMS_TAG])[0]] for p in paths}
    assert sorted(record["items"]) == ["part_0_0", "part_0_1", "part_1_0", "part_1_1"]
    assert all(v["item"].endswith(f"{k}/{k}.json") for k, v in record["items"].items())


def _item(root: Path, item_id: str, data: np.ndarray, west: float, north: float, day: int,
          crs: str = "EPSG:32650", res: float = 1.0) -> pystac.Item:
    folder = root / item_id
    folder.mkdir(parents=True)
    path = folder / f"{item_id}.tif"
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype=data.dtype, crs=crs, transform=from_origin(west, north, res, res), nodata=0,
                       tiled=True, blockxsize=256, blockysize=256) as dst:
        dst.write(data)
        bounds = transform_bounds(dst.crs, "EPSG:4326", *dst.bounds, densify_pts=21)
    item = pystac.Item(item_id, mapping(box(*bounds)), list(bounds), dt.datetime(2022, 1, day, tzinfo=dt.UTC), {})
    item.add_asset("image", pystac.Asset(f"./{path.name}"))
    return item


def _catalog(root: Path, items: list[pystac.Item]) -> Path:
    catalog = pystac.Catalog("c", "test")
    for item in items:
        catalog.add_item(item)
        item.set_self_href(str(root / item.id / f"{item.id}.json"))
    catalog.set_self_href(str(root / "catalog.json"))
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json"


def test_items_are_laid_down_in_order_and_fill_each_others_gaps(tmp_path):
    old = np.full((3, 512, 512), 10, np.uint8)
    new = np.full((3, 512, 512), 200, np.uint8)
    new[:, :, 256:] = 0  # the newer item has no data in its eastern half
    catalog = _catalog(tmp_path / "cat", [_item(tmp_path / "cat", "old", old, WEST, NORTH, 1),
                                          _item(tmp_path / "cat", "new", new, WEST, NORTH, 2)])
    region = _region((0, 1), (0, 1))
    for order, west_value, used in (("newest", 200, ["new", "old"]), ("oldest", 10, ["old"])):
        query = StacSearch.from_config({"url": str(catalog), "asset": "image", "order": order}, "imagery.stac")
        out = tmp_path / order
        [path] = cache_stac_imagery(query, region, "EPSG:32650", 1.0, 512, out, tmp_path / f"{order}.vrt",
                                    progress=False)
        with rasterio.open(path) as src:
            data = src.read()
            assert json.loads(src.tags()[ITEMS_TAG]) == used
        assert (data[:, :, :256] == west_value).all() and (data[:, :, 256:] == 10).all()


def test_an_item_off_the_grid_is_warped_like_a_file(tmp_path):
    rng = np.random.default_rng(3)
    data = rng.integers(1, 255, (3, 700, 700), dtype=np.uint8)
    item = _item(tmp_path / "cat", "utm49", data, 790000.0, 3330000.0, 1, crs="EPSG:32649", res=1.3)
    catalog = _catalog(tmp_path / "cat", [item])
    with rasterio.open(tmp_path / "cat" / "utm49" / "utm49.tif") as src:
        west, south, east, north = transform_bounds(src.crs, "EPSG:32650", *src.bounds)
    region = box(west + 50, south + 50, east - 50, north - 50)
    query = StacSearch.from_config({"url": str(catalog), "asset": "image"}, "imagery.stac")
    got = cache_stac_imagery(query, region, "EPSG:32650", 1.0, 256, tmp_path / "stac", tmp_path / "stac.vrt",
                             progress=False)
    expected = cache_imagery(str(tmp_path / "cat" / "utm49" / "utm49.tif"), region, "EPSG:32650", 1.0, 256,
                             tmp_path / "file", tmp_path / "file.vrt", progress=False)
    assert [p.name for p in got] == [p.name for p in expected] and len(got) >= 4
    for a, b in zip(got, expected):
        with rasterio.open(a) as x, rasterio.open(b) as y:
            np.testing.assert_array_equal(x.read(), y.read())


def test_stac_imagery_resumes_and_refetches_a_broken_block(served, tmp_path, monkeypatch):
    region = _region((0, 2), (0, 1))
    paths = _isolated(cache_stac_imagery, _imagery(served), region, "EPSG:32650", 1.0, 512, tmp_path / "r",
                      tmp_path / "r.vrt", progress=False)
    paths[1].write_bytes(paths[1].read_bytes()[:1000])  # a block cut short by a full disk
    served.requests.clear()
    # every block file written from now on, logged to a file (the run is in a forked process)
    log = tmp_path / "writes.log"
    real = stac_imagery.write_block

    def logged(path, *args, **kwargs):
        with open(log, "a") as f:
            f.write(f"{Path(path).name}\n")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(stac_imagery, "write_block", logged)
    again = _isolated(cache_stac_imagery, _imagery(served), region, "EPSG:32650", 1.0, 512, tmp_path / "r",
                      tmp_path / "r.vrt", progress=False)
    assert again == paths
    assert log.read_text().splitlines() == [paths[1].name]  # the intact block was not written again
    fetched = {r.path for r in served.requests if r.path.endswith(".tif")}
    assert fetched == {"stac/demo-imagery/part_0_0/part_0_0.tif"}
    record = json.loads(provenance_path(tmp_path / "r.vrt").read_text())
    assert record["blocks"] == {p.stem: ["part_0_0"] for p in paths}


# ---------------------------------------------------------------- bad input

def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_bad_stac_input_is_one_line_and_leaves_nothing(served, tmp_path):
    region = _region((0, 1), (0, 1))
    out = tmp_path / "r"

    def fetch(**spec):
        query = StacSearch.from_config({"url": served.url("stac/catalog.json"), "collection": "demo-imagery",
                                        "asset": "image", **spec}, "imagery.stac")
        return _isolated(cache_stac_imagery, query, region, "EPSG:32650", 1.0, 512, out, tmp_path / "r.vrt",
                         progress=False)

    with pytest.raises(InputError) as exc:
        fetch(datetime="1999")
    assert "found no items" in _one_line(exc) and "datetime 1999" in str(exc.value)
    with pytest.raises(InputError) as exc:
        fetch(asset="visual")
    assert "has no asset 'visual' (it has: image)" in _one_line(exc)
    with pytest.raises(InputError) as exc:
        fetch(url=served.url("stac/nowhere.json"))
    assert "404" in _one_line(exc)
    (Path(served.directory) / "page.html").write_text("<html><body>Sign in</body></html>")
    with pytest.raises(InputError) as exc:
        fetch(url=served.url("page.html"))
    assert "is not JSON" in _one_line(exc)
    served.not_found("stac/demo-imagery/part_0_0/part_0_0.tif")
    with pytest.raises(InputError) as exc:
        fetch()
    assert "item part_0_0" in _one_line(exc) and "cannot be opened" in str(exc.value)
    served.clear("stac/demo-imagery/part_0_0/part_0_0.tif")
    assert not out.exists() or not list(out.glob("*.tif"))
    assert not (tmp_path / "r.vrt").exists() and not provenance_path(tmp_path / "r.vrt").exists()


def test_an_html_page_where_a_cog_should_be(tmp_path):
    item = _item(tmp_path / "cat", "a", np.ones((3, 512, 512), np.uint8), WEST, NORTH, 1)
    (tmp_path / "cat" / "a" / "a.tif").write_text("<html><body>Please log in</body></html>")
    catalog = _catalog(tmp_path / "cat", [item])
    query = StacSearch.from_config({"url": str(catalog), "asset": "image"}, "imagery.stac")
    with pytest.raises(InputError) as exc:
        cache_stac_imagery(query, _region((0, 1), (0, 1)), "EPSG:32650", 1.0, 512, tmp_path / "r", tmp_path / "r.vrt",
                           progress=False)
    assert "item a" in _one_line(exc) and "not recognized" in str(exc.value)
    assert not list((tmp_path / "r").glob("*.tif")) if (tmp_path / "r").exists() else True


def test_a_catalog_in_another_crs_is_refused(tmp_path):
    item = _item(tmp_path / "cat", "a", np.ones((3, 64, 64), np.uint8), WEST, NORTH, 1)
    item.geometry = mapping(box(WEST, NORTH - 64, WEST + 64, NORTH))  # projected metres, not degrees
    item.bbox = [WEST, NORTH - 64, WEST + 64, NORTH]
    catalog = _catalog(tmp_path / "cat", [item])
    query = StacSearch.from_config({"url": str(catalog), "asset": "image"}, "imagery.stac")
    with pytest.raises(InputError) as exc:
        search(query, (113, 29, 115, 31))
    assert "item a" in _one_line(exc) and "another CRS" in str(exc.value) and "EPSG:4326" in str(exc.value)


@pytest.mark.parametrize("section, problem", [
    ({"order": "random"}, "order"),
    ({"filter": {"eo:cloud_cover": {"below": 3}}}, "filter.eo:cloud_cover"),
    ({"datetime": "2020/2021/2022"}, "datetime"),
])
def test_bad_search_settings_name_the_key(section, problem):
    with pytest.raises(ConfigError, match=f"imagery.stac.{problem}"):
        StacSearch.from_config({"url": "x.json", "asset": "image", **section}, "imagery.stac")


# ---------------------------------------------------------------- products from STAC

def test_a_product_from_stac_downloads_verified_items_and_refuses_a_bad_checksum(served, tmp_path):
    spec = {"preset": "esa_worldcover", "edition": "v200", "stac": {"url": served.url("stac/catalog.json")}}
    bounds = [(113.99, 29.99, 114.01, 30.01)]
    product = resolve_product("esa", spec, bounds)
    # the area straddles the corner of four 3-degree tiles
    assert [f.label for f in product.files] == [f"esa item ESA_WorldCover_10m_2021_v200_{t}_Map"
                                                for t in ("N27E111", "N27E114", "N30E111", "N30E114")]
    assert all(f.expected_crs == "EPSG:4326" for f in product.files)
    originals = [_served_file(served, f.url).read_bytes() for f in product.files]
    assert [f.sha256 for f in product.files] == [hashlib.sha256(data).hexdigest() for data in originals]
    manifest = fetch_product(product, tmp_path / "ok" / "manifest.json", progress=False, backoff=0.01)
    assert len(manifest["files"]) == 4 and all(Path(f["path"]).is_file() for f in manifest["files"])

    # a corrupted copy on the server: the catalog's checksum catches it, nothing takes the file's name;
    # the error names the file and both checksums (the server flips the first 64 bytes)
    path = product.files[0].url.split("/", 3)[3]
    corrupted = bytes(b ^ 0xFF for b in originals[0][:64]) + originals[0][64:]
    served.corrupt(path, times=None)
    try:
        with pytest.raises(DownloadError) as err:
            fetch_product(product, tmp_path / "bad" / "manifest.json", progress=False, retries=1, backoff=0.01)
    finally:
        served.clear(path)
    assert str(err.value) == (
        f"1 of 4 file(s) of product esa failed:\n  - {product.files[0].label}: cannot download "
        f"{product.files[0].url}: gave up after 2 attempts: sha256 mismatch: "
        f"got {hashlib.sha256(corrupted).hexdigest()}, expected {hashlib.sha256(originals[0]).hexdigest()}")
    assert not (tmp_path / "bad" / "manifest.json").exists()
    assert not (tmp_path / "bad" / product.files[0].name).exists()

    # presets know their collection and the edition's year; a custom product names them
    esri = resolve_product("esri", {"preset": "esri_lulc", "edition": "2021",
                                    "stac": {"url": served.url("stac/catalog.json")}}, bounds)
    assert [f.label for f in esri.files] == [f"esri item {z}_20210101-20220101" for z in ("49R", "50R")]
    with pytest.raises(InputError, match="found no items.*datetime 2020"):
        resolve_product("esa", {**spec, "edition": "v100"}, bounds)
    custom = resolve_product("glc", {"preset": "custom", "codes": {"10": ["crop"]}, "stac": {
        "url": served.url("stac/catalog.json"), "collection": "fromglc10", "asset": "data"}}, bounds)
    assert len(custom.files) == 4 and custom.codes[10].classes


# ---------------------------------------------------------------- WMTS

def test_wmts_imagery_is_the_source_pixel_for_pixel_and_hides_its_key(served, demo_world, tmp_path, monkeypatch):
    monkeypatch.setenv("WMTS_TOKEN", "tok-S3CRET-42")
    wmts = {"url": served.url("wmts/capabilities.xml") + "?tk=${WMTS_TOKEN}", "layer": "demo", "bands": 4}
    source = _isolated(wmts_source, wmts)
    paths = _isolated(cache_imagery, source, _region((0, 2), (1, 3)), "EPSG:32650", 1.0, 512, tmp_path / "w",
                          tmp_path / "w.vrt", progress=False)
    _blocks_equal_source(paths, demo_world / "imagery" / "demo_imagery.tif")
    assert any(r.query == "tk=tok-S3CRET-42" for r in served.requests_for("wmts/capabilities.xml"))
    with rasterio.open(paths[0]) as src:
        assert src.count == 4 and [c.name for c in src.colorinterp] == ["red", "green", "blue", "undefined"]
    assert _isolated(_band_count, _isolated(wmts_source, {**wmts, "bands": None})) == 3  # default: visible bands

    for bad, expected in ((dict(layer="roads"), "no such layer; its layers: demo"),
                          (dict(tile_matrix_set="mercator"), "no tile matrix set 'mercator'; its sets: grid"),
                          (dict(url=served.url("wmts/none.xml") + "?tk=${WMTS_TOKEN}"), "HTTP 404")):
        message, logged = _isolated(_wmts_failure, {**wmts, **bad})
        assert expected in message and "\n" not in message and "tk=***" in message
        assert "tk=***" in logged and "tok-S3CRET-42" not in message + logged
