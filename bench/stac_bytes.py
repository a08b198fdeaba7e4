"""How many bytes does a block job fetch from a STAC item's COG, against the bytes of the COG tiles
under its blocks? The demo world's imagery is published as one-item STAC catalogs on a local HTTP
server (Range requests, tests/httpserver.py) in three layouts, and `l2h fetch-imagery --stac` caches
a region (and a single block) from each:

- ``aligned``: the COG on the run's grid, its 512 px tiles on the blocks' edges (the window path);
- ``shifted``: the same pixels cut 256 px off the block edges, so each block straddles 3 x 3 tiles;
- ``reprojected``: warped to the neighbouring UTM zone (EPSG:32649), read through a WarpedVRT.

The ideal is the full-resolution tiles a reader must decode: those whose footprint meets a block
(after reprojection into the item's CRS). Writes JSON (default bench/results/stac_bytes.json).

Usage: python bench/stac_bytes.py [--world resources/demo] [--region riverside] [--out F]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import geopandas as gpd  # noqa: E402
import pystac  # noqa: E402
import rasterio  # noqa: E402
import record  # noqa: E402
from httpserver import serve  # noqa: E402
from rasterio.vrt import WarpedVRT  # noqa: E402
from rasterio.warp import transform_bounds  # noqa: E402
from rasterio.windows import Window, from_bounds  # noqa: E402
from rio_cogeo.cogeo import cog_translate  # noqa: E402
from rio_cogeo.profiles import cog_profiles  # noqa: E402
from shapely.geometry import box, mapping  # noqa: E402

from l2h.inputs.imagery import region_blocks  # noqa: E402
from l2h.inputs.regions import slugify  # noqa: E402

TILE = 512
BLOCK = 512


def _cog(src, out: Path) -> None:
    cog_translate(src, str(out), {**cog_profiles.get("deflate"), "blockxsize": TILE, "blockysize": TILE},
                  quiet=True, nodata=0)


def _layouts(imagery: Path, work: Path) -> dict[str, Path]:
    """Write one COG per layout; returns {layout: path}."""
    out = {}
    with rasterio.open(imagery) as src:
        out["aligned"] = work / "aligned" / "aligned.tif"
        out["aligned"].parent.mkdir(parents=True)
        _cog(src, out["aligned"])
        window = Window(TILE // 2, TILE // 2, src.width - TILE, src.height - TILE)
        plain = work / "shifted_plain.tif"
        with rasterio.open(plain, "w", **{**src.profile, "width": window.width, "height": window.height,
                                          "transform": src.window_transform(window)}) as dst:
            dst.write(src.read(window=window))
        out["shifted"] = work / "shifted" / "shifted.tif"
        out["shifted"].parent.mkdir(parents=True)
        _cog(str(plain), out["shifted"])
        out["reprojected"] = work / "reprojected" / "reprojected.tif"
        out["reprojected"].parent.mkdir(parents=True)
        with WarpedVRT(src, crs="EPSG:32649", resampling=rasterio.enums.Resampling.bilinear) as vrt:
            _cog(vrt, out["reprojected"])
    return out


def _catalog(cog: Path) -> Path:
    """A one-item static catalog beside the COG (asset ``image``)."""
    with rasterio.open(cog) as src:
        bounds = transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=21)
    catalog = pystac.Catalog(cog.stem, "bench")
    item = pystac.Item(cog.stem, mapping(box(*bounds)), list(bounds), dt.datetime(2021, 1, 1, tzinfo=dt.UTC), {})
    item.add_asset("image", pystac.Asset(f"./{cog.name}"))
    catalog.add_item(item)
    item.set_self_href(str(cog.parent / f"{cog.stem}.json"))
    catalog.set_self_href(str(cog.parent / "catalog.json"))
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return cog.parent / "catalog.json"


def _ideal_bytes(cog: Path, blocks, crs: str) -> tuple[int, int]:
    """(bytes, count) of the full-resolution COG tiles meeting the blocks."""
    tiles = set()
    with rasterio.open(cog) as src:
        for block in blocks:
            bounds = transform_bounds(crs, src.crs, *block.bounds, densify_pts=21)
            w = from_bounds(*bounds, transform=src.transform)
            cols = range(max(0, math.floor(w.col_off / TILE)),
                          min(math.ceil(src.width / TILE), math.ceil((w.col_off + w.width) / TILE)))
            rows = range(max(0, math.floor(w.row_off / TILE)),
                          min(math.ceil(src.height / TILE), math.ceil((w.row_off + w.height) / TILE)))
            tiles.update((c, r) for c in cols for r in rows)
        size = sum(int(src.get_tag_item(f"BLOCK_SIZE_{c}_{r}", "TIFF", bidx=1) or 0) for c, r in tiles)
    return size, len(tiles)


def _fetch(server, layout: str, region_file: Path, crs: str, out: Path) -> int:
    """Cache the region from the layout's catalog in a fresh process; bytes of the COG served."""
    before = server.bytes_sent(f"{layout}/{layout}.tif")
    spec = json.dumps({"url": server.url(f"{layout}/catalog.json"), "asset": "image"})
    subprocess.run(["l2h", "fetch-imagery", "--stac", spec, "--region", str(region_file), "--crs", crs,
                    "--resolution", "1", "--block-size", str(BLOCK), "--resampling", "bilinear", "--out", str(out)],
                   check=True, capture_output=True, text=True,
                   env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"})
    return server.bytes_sent(f"{layout}/{layout}.tif") - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, default=ROOT / "resources/demo")
    parser.add_argument("--region", default="riverside")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/stac_bytes.json")
    args = parser.parse_args()
    imagery = args.world / "imagery" / "demo_imagery.tif"
    with rasterio.open(imagery) as src:
        crs = f"EPSG:{src.crs.to_epsg()}"
    provinces = gpd.read_file(args.world / "regions" / "provinces.gpkg").to_crs(crs)
    provinces["slug"] = provinces["name"].map(slugify)
    region = provinces[provinces["slug"] == args.region].union_all()
    blocks = region_blocks(region, 1.0, BLOCK)
    one = min(blocks, key=lambda b: region.centroid.distance(box(*b.bounds).centroid))
    world = args.world.resolve()
    results = {"world": str(world.relative_to(ROOT) if world.is_relative_to(ROOT) else world), "region": args.region, "block_px": BLOCK, "cog_tile_px": TILE, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cogs = _layouts(imagery, work / "served")
        for cog in cogs.values():
            _catalog(cog)
        areas = {"region": region, "one block": box(*one.bounds).buffer(-1)}
        with serve(work / "served") as server:
            for layout, cog in cogs.items():
                for what, geometry in areas.items():
                    region_file = work / f"{layout}_{what.replace(' ', '_')}.gpkg"
                    gpd.GeoDataFrame({"name": [what], "slug": [args.region]}, geometry=[geometry], crs=crs).to_file(
                        region_file, layer="region")
                    fetched = _fetch(server, layout, region_file, crs, work / f"{layout}_{what}" / "r.vrt")
                    job_blocks = region_blocks(geometry, 1.0, BLOCK)
                    ideal, n_tiles = _ideal_bytes(cog, job_blocks, crs)
                    row = dict(layout=layout, area=what, blocks=len(job_blocks), cog_tiles_under_blocks=n_tiles,
                               tile_bytes=ideal, fetched_bytes=fetched, ratio=round(fetched / ideal, 3))
                    results["runs"].append(row)
                    print(json.dumps(row))
    record.write(args.out, results)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
