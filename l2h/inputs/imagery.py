"""The ~1 m imagery: any GDAL-readable source, mosaicked or cached block by block onto the run grid.

A source is a GDAL dataset name: a local GeoTIFF/VRT path, a ``/vsicurl/`` URL of a remote COG, or
the XML text of a GDAL WMS description (see `xyz_wms_xml` for XYZ tile services). XML text is
handed to GDAL through an in-memory file (``/vsimem/``), never written to disk; it may hold an API
key, so messages name a source only through `describe_source` and log records of rasterio/GDAL
are passed through `l2h.core.secrets.redact` while this module works. `redact` hides the key by value
(the CLI registers it), wherever the template puts it, and query values named like a key or token.

Blocks are those of the run's block grid (`l2h.core.blocks`): squares of ``block_size`` pixels
anchored at the CRS origin, named like ``c821_r12976``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import numbers
import os
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote
from xml.sax.saxutils import escape, quoteattr, unescape

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.errors import CRSError, RasterioError
from rasterio.io import MemoryFile
from rasterio.transform import Affine, from_origin
from rasterio.vrt import WarpedVRT
from shapely.geometry import shape
from tqdm import tqdm

from l2h.core.blocks import Block, blocks_for_regions
from l2h.core.errors import ConfigError, InputError
from l2h.core.io import atomic_path, is_readable
from l2h.core.secrets import RedactingFilter, redact
from l2h.core.secrets import expand as expand_secrets
from l2h.core.secrets import register as register_secret
from l2h.core.windows import iter_windows

log = logging.getLogger(__name__)

WEB_MERCATOR_HALF = 20037508.342789244  # half the width of the EPSG:3857 world, metres
NODATA = 0
_GDAL_TYPES = {
    "uint8": "Byte", "int8": "Int8", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32",
    "int32": "Int32", "uint64": "UInt64", "int64": "Int64", "float32": "Float32", "float64": "Float64",
}
_XYZ_FIELDS = ("{z}", "{x}", "{y}", "{-y}", "{api_key}")


# ---------------------------------------------------------------- sources, redaction, opening

def is_xml(source: str) -> bool:
    """Whether `source` is the XML text of a GDAL dataset (e.g. a WMS description), not a name."""
    return str(source).lstrip().startswith("<")


def describe_source(source: str) -> str:
    """A loggable name of `source`: the redacted path/URL, or for WMS XML its redacted server URL."""
    source = str(source)
    if not is_xml(source):
        return redact(source)
    match = re.search(r"<ServerUrl>(.*?)</ServerUrl>", source, re.S)
    if match:
        return f"tile service {redact(unescape(match[1].strip()))}"
    match = re.search(r"<SourceFilename[^>]*>WMTS:(.*?)</SourceFilename>", source, re.S)
    return f"WMTS {redact(unescape(match[1].strip()))}" if match else "GDAL XML dataset"


def _scrub(text: str, source: str) -> str:
    """`text` (e.g. a GDAL error) made safe to show: the XML of `source` replaced, keys redacted."""
    text = str(text)
    if is_xml(source):
        text = text.replace(str(source), describe_source(source))
    return redact(text)


@contextlib.contextmanager
def _redacted_gdal_logs() -> Iterator[None]:
    """Redact secrets in records of rasterio's loggers (GDAL errors and debug lines quote URLs)."""
    names = ["rasterio"] + [name for name, logger in logging.root.manager.loggerDict.items()
                            if name.startswith("rasterio.") and isinstance(logger, logging.Logger)]
    loggers = [logging.getLogger(name) for name in names]
    flt = RedactingFilter()
    for logger in loggers:
        logger.addFilter(flt)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(flt)


