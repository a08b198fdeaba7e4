"""Per-block inference with onnxruntime and COG mosaics: no seams between blocks, house-style
outputs, clear errors for bad input."""

import json

import numpy as np
import pytest
import rasterio
from helpers import CRS, export_tiny_model, sets_raster
from rasterio.windows import Window, from_bounds
from rio_cogeo.cogeo import cog_validate
from shapely.geometry import box

from l2h.core.blocks import blocks_for_regions
from l2h.core.errors import InputError
from l2h.core.quicklook import confidence_quicklook_from_file
from l2h.core.windows import read_padded
from l2h.inputs.regions import dissolved_regions, region_geometries
from l2h.maps.infer import load_onnx, predict_block, predict_chunk
from l2h.maps.mosaic import merge_blocks, mosaic


@pytest.fixture(scope="module")
def country(small_demo_world):
    regions = dissolved_regions(small_demo_world / "regions" / "provinces.gpkg", "name")
    geoms = region_geometries(regions, CRS)
    return geoms, regions.to_crs(CRS).union_all()


def test_blocks_join_without_seams(tiny_onnx, small_demo_world, country, tmp_path):
    geoms, union = country
    imagery = str(small_demo_world / "imagery" / "demo_imagery.tif")
    model = load_onnx(tiny_onnx, threads=2)
    blocks = blocks_for_regions(geoms, 256)
    for b in blocks:
        predict_block(model, imagery, b.bounds, 1.0, CRS, union, tmp_path / "blocks" / f"{b.id}.tif", tile=192,
                      progress=False)
    merge_blocks(sorted((tmp_path / "blocks").glob("*.tif")), union, CRS, 1.0, tmp_path / "per_block.tif")
    xmin = min(b.bounds[0] for b in blocks)
    ymin = min(b.bounds[1] for b in blocks)
    xmax = max(b.bounds[2] for b in blocks)
    ymax = max(b.bounds[3] for b in blocks)
    predict_block(model, imagery, (xmin, ymin, xmax, ymax), 1.0, CRS, union, tmp_path / "whole.tif", tile=320,
                  progress=False)
    with rasterio.open(tmp_path / "per_block.tif") as a, rasterio.open(tmp_path / "whole.tif") as b:
        per_block = a.read(1)
        whole = b.read(1, window=from_bounds(*a.bounds, transform=b.transform))
    assert (per_block > 0).mean() > 0.5
    np.testing.assert_array_equal(per_block, whole)


def test_output_house_style_and_confidence(tiny_onnx, small_demo_world, country, tmp_path):
    geoms, union = country
    block = blocks_for_regions(geoms, 256)[5]
    stats = predict_block(load_onnx(tiny_onnx), str(small_demo_world / "imagery" / "demo_imagery.tif"),
                          block.bounds, 1.0, CRS, union, tmp_path / "b.tif", tmp_path / "c.tif", progress=False)
    with rasterio.open(tmp_path / "b.tif") as cls, rasterio.open(tmp_path / "c.tif") as conf:
        classes, confidence = cls.read(1), conf.read(1)
        assert cls.nodata == 0 and cls.dtypes == ("uint8",) and cls.colormap(1)[1][:3] == (0, 100, 0)
        assert cls.crs.to_epsg() == 32650 and cls.transform.a == 1.0
    assert stats["valid_pixels"] == int((classes > 0).sum())
    assert ((confidence > 0) == (classes > 0)).all()
    assert confidence[classes > 0].min() >= 255 // 11  # a max probability is at least 1/11
    assert set(np.unique(classes)) <= set(range(12))


def test_band_count_mismatch_names_both(tmp_path, small_demo_world, country):
    model = load_onnx(export_tiny_model(tmp_path / "rgb.onnx", in_channels=3))
    with pytest.raises(InputError, match=r"has 4 band\(s\) but the model .* was trained on 3"):
        predict_block(model, str(small_demo_world / "imagery" / "demo_imagery.tif"), (0, 0, 256, 256), 1.0, CRS,
                      box(0, 0, 256, 256), tmp_path / "x.tif", progress=False)


