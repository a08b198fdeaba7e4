"""Coarse 10 m land-cover products: built-in presets (real servers, tiling, code tables) and custom
products, resolved from the configuration into the list of files each region needs."""

from __future__ import annotations

import glob
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from l2h.core.classes import BY_KEY, ESA_WORLDCOVER, ESRI_LULC_2020, ESRI_LULC_ANNUAL, FROM_GLC10, ProductCode
from l2h.core.errors import ConfigError
from l2h.inputs import tiles
from l2h.inputs.download import url_filename

Bounds = tuple[float, float, float, float]  # west, south, east, north in degrees


@dataclass(frozen=True)
class Preset:
    """A public product: its official server, file layout, tiling, legend and grid."""

    key: str
    server: str
    editions: tuple[str, ...]
    tile_names: Callable[[Bounds], list[str]]
    relative_path: Callable[[str, str], str]  # (edition, tile) -> path under the server
    codes: Callable[[str], dict[int, ProductCode]]  # edition -> code table
    crs: Callable[[str], str]  # tile -> CRS of its file
    resolution: float  # pixel size in units of that CRS
    missing_tiles_ok: bool  # the server has no files over open ocean


def _esa_path(edition: str, tile: str) -> str:
    year = {"v100": 2020, "v200": 2021}[edition]
    return f"{edition}/{year}/map/ESA_WorldCover_10m_{year}_{edition}_{tile}_Map.tif"


def _esri_path(edition: str, tile: str) -> str:
    if edition == "2020-10class":
        return f"io-lulc/io-lulc-model-001-v01-composite-v03-supercell-v02-clip-v01/{tile}_20200101-20210101.tif"
    year = int(edition)
    end = f"{year + 1}0101" if year <= 2023 else f"{year}1231"
    return f"lulctimeseriesv003/lc{year}/{tile}_{year}0101-{end}.tif"


def _esri_server(edition: str) -> str:
    return ("https://ai4edataeuwest.blob.core.windows.net/" if edition == "2020-10class"
            else "https://lulctimeseries.blob.core.windows.net/")


def utm_crs_of_zone(tile: str) -> str:
    """'50R' -> 'EPSG:32650' (bands N..X are northern), '23K' -> 'EPSG:32723'."""
    zone, band = int(tile[:-1]), tile[-1].upper()
    return f"EPSG:{32600 + zone if band >= 'N' else 32700 + zone}"


PRESETS: dict[str, Preset] = {
    "esa_worldcover": Preset(
        key="esa_worldcover", server="https://esa-worldcover.s3.eu-central-1.amazonaws.com/",
        editions=("v100", "v200"), tile_names=tiles.esa_worldcover_tiles, relative_path=_esa_path,
        codes=lambda edition: ESA_WORLDCOVER, crs=lambda tile: "EPSG:4326", resolution=1 / 12000,
        missing_tiles_ok=True),
    "esri_lulc": Preset(
        key="esri_lulc", server="(per edition)",
        editions=("2020-10class", *(str(y) for y in range(2017, 2025))),
        tile_names=tiles.esri_lulc_tiles, relative_path=_esri_path,
        codes=lambda edition: ESRI_LULC_2020 if edition == "2020-10class" else ESRI_LULC_ANNUAL,
        crs=utm_crs_of_zone, resolution=10.0, missing_tiles_ok=True),
    "fromglc10": Preset(
        key="fromglc10", server="https://data.ess.tsinghua.edu.cn/", editions=("2017",),
        tile_names=tiles.fromglc10_tiles,
        relative_path=lambda edition, tile: f"data/fromglc10_2017v01/{tile}.tif",
        codes=lambda edition: FROM_GLC10, crs=lambda tile: "EPSG:4326", resolution=2 / 22264,
        missing_tiles_ok=True),
}


@dataclass(frozen=True)
class RemoteFile:
    """One file of a product to fetch into resources/raw/<product>/."""

    name: str  # file name under resources/raw/<product>/
    url: str
    label: str  # for messages: "<product> tile <tile>"
    expected_crs: str | None = None
    expected_resolution: float | None = None
    sha256: str | None = None  # verified before the file takes its name, when the config gives it
    expected_size: int | None = None  # bytes, likewise


@dataclass(frozen=True)
class Product:
    """A configured product, ready to download and harmonize."""

    id: str
    preset: str  # a PRESETS key or "custom"
    codes: dict[int, ProductCode]
    files: tuple[RemoteFile, ...] = ()  # to download
    local_files: tuple[str, ...] = ()  # read in place (custom products)
    missing_ok: bool = False
    nodata: tuple[int, ...] = (0,)


def _join(base: str, relative: str) -> str:
    """A URL or local path under `base` (a server root or a local mirror laid out like it)."""
    return base.rstrip("/") + "/" + relative


def custom_codes(product_id: str, table: dict) -> dict[int, ProductCode]:
    """A user's code table {code: [class keys]} -> {code: ProductCode}; unknown keys are errors."""
    codes = {}
    for code, keys in table.items():
        try:
            code_int = int(code)
        except (TypeError, ValueError):
            raise ConfigError(f"config key 'products.{product_id}.codes': {code!r} is not an integer code") from None
        if not 0 <= code_int <= 255:
            raise ConfigError(f"config key 'products.{product_id}.codes': code {code_int} is outside 0..255 "
                              f"(l2h reads class rasters as 8-bit)")
        unknown = [k for k in keys if k not in BY_KEY]
        if unknown:
            raise ConfigError(f"config key 'products.{product_id}.codes.{code}': unknown class(es) "
                              f"{unknown}; expected some of: {', '.join(BY_KEY)}")
        codes[code_int] = ProductCode(code_int, "+".join(keys) or "no information",
                                      frozenset(BY_KEY[k].code for k in keys))
    return codes