@contextlib.contextmanager
def open_source(source: str) -> Iterator[rasterio.io.DatasetReader]:
    """Open a source for reading; XML text goes through ``/vsimem/`` (deleted on exit).

    Raises InputError naming the (redacted) source when GDAL cannot open it.
    """
    source = str(source)
    with contextlib.ExitStack() as stack:
        try:
            if is_xml(source):
                memfile = stack.enter_context(MemoryFile(source.encode("utf-8"), ext="xml"))
                dataset = stack.enter_context(memfile.open())
            else:
                dataset = stack.enter_context(rasterio.open(source))
        except RasterioError as exc:
            raise InputError(f"imagery {describe_source(source)}: cannot be opened: "
                             f"{_scrub(exc, source)}") from None
        yield dataset


def _crs_name(crs) -> str | None:
    if crs is None:
        return None
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_wkt()


def imagery_info(source: str) -> dict:
    """CRS, resolution (x, y), band count, dtype, bounds, size and nodata of an imagery source.

    Keys: crs ("EPSG:n" or WKT, None without CRS), resolution, count, dtype, bounds (west, south,
    east, north), width, height, nodata. Raises InputError naming the (redacted) source when it
    cannot be opened.
    """
    with _redacted_gdal_logs(), open_source(source) as src:
        return dict(crs=_crs_name(src.crs), resolution=tuple(src.res), count=src.count,
                    dtype=src.dtypes[0], bounds=tuple(src.bounds), width=src.width,
                    height=src.height, nodata=src.nodata, descriptions=tuple(src.descriptions),
                    colorinterp=tuple(ci.name for ci in src.colorinterp))


def band_names(source: str) -> list[str]:
    """Names of the imagery's bands: their descriptions, else their colour interpretation, else bandN."""
    info = imagery_info(source)
    names = []
    for i, (description, interp) in enumerate(zip(info["descriptions"], info["colorinterp"]), start=1):
        names.append(description or (interp if interp not in ("undefined", "gray") else f"band{i}"))
    return names


# ---------------------------------------------------------------- mosaic VRT

@dataclass(frozen=True)
class _Part:
    name: str  # absolute path or GDAL name
    crs: object
    transform: Affine
    width: int
    height: int
    count: int
    dtype: str
    nodata: float | None
    block: tuple[int, int]  # (rows, cols) of the first band's blocks
    colorinterp: tuple
    descriptions: tuple


def _gdal_name(path: str) -> str:
    path = str(path)
    if path.startswith("/vsi") or "://" in path:
        return path
    return str(Path(path).absolute())


def _read_part(path: str) -> _Part:
    if is_xml(str(path)):
        raise InputError("imagery mosaic: a WMS/XML source cannot be part of a mosaic VRT; "
                         "cache it first (fetch_imagery)")
    name = _gdal_name(path)
    with open_source(name) as src:
        t = src.transform
        if src.crs is None:
            raise InputError(f"imagery {redact(name)}: has no CRS")
        if t.b != 0 or t.d != 0 or t.e >= 0:
            raise InputError(f"imagery {redact(name)}: its grid is rotated or not north-up ({tuple(t)[:6]}); "
                             "warp it to a north-up grid first")
        if len(set(src.dtypes)) != 1:
            raise InputError(f"imagery {redact(name)}: bands have different data types {src.dtypes}")
        return _Part(name, src.crs, t, src.width, src.height, src.count, src.dtypes[0], src.nodata,
                     src.block_shapes[0], tuple(src.colorinterp), tuple(src.descriptions))


def _num(value: float) -> str:
    """A number for VRT XML: integers without a fraction, others with full precision."""
    if abs(value - round(value)) < 1e-6:
        return str(int(round(value)))
    return repr(float(value))