def test_block_without_imagery_is_nodata_or_strict_error(tiny_onnx, small_demo_world, tmp_path, caplog):
    far = (100000.0, 100000.0, 100256.0, 100256.0)
    imagery = str(small_demo_world / "imagery" / "demo_imagery.tif")
    stats = predict_block(load_onnx(tiny_onnx), imagery, far, 1.0, CRS, box(*far), tmp_path / "empty.tif",
                          progress=False)
    assert stats["valid_pixels"] == 0 and "no imagery" in caplog.text
    with rasterio.open(tmp_path / "empty.tif") as src:
        assert (src.read(1) == 0).all()
    with pytest.raises(InputError, match="strict"):
        predict_block(load_onnx(tiny_onnx), imagery, far, 1.0, CRS, box(*far), tmp_path / "s.tif", strict=True,
                      progress=False)
    assert not (tmp_path / "s.tif").exists()


def test_cog_mosaic_valid_and_clipped(tiny_onnx, small_demo_world, country, tmp_path):
    geoms, union = country
    name = sorted(geoms)[0]
    imagery = str(small_demo_world / "imagery" / "demo_imagery.tif")
    model = load_onnx(tiny_onnx)
    paths, confidences = [], []
    for b in blocks_for_regions(geoms, 256):
        if box(*b.bounds).intersects(geoms[name]):
            paths.append(tmp_path / f"{b.id}.tif")
            confidences.append(tmp_path / f"{b.id}_confidence.tif")
            predict_block(model, imagery, b.bounds, 1.0, CRS, union, paths[-1], confidences[-1], progress=False)
    mosaic(paths, geoms[name], CRS, 1.0, tmp_path / "region.tif")
    mosaic(confidences, geoms[name], CRS, 1.0, tmp_path / "confidence.tif", layer="confidence")
    assert cog_validate(str(tmp_path / "region.tif"), strict=True, quiet=True)[0]
    with rasterio.open(tmp_path / "region.tif") as cog:
        assert cog.overviews(1) and cog.colormap(1)[11][:3] == (60, 60, 60) and cog.nodata == 0
        assert cog.block_shapes[0] == (512, 512) and cog.compression.name.lower() == "deflate"
        data = cog.read(1)
        from rasterio.features import geometry_mask
        outside = geometry_mask([geoms[name]], out_shape=data.shape, transform=cog.transform)
    assert (data[outside] == 0).all() and (data[~outside] > 0).mean() > 0.9
    # the confidence layer: a valid COG on the same grid, mapped exactly where the classes are,
    # holding the blocks' values, without a colour table
    assert cog_validate(str(tmp_path / "confidence.tif"), strict=True, quiet=True)[0]
    with rasterio.open(tmp_path / "confidence.tif") as conf:
        assert conf.transform == cog.transform and conf.shape == data.shape and conf.nodata == 0
        with pytest.raises(ValueError):
            conf.colormap(1)
        confidence = conf.read(1)
    assert ((confidence > 0) == (data > 0)).all()
    first = confidences[0]
    with rasterio.open(first) as blk:
        win = rasterio.windows.from_bounds(*blk.bounds, transform=cog.transform).round_offsets().round_lengths()
        block_values = blk.read(1)
    mine = confidence[win.row_off:win.row_off + win.height, win.col_off:win.col_off + win.width]
    inside = mine > 0
    np.testing.assert_array_equal(mine[inside], block_values[:mine.shape[0], :mine.shape[1]][inside])
    png = confidence_quicklook_from_file(tmp_path / "confidence.png", tmp_path / "confidence.tif", "test")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(InputError, match="cannot read confidence raster .*missing.tif"):
        confidence_quicklook_from_file(tmp_path / "x.png", tmp_path / "missing.tif", "test")


def test_corrupt_block_is_removed_only_when_l2h_recorded_it(tmp_path, tiny_onnx, small_demo_world, country):
    geoms, union = country
    b = blocks_for_regions(geoms, 256)[3]
    imagery = str(small_demo_world / "imagery" / "demo_imagery.tif")
    manifest = tmp_path / "pred" / "chunk_0.json"
    predict_chunk(load_onnx(tiny_onnx), imagery, [(b.id, b.bounds)], 1.0, CRS, {b.region: geoms[b.region]},
                  tmp_path / "pred", manifest, key="k", region=b.region, progress=False)
    recorded = tmp_path / "pred" / f"{b.id}.tif"
    recorded.write_bytes(recorded.read_bytes()[:300])
    with pytest.raises(InputError, match=rf"block prediction .*{b.id}.tif: unreadable or truncated .*it was "
                                         rf"removed with its chunk manifest"):
        mosaic([manifest], box(*b.bounds), CRS, 1.0, tmp_path / "m.tif")
    assert not recorded.exists() and not manifest.exists() and not (tmp_path / "m.tif").exists()

    # the same broken file handed over directly is the user's: named, never deleted
    mine = tmp_path / "mine" / f"{b.id}.tif"
    predict_block(load_onnx(tiny_onnx), imagery, b.bounds, 1.0, CRS, union, mine, progress=False)
    mine.write_bytes(mine.read_bytes()[:300])
    with pytest.raises(InputError, match=rf"block prediction .*{b.id}.tif: unreadable or truncated .*left in place"):
        mosaic([mine], box(*b.bounds), CRS, 1.0, tmp_path / "m.tif")
    assert mine.stat().st_size == 300 and not (tmp_path / "m.tif").exists()


