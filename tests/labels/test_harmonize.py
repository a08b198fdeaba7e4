"""Consensus labels: the agreement rules on hand-made masks, and harmonize on real small rasters
in two CRSs (nearest reprojection, unknown codes, region mask, bad files)."""


import numpy as np
import pytest
import rasterio
from helpers import ROOT, SHARED
from rasterio.transform import from_origin
from rasterio.warp import transform_bounds
from shapely.geometry import box

from l2h.core.classes import ESA_WORLDCOVER, ESRI_LULC_ANNUAL, IGNORE
from l2h.core.errors import InputError
from l2h.inputs.fetch_product import ProductFiles
from l2h.labels.harmonize import code_lookup, consensus, consensus_sets, harmonize_region

T, S, C, G, B, W = 1, 2, 3, 4, 5, 7


def bits(*classes):
    return np.uint16(sum(1 << c for c in classes))


def test_all_rule_intersection_must_be_a_single_class():
    a = np.array([[bits(T), bits(G, S), bits(B, 11), 0, bits(T)]], np.uint16)
    b = np.array([[bits(T), bits(G), bits(B, 11), 0, bits(W)]], np.uint16)
    out = consensus([a, b], "all")
    assert out.tolist() == [[T, G, IGNORE, IGNORE, IGNORE]]


def test_missing_product_abstains():
    a = np.array([[bits(C), 0]], np.uint16)
    b = np.array([[0, bits(W)]], np.uint16)
    assert consensus([a, b], "all").tolist() == [[C, W]]


def test_majority_rule():
    a = np.array([[bits(T), bits(T), bits(G, S)]], np.uint16)
    b = np.array([[bits(T), bits(G), bits(G)]], np.uint16)
    c = np.array([[bits(C), bits(C), bits(S)]], np.uint16)
    # T: 2 of 3; second: T, G, C one each -> none; third: G 2 of 3 and S 2 of 3 -> ambiguous
    assert consensus([a, b, c], "majority").tolist() == [[T, IGNORE, IGNORE]]


def test_class_sets_keep_what_the_products_allow():
    a = np.array([[bits(T), bits(G, T), bits(G), 0, bits(T)]], np.uint16)
    b = np.array([[bits(T), 0, bits(G, S), 0, bits(W)]], np.uint16)
    # agreement {T}; one product's own set; the intersection {G}; no data; contradiction -> union
    assert consensus_sets([a, b], "all").tolist() == [[bits(T), bits(G, T), bits(G), 0, bits(T, W)]]
    # where the hard label has a class, the set is exactly that class
    hard = consensus([a, b], "all")
    sets = consensus_sets([a, b], "all")
    single = hard != IGNORE
    assert (sets[single] == (1 << hard[single].astype(np.uint16))).all()


def test_class_sets_of_the_majority_rule():
    a = np.array([[bits(T), bits(T), bits(G, S)]], np.uint16)
    b = np.array([[bits(T), bits(G), bits(G)]], np.uint16)
    c = np.array([[bits(C), bits(C), bits(S)]], np.uint16)
    # T has a majority; no class has one -> the union; G and S both have 2 of 3 -> {G, S}
    assert consensus_sets([a, b, c], "majority").tolist() == [[bits(T), bits(T, G, C), bits(G, S)]]


def test_code_lookup_marks_unknown_codes():
    masks, unknown = code_lookup(ESA_WORLDCOVER, nodata=(0,))
    assert masks[10] == bits(T) and masks[50] == bits(B) and masks[80] == bits(W)
    assert not unknown[0] and not unknown[10] and unknown[11] and unknown[255]


# --- harmonize on small real rasters ------------------------------------------------------------

CRS = "EPSG:32650"
ORIGIN = (211000.0, 3322000.0)  # near 114.0 E, 30.0 N in UTM 50N


def _utm_product(path, codes_2d, res=10.0):
    with rasterio.open(path, "w", driver="GTiff", width=codes_2d.shape[1], height=codes_2d.shape[0], count=1,
                       dtype="uint8", crs=CRS, nodata=0, transform=from_origin(*ORIGIN, res, res)) as dst:
        dst.write(codes_2d, 1)
    return str(path)


