"""The l2h legend (SinoLC-1 classes) and the code tables of the public 10 m products.

Every product code maps to the *set* of our classes it is compatible with (docs/method.md §3-4); this
module is the one place those tables live. An empty set means "no information" (nodata, clouds).
The products' built-up classes map to {building} alone although they include paved roads: roads
come from OpenStreetMap and are burned over the consensus (docs/method.md §4); with {building, road}
the consensus could never label a building.
"""

from __future__ import annotations

from dataclasses import dataclass

NODATA = 0
IGNORE = 255


@dataclass(frozen=True)
class LandCoverClass:
    """One of the eleven SinoLC-1 land-cover classes: code, key, name and display colour."""
    code: int
    key: str
    name: str
    colour: str  # "#rrggbb"


CLASSES: tuple[LandCoverClass, ...] = (
    LandCoverClass(1, "tree", "tree cover", "#006400"),
    LandCoverClass(2, "shrub", "shrubland", "#ffbb22"),
    LandCoverClass(3, "crop", "cropland", "#f096ff"),
    LandCoverClass(4, "grass", "grassland", "#ffff4c"),
    LandCoverClass(5, "building", "building / built-up", "#fa0000"),
    LandCoverClass(6, "bare", "bare / sparse vegetation", "#b4b4b4"),
    LandCoverClass(7, "water", "water", "#0064c8"),
    LandCoverClass(8, "wetland", "wetland", "#0096a0"),
    LandCoverClass(9, "snow", "snow and ice", "#f0f0f0"),
    LandCoverClass(10, "moss", "moss and lichen", "#fae6a0"),
    LandCoverClass(11, "road", "road", "#3c3c3c"),
)
CLASS_CODES: tuple[int, ...] = tuple(c.code for c in CLASSES)
BY_KEY: dict[str, LandCoverClass] = {c.key: c for c in CLASSES}
BY_CODE: dict[int, LandCoverClass] = {c.code: c for c in CLASSES}
TREE, SHRUB, CROP, GRASS, BUILDING, BARE, WATER, WETLAND, SNOW, MOSS, ROAD = CLASS_CODES


def hex_to_rgb(colour: str) -> tuple[int, int, int]:
    """'#rrggbb' -> (r, g, b)."""
    colour = colour.lstrip("#")
    return tuple(int(colour[i : i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]


def colormap() -> dict[int, tuple[int, int, int, int]]:
    """GDAL colour table for class rasters: nodata transparent, ignore (255) magenta-grey."""
    table = {NODATA: (0, 0, 0, 0), IGNORE: (128, 128, 128, 255)}
    for c in CLASSES:
        table[c.code] = (*hex_to_rgb(c.colour), 255)
    return table


@dataclass(frozen=True)
class ProductCode:
    """One code of a coarse product's legend and the l2h classes it allows."""
    code: int
    name: str
    classes: frozenset[int]  # our classes compatible with this code; empty = no information


def _table(rows: list[tuple[int, str, set[int]]]) -> dict[int, ProductCode]:
    return {code: ProductCode(code, name, frozenset(sets)) for code, name, sets in rows}


# ESA WorldCover 10 m, v100 (2020) and v200 (2021) share one legend.
ESA_WORLDCOVER = _table([
    (10, "tree cover", {TREE}),
    (20, "shrubland", {SHRUB}),
    (30, "grassland", {GRASS}),
    (40, "cropland", {CROP}),
    (50, "built-up", {BUILDING}),
    (60, "bare / sparse vegetation", {BARE}),
    (70, "snow and ice", {SNOW}),
    (80, "permanent water bodies", {WATER}),
    (90, "herbaceous wetland", {WETLAND}),
    (95, "mangroves", {WETLAND}),
    (100, "moss and lichen", {MOSS}),
])

# Esri / Impact Observatory 10 m land cover, 2020 edition (10 classes).
ESRI_LULC_2020 = _table([
    (1, "water", {WATER}),
    (2, "trees", {TREE}),
    (3, "grass", {GRASS}),
    (4, "flooded vegetation", {WETLAND}),
    (5, "crops", {CROP}),
    (6, "scrub/shrub", {SHRUB}),
    (7, "built area", {BUILDING}),
    (8, "bare ground", {BARE, MOSS}),
    (9, "snow/ice", {SNOW}),
    (10, "clouds", set()),
])

# Esri / Impact Observatory annual editions (2017-): 3 and 6 unused, 11 rangeland = grass + shrub.
ESRI_LULC_ANNUAL = _table([
    (1, "water", {WATER}),
    (2, "trees", {TREE}),
    (4, "flooded vegetation", {WETLAND}),
    (5, "crops", {CROP}),
    (7, "built area", {BUILDING}),
    (8, "bare ground", {BARE, MOSS}),
    (9, "snow/ice", {SNOW}),
    (10, "clouds", set()),
    (11, "rangeland", {GRASS, SHRUB}),
])

# FROM-GLC10 (Tsinghua, 2017).
FROM_GLC10 = _table([
    (10, "cropland", {CROP}),
    (20, "forest", {TREE}),
    (30, "grassland", {GRASS}),
    (40, "shrubland", {SHRUB}),
    (50, "wetland", {WETLAND}),
    (60, "water", {WATER}),
    (70, "tundra", {MOSS}),
    (80, "impervious surface", {BUILDING}),
    (90, "bare land", {BARE}),
    (100, "snow/ice", {SNOW}),
])

PRODUCT_TABLES: dict[str, dict[int, ProductCode]] = {
    "esa_worldcover": ESA_WORLDCOVER,
    "esri_lulc_2020": ESRI_LULC_2020,
    "esri_lulc_annual": ESRI_LULC_ANNUAL,
    "fromglc10": FROM_GLC10,
}


def code_for_class(table: dict[int, ProductCode], cls: int) -> int:
    """The product code a product would most plausibly give to our class `cls`.

    Prefers a code whose compatible set is exactly {cls}; otherwise the smallest set holding it.
    """
    candidates = [pc for pc in table.values() if cls in pc.classes]
    if not candidates:
        raise KeyError(f"no code of this product is compatible with class {cls}")
    return min(candidates, key=lambda pc: (len(pc.classes), pc.code)).code