# Where the presets are published as STAC collections (Microsoft Planetary Computer), per edition:
# (collection, asset key, datetime of the edition's items). Its assets need a storage signature:
# see docs/inputs.md, "Products from STAC".
PLANETARY_COMPUTER = "https://planetarycomputer.microsoft.com/api/stac/v1"
STAC_PRESETS: dict[str, Callable[[str], tuple[str, str, str]]] = {
    "esa_worldcover": lambda edition: ("esa-worldcover", "map", {"v100": "2020", "v200": "2021"}[edition]),
    "esri_lulc": lambda edition: (("io-lulc", "data", "2020") if edition == "2020-10class"
                                  else ("io-lulc-annual-v02", "data", edition)),
}


def _stac_files(product_id: str, stac: dict, region_bounds: Iterable[Bounds],
                defaults: tuple[str, str, str] | None) -> tuple[RemoteFile, ...]:
    """The files of the items a product's `stac` section finds over the regions (each item once),
    with the checksum and size the catalog gives and the CRS its `proj` fields name."""
    from l2h.inputs.stac import NoItems, StacSearch, search  # lazy: pystac loads only for a STAC product

    section = dict(stac)
    if defaults:
        collection, asset, datetime = defaults
        section = {"url": PLANETARY_COMPUTER, "collection": collection, "asset": asset, "datetime": datetime,
                   **{k: v for k, v in section.items() if v is not None}}
    missing = [k for k in ("url", "asset") if not section.get(k)]
    if missing:
        raise ConfigError(f"config key 'products.{product_id}.stac': needs {' and '.join(missing)}")
    query = StacSearch.from_config(section, f"products.{product_id}.stac")
    found, empty = {}, None
    for bounds in region_bounds:
        try:
            for f in search(query, bounds):
                found.setdefault(f.id, f)
        except NoItems as exc:  # a region the collection does not cover (open ocean): the others may do
            empty = exc
    if not found and empty:
        raise empty
    files = []
    for f in sorted(found.values(), key=lambda f: f.id):
        code = f.item.properties.get("proj:code") or (
            f"EPSG:{f.item.properties['proj:epsg']}" if f.item.properties.get("proj:epsg") else None)
        name = re.sub(r"[^A-Za-z0-9._-]", "_", f.id)
        files.append(RemoteFile(name=f"stac/{name}.tif", url=f.href, label=f"{product_id} item {f.id}",
                                expected_crs=code, sha256=f.checksum, expected_size=f.size))
    return tuple(files)


def resolve_product(product_id: str, spec: dict, region_bounds: Iterable[Bounds]) -> Product:
    """Turn one `products.<id>` config entry into the files it needs for the given region bounds."""
    preset_key = spec["preset"]
    region_bounds = list(region_bounds)
    if preset_key == "custom":
        if not spec.get("codes"):
            raise ConfigError(f"config key 'products.{product_id}.codes' is required for a custom product")
        codes = custom_codes(product_id, spec["codes"])
        if spec.get("stac") is not None:
            files = _stac_files(product_id, spec["stac"], region_bounds, None)
            return Product(product_id, "custom", codes, files=files, nodata=tuple(spec.get("nodata", [0])))
        urls = [u if isinstance(u, dict) else {"url": u} for u in spec.get("urls") or []]
        files = tuple(RemoteFile(name=f"{i:03d}_{url_filename(u['url'])}", url=u["url"], label=f"{product_id} file {i}",
                                 sha256=u.get("sha256"), expected_size=u.get("size"))
                      for i, u in enumerate(urls))
        local = tuple(p for pattern in spec.get("files") or [] for p in sorted(glob.glob(pattern)) or [pattern])
        if not files and not local:
            raise ConfigError(f"config key 'products.{product_id}': a custom product needs `files` or `urls`")
        return Product(product_id, "custom", codes, files=files, local_files=local,
                       nodata=tuple(spec.get("nodata", [0])))
    preset = PRESETS[preset_key]
    edition = str(spec.get("edition") or preset.editions[-1])
    if edition not in preset.editions:
        raise ConfigError(f"config key 'products.{product_id}.edition': {edition!r} is not an edition of "
                          f"{preset_key}; expected one of: {', '.join(preset.editions)}")
    if spec.get("stac") is not None:
        if preset_key not in STAC_PRESETS:
            raise ConfigError(f"config key 'products.{product_id}.stac': the {preset_key} preset is not published "
                              f"as STAC; presets with a STAC collection: {', '.join(STAC_PRESETS)}")
        files = _stac_files(product_id, spec["stac"], region_bounds, STAC_PRESETS[preset_key](edition))
        return Product(product_id, preset_key, preset.codes(edition), files=files)
    base = spec.get("base_url") or (_esri_server(edition) if preset_key == "esri_lulc" else preset.server)
    names = sorted({t for b in region_bounds for t in preset.tile_names(b)})
    files = tuple(
        RemoteFile(name=f"{edition}/{tile}.tif", url=_join(base, preset.relative_path(edition, tile)),
                   label=f"{product_id} tile {tile}", expected_crs=preset.crs(tile),
                   expected_resolution=preset.resolution)
        for tile in names)
    return Product(product_id, preset_key, preset.codes(edition), files=files,
                   missing_ok=preset.missing_tiles_ok)