def _lonlat_product(path, code, size=400):
    """A uniform EPSG:4326 product covering the UTM test area, ESA-like pixel size."""
    west, south, east, north = transform_bounds(CRS, "EPSG:4326", ORIGIN[0] - 100, ORIGIN[1] - 1100,
                                                ORIGIN[0] + 1100, ORIGIN[1] + 100)
    res = 1 / 12000
    width, height = int((east - west) / res) + 2, int((north - south) / res) + 2
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=1, dtype="uint8",
                       crs="EPSG:4326", nodata=0, transform=from_origin(west, north, res, res)) as dst:
        dst.write(np.full((height, width), code, np.uint8), 1)
    return str(path)


def _region(size_m=1000.0, inset=0.0):
    return box(ORIGIN[0] + inset, ORIGIN[1] - size_m + inset, ORIGIN[0] + size_m - inset, ORIGIN[1] - inset)


def test_harmonize_two_crs_agreement_and_region_mask(tmp_path):
    esri = np.full((100, 100), 2, np.uint8)  # trees everywhere
    esri[:, 50:] = 11  # rangeland (grass or shrub) on the east half
    esri[0:10, 0:10] = 99  # unknown code
    esri_path = _utm_product(tmp_path / "esri.tif", esri)
    esa_path = _lonlat_product(tmp_path / "esa.tif", 10)  # ESA says tree everywhere
    products = [
        ProductFiles("esri_lulc", ESRI_LULC_ANNUAL, [esri_path], expected_crs=[CRS], expected_resolution=[10.0]),
        ProductFiles("esa_worldcover", ESA_WORLDCOVER, [esa_path], expected_crs=["EPSG:4326"],
                     expected_resolution=[1 / 12000]),
    ]
    region = _region(inset=0)
    out = tmp_path / "label.tif"
    stats = harmonize_region(region, CRS, products, out, resolution=10, window=32,
                             sets_out=tmp_path / "label_sets.tif")
    with rasterio.open(out) as src:
        label = src.read(1)
        assert src.crs.to_string() == CRS and src.res == (10.0, 10.0) and src.nodata == 0
        assert src.colormap(1)[1][:3] == (0, 100, 0)
    with rasterio.open(tmp_path / "label_sets.tif") as src:
        sets = src.read(1)
        assert src.dtypes[0] == "uint16" and src.transform == rasterio.open(out).transform
    assert label.shape == (100, 100)
    assert (label[20:, 5:45] == T).all()  # both say tree
    assert (sets[20:, 5:45] == bits(T)).all()
    assert (label[:, 55:] == IGNORE).all()  # tree vs {grass, shrub}: no agreement
    assert (sets[:, 55:] == bits(T, G, S)).all()  # ... but one of the three
    assert (label[0:10, 0:10] == T).all()  # unknown code abstains; ESA alone decides
    assert stats.unknown_codes["esri_lulc"] == {99: 100}
    assert stats.class_pixels[T] + stats.ignored_pixels == stats.region_pixels == 10000


def test_outside_region_is_nodata(tmp_path):
    products = [ProductFiles("esri", ESRI_LULC_ANNUAL, [_utm_product(tmp_path / "p.tif", np.full((100, 100), 1, np.uint8))])]
    region = box(ORIGIN[0], ORIGIN[1] - 1000, ORIGIN[0] + 1000, ORIGIN[1]).difference(
        box(ORIGIN[0], ORIGIN[1] - 500, ORIGIN[0] + 500, ORIGIN[1]))
    harmonize_region(region, CRS, products, tmp_path / "l.tif", window=64)
    with rasterio.open(tmp_path / "l.tif") as src:
        label = src.read(1)
    assert (label[:50, :50] == 0).all() and (label[50:, :] == W).all()


def test_wrong_crs_for_preset_is_an_error(tmp_path):
    path = _utm_product(tmp_path / "N30E114.tif", np.full((10, 10), 10, np.uint8))
    product = ProductFiles("esa_worldcover", ESA_WORLDCOVER, [path], labels=["esa_worldcover tile N30E114"],
                           expected_crs=["EPSG:4326"], expected_resolution=[1 / 12000])
    with pytest.raises(InputError, match=r"esa_worldcover tile N30E114 .*CRS is EPSG:32650.*says EPSG:4326"):
        harmonize_region(_region(100), CRS, [product], tmp_path / "l.tif")
    assert not (tmp_path / "l.tif").exists()