def _check_parts(parts: Sequence[_Part]) -> None:
    first = parts[0]
    for part in parts[1:]:
        if part.crs != first.crs:
            raise InputError(f"imagery {redact(part.name)}: CRS {_crs_name(part.crs)} differs from "
                             f"{_crs_name(first.crs)} of {redact(first.name)}; reproject it first")
        if part.count != first.count:
            raise InputError(f"imagery {redact(part.name)}: {part.count} bands, but {redact(first.name)} "
                             f"has {first.count}; every imagery file needs the same bands")
        if part.dtype != first.dtype:
            raise InputError(f"imagery {redact(part.name)}: data type {part.dtype}, but "
                             f"{redact(first.name)} has {first.dtype}")
    if first.dtype not in _GDAL_TYPES:
        raise InputError(f"imagery {redact(first.name)}: data type {first.dtype} is not supported")


def build_vrt(paths: list[str], out: str | Path) -> Path:
    """Write `out`, a mosaic VRT of `paths` (same CRS, band count and dtype; else InputError).

    Pixel size is the finest of the inputs and the extent their union; every file is a
    ComplexSource (later files drawn over earlier ones); gaps read as nodata 0. Band colour
    interpretation and descriptions come from the first file; source paths are absolute.
    """
    if not paths:
        raise InputError(f"imagery mosaic {out}: no input files")
    with _redacted_gdal_logs():
        parts = [_read_part(p) for p in paths]
    _check_parts(parts)
    first = parts[0]
    res_x = min(p.transform.a for p in parts)
    res_y = min(-p.transform.e for p in parts)
    west = min(p.transform.c for p in parts)
    north = max(p.transform.f for p in parts)
    east = max(p.transform.c + p.width * p.transform.a for p in parts)
    south = min(p.transform.f + p.height * p.transform.e for p in parts)
    width = max(1, math.ceil((east - west) / res_x - 1e-6))
    height = max(1, math.ceil((north - south) / res_y - 1e-6))
    gdal_type = _GDAL_TYPES[first.dtype]

    lines = [f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">',
             f"  <SRS>{escape(first.crs.to_wkt())}</SRS>",
             f"  <GeoTransform>{west!r}, {res_x!r}, 0.0, {north!r}, 0.0, {-res_y!r}</GeoTransform>"]
    for band in range(1, first.count + 1):
        lines.append(f'  <VRTRasterBand dataType="{gdal_type}" band="{band}">')
        lines.append(f"    <NoDataValue>{NODATA}</NoDataValue>")
        lines.append(f"    <ColorInterp>{first.colorinterp[band - 1].name.capitalize()}</ColorInterp>")
        if first.descriptions[band - 1]:
            lines.append(f"    <Description>{escape(first.descriptions[band - 1])}</Description>")
        for p in parts:
            t = p.transform
            dst = dict(xOff=(t.c - west) / res_x, yOff=(north - t.f) / res_y,
                       xSize=p.width * t.a / res_x, ySize=p.height * -t.e / res_y)
            nodata = NODATA if p.nodata is None else p.nodata
            lines += [
                "    <ComplexSource>",
                f'      <SourceFilename relativeToVRT="0">{escape(p.name)}</SourceFilename>',
                f"      <SourceBand>{band}</SourceBand>",
                f'      <SourceProperties RasterXSize="{p.width}" RasterYSize="{p.height}" '
                f'DataType="{gdal_type}" BlockXSize="{p.block[1]}" BlockYSize="{p.block[0]}"/>',
                f'      <SrcRect xOff="0" yOff="0" xSize="{p.width}" ySize="{p.height}"/>',
                "      <DstRect " + " ".join(f"{k}={quoteattr(_num(v))}" for k, v in dst.items()) + "/>",
                f"      <NODATA>{_num(nodata)}</NODATA>",
                "    </ComplexSource>",
            ]
        lines.append("  </VRTRasterBand>")
    lines.append("</VRTDataset>\n")
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")
    return out


# ---------------------------------------------------------------- XYZ tile services