def test_label_prior_bonus_follows_the_class_sets(tmp_path):
    from rasterio.transform import from_origin

    from l2h.maps.label_prior import LabelPrior

    # two regions' 10 m class-set labels side by side: tree {1} | {grass 4, tree 1} ; water {7} | nothing
    west = sets_raster(tmp_path / "w.tif", from_origin(0, 20, 10, 10), np.array([[1 << 1], [1 << 7]]))
    east = sets_raster(tmp_path / "e.tif", from_origin(10, 20, 10, 10), np.array([[(1 << 1) | (1 << 4)], [0]]))
    with LabelPrior([west, east], 2.5) as prior:
        bonus = prior.bonus(from_origin(0, 20, 1, 1), (20, 20))  # the 1 m grid of both
    assert bonus.shape == (11, 20, 20)
    assert (bonus[0, :10, :10] == 2.5).all() and (bonus[1:, :10, :10] == 0).all()  # tree only
    assert (bonus[0, :10, 10:] == 2.5).all() and (bonus[3, :10, 10:] == 2.5).all()  # tree and grass
    assert (bonus[6, 10:, :10] == 2.5).all() and (bonus[:, 10:, 10:] == 0).all()  # water; no information


def test_label_prior_keeps_the_coarse_label_where_the_network_is_unsure(tiny_onnx, small_demo_world, country,
                                                                      tmp_path):
    from l2h.maps.label_prior import LabelPrior

    geoms, union = country
    block = blocks_for_regions(geoms, 256)[5]
    imagery = str(small_demo_world / "imagery" / "demo_imagery.tif")
    model = load_onnx(tiny_onnx)
    west, south, east, north = block.bounds
    sets = np.full((26, 26), 1 << 7, np.uint16)  # "water" everywhere, 10 m cells covering the block
    path = sets_raster(tmp_path / "sets.tif", rasterio.transform.from_origin(west, north, 10, 10), sets)
    maps = {}
    for strength in (0.0, 0.2, 1e3):
        with LabelPrior([path], strength) as prior:
            predict_block(model, imagery, block.bounds, 1.0, CRS, union, tmp_path / f"{strength}.tif",
                          tmp_path / f"{strength}_c.tif", progress=False, prior=prior)
        maps[strength] = rasterio.open(tmp_path / f"{strength}.tif").read(1)
    inside = maps[0.0] > 0
    water = lambda m: (m[inside] == 7).mean()  # noqa: E731
    assert water(maps[0.0]) < 0.5 and water(maps[0.2]) > water(maps[0.0]) and water(maps[1e3]) == 1.0


def test_blocks_in_flight_and_onnxruntime_threads_give_the_same_chunk(tiny_onnx, small_demo_world, country,
                                                                         tmp_path):
    """A chunk's blocks predicted one at a time or three at once (sharing one session), with one or two
    onnxruntime threads: the very same blocks; a class-set label with a different set per 10 m cell
    makes every tile's prior differ."""
    from l2h.maps.label_prior import LabelPrior

    geoms, union = country
    blocks = blocks_for_regions(geoms, 256)[3:9]
    imagery = str(small_demo_world / "imagery" / "demo_imagery.tif")
    west = min(b.bounds[0] for b in blocks)
    north = max(b.bounds[3] for b in blocks)
    rng = np.random.default_rng(0)
    sets = (1 << rng.integers(1, 12, (200, 200))).astype(np.uint16) | (1 << rng.integers(1, 12, (200, 200))).astype(np.uint16)
    path = sets_raster(tmp_path / "sets.tif", rasterio.transform.from_origin(west - 500, north + 500, 10, 10), sets)
    layers = {}
    for workers, threads in ((1, 1), (3, 1), (1, 2)):
        out = tmp_path / f"{workers}_{threads}"
        with LabelPrior([path], 1.5, interpolation="bilinear") as prior:
            stats = predict_chunk(load_onnx(tiny_onnx, threads=threads), imagery, [(b.id, b.bounds) for b in blocks],
                                  1.0, CRS, geoms, out, out / "chunk.json", "k", "r", tile=64, progress=False,
                                  prior=prior, workers=workers)
        assert stats["blocks"] == len(blocks) and stats["kept"] == 0
        layers[workers, threads] = [rasterio.open(out / f"{b.id}{s}.tif").read(1) for b in blocks for s in ("", "_confidence")]
        recorded = json.loads((out / "chunk.json").read_text())
        assert sorted(e["id"] for e in recorded["blocks"]) == sorted(b.id for b in blocks)
    first = layers[1, 1]
    assert (first[0] > 0).mean() > 0.5 and len(np.unique(np.concatenate([a.ravel() for a in first[::2]]))) > 3
    for other in ((3, 1), (1, 2)):
        for a, b in zip(first, layers[other]):
            np.testing.assert_array_equal(a, b)


