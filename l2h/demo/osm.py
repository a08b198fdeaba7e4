"""OpenStreetMap XML for the demo world: roads, footpaths, the river, the lake and buildings.

The file is plain OSM XML (API 0.6 style: nodes with lat/lon, ways with node refs and tags) that
GDAL's OSM driver reads (`lines` layer with a `highway` column; closed building/water ways go to
`multipolygons`). Like the real OSM it is imperfect: each feature is displaced by a small random
offset (roads 1-2 m, buildings 0.5-1.5 m), and it maps footpaths that the land cover does not show.
Coordinates are rounded to 7 decimals (about 1 cm).
"""

from __future__ import annotations

import math
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np
import shapely
from shapely.affinity import translate
from shapely.geometry import LineString, Polygon, box

from l2h.core.io import atomic_path
from l2h.demo.grid import DemoGrid
from l2h.demo.landscape import Landscape
from l2h.demo.noise import stream

ROAD_OFFSET_M = (1.0, 2.0)
BUILDING_OFFSET_M = (0.5, 1.5)
RIVER_NAME = "Clearwater"
LAKE_NAME = "Lac Miroir"


class _OsmBuilder:
    def __init__(self, grid: DemoGrid):
        self.grid = grid
        self.nodes: list[tuple[int, float, float]] = []
        self.ways: list[tuple[int, list[int], list[tuple[str, str]]]] = []

    def _node(self, lon: float, lat: float) -> int:
        nid = len(self.nodes) + 1
        self.nodes.append((nid, round(lat, 7), round(lon, 7)))
        return nid

    def way(self, coords_utm, tags: dict[str, str], closed: bool = False) -> None:
        coords = np.asarray(coords_utm, dtype=float)
        if closed and np.allclose(coords[0], coords[-1]):
            coords = coords[:-1]
        if len(coords) < 2:
            return
        lon, lat = self.grid.to_lonlat.transform(coords[:, 0], coords[:, 1])
        refs = [self._node(float(x), float(y)) for x, y in zip(lon, lat)]
        if closed:
            refs.append(refs[0])
        self.ways.append((len(self.ways) + 1, refs, sorted(tags.items())))

    def xml(self) -> str:
        lats = [n[1] for n in self.nodes]
        lons = [n[2] for n in self.nodes]
        out = ['<?xml version="1.0" encoding="UTF-8"?>',
               '<osm version="0.6" generator="l2h demo world">',
               f'  <bounds minlat="{min(lats):.7f}" minlon="{min(lons):.7f}" '
               f'maxlat="{max(lats):.7f}" maxlon="{max(lons):.7f}"/>']
        for nid, lat, lon in self.nodes:
            out.append(f'  <node id="{nid}" version="1" lat="{lat:.7f}" lon="{lon:.7f}"/>')
        for wid, refs, tags in self.ways:
            out.append(f'  <way id="{wid}" version="1">')
            out.extend(f'    <nd ref="{r}"/>' for r in refs)
            out.extend(f'    <tag k={quoteattr(k)} v={quoteattr(v)}/>' for k, v in tags)
            out.append('  </way>')
        out.append('</osm>')
        return "\n".join(out) + "\n"


def _offset(geom, rng: np.random.Generator, lo: float, hi: float):
    d = rng.uniform(lo, hi)
    a = rng.uniform(0.0, 2 * math.pi)
    return translate(geom, d * math.cos(a), d * math.sin(a))


def _lines(geom) -> list[LineString]:
    if geom.is_empty:
        return []
    if isinstance(geom, LineString):
        return [geom]
    return [g for g in getattr(geom, "geoms", []) if isinstance(g, LineString) and g.length > 0]


def write_osm(path: Path, land: Landscape, seed: int) -> dict[str, int]:
    """Write the OSM XML file; returns counts of what it holds."""
    grid = land.grid
    rng = stream(seed, "osm")
    frame = box(*grid.bounds)
    osm = _OsmBuilder(grid)
    counts = {"roads": 0, "footways": 0, "buildings": 0, "waterways": 0}
    for road in land.roads:
        moved = _offset(road.geometry, rng, *ROAD_OFFSET_M)
        tags = {"highway": road.highway, "name": road.name}
        if road.highway == "track":
            tags["surface"] = "unpaved"
        for part in _lines(moved.intersection(frame)):
            osm.way(part.coords, tags)
            counts["roads"] += 1
    for path_ in land.footways:
        for part in _lines(path_.geometry.intersection(frame)):
            osm.way(part.coords, {"highway": "footway", "name": path_.name})
            counts["footways"] += 1
    if land.river_line is not None:
        for part in _lines(land.river_line.intersection(frame)):
            osm.way(shapely.simplify(part, 0.5).coords, {"waterway": "river", "name": RIVER_NAME})
            counts["waterways"] += 1
    if land.lake is not None and isinstance(land.lake, Polygon):
        osm.way(shapely.simplify(land.lake, 0.5).exterior.coords,
                {"natural": "water", "water": "lake", "name": LAKE_NAME}, closed=True)
    for b in land.buildings:
        moved = _offset(b.geometry, rng, *BUILDING_OFFSET_M)
        osm.way(moved.exterior.coords, {"building": "yes"}, closed=True)
        counts["buildings"] += 1
    with atomic_path(path) as tmp:
        tmp.write_text(osm.xml(), encoding="utf-8", newline="\n")
    return counts