def xyz_wms_xml(url_template: str, zoom: int, bands: int = 3, tile_size: int = 256,
                api_key: str | None = None) -> str:
    """GDAL WMS XML (TMS minidriver, EPSG:3857) for an XYZ tile URL template at `zoom`.

    The template has ``{z}``, ``{x}`` and ``{y}`` (or ``{-y}`` for TMS rows counted from the
    south) and optionally ``{api_key}``, filled (URL-quoted) from `api_key`. Tiles answered with
    HTTP 204/404 read as nodata 0; no disk cache. The result holds the key: never log it.
    """
    template = str(url_template)
    if not isinstance(zoom, int) or not 0 <= zoom <= 30:
        raise ConfigError(f"imagery tile zoom: must be an integer 0..30, got {zoom!r}")
    if bands not in (1, 2, 3, 4):
        raise ConfigError(f"imagery tile bands: must be 1..4, got {bands!r}")
    if tile_size <= 0:
        raise ConfigError(f"imagery tile size: must be positive, got {tile_size!r}")
    has_y = "{y}" in template or "{-y}" in template
    if "{z}" not in template or "{x}" not in template or not has_y:
        raise ConfigError(f"imagery tile URL {redact(template)}: needs {{z}}, {{x}} and {{y}} placeholders")
    unknown = set(re.findall(r"\{[^{}]*\}", template)) - set(_XYZ_FIELDS)
    if unknown:
        raise ConfigError(f"imagery tile URL {redact(template)}: unknown placeholders {sorted(unknown)}; "
                          f"supported: {', '.join(_XYZ_FIELDS)}")
    if "{api_key}" in template and not api_key:
        raise ConfigError(f"imagery tile URL {redact(template)}: has {{api_key}} but no API key was given")
    if api_key and "{api_key}" not in template:
        raise ConfigError(f"imagery tile URL {redact(template)}: an API key was given but the URL has no "
                          "{api_key} placeholder")
    y_origin = "bottom" if "{-y}" in template else "top"
    fill = {"{z}": "${z}", "{x}": "${x}", "{y}": "${y}", "{-y}": "${y}",
            "{api_key}": quote(str(api_key or ""), safe="")}
    url = re.sub(r"\{[^{}]*\}", lambda m: fill[m[0]], template)  # one pass: the key is not re-read
    h = repr(WEB_MERCATOR_HALF)
    return "\n".join([
        "<GDAL_WMS>",
        '  <Service name="TMS">',
        f"    <ServerUrl>{escape(url)}</ServerUrl>",
        "  </Service>",
        "  <DataWindow>",
        f"    <UpperLeftX>-{h}</UpperLeftX>",
        f"    <UpperLeftY>{h}</UpperLeftY>",
        f"    <LowerRightX>{h}</LowerRightX>",
        f"    <LowerRightY>-{h}</LowerRightY>",
        f"    <TileLevel>{zoom}</TileLevel>",
        "    <TileCountX>1</TileCountX>",
        "    <TileCountY>1</TileCountY>",
        f"    <YOrigin>{y_origin}</YOrigin>",
        "  </DataWindow>",
        "  <Projection>EPSG:3857</Projection>",
        f"  <BlockSizeX>{tile_size}</BlockSizeX>",
        f"  <BlockSizeY>{tile_size}</BlockSizeY>",
        f"  <BandsCount>{bands}</BandsCount>",
        "  <MaxConnections>4</MaxConnections>",
        "  <Timeout>60</Timeout>",
        "  <ZeroBlockHttpCodes>204,404</ZeroBlockHttpCodes>",
        "</GDAL_WMS>",
        "",
    ])


def xyz_source(xyz: dict) -> str:
    """The GDAL WMS XML of the `imagery.xyz` config section: its API key read from the environment
    variable `api_key_env` and ${VARIABLE}s in its URL filled, all registered as secrets."""
    key = None
    if xyz.get("api_key_env"):
        key = os.environ.get(xyz["api_key_env"])
        if not key:
            raise ConfigError(f"imagery.xyz.api_key_env: the environment variable {xyz['api_key_env']} "
                              f"is not set; export it with the tile service's API key")
        register_secret(key)
    url = expand_secrets(xyz["url"], "imagery.xyz.url")
    return xyz_wms_xml(url, xyz["zoom"], bands=xyz.get("bands", 3), api_key=key)


