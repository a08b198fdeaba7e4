"""`l2h view` against the session's demo run: its HTTP routes, its refusals, and the page in a real
headless Chromium (tiles drawn in the class colours, the legend, a click that names the class)."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import shutil
import threading
from pathlib import Path

import morecantile
import numpy as np
import pytest
import rasterio
from PIL import Image
from pyproj import Transformer

from l2h.cli import main
from l2h.core.classes import BY_CODE, CLASSES, NODATA, hex_to_rgb
from l2h.core.errors import InputError
from l2h.view.layers import find_layers
from l2h.view.server import ViewerServer

pytestmark = pytest.mark.workflow
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
WEB_MERCATOR = morecantile.tms.get("WebMercatorQuad")


@pytest.fixture(scope="module")
def layers(http_demo_run):
    workdir, config, _ = http_demo_run
    return find_layers(workdir, configfile=str(config))


@contextlib.contextmanager
def running(layers):
    server = ViewerServer(layers, port=0)  # any free port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def server(layers):
    with running(layers) as server:
        yield server


def get(server, path: str, method: str = "GET", **headers) -> tuple[int, bytes, str]:
    """A request with the path sent exactly as given (no client-side normalisation of '..')."""
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=60)
    connection.request(method, path, headers=headers)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, body, response.getheader("Content-Type", "")


def homogeneous_point(path: Path, radius: int = 12) -> tuple[float, float, int]:
    """(lon, lat, class) of the first pixel whose (2 radius + 1)^2 m neighbourhood is one class."""
    with rasterio.open(path) as src:
        data = src.read(1)
        to_lonlat = Transformer.from_crs(src.crs, "EPSG:4326", always_xy=True)
        for row in range(radius * 4, data.shape[0] - radius * 4, 7):
            for col in range(radius * 4, data.shape[1] - radius * 4, 7):
                window = data[row - radius:row + radius + 1, col - radius:col + radius + 1]
                code = int(data[row, col])
                if code != NODATA and (window == code).all():
                    x, y = src.xy(row, col)
                    lon, lat = to_lonlat.transform(x, y)
                    return lon, lat, code
    raise AssertionError(f"{path}: no homogeneous area")


def test_layers_found_in_the_run(layers):
    assert set(layers.zooms) == {"map", "confidence", "imagery"}
    assert set(layers.labels) == set(layers.regions) == {"cote_verte", "northmoor", "riverside"}
    assert layers.rgb == (1, 2, 3)
    low, high = layers.zooms["map"]
    assert low < high and high >= 17  # 1 m pixels; overviews reach the small zooms


def test_layers_json_describes_run_and_legend(server):
    status, body, kind = get(server, "/api/layers.json")
    doc = json.loads(body)
    assert status == 200 and kind == "application/json" and doc["title"] == "demo"
    assert [c["name"] for c in doc["legend"]] == [c.name for c in CLASSES]
    west, south, east, north = doc["bounds"]
    assert 113 < west < east < 115 and 29 < south < north < 31  # the demo lies in UTM zone 50N


def test_map_tile_is_cut_in_the_class_colours(server, layers):
    lon, lat, code = homogeneous_point(layers.map)
    tile = WEB_MERCATOR.tile(lon, lat, layers.zooms["map"][1])
    status, body, kind = get(server, f"/tiles/map/{tile.z}/{tile.x}/{tile.y}.png")
    assert status == 200 and kind == "image/png"
    image = np.asarray(Image.open(io.BytesIO(body)).convert("RGBA"))
    west, south, east, north = WEB_MERCATOR.xy_bounds(tile)
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True).transform(lon, lat)
    col, row = int((x - west) / (east - west) * 256), int((north - y) / (north - south) * 256)
    assert tuple(image[row, col]) == (*hex_to_rgb(BY_CODE[code].colour), 255)


def test_small_zoom_tile_reads_overviews_and_far_tiles_are_404(server, layers):
    low = layers.zooms["map"][0]
    lon, lat, _ = homogeneous_point(layers.map)
    tile = WEB_MERCATOR.tile(lon, lat, low)
    status, body, _ = get(server, f"/tiles/map/{tile.z}/{tile.x}/{tile.y}.png")
    assert status == 200 and Image.open(io.BytesIO(body)).size == (256, 256)
    for layer in ("map", "imagery"):  # below a layer's first zoom the server refuses, whoever asks
        tile = WEB_MERCATOR.tile(lon, lat, layers.zooms[layer][0] - 1)
        assert get(server, f"/tiles/{layer}/{tile.z}/{tile.x}/{tile.y}.png")[0] == 404
    assert get(server, "/tiles/map/17/0/0.png")[0] == 404
    assert get(server, "/tiles/nolayer/1/0/0.png")[0] == 404


def test_point_reports_class_confidence_and_coarse_label(server, layers):
    lon, lat, code = homogeneous_point(layers.map)
    status, body, _ = get(server, f"/api/point?lon={lon}&lat={lat}")
    info = json.loads(body)
    assert status == 200
    assert info["class"] == {"code": code, "name": BY_CODE[code].name, "colour": BY_CODE[code].colour}
    with rasterio.open(layers.confidence) as src:  # the confidence byte of that pixel, read here
        x, y = Transformer.from_crs("EPSG:4326", src.crs, always_xy=True).transform(lon, lat)
        byte = int(src.read(1)[src.index(x, y)])
    assert byte > 0 and info["confidence"] == pytest.approx(byte / 255, abs=5e-4)  # given to 3 decimals
    assert info["region"] in layers.labels and info["coarse_label"]["name"]
    assert get(server, "/api/point?lon=abc")[0] == 400


def test_regions_outlines_are_geojson_in_degrees(server):
    status, body, _ = get(server, "/api/regions.geojson")
    doc = json.loads(body)
    assert status == 200 and len(doc["features"]) == 3
    assert {f["properties"]["name"] for f in doc["features"]} >= {"Côte Verte"}
    assert all(f["geometry"]["type"] in ("LineString", "MultiLineString") for f in doc["features"])


def test_serves_results_files_and_the_local_leaflet(server):
    status, body, kind = get(server, "/results/maps/national.png")
    assert status == 200 and kind == "image/png" and body.startswith(b"\x89PNG")
    status, body, _ = get(server, "/static/leaflet/leaflet.js")
    assert status == 200 and b"Leaflet" in body[:2000]
    status, body, _ = get(server, "/")
    assert status == 200 and b"/static/leaflet/leaflet.js" in body and b"http" not in body.split(b"<body>")[1]


def test_gdal_reads_a_cog_through_the_viewer_by_byte_ranges(server, layers):
    url = f"/vsicurl/{server.url}results/maps/national.tif"
    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"), rasterio.open(url) as remote, \
            rasterio.open(layers.map) as local:
        window = rasterio.windows.Window(100, 200, 300, 250)
        assert remote.profile == local.profile
        assert (remote.read(1, window=window) == local.read(1, window=window)).all()
        assert (remote.read(1, out_shape=(64, 64)) == local.read(1, out_shape=(64, 64))).all()  # an overview
    whole, size = layers.map.read_bytes(), layers.map.stat().st_size
    host, port = server.server_address[:2]
    for asked, status, part in [("bytes=10-19", 206, whole[10:20]), ("bytes=-7", 206, whole[-7:]),
                                (f"bytes={size - 5}-", 206, whole[-5:]), ("bytes=19-10", 200, whole),
                                (f"bytes={size}-", 416, b"")]:
        connection = http.client.HTTPConnection(host, port, timeout=60)
        connection.request("GET", "/results/maps/national.tif", headers={"Range": asked})
        response = connection.getresponse()
        assert (response.status, response.read()) == (status, part), asked
        connection.close()
    status, body, _ = get(server, "/results/maps/national.tif", method="HEAD")
    assert status == 200 and body == b""


@pytest.mark.parametrize("path", [
    "/results/../workflow_config.yaml", "/results/../../etc/passwd", "/results/%2e%2e/resources/regions",
    "/results/..%2f..%2fetc%2fpasswd", "/static/../../core/io.py", "/static/leaflet/../../../server.py",
    "/results//etc/passwd",
])
def test_paths_outside_the_served_folders_are_refused(server, path):
    status, body, _ = get(server, path)
    assert status == 403, (path, status, body[:200])


def test_links_out_nul_backslash_and_foreign_hosts_are_refused(server, layers, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the browser")
    links = [layers.root / "results" / "link_to_file.txt", layers.root / "results" / "link_to_dir"]
    links[0].symlink_to(secret)
    links[1].symlink_to(tmp_path, target_is_directory=True)
    try:
        assert get(server, "/results/link_to_file.txt")[0] == 403
        assert get(server, "/results/link_to_dir/secret.txt")[0] == 403
    finally:
        for link in links:
            link.unlink()
    assert get(server, "/results/maps/national.png%00.txt")[0] == 400
    assert get(server, "/results/..%5c..%5cworkflow_config.yaml")[0] == 403
    # DNS rebinding: a page elsewhere reaching 127.0.0.1 through its own name
    assert get(server, "/api/layers.json", Host="evil.example:80")[0] == 403
    assert get(server, "/api/layers.json", Host=f"localhost:{server.server_address[1]}")[0] == 200


def test_port_in_use_is_a_clear_error(server, layers):
    with pytest.raises(InputError, match=r"port \d+ on 127.0.0.1 is in use; choose another with --port"):
        ViewerServer(layers, port=server.server_address[1])


def test_binds_to_loopback_by_default(server):
    assert server.server_address[0] == "127.0.0.1"


def test_port_out_of_range_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["view", "--port", "70000"])
    assert stop.value.code == 2 and "expected a port number from 1 to 65535" in capsys.readouterr().err


def test_run_without_maps_names_the_target_to_build(tmp_path, capsys):
    assert main(["view", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no map to show" in err[0] and "snakemake results/maps/national.tif" in err[0]


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium chromium-driver; "
                    ".ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--force-device-scale-factor=1", "--window-size=1200,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def wait_for(driver, script: str, timeout: float = 60):
    """The first truthy value of `script` in the page (the timeout is a safety stop, not a condition)."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: d.execute_script(f"return {script}"),
                                                message=f"timed out waiting for {script}")