def test_truncated_tile_is_named_and_removed(tmp_path):
    codes = np.random.default_rng(0).integers(1, 10, (512, 512), dtype=np.uint8)
    path = tmp_path / "tile.tif"
    with rasterio.open(path, "w", driver="GTiff", width=512, height=512, count=1, dtype="uint8", crs=CRS,
                       nodata=0, transform=from_origin(*ORIGIN, 10, 10), tiled=True, blockxsize=128,
                       blockysize=128, compress="deflate") as dst:
        dst.write(codes, 1)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    manifest = tmp_path / "manifest.json"
    manifest.write_text("{}")
    user_copy = ProductFiles("esri", ESRI_LULC_ANNUAL, [str(path)], labels=["esri file 0"], manifest=str(manifest),
                             refetchable=[False])
    with pytest.raises(InputError, match=r"esri file 0 \(.*tile.tif\): unreadable or truncated.*fix or replace"):
        harmonize_region(_region(5000), CRS, [user_copy], tmp_path / "l.tif")
    assert path.exists() and manifest.exists()  # the user's own file is never deleted
    downloaded = ProductFiles("esri", ESRI_LULC_ANNUAL, [str(path)], labels=["esri tile 50R"], manifest=str(manifest),
                              refetchable=[True])
    with pytest.raises(InputError, match=r"esri tile 50R \(.*tile.tif\): unreadable or truncated.*fetches it again"):
        harmonize_region(_region(5000), CRS, [downloaded], tmp_path / "l.tif")
    assert not path.exists() and not manifest.exists()  # removed, so that the next run fetches it again
    assert not (tmp_path / "l.tif").exists()


def test_region_no_product_covers_is_an_error(tmp_path):
    path = _utm_product(tmp_path / "p.tif", np.full((10, 10), 1, np.uint8))
    far = box(ORIGIN[0] + 50000, ORIGIN[1] - 1000, ORIGIN[0] + 51000, ORIGIN[1])
    with pytest.raises(InputError, match="region faraway: no product covers it"):
        harmonize_region(far, CRS, [ProductFiles("esri", ESRI_LULC_ANNUAL, [path])], tmp_path / "l.tif",
                         region_name="faraway")
    assert not (tmp_path / "l.tif").exists()


ESA_REAL = (SHARED / "data" / "real" / "esa_worldcover"
            / "ESA_WorldCover_10m_2021_v200_N00E006_Map.tif")


@pytest.mark.skipif(not ESA_REAL.exists(), reason=f"real ESA WorldCover tile absent ({ESA_REAL}); it lives in "
                    "the project's shared data, not in the repository")
def test_real_esa_worldcover_tile_harmonizes(tmp_path):
    """São Tomé (a forested island in the sea) through the real v200 tile N00E006."""
    import geopandas as gpd

    from l2h.inputs.products import resolve_product

    region = gpd.GeoSeries([box(6.45, 0.0, 6.8, 0.45)], crs="EPSG:4326").to_crs("EPSG:32632")[0]
    product = resolve_product("esa_worldcover", {"preset": "esa_worldcover", "edition": "v200",
                                                  "base_url": "/unused"}, [(6.45, 0.0, 6.8, 0.45)])
    assert [f.name for f in product.files] == ["v200/N00E006.tif"]
    files = ProductFiles("esa_worldcover", product.codes, [str(ESA_REAL)], labels=[product.files[0].label],
                         expected_crs=[product.files[0].expected_crs],
                         expected_resolution=[product.files[0].expected_resolution])
    stats = harmonize_region(region, "EPSG:32632", [files], tmp_path / "sao_tome.tif", window=512)
    land = stats.region_pixels - stats.class_pixels[W]
    assert stats.class_pixels[W] / stats.region_pixels > 0.3  # the sea around the island
    assert stats.class_pixels[T] / land > 0.8  # the island is mostly forest
    assert stats.ignored_pixels == 0  # one product, every ESA code is a single class
    assert stats.unknown_codes["esa_worldcover"] == {}
    with rasterio.open(tmp_path / "sao_tome.tif") as src:
        assert src.crs.to_epsg() == 32632 and src.res == (10.0, 10.0)