# ---------------------------------------------------------------- WMTS services

_BAND_COLOURS = ("Red", "Green", "Blue")


def wmts_source(wmts: dict) -> str:
    """GDAL VRT XML over a layer of a WMTS service (GDAL's WMTS driver), from the `imagery.wmts`
    config section: capabilities `url` (its ${VARIABLE}s filled and registered as secrets), `layer`,
    and optionally `tile_matrix_set`, `style` and `bands`. The first `bands` bands (default: 3, or
    fewer if the layer has fewer) are data, the first three red, green, blue: a fourth band is kept
    as data (e.g. near-infrared), not taken for transparency. The result holds the URL: never log it."""
    url = expand_secrets(wmts["url"], "imagery.wmts.url")
    options = [("layer", wmts["layer"]), ("tilematrixset", wmts.get("tile_matrix_set")),
               ("style", wmts.get("style"))]
    name = "WMTS:" + url + "".join(f",{key}={value}" for key, value in options if value)
    layer = f"imagery.wmts: layer {wmts['layer']!r} of {redact(url)}"
    with _redacted_gdal_logs(), rasterio.Env(**_http_env()):
        try:
            with rasterio.open(name) as src:
                count, dtype, crs, transform = src.count, src.dtypes[0], src.crs, src.transform
                width, height = src.width, src.height
        except RasterioError as exc:
            problem = _wmts_problem(url, wmts) or redact(" ".join(str(exc).split()))
            raise InputError(f"{layer}: cannot be opened: {problem}") from None
    bands = wmts.get("bands") or min(3, count)
    if not 1 <= bands <= count:
        raise ConfigError(f"config key 'imagery.wmts.bands': {bands!r}, but {layer} has {count} band(s)")
    if crs is None:
        raise InputError(f"{layer}: has no CRS")
    lines = [f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">',
             f"  <SRS>{escape(crs.to_wkt())}</SRS>",
             f"  <GeoTransform>{', '.join(repr(float(v)) for v in transform.to_gdal())}</GeoTransform>"]
    for band in range(1, bands + 1):
        colour = _BAND_COLOURS[band - 1] if band <= 3 and bands >= 3 else "Undefined"
        lines += [f'  <VRTRasterBand dataType="{_GDAL_TYPES[dtype]}" band="{band}">',
                  f"    <ColorInterp>{colour}</ColorInterp>",
                  "    <SimpleSource>",
                  f'      <SourceFilename relativeToVRT="0">{escape(name)}</SourceFilename>',
                  f"      <SourceBand>{band}</SourceBand>",
                  "    </SimpleSource>",
                  "  </VRTRasterBand>"]
    lines.append("</VRTDataset>\n")
    return "\n".join(lines)


def _wmts_problem(url: str, wmts: dict) -> str | None:
    """Why GDAL could not open the layer, read from the capabilities document itself (GDAL's own
    message is often only the last of several): no such layer or tile matrix set, or no document."""
    from xml.etree import ElementTree

    import requests  # lazy: only on this error path

    try:
        response = requests.get(url, timeout=60)
    except requests.RequestException as exc:
        return f"the capabilities cannot be fetched: {redact(' '.join(str(exc).split()))}"
    if response.status_code != 200:
        return f"the capabilities answer HTTP {response.status_code}"
    try:
        root = ElementTree.fromstring(response.content)
    except ElementTree.ParseError:
        return "the capabilities URL does not answer XML (an HTML page or an error message?)"
    ows, wmts_ns = "{http://www.opengis.net/ows/1.1}", "{http://www.opengis.net/wmts/1.0}"
    layers = {}
    for element in root.iter(f"{wmts_ns}Layer"):
        identifier = element.findtext(f"{ows}Identifier")
        layers[identifier] = [link.findtext(f"{wmts_ns}TileMatrixSet")
                              for link in element.iter(f"{wmts_ns}TileMatrixSetLink")]
    if wmts["layer"] not in layers:
        return f"the service has no such layer; its layers: {', '.join(sorted(filter(None, layers))) or 'none'}"
    if wmts.get("tile_matrix_set") and wmts["tile_matrix_set"] not in layers[wmts["layer"]]:
        return (f"the layer has no tile matrix set {wmts['tile_matrix_set']!r}; its sets: "
                f"{', '.join(filter(None, layers[wmts['layer']]))}")
    return None