def test_bilinear_prior_fades_across_cell_edges_and_is_seamless_between_regions(tmp_path):
    from rasterio.transform import from_origin

    from l2h.maps.label_prior import LabelPrior

    # three rows of 10 m cells across two regions' rasters: tree | tree || grass | grass
    west = sets_raster(tmp_path / "w.tif", from_origin(0, 30, 10, 10), np.full((3, 2), 1 << 1))
    east = sets_raster(tmp_path / "e.tif", from_origin(20, 30, 10, 10), np.full((3, 2), 1 << 4))
    with LabelPrior([west, east], 4.0, interpolation="bilinear") as prior:
        bonus = prior.bonus(from_origin(0, 30, 1, 1), (30, 40))
        assert prior.bonus(from_origin(100, 30, 1, 1), (10, 10)) is None  # far from both rasters
        part = prior.bonus(from_origin(13, 20, 1, 1), (7, 9))  # a tile read on its own agrees
    tree, grass = bonus[0, 15], bonus[3, 15]  # the middle row of cells, at its centre
    # full strength from the first cell's centre to the last like one, then linear across the edge
    assert (tree[5:15] == 4.0).all() and (grass[25:35] == 4.0).all()
    np.testing.assert_allclose(tree[15:25], 4.0 * (1 - (np.arange(15, 25) + 0.5 - 15) / 10), rtol=1e-6)
    np.testing.assert_allclose((tree + grass)[5:35], 4.0, rtol=1e-6)  # the two regions join without a seam
    assert bonus[0, 15, 10] == 4.0 and bonus[0, 0, 10] == pytest.approx(4.0 * 0.55)  # fading out at the edge
    np.testing.assert_allclose(part, bonus[:, 10:17, 13:22], rtol=1e-6)


def test_roads_in_the_prior_follow_the_surfaces_at_1m(tmp_path):
    import geopandas as gpd
    from rasterio.transform import from_origin
    from shapely.geometry import box as sbox

    from l2h.labels.roads import write_roads
    from l2h.maps.label_prior import LabelPrior

    # a 10 m road cell (its set: road) in grass, and a 4 m wide road surface through its middle
    sets = np.full((3, 3), 1 << 4, np.uint16)
    sets[1, 1] = 1 << 11
    path = sets_raster(tmp_path / "s.tif", from_origin(0, 30, 10, 10), sets)
    roads = gpd.GeoDataFrame({"highway": ["residential"], "name": ["High Street"], "width_m": [4.0]},
                             geometry=[sbox(0, 13, 30, 17)], crs=CRS)
    write_roads(roads, tmp_path / "roads.gpkg")
    with LabelPrior([path], 3.0, roads=[str(tmp_path / "roads.gpkg")]) as prior:
        bonus = prior.bonus(from_origin(0, 30, 1, 1), (30, 30))
    road, grass = bonus[10], bonus[3]
    assert (road[13:17, :] == 3.0).all() and (road[:13] == 0).all() and (road[17:] == 0).all()
    assert (grass[10:20, 10:20] == 0).all()  # the road cell's other classes are unknown ...
    assert (grass[:10] == 3.0).all()  # ... its neighbours keep their sets
    with LabelPrior([path], 3.0) as prior:  # without the surfaces: the 10 m road cell
        assert (prior.bonus(from_origin(0, 30, 1, 1), (30, 30))[10] == 3.0).sum() == 100


