"""The whole demo workflow, for real: products fetched from a local HTTP mirror, consensus labels
with roads, training blocks, a few training steps, per-block inference and the COG mosaics; and
recovery from a truncated tile by simply running again."""

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from helpers import demo_overrides, snakemake
from httpserver import serve
from rasterio.warp import Resampling, reproject

pytestmark = pytest.mark.workflow
REGIONS = ("cote_verte", "northmoor", "riverside")


@pytest.fixture(scope="module")
def http_run(http_demo_run):
    """The session's demo run (products downloaded over HTTP from 127.0.0.1)."""
    return http_demo_run


def _truth_majority(truth: Path, label_path: Path) -> tuple[np.ndarray, np.ndarray]:
    with rasterio.open(label_path) as lab:
        label = lab.read(1)
        majority = np.zeros_like(label)
        with rasterio.open(truth) as src:
            reproject(rasterio.band(src, 1), majority, dst_transform=lab.transform, dst_crs=lab.crs,
                      resampling=Resampling.mode, src_nodata=0, dst_nodata=0)
    return label, majority


def _product_sets(workdir: Path, product: str, grid) -> np.ndarray:
    """One product's class set at each pixel of the label `grid` (bit c = class c; 0 = no data), read
    here without harmonize: every file of its manifest reprojected (nearest) onto the whole grid at
    once, a later file over an earlier one, its codes looked up in the manifest's table."""
    manifest = json.loads((workdir / f"resources/raw/{product}/manifest.json").read_text())
    codes = np.full(grid.shape, 0xFFFF, np.uint16)  # no file
    for entry in manifest["files"]:
        with rasterio.open(workdir / entry["path"]) as src:
            reproject(rasterio.band(src, 1), codes, src_nodata=manifest["nodata"][0], dst_nodata=0xFFFF,
                      dst_transform=grid.transform, dst_crs=grid.crs, resampling=Resampling.nearest,
                      init_dest_nodata=False)
    bits = np.zeros(1 << 16, np.uint16)
    for code, entry in manifest["codes"].items():
        bits[int(code)] = sum(1 << c for c in entry["classes"])
    return bits[codes]


def test_tiles_came_over_http(http_run):
    _, _, requests = http_run
    paths = {r.path for r in requests}
    assert any(p.endswith("ESA_WorldCover_10m_2021_v200_N30E114_Map.tif") for p in paths)
    assert any(p.endswith("fromglc10v01_30_114.tif") for p in paths)
    assert any(p.endswith("50R_20210101-20220101.tif") for p in paths)


def test_consensus_agrees_with_truth_and_labels_enough_land(http_run, demo_world):
    workdir, _, _ = http_run
    labelled = agree = land = 0
    for region in REGIONS:
        label, majority = _truth_majority(demo_world / "truth" / "truth_1m.tif",
                                          workdir / f"resources/labels/{region}.tif")
        inside = label != 0
        mask = inside & (label != 255) & (majority != 0)
        land += int(inside.sum())
        labelled += int(mask.sum())
        agree += int((mask & (label == majority)).sum())
        assert (label == 11).any(), f"{region}: no road burned in"
    assert labelled / land >= 0.40
    assert agree / labelled >= 0.90


def test_label_raster_house_style_and_stats(http_run):
    workdir, _, _ = http_run
    with rasterio.open(workdir / "resources/labels/cote_verte.tif") as src:
        assert src.dtypes == ("uint8",) and src.nodata == 0 and src.res == (10.0, 10.0)
        assert src.crs.to_epsg() == 32650 and src.compression.name.lower() == "deflate"
        assert src.block_shapes[0] == (512, 512) and src.colormap(1)[11][:3] == (60, 60, 60)
        label = src.read(1)
        products = ("esa_worldcover", "esri_lulc", "fromglc10")
        sets = {p: _product_sets(workdir, p, src) for p in products}
    stats = json.loads((workdir / "resources/labels/cote_verte_stats.json").read_text())
    # counted in the label: the region is its pixels other than 0, labelled the ones not 255 either, and
    # every road pixel (11) was burnt in (no product's legend has roads); the shares are ratios of the
    # same whole numbers, so equal but for the last bit of a division
    region = label != 0
    assert stats["region_pixels"] == int(region.sum())
    assert stats["labelled_share"] == pytest.approx((region & (label != 255)).sum() / region.sum(), rel=1e-12)
    assert stats["road_pixels"] == int((label == 11).sum()) > 0
    assert set(stats["products"]) == set(products)
    # each pair's agreement: the share of the region's pixels where both have data whose class sets meet
    agreement = {}
    for i, a in enumerate(products):
        for b in products[i + 1:]:
            both = region & (sets[a] != 0) & (sets[b] != 0)
            agreement[f"{a}~{b}"] = ((sets[a] & sets[b])[both] != 0).sum() / both.sum()
    assert stats["pairwise_agreement"] == pytest.approx(agreement, rel=1e-12)
    assert (workdir / "resources/labels/cote_verte.png").stat().st_size > 10_000
    assert (workdir / "resources/roads/cote_verte.gpkg").exists()