# ---------------------------------------------------------------- block cache

def _as_geometry(region_geometry):
    geometry = region_geometry if hasattr(region_geometry, "geom_type") else shape(region_geometry)
    if geometry.is_empty or geometry.area <= 0:
        raise InputError("imagery: the region geometry is empty (no area); nothing to fetch")
    return geometry


def region_blocks(region_geometry, resolution: float, block_size: int) -> list[Block]:
    """The blocks of the run's block grid (l2h.core.blocks) whose interior overlaps the region, north
    to south, west to east."""
    if not resolution > 0 or not isinstance(block_size, numbers.Integral) or block_size <= 0:
        raise ConfigError(f"imagery block grid: resolution and block_size must be positive, "
                          f"got {resolution!r} and {block_size!r}")
    return blocks_for_regions({"region": _as_geometry(region_geometry)}, block_size * resolution)


def _block_transform(block: Block, resolution: float) -> Affine:
    return from_origin(block.bounds[0], block.bounds[3], resolution, resolution)


def _resampling(name: str) -> Resampling:
    try:
        return Resampling[name]
    except KeyError:
        raise ConfigError(f"imagery resampling: {name!r} is not one of "
                          f"{', '.join(r.name for r in Resampling)}") from None


def _block_profile(src, crs: str, transform: Affine, block_size: int) -> dict:
    tile = 512 if block_size >= 512 else 256
    dtype = src.dtypes[0]
    profile = dict(driver="GTiff", width=block_size, height=block_size, count=src.count, dtype=dtype,
                   crs=crs, transform=transform, nodata=NODATA, tiled=True, blockxsize=tile,
                   blockysize=tile, compress="deflate", interleave="pixel", bigtiff="if_safer",
                   predictor=3 if np.dtype(dtype).kind == "f" else 2)
    rgb = (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
    if dtype == "uint8" and src.count >= 3 and tuple(src.colorinterp[:3]) == rgb:
        profile["photometric"] = "RGB"
        if src.count > 3:
            profile["alpha"] = "yes" if src.colorinterp[3] == ColorInterp.alpha else "unspecified"
    return profile


def _src_nodata(src):
    """The source value that means 'no imagery': its nodata, else 0 unless a mask/alpha says it."""
    if src.nodata is not None:
        return src.nodata
    if all(flags == [MaskFlags.all_valid] for flags in src.mask_flag_enums):
        return NODATA
    return None  # let GDAL use the per-dataset mask or alpha band


class _SourceError(Exception):
    """Reading the imagery source failed (as opposed to writing the block): GDAL's error is the cause."""


def write_block(path: Path, like, crs, transform: Affine, block_size: int, read, tags=None) -> bool:
    """Write a block's GeoTIFF to `path` atomically, 512 px window by window from ``read(window)``
    (its bands), with the band count, type, colours and names of the dataset `like` and, when given,
    the tags ``tags()`` returns once every window is read. Whether any pixel has data. ``read`` must
    not raise a RasterioError: here that means a failed write (a full disk), an OSError naming `path`."""
    has_data = False
    with atomic_path(path) as tmp:
        try:
            with rasterio.open(tmp, "w", **_block_profile(like, crs, transform, block_size)) as dst:
                for window in iter_windows(block_size, block_size, 512):
                    data = read(window)
                    has_data = has_data or bool(data.any())
                    dst.write(data, window=window)
                dst.colorinterp = like.colorinterp
                for band, description in enumerate(like.descriptions, start=1):
                    if description:
                        dst.set_band_description(band, description)
                if tags is not None:
                    dst.update_tags(**tags())
        except RasterioError as exc:
            raise OSError(errno.EIO, f"cannot write the block: {' '.join(str(exc).split())}", str(path)) from None
    return has_data


def _cache_block(src, block: Block, crs: str, resolution: float, block_size: int, path: Path,
                 resampling: Resampling) -> bool:
    """Warp the source onto `block` and write it to `path` atomically; whether it has any data.

    A failed read raises _SourceError; a failed write (a full disk) an OSError naming `path`."""
    transform = _block_transform(block, resolution)

    def read(window):
        try:
            return vrt.read(window=window)
        except RasterioError as exc:
            raise _SourceError() from exc

    with WarpedVRT(src, crs=crs, transform=transform, width=block_size, height=block_size,
                   resampling=resampling, src_nodata=_src_nodata(src), nodata=NODATA) as vrt:
        return write_block(path, src, crs, transform, block_size, read)


def _http_env() -> dict:
    """GDAL HTTP retry settings (unless the environment sets them)."""
    return {key: os.environ.get(key, default) for key, default in
            (("GDAL_HTTP_MAX_RETRY", "3"), ("GDAL_HTTP_RETRY_DELAY", "2"))}


def cache_imagery(source: str, region_geometry, crs: str, resolution: float, block_size: int,
                  out_dir: Path, vrt_out: Path, *, resampling: str = "bilinear",
                  progress: bool = True) -> list[Path]:
    """Warp `source` onto every block of the region and write ``out_dir/<block_id>.tif``; then
    `vrt_out`, a mosaic VRT of them. Returns the block files (north to south, west to east).

    Blocks already written are skipped (resume). Memory is bounded by one block. Raises InputError
    naming the block and the redacted source when reading fails, or when the region is empty.
    """
    out_dir = Path(out_dir)
    blocks = region_blocks(region_geometry, resolution, block_size)
    if not blocks:
        raise InputError("imagery: the region overlaps no block of the grid; nothing to fetch")
    rs = _resampling(resampling)
    try:
        crs = CRS.from_user_input(crs)
    except CRSError as exc:
        raise ConfigError(f"imagery grid CRS {crs!r}: not understood: {exc}") from None
    name = describe_source(source)
    present = [b for b in blocks if (out_dir / f"{b.id}.tif").exists()]
    todo = [b for b in blocks if not is_readable(out_dir / f"{b.id}.tif")]
    log.info("imagery %s: %d blocks of %d px for the region, %d already cached", name, len(blocks),
             block_size, len(blocks) - len(todo))
    if broken := len(present) - (len(blocks) - len(todo)):
        log.warning("imagery %s: %d cached block(s) do not read back (a full disk or a killed run?); "
                    "fetching them again", name, broken)
    empty = 0
    if todo:
        with _redacted_gdal_logs(), rasterio.Env(**_http_env()), open_source(source) as src:
            for block in tqdm(todo, desc="imagery blocks", unit="block", file=sys.stderr,
                              disable=not progress):
                try:
                    has_data = _cache_block(src, block, crs, resolution, block_size,
                                            out_dir / f"{block.id}.tif", rs)
                except _SourceError as exc:
                    error = exc.__cause__
                    cause = error.__cause__ or error.__context__  # GDAL's own message, if any
                    detail = " ".join(str(cause or error).split())
                    raise InputError(f"imagery block {block.id}: cannot read {name}: "
                                     f"{_scrub(detail, source)}") from None
                empty += not has_data
    if empty:
        log.warning("imagery %s: %d of %d new blocks have no data (outside the source's coverage?)",
                    name, empty, len(todo))
    paths = [out_dir / f"{b.id}.tif" for b in blocks]
    build_vrt([str(p) for p in paths], vrt_out)
    return paths