def test_network_layer_is_the_map_without_the_prior(tiny_onnx, small_demo_world, country, tmp_path):
    from l2h.maps.label_prior import LabelPrior

    geoms, union = country
    block = blocks_for_regions(geoms, 256)[5]
    imagery = str(small_demo_world / "imagery" / "demo_imagery.tif")
    model = load_onnx(tiny_onnx)
    west, south, east, north = block.bounds
    path = sets_raster(tmp_path / "sets.tif", rasterio.transform.from_origin(west, north, 10, 10),
                        np.full((26, 26), 1 << 7, np.uint16))
    with LabelPrior([path], 1e3) as prior:
        predict_block(model, imagery, block.bounds, 1.0, CRS, union, tmp_path / "map.tif", progress=False,
                      prior=prior, network_out=tmp_path / "net.tif")
    predict_block(model, imagery, block.bounds, 1.0, CRS, union, tmp_path / "plain.tif", progress=False)
    with rasterio.open(tmp_path / "map.tif") as m, rasterio.open(tmp_path / "net.tif") as n, \
            rasterio.open(tmp_path / "plain.tif") as p:
        mapped, network, plain = m.read(1), n.read(1), p.read(1)
        assert n.colormap(1)[1][:3] == (0, 100, 0)
    assert (mapped[mapped > 0] == 7).all()
    np.testing.assert_array_equal(network, plain)


def test_test_time_flips_keep_blocks_seamless(tiny_onnx, small_demo_world, country, tmp_path):
    """A block predicted whole or in tiles with 4 flips: the same map (and not the map without flips)."""
    model = load_onnx(tiny_onnx)
    geoms, union = country
    block = blocks_for_regions(geoms, 256)[5]
    imagery = str(small_demo_world / "imagery" / "demo_imagery.tif")
    for tile, flips in ((64, 4), (256, 4), (256, 1)):
        predict_block(model, imagery, block.bounds, 1.0, CRS, union, tmp_path / f"{tile}_{flips}.tif", tile=tile,
                      progress=False, flips=flips)
    a, b, plain = (rasterio.open(tmp_path / f"{t}.tif").read(1) for t in ("64_4", "256_4", "256_1"))
    assert (a > 0).mean() > 0.5 and (a != plain).any()
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("window", [Window(-12, -12, 536, 536), Window(1400, 900, 300, 300),
                                    Window(2000, 10, 30, 30), Window(100, 100, 50, 60)],
                         ids=["over the north-west corner", "over the south-east corner", "outside", "inside"])
def test_a_tile_read_past_the_edges_is_the_boundless_read(small_demo_world, window):
    with rasterio.open(small_demo_world / "imagery" / "demo_imagery.tif") as src:
        expected = src.read(window=window, boundless=True, fill_value=0)
        got = read_padded(src, window)
    assert got.dtype == expected.dtype and got.shape == expected.shape == (4, window.height, window.width)
    np.testing.assert_array_equal(got, expected)
    assert got.any() == (window.col_off < 1536 and window.row_off < 1024)


def test_an_unreadable_class_set_label_is_named_in_the_error(tiny_onnx, small_demo_world, country, tmp_path):
    from l2h.maps.label_prior import LabelPrior

    geoms, union = country
    block = blocks_for_regions(geoms, 256)[5]
    west, south, east, north = block.bounds
    path = tmp_path / "sets.tif"
    with rasterio.open(path, "w", driver="GTiff", width=400, height=400, count=1, dtype="uint16", crs=CRS,
                       transform=rasterio.transform.from_origin(west - 1000, north + 1000, 10, 10), nodata=0,
                       tiled=True, blockxsize=128, blockysize=128, compress="deflate") as dst:
        dst.write(np.random.default_rng(0).integers(1, 4096, (1, 400, 400)).astype(np.uint16))
    with LabelPrior([str(path)], 2.0) as prior:
        with open(path, "r+b") as f:  # the label breaks after it was opened
            f.truncate(1000)
        with pytest.raises(InputError, match=r"^class-set label .*sets\.tif: unreadable"):
            predict_block(load_onnx(tiny_onnx), str(small_demo_world / "imagery" / "demo_imagery.tif"), block.bounds,
                          1.0, CRS, union, tmp_path / "map.tif", tile=64, progress=False, prior=prior)
    assert not (tmp_path / "map.tif").exists()