def test_class_set_label_matches_the_label(http_run):
    """The class-set label: {c} where the label has class c (roads burnt in too), a set of two or
    more classes on most ignored land, nothing outside the region."""
    workdir, _, _ = http_run
    with rasterio.open(workdir / "resources/labels/cote_verte.tif") as src:
        label = src.read(1)
    with rasterio.open(workdir / "resources/labels/cote_verte_sets.tif") as src:
        sets = src.read(1).astype(np.int64)
    single = (label != 0) & (label != 255)
    assert (sets[single] == (1 << label[single].astype(np.int64))).all()
    assert (sets[label == 11] == 1 << 11).all() and (label == 11).any()
    assert (sets[label == 0] == 0).all()
    counts = np.array([bin(v).count("1") for v in sets[label == 255]])
    assert (counts >= 2).mean() > 0.9


def test_truncated_tile_is_refetched_on_rerun(http_run, demo_world):
    workdir, config, _ = http_run
    tile = workdir / "resources/raw/esa_worldcover/v200/N30E114.tif"
    good = tile.read_bytes()
    tile.write_bytes(good[: len(good) // 2])
    with serve(demo_world / "mirror") as server:
        config.write_text(yaml.safe_dump(demo_overrides(demo_world, mirror=server.url("").rstrip("/"))))
        labels = [f"resources/labels/{r}.tif" for r in REGIONS]
        failed = snakemake(workdir, *labels, "--forcerun", "harmonize", configfile=config)
        assert failed.returncode != 0
        log = "".join(p.read_text() for p in (workdir / "logs/harmonize").glob("*.log"))
        assert "esa_worldcover tile N30E114" in log and "unreadable or truncated" in log
        assert not tile.exists()
        again = snakemake(workdir, *labels, configfile=config)
    assert again.returncode == 0, again.stderr[-3000:]
    assert tile.read_bytes() == good


def test_demo_training_blocks_within_tolerance_and_cover_every_region(http_run):
    import pandas as pd

    workdir, _, _ = http_run
    selected = pd.read_csv(workdir / "resources/training_blocks.csv")["block_id"]
    blocks = pd.read_csv(workdir / "resources/blocks.csv")
    chosen = blocks[blocks["block_id"].isin(selected)]
    assert len(chosen) == len(selected) and selected.is_unique
    fraction = chosen["area_km2"].sum() / blocks["area_km2"].sum()
    assert 0.28 <= fraction <= 0.32
    assert set(chosen["region"]) == set(REGIONS)
    shares = pd.read_csv(workdir / "results/sampling/class_shares.csv")
    major = shares[shares["overall_share"] >= 0.01]
    assert (major["difference"].abs() <= 0.02).all()
    assert (workdir / "results/sampling/training_blocks.png").stat().st_size > 20_000


def test_maps_are_valid_cogs_with_the_palette(http_run):
    from rio_cogeo.cogeo import cog_validate

    workdir, _, _ = http_run
    parity = json.loads((workdir / "results/model/onnx_parity.json").read_text())
    assert parity["passed"] and parity["max_abs_diff"] <= 1e-4
    for name in (*REGIONS, "national"):
        cog = workdir / f"results/maps/{name}.tif"
        assert cog_validate(str(cog), strict=True, quiet=True)[0], name
        with rasterio.open(cog) as src:
            assert src.nodata == 0 and src.colormap(1)[1][:3] == (0, 100, 0) and src.overviews(1)
            data = src.read(1, out_shape=(src.height // 8, src.width // 8))
        assert (data > 0).mean() > 0.3 and set(np.unique(data)) <= set(range(12))
        assert (workdir / f"results/maps/{name}.png").stat().st_size > 10_000
    metrics = (workdir / "results/model/metrics.csv").read_text().splitlines()
    assert len(metrics) == 1 + 6 + 2  # header + one row per step (6 on the coarse label, 2 of self-training)