def test_peak_memory_does_not_grow_with_region_area():
    """From a 20 km to an 80 km region (16x the area, the same 1024 px window) the peak RSS grows by no
    more than GDAL's bounded block cache, a quarter of what holding the larger region's rasters whole
    would add (bench/harmonize_memory.py)."""
    import sys

    from l2h.labels.harmonize import GDAL_CACHE_MB

    sys.path.insert(0, str(ROOT / "bench"))
    from harmonize_memory import measure

    small, large = measure(20.0), measure(80.0)
    assert (small["label_pixels"], large["label_pixels"]) == (2000 ** 2, 8000 ** 2)  # 10 m pixels
    # Held whole, a region costs at least its label (uint8, 1 byte a pixel) and its two products' codes on
    # the label grid (uint16 as harmonize reads them, 2 bytes each): 5 bytes a pixel, so from 4 M to 64 M
    # pixels 300 MB (286 MiB) more. Read window by window, only GDAL's block cache (at most GDAL_CACHE_MB,
    # 64 MiB) may grow, plus 8 MiB for the allocator's own slack: 72 MiB, a quarter of holding (measured:
    # 1-16 MiB, bench/results/harmonize_memory.json).
    holding_mib = (large["label_pixels"] - small["label_pixels"]) * (1 + 2 * 2) / 2 ** 20
    bound_mib = GDAL_CACHE_MB + 8
    assert bound_mib < holding_mib / 3.9
    growth_mib = large["peak_rss_mb"] - small["peak_rss_mb"]  # VmHWM kB / 1024: MiB
    assert growth_mib < bound_mib, (small, large)


def test_code_zero_can_be_a_class_and_uncovered_land_abstains(tmp_path):
    """A custom product whose code 0 is water and 255 nodata covers only the west half."""
    from l2h.inputs.products import custom_codes

    codes = custom_codes("dw", {"0": ["water"], "1": ["tree"]})
    data = np.full((100, 50), 0, np.uint8)
    data[:50] = 1
    west = _utm_product(tmp_path / "west.tif", data)
    with rasterio.open(west, "r+") as dst:
        dst.nodata = 255
    product = ProductFiles("dw", codes, [west], nodata=(255,))
    stats = harmonize_region(_region(1000), CRS, [product], tmp_path / "l.tif", window=64)
    with rasterio.open(tmp_path / "l.tif") as src:
        label = src.read(1)
    assert (label[:50, :50] == T).all() and (label[50:, :50] == W).all()
    assert (label[:, 50:] == IGNORE).all()  # no file there: the product abstains, it is not code 0
    assert stats.product_pixels["dw"] == 5000 and stats.unknown_codes["dw"] == {}


# --- the agreement rules at their edges (each assertion below once let a changed rule pass) ------

def test_the_default_rule_is_all():
    a, b, c = (np.array([[x]], np.uint16) for x in (bits(T), bits(T), bits(G)))
    # all: the products contradict each other -> ignore, set = the union; majority would say T
    assert consensus([a, b, c]).tolist() == [[IGNORE]]
    assert consensus_sets([a, b, c]).tolist() == [[bits(T, G)]]
    assert consensus_sets([a, b, c], "majority").tolist() == [[bits(T)]]


def test_an_unknown_rule_is_named():
    a = np.array([[bits(T)]], np.uint16)
    with pytest.raises(ValueError, match="agreement rule must be 'all' or 'majority', got 'most'"):
        consensus_sets([a], "most")


def test_all_rule_abstention_keeps_the_intersection_of_the_others():
    a = np.array([[bits(T, G)]], np.uint16)
    b = np.array([[bits(T)]], np.uint16)
    none = np.zeros((1, 1), np.uint16)
    # {T, G} and {T} agree on {T}; the product without data changes nothing
    assert consensus_sets([a, b, none], "all").tolist() == [[bits(T)]]
    assert consensus([a, none, b], "all").tolist() == [[T]]


def test_majority_counts_only_products_with_data():
    t, g = np.array([[bits(T)]], np.uint16), np.array([[bits(G)]], np.uint16)
    none = np.zeros((1, 1), np.uint16)
    # T: 2 of the 3 products with data (the fourth abstains) -> a majority
    assert consensus([t, t, g, none], "majority").tolist() == [[T]]
    assert consensus_sets([t, none, t, g], "majority").tolist() == [[bits(T)]]


