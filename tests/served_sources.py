"""Copies of a demo world's imagery and products published the way national mapping finds them, for
`httpserver.serve`: a static STAC catalog of COG items (imagery, and the product tiles with their
checksums) and a WMTS layer of GeoTIFF tiles on the run's own tile matrix."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pystac
import rasterio
from httpserver import FileServer, serve
from pystac.extensions.file import FileExtension
from rasterio.warp import transform_bounds
from rasterio.windows import Window
from rio_cogeo.cogeo import cog_translate
from rio_cogeo.profiles import cog_profiles
from shapely.geometry import box, mapping

from l2h.core.io import sha256_file

COG = "image/tiff; application=geotiff; profile=cloud-optimized"


def _item(item_id: str, path: Path, when: dt.datetime, **properties) -> pystac.Item:
    with rasterio.open(path) as src:
        bounds = transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=21)
        epsg = src.crs.to_epsg()
    return pystac.Item(item_id, mapping(box(*bounds)), list(bounds), when,
                       {"proj:epsg": epsg, **properties})


def _add_asset(item: pystac.Item, key: str, path: Path, checksum: bool) -> None:
    item.add_asset(key, pystac.Asset(str(path), media_type=COG, roles=["data"]))
    asset = item.assets[key]
    if checksum:
        file = FileExtension.ext(asset, add_if_missing=True)
        file.checksum = "1220" + sha256_file(path)
        file.size = path.stat().st_size


def stac_catalog(world: Path, out: Path, parts: tuple[int, int] = (2, 2), tile: int = 512) -> Path:
    """Write a static catalog under `out`: collection ``demo-imagery`` (the imagery cut into
    parts[0] x parts[1] COG items of `tile`-pixel tiles, asset ``image``, a cloud cover each) and the
    products as collections ``esa-worldcover`` (asset ``map``), ``io-lulc-annual-v02`` and
    ``fromglc10`` (asset ``data``), one item per mirror tile with file:checksum. Returns catalog.json."""
    out.mkdir(parents=True, exist_ok=True)
    catalog = pystac.Catalog("demo", "the demo world as a STAC catalog")
    extent = pystac.Extent(pystac.SpatialExtent([[-180, -90, 180, 90]]),
                           pystac.TemporalExtent([[dt.datetime(2017, 1, 1, tzinfo=dt.UTC), None]]))
    imagery = pystac.Collection("demo-imagery", "demo 1 m imagery", extent)
    catalog.add_child(imagery)
    source = world / "imagery" / "demo_imagery.tif"
    with rasterio.open(source) as src:
        cols, rows = parts
        width = -(-src.width // (cols * tile)) * tile
        height = -(-src.height // (rows * tile)) * tile
        for r in range(rows):
            for c in range(cols):
                window = Window(c * width, r * height, width, height).intersection(Window(0, 0, src.width, src.height))
                part = out / "demo-imagery" / f"part_{r}_{c}"  # pystac's layout: the item's JSON goes here
                part.mkdir(parents=True, exist_ok=True)
                plain = part / "plain.tif"
                with rasterio.open(plain, "w", **{**src.profile, "width": window.width, "height": window.height,
                                                  "transform": src.window_transform(window)}) as dst:
                    dst.write(src.read(window=window))
                    dst.colorinterp = src.colorinterp
                cog = part / f"part_{r}_{c}.tif"
                cog_translate(str(plain), str(cog), {**cog_profiles.get("deflate"), "blockxsize": tile,
                                                     "blockysize": tile}, quiet=True)
                plain.unlink()
                item = _item(f"part_{r}_{c}", cog, dt.datetime(2021, 5, 1 + r * cols + c, tzinfo=dt.UTC),
                             **{"eo:cloud_cover": 5 * (r * cols + c)})
                _add_asset(item, "image", cog, checksum=False)
                imagery.add_item(item)
    for product, collection_id, asset_key, year in (("esa_worldcover", "esa-worldcover", "map", 2021),
                                                    ("esri_lulc", "io-lulc-annual-v02", "data", 2021),
                                                    ("fromglc10", "fromglc10", "data", 2017)):
        collection = pystac.Collection(collection_id, f"demo {product}", extent)
        catalog.add_child(collection)
        for path in sorted((world / "mirror" / product).rglob("*.tif")):
            folder = out / collection_id / path.stem
            folder.mkdir(parents=True, exist_ok=True)
            copy = folder / path.name
            copy.write_bytes(path.read_bytes())
            item = _item(path.stem, copy, dt.datetime(year, 1, 1, tzinfo=dt.UTC))
            _add_asset(item, asset_key, copy, checksum=True)
            collection.add_item(item)
    catalog.normalize_hrefs(str(out))
    catalog.make_all_asset_hrefs_relative()
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return out / "catalog.json"


def wmts_service(world: Path, out: Path, base_url: str, tile: int = 512) -> Path:
    """Write ``capabilities.xml`` and ``tiles/0/<row>/<col>.tif`` under `out`: layer ``demo`` (style
    ``default``, tile matrix set ``grid``) of the imagery on its own CRS and pixel size, served from
    `base_url`. Returns the capabilities file."""
    source = world / "imagery" / "demo_imagery.tif"
    with rasterio.open(source) as src:
        cols, rows = -(-src.width // tile), -(-src.height // tile)
        for r in range(rows):
            for c in range(cols):
                folder = out / "tiles" / "0" / str(r)
                folder.mkdir(parents=True, exist_ok=True)
                data = src.read(window=Window(c * tile, r * tile, tile, tile), boundless=True, fill_value=0)
                with rasterio.open(folder / f"{c}.tif", "w", driver="GTiff", width=tile, height=tile,
                                   count=src.count, dtype=src.dtypes[0], compress="deflate") as dst:
                    dst.write(data)
        epsg, res = src.crs.to_epsg(), src.res[0]
        west, north = src.bounds.left, src.bounds.top
    capabilities = out / "capabilities.xml"
    capabilities.write_text(f"""<?xml version="1.0" encoding="UTF-8"?>