def test_page_draws_tiles_lists_legend_and_reports_a_click(browser, server, layers):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server.url)
    wait_for(browser, "window.l2hViewer && window.l2hViewer.ready")
    legend = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#legend li")]
    assert legend == [c.name for c in CLASSES]
    assert browser.execute_script("return l2hViewer.regions.getLayers().length") == 3
    # the overview first: tiles of every visible layer were fetched and drawn
    wait_for(browser, "l2hViewer.tiles.map > 0 && l2hViewer.tiles.imagery > 0 && !l2hViewer.layers.map.isLoading()")

    # the map alone, opaque, at its native zoom over a pixel known to be one class
    lon, lat, code = homogeneous_point(layers.map)
    browser.find_element(By.ID, "show-imagery").click()
    browser.execute_script("const s = document.getElementById('opacity-map'); s.value = '1';"
                           "s.dispatchEvent(new Event('input'));"
                           "l2hViewer.map.removeLayer(l2hViewer.regions);"
                           f"l2hViewer.map.setView([{lat}, {lon}], {layers.zooms['map'][1]}, {{animate: false}});")
    wait_for(browser, "!l2hViewer.layers.map.isLoading() && l2hViewer.tiles.map > 1")
    # Leaflet fades each loaded tile in (its opacity rises to 1 over frames): wait until every tile of
    # the map layer is loaded and fully opaque, and the layer itself too
    WebDriverWait(browser, 60).until(lambda driver: driver.execute_script(
        "const layer = l2hViewer.layers.map, box = layer.getContainer();"
        "const tiles = [...box.querySelectorAll('img.leaflet-tile')];"
        "return !layer.isLoading() && getComputedStyle(box).opacity === '1' && tiles.length > 0 &&"
        " tiles.every((t) => t.classList.contains('leaflet-tile-loaded') && getComputedStyle(t).opacity === '1');"),
        "the map layer's tiles never became fully opaque")
    x, y = browser.execute_script(f"const p = l2hViewer.map.latLngToContainerPoint([{lat}, {lon}]);"
                                  "return [Math.round(p.x), Math.round(p.y)];")
    shot = np.asarray(Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB"))
    mapbox = browser.find_element(By.ID, "map").rect
    seen = shot[int(mapbox["y"]) + y, int(mapbox["x"]) + x]
    # an opaque tile, the only layer shown, over a pixel whose neighbours share its class: its colour exactly
    assert tuple(int(v) for v in seen) == hex_to_rgb(BY_CODE[code].colour), (seen, BY_CODE[code].name)

    ActionChains(browser).move_to_element_with_offset(
        browser.find_element(By.ID, "map"), x - mapbox["width"] // 2, y - mapbox["height"] // 2).click().perform()
    point = wait_for(browser, "l2hViewer.lastPoint")
    assert point["class"]["code"] == code
    info = browser.find_element(By.ID, "info").text
    assert BY_CODE[code].name in info and "Confidence" in info and "Coarse label" in info


def test_the_view_lives_in_the_url_so_a_reload_or_a_link_opens_it_again(browser, server, layers):
    lon, lat, _ = homogeneous_point(layers.map)
    zoom = layers.zooms["map"][1]
    browser.get(server.url)
    wait_for(browser, "window.l2hViewer && window.l2hViewer.ready")
    assert browser.execute_script("return window.location.hash").count("/") == 3  # the whole-run view, written
    browser.execute_script(f"l2hViewer.map.setView([{lat}, {lon}], {zoom}, {{animate: false}});"
                           "document.getElementById('show-confidence').click();"
                           "document.getElementById('show-imagery').click();")
    hash_ = wait_for(browser, f"window.location.hash.startsWith('#{zoom}/') && window.location.hash")
    assert hash_.endswith("/map,confidence"), hash_
    shared = server.url.rstrip("/") + "/" + hash_
    browser.get("about:blank")
    browser.get(shared)  # a link in a fresh page
    wait_for(browser, "window.l2hViewer && window.l2hViewer.ready")
    centre = browser.execute_script("const c = l2hViewer.map.getCenter(); return [c.lat, c.lng, l2hViewer.map.getZoom()];")
    assert centre[2] == zoom and abs(centre[0] - lat) < 1e-5 and abs(centre[1] - lon) < 1e-5
    shown = browser.execute_script("return Object.keys(l2hViewer.layers).filter("
                                   "(id) => l2hViewer.map.hasLayer(l2hViewer.layers[id]))")
    assert sorted(shown) == ["confidence", "map"]
    assert browser.execute_script("return [document.getElementById('show-imagery').checked,"
                                  " document.getElementById('show-confidence').checked]") == [False, True]
    browser.refresh()  # a reload keeps it
    wait_for(browser, "window.l2hViewer && window.l2hViewer.ready")
    assert browser.execute_script("return window.location.hash") == hash_
    assert browser.execute_script("return l2hViewer.map.getZoom()") == zoom