def test_half_the_votes_is_no_majority():
    t, g, s = (np.array([[bits(x)]], np.uint16) for x in (T, G, S))
    # T has 2 of 4 votes: not more than half -> no winner, the set is the union
    assert consensus([t, t, g, s], "majority").tolist() == [[IGNORE]]
    assert consensus_sets([t, t, g, s], "majority").tolist() == [[bits(T, G, S)]]


def test_unreadable_file_message_names_gdal_problem_and_the_remedy(tmp_path):
    path = tmp_path / "broken.tif"
    path.write_bytes(b"not a GeoTIFF at all")
    with pytest.raises(rasterio.errors.RasterioError) as gdal:
        rasterio.open(path)
    user_copy = ProductFiles("esri", ESRI_LULC_ANNUAL, [str(path)], labels=["esri file 0"])
    with pytest.raises(InputError) as err:
        harmonize_region(_region(100), CRS, [user_copy], tmp_path / "l.tif")
    assert str(err.value) == (f"esri file 0 ({path}): unreadable or truncated raster ({gdal.value}); "
                              "fix or replace the file")
    assert path.exists()
    manifest = tmp_path / "manifest.json"
    manifest.write_text("{}")
    downloaded = ProductFiles("esri", ESRI_LULC_ANNUAL, [str(path)], labels=["esri tile 50R"],
                              manifest=str(manifest), refetchable=[True])
    with pytest.raises(InputError) as err:
        harmonize_region(_region(100), CRS, [downloaded], tmp_path / "l.tif")
    assert str(err.value).endswith("; it was removed so that the next run fetches it again")
    assert not path.exists() and not manifest.exists()


def test_region_pixels_count_only_the_inside(tmp_path):
    products = [ProductFiles("esri", ESRI_LULC_ANNUAL, [_utm_product(tmp_path / "p.tif", np.full((100, 100), 1, np.uint8))])]
    # an L-shaped region: 100 x 100 pixels minus the 50 x 50 north-west quarter = 7500 pixels
    region = box(ORIGIN[0], ORIGIN[1] - 1000, ORIGIN[0] + 1000, ORIGIN[1]).difference(
        box(ORIGIN[0], ORIGIN[1] - 500, ORIGIN[0] + 500, ORIGIN[1]))
    stats = harmonize_region(region, CRS, products, tmp_path / "l.tif", window=64)
    assert stats.region_pixels == 7500 and stats.class_pixels[W] == 7500 and stats.ignored_pixels == 0
    assert stats.product_pixels == {"esri": 7500}


def test_defaults_pair_agreement_and_unknown_codes(tmp_path):
    water = _utm_product(tmp_path / "a.tif", np.full((100, 100), 1, np.uint8))  # ESRI 1: water
    codes = np.full((100, 100), 1, np.uint8)
    codes[:, :50] = 2  # trees on the west half
    codes[:10, :10] = 99  # two codes outside the legend, 100 pixels each
    codes[:10, 10:20] = 98
    mixed = _utm_product(tmp_path / "b.tif", codes)
    products = [ProductFiles("a", ESRI_LULC_ANNUAL, [water]), ProductFiles("b", ESRI_LULC_ANNUAL, [mixed])]
    stats = harmonize_region(_region(), CRS, products, tmp_path / "l.tif")  # 10 m grid, rule "all"
    with rasterio.open(tmp_path / "l.tif") as src:
        assert src.res == (10.0, 10.0) and src.shape == (100, 100)
        label = src.read(1)
    assert (label[:, 50:] == W).all() and (label[10:, :50] == IGNORE).all()
    assert (label[:10, :20] == W).all()  # the unknown codes abstain: product a alone decides
    # both have data on 10000 - 200 pixels; they agree on the east half
    assert stats.pair_agree == {("a", "b"): [5000, 9800]}
    assert stats.unknown_codes == {"a": {}, "b": {98: 100, 99: 100}}
    assert stats.product_pixels == {"a": 10000, "b": 9800}
    assert stats.class_pixels[W] == 5200 and stats.ignored_pixels == 4800