<Capabilities xmlns="http://www.opengis.net/wmts/1.0" xmlns:ows="http://www.opengis.net/ows/1.1" version="1.0.0">
 <Contents>
  <Layer>
   <ows:Title>demo imagery</ows:Title>
   <ows:Identifier>demo</ows:Identifier>
   <Style isDefault="true"><ows:Identifier>default</ows:Identifier></Style>
   <Format>image/tiff</Format>
   <TileMatrixSetLink><TileMatrixSet>grid</TileMatrixSet></TileMatrixSetLink>
   <ResourceURL format="image/tiff" resourceType="tile"
                template="{base_url}/tiles/{{TileMatrix}}/{{TileRow}}/{{TileCol}}.tif"/>
  </Layer>
  <TileMatrixSet>
   <ows:Identifier>grid</ows:Identifier>
   <ows:SupportedCRS>urn:ogc:def:crs:EPSG::{epsg}</ows:SupportedCRS>
   <TileMatrix>
    <ows:Identifier>0</ows:Identifier>
    <ScaleDenominator>{res / 0.00028!r}</ScaleDenominator>
    <TopLeftCorner>{west!r} {north!r}</TopLeftCorner>
    <TileWidth>{tile}</TileWidth><TileHeight>{tile}</TileHeight>
    <MatrixWidth>{cols}</MatrixWidth><MatrixHeight>{rows}</MatrixHeight>
   </TileMatrix>
  </TileMatrixSet>
 </Contents>
</Capabilities>
""", encoding="utf-8")
    return capabilities


@contextlib.contextmanager
def published(world: Path, root: Path) -> Iterator[FileServer]:
    """Serve `root` with the world as a static STAC catalog (``stac/catalog.json``) and a WMTS layer
    (``wmts/capabilities.xml``)."""
    stac_catalog(world, root / "stac")
    with serve(root) as server:
        wmts_service(world, root / "wmts", server.url("wmts"))
        yield server
