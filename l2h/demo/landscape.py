"""The demo world's hidden 1 m land cover and the vector features it was drawn from.

`build_landscape` paints, in order: terrain classes from an elevation field (a mountain with snow,
a moss/lichen band and bare rock), lowland cover from smooth noise (forest, shrub belts, grassland,
bare patches), field parcels 40-150 m in two rotated field systems, towns (yards, buildings 8-20 m,
residential streets), a sinuous river and a lake with wetland margins, and a road network of
varied widths. Roads, buildings and the river are shapely geometries in the run CRS (UTM 50N,
metres) rasterized with rasterio.features, so the OSM writer can publish the same geometries.

The cover covers the whole raster (the imagery is rendered from it beyond the country border);
the country mask is applied by the caller.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import shapely
from rasterio import features
from shapely.affinity import rotate as rotate_geom
from shapely.geometry import LineString, MultiLineString, Point, Polygon, box

from l2h.core.classes import BARE, BUILDING, CROP, GRASS, MOSS, ROAD, SHRUB, SNOW, TREE, WATER, WETLAND
from l2h.demo.grid import DemoGrid
from l2h.demo.noise import noise_1d, quantile_threshold, shift, smooth_noise, stream

log = logging.getLogger(__name__)

# Carriageway widths (m) burned into the truth; tracks are the narrowest mapped roads.
HIGHWAY_WIDTHS: dict[str, float] = {
    "primary": 8.0, "secondary": 6.0, "tertiary": 5.0, "residential": 4.0, "track": 3.0,
}
# Index of each highway type in `Landscape.road_kind` (0 = no road); wider roads burn last.
HIGHWAY_KIND: dict[str, int] = {"track": 1, "residential": 2, "tertiary": 3, "secondary": 4, "primary": 5}

TOWN_NAMES = ("Ashford", "Vertbourg", "Moorgate", "Little Brook")
STREET_NAMES = (
    "High Street", "Church Street", "Market Street", "School Lane", "Station Road", "Bridge Street",
    "Garden Row", "Rue du Lac", "Elm Street", "Oak Avenue", "Mill Street", "Chemin Vert",
    "Baker Street", "Orchard Lane", "Quarry Road", "Well Street",
)
ELEV_LOWLAND = 0.36  # normalised elevation where the mountain starts


@dataclass
class Road:
    """A road of the demo world: centreline and OSM highway type."""
    geometry: LineString  # centreline in the run CRS
    highway: str
    name: str

    @property
    def width(self) -> float:
        """Width in metres of this highway type on the ground (0 for types l2h does not burn)."""
        return HIGHWAY_WIDTHS.get(self.highway, 0.0)


@dataclass
class Building:
    """A building footprint and its height (which sets its shadow in the imagery)."""
    geometry: Polygon
    height: float  # m, drives the shadow length in the imagery
    roof: int  # roof material index (imagery)


@dataclass
class Town:
    """A town: name, centre, radius, street grid and outline."""
    name: str
    centre: tuple[float, float]
    radius: float
    angle: float  # street grid orientation, degrees
    spacing: float  # street grid spacing, m
    outline: Polygon


@dataclass
class Landscape:
    """The demo world's hidden truth: 1 m cover and the vector features drawn into it."""
    grid: DemoGrid
    cover: np.ndarray  # uint8 (H, W), classes 1..11 everywhere in the raster
    elevation: np.ndarray  # float32 (H, W), normalised (mountain peak ~1)
    parcel_id: np.ndarray  # int32 (H, W), -1 outside field parcels
    parcel_angle: np.ndarray  # float32 (n_parcels,), field-system orientation (radians)
    building_id: np.ndarray  # int32 (H, W), 0 = none, i + 1 = buildings[i]
    road_kind: np.ndarray  # uint8 (H, W), HIGHWAY_KIND of the road pixel, 0 = none
    buildings: list[Building] = field(default_factory=list)
    roads: list[Road] = field(default_factory=list)
    footways: list[Road] = field(default_factory=list)  # OSM only: not in the truth
    river_line: LineString | None = None
    river: Polygon | None = None
    lake: Polygon | None = None
    towns: list[Town] = field(default_factory=list)


# --------------------------------------------------------------------------- geometry helpers
def rasterize_shapes(grid: DemoGrid, shapes, dtype="uint8", fill=0) -> np.ndarray:
    """Burn (geometry, value) pairs (run CRS) onto the run grid; later shapes win."""
    shapes = [(g, v) for g, v in shapes if g is not None and not g.is_empty]
    if not shapes:
        return np.full(grid.shape, fill, dtype=dtype)
    return features.rasterize(shapes, out_shape=grid.shape, transform=grid.transform, fill=fill,
                              dtype=dtype, all_touched=False)


def geometry_mask(grid: DemoGrid, geom) -> np.ndarray:
    """Boolean raster of `geom` (run CRS) on the run grid (pixel centres inside)."""
    return rasterize_shapes(grid, [(geom, 1)]).astype(bool)


def curvy_line(a, b, rng: np.random.Generator, wiggle: float = 0.04, step: float = 10.0) -> LineString:
    """A gently curving line from a to b (both ends fixed): sine harmonics across the chord."""
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    length = float(np.hypot(*(b - a)))
    n = max(int(length / step), 2)
    t = np.linspace(0.0, 1.0, n + 1)
    normal = np.array([-(b - a)[1], (b - a)[0]]) / max(length, 1e-9)
    offset = np.zeros_like(t)
    for k in (1, 2, 3):
        offset += rng.normal(0.0, wiggle * length / k) * np.sin(math.pi * k * t)
    pts = a[None, :] + t[:, None] * (b - a)[None, :] + offset[:, None] * normal[None, :]
    return LineString(pts)


def _explode_lines(geom) -> list[LineString]:
    if geom.is_empty:
        return []
    if isinstance(geom, LineString):
        return [geom]
    if isinstance(geom, MultiLineString):
        return list(geom.geoms)
    return [g for g in getattr(geom, "geoms", []) if isinstance(g, LineString)]


def _blob(centre, radius: float, rng: np.random.Generator, roughness: float = 0.2, n: int = 144) -> Polygon:
    """An irregular roundish polygon (radial noise around a circle)."""
    phi = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    r = radius * (1.0 + roughness * np.clip(noise_1d(rng, n, scale=n / 8, wrap=True), -2.5, 2.5))
    xs = centre[0] + r * np.cos(phi)
    ys = centre[1] + r * np.sin(phi)
    return Polygon(np.column_stack([xs, ys])).buffer(0)


# --------------------------------------------------------------------------- components
def _elevation(grid: DemoGrid, seed: int) -> np.ndarray:
    rng = stream(seed, "elevation")
    h, w = grid.shape
    py, px = 0.20 * h, 0.84 * w
    radius = 0.20 * min(w, h)
    angle = rng.uniform(0, math.pi)
    rows = (np.arange(h, dtype=np.float32) + 0.5 - py)[:, None]
    cols = (np.arange(w, dtype=np.float32) + 0.5 - px)[None, :]
    u = cols * math.cos(angle) + rows * math.sin(angle)
    v = -cols * math.sin(angle) + rows * math.cos(angle)
    d2 = (u / radius) ** 2 + (v / (0.8 * radius)) ** 2
    bump = np.exp(-d2)
    rough = smooth_noise(rng, grid.shape, scale=max(160.0 * grid.scale, 60.0), octaves=3)
    # rugged on the mountain, gently rolling in the lowlands
    return (bump + 0.05 * rough * (0.25 + bump)).astype(np.float32)


def _parcels(grid: DemoGrid, zone: np.ndarray, rng: np.random.Generator):
    """Field parcels in two rotated brick-like systems: (parcel_id (H, W) int32, angles)."""
    h, w = grid.shape
    system_b = smooth_noise(rng, grid.shape, scale=max(900.0 * grid.scale, 300.0)) > 0.3
    base = rng.uniform(-15.0, 15.0)
    angles_deg = (base, base + rng.choice([-1, 1]) * rng.uniform(25.0, 50.0))
    parcel_id = np.full(grid.shape, -1, dtype=np.int32)
    angle_list: list[np.ndarray] = []
    offset = 0
    diag = math.hypot(w, h)
    for k, ang in enumerate(angles_deg):
        sel = zone & (system_b if k == 1 else ~system_b)
        idx = np.flatnonzero(sel)
        a = math.radians(ang)
        r = (idx // w).astype(np.float64) + 0.5 - h / 2
        c = (idx % w).astype(np.float64) + 0.5 - w / 2
        u = c * math.cos(a) + r * math.sin(a) + diag / 2  # 0 .. diag
        v = -c * math.sin(a) + r * math.cos(a) + diag / 2
        n_rows = int(diag / 40) + 2
        row_edges = np.concatenate([[0.0], np.cumsum(rng.uniform(40.0, 150.0, n_rows))])
        row_edges = row_edges[row_edges <= diag + 150]
        n_cols = int(diag / 40) + 2
        widths = rng.uniform(40.0, 150.0, (len(row_edges), n_cols))
        col_edges = np.cumsum(widths, axis=1) - rng.uniform(0.0, 150.0, (len(row_edges), 1))
        big = 4.0 * diag + 1000.0
        flat = (col_edges + np.arange(len(row_edges))[:, None] * big).ravel()
        row = np.clip(np.searchsorted(row_edges, v, side="right") - 1, 0, len(row_edges) - 1)
        col = np.searchsorted(flat, u + row * big, side="right") - row * n_cols
        col = np.clip(col, 0, n_cols - 1)
        parcel_id.ravel()[idx] = (offset + row * n_cols + col).astype(np.int32)
        count = len(row_edges) * n_cols
        angle_list.append(np.full(count, a, dtype=np.float32))
        offset += count
    return parcel_id, np.concatenate(angle_list)


def _towns(grid: DemoGrid, rng: np.random.Generator) -> list[Town]:
    specs = [((0.30, 0.36), 300.0), ((0.62, 0.62), 250.0), ((0.58, 0.24), 190.0), ((0.86, 0.80), 130.0)]
    towns = []
    for name, ((fx, fy), r) in zip(TOWN_NAMES, specs):
        radius = max(r * grid.scale, 45.0)
        cx, cy = grid.xy(fx + rng.uniform(-0.01, 0.01), fy + rng.uniform(-0.01, 0.01))
        outline = _blob((cx, cy), radius, rng, roughness=0.15)
        towns.append(Town(name, (cx, cy), radius, float(rng.uniform(0, 90)), float(rng.uniform(48.0, 60.0)),
                          outline))
    return towns


def _river(grid: DemoGrid, rng: np.random.Generator) -> tuple[LineString, Polygon]:
    a = np.array(grid.xy(0.20 + rng.uniform(-0.02, 0.02), -0.05))
    b = np.array(grid.xy(0.47 + rng.uniform(-0.02, 0.02), 1.05))
    length = float(np.hypot(*(b - a)))
    step = 4.0
    n = int(length / step) + 1
    t = np.linspace(0.0, 1.0, n)
    wavelength = rng.uniform(700.0, 1000.0) * max(grid.scale, 0.35)
    amp = 0.16 * wavelength
    phase = rng.uniform(0, 2 * math.pi)
    along = t * length
    lateral = amp * np.sin(2 * math.pi * along / wavelength + phase) \
        + 0.35 * amp * noise_1d(rng, n, scale=200.0 / step)
    direction = (b - a) / length
    normal = np.array([-direction[1], direction[0]])
    pts = a[None, :] + along[:, None] * direction[None, :] + lateral[:, None] * normal[None, :]
    # river width 15-30 m, varying smoothly downstream
    half = 0.5 * (15.0 + 15.0 * (0.5 + 0.5 * np.tanh(noise_1d(rng, n, scale=300.0 / step))))
    tang = np.gradient(pts, axis=0)
    tang /= np.linalg.norm(tang, axis=1, keepdims=True)
    nrm = np.column_stack([-tang[:, 1], tang[:, 0]])
    left = pts + nrm * half[:, None]
    right = pts - nrm * half[:, None]
    poly = Polygon(np.vstack([left, right[::-1]])).buffer(0)
    if poly.geom_type != "Polygon":  # keep the largest part of a self-touching outline
        poly = max(poly.geoms, key=lambda g: g.area)
    return LineString(pts), poly


def _main_roads(grid: DemoGrid, towns: list[Town], rng: np.random.Generator) -> list[Road]:
    c = [t.centre for t in towns]
    roads: list[Road] = []

    def chain(points, highway, name):
        parts = [curvy_line(p, q, rng, wiggle=0.035) for p, q in zip(points[:-1], points[1:])]
        coords = list(parts[0].coords)
        for part in parts[1:]:
            coords.extend(list(part.coords)[1:])
        roads.append(Road(LineString(coords), highway, name))

    chain([grid.xy(-0.02, 0.40 + rng.uniform(-0.04, 0.04)), c[0], c[1],
           grid.xy(1.02, 0.70 + rng.uniform(-0.04, 0.04))], "primary", "National Road 7")
    chain([c[1], c[2], grid.xy(0.50 + rng.uniform(-0.04, 0.04), -0.02)], "secondary", "Northmoor Road")
    chain([c[0], c[2]], "tertiary", "Mill Lane")
    # the village joins the primary road at its nearest point (a near-perpendicular junction)
    primary = roads[0].geometry
    near = primary.interpolate(primary.project(Point(c[3])))
    chain([c[3], (near.x, near.y)], "tertiary", "Vert Valley Road")
    chain([c[3], grid.xy(1.02, 0.93 + rng.uniform(-0.03, 0.03))], "tertiary", "Eastgate Road")
    return roads


def _crossing_angle(a: LineString, b: LineString, at: Point) -> float:
    """Acute angle (degrees) between lines a and b near the point `at`."""
    def direction(line):
        d = line.project(at)
        p = line.interpolate(max(d - 5.0, 0.0))
        q = line.interpolate(min(d + 5.0, line.length))
        return math.atan2(q.y - p.y, q.x - p.x)
    diff = abs(direction(a) - direction(b)) % math.pi
    return math.degrees(min(diff, math.pi - diff))


def _align_town(town: Town, main: list[Road], rng: np.random.Generator) -> None:
    """Orient the town's street grid along the main road passing nearest its centre."""
    centre = Point(town.centre)
    road = min(main, key=lambda r: r.geometry.distance(centre)).geometry
    d = road.project(centre)
    p = road.interpolate(max(d - 30.0, 0.0))
    q = road.interpolate(min(d + 30.0, road.length))
    town.angle = math.degrees(math.atan2(q.y - p.y, q.x - p.x)) + float(rng.uniform(-4.0, 4.0))


def _streets(town: Town, main: list[Road]) -> list[Road]:
    """Residential streets: the town's grid clipped to its outline, minus streets that would run
    alongside a main road or cross it at a shallow angle (fat, unrealistic junctions)."""
    spacing = town.spacing
    cx, cy = town.centre
    n = int(town.radius / spacing) + 2
    main_buf = shapely.union_all([r.geometry.buffer(14.0) for r in main])
    streets = []
    k_name = 0
    for axis in (0, 1):
        for k in range(-n, n + 1):
            off = (k + 0.5) * spacing
            if axis == 0:
                line = LineString([(cx + off, cy - 2 * town.radius), (cx + off, cy + 2 * town.radius)])
            else:
                line = LineString([(cx - 2 * town.radius, cy + off), (cx + 2 * town.radius, cy + off)])
            line = rotate_geom(line, town.angle, origin=(cx, cy))
            for part in _explode_lines(line.intersection(town.outline)):
                if part.length < 25.0 or part.intersection(main_buf).length > 36.0:
                    continue
                shallow = False
                for road in main:
                    cross = part.intersection(road.geometry)
                    for pt in getattr(cross, "geoms", [cross]):
                        if isinstance(pt, Point) and _crossing_angle(part, road.geometry, pt) < 55.0:
                            shallow = True
                if shallow:
                    continue
                name = STREET_NAMES[k_name % len(STREET_NAMES)]
                if k_name >= len(STREET_NAMES):
                    name = f"{name} {k_name // len(STREET_NAMES) + 1}"
                streets.append(Road(part, "residential", f"{name}, {town.name}"))
                k_name += 1
    return streets


def _buildings(town: Town, rng: np.random.Generator) -> list[Building]:
    """Buildings 8-20 m on 2 x 2 lots per street block (dropped later where they clash)."""
    cx, cy = town.centre
    out = []
    sp = town.spacing
    lot = (sp - HIGHWAY_WIDTHS["residential"]) / 2.0  # lot side, 22-28 m
    n = int(town.radius / sp) + 2
    a = math.radians(town.angle)
    ca, sa = math.cos(a), math.sin(a)
    for i in range(-n, n + 1):
        for j in range(-n, n + 1):
            for du in (-0.5, 0.5):
                for dv in (-0.5, 0.5):
                    lu, lv = i * sp + du * lot, j * sp + dv * lot  # lot centre in the town frame
                    dist = math.hypot(lu, lv)
                    if dist > town.radius or rng.random() > 0.95 - 0.35 * dist / town.radius:
                        continue
                    bw = rng.uniform(8.0, min(20.0, lot - 5.0))
                    bh = rng.uniform(8.0, min(20.0, lot - 5.0))
                    # keep >= 2.5 m from the lot edge (the street kerb or the neighbour's wall)
                    u = lu + rng.uniform(-1.0, 1.0) * max((lot - bw) / 2 - 2.5, 0.0)
                    v = lv + rng.uniform(-1.0, 1.0) * max((lot - bh) / 2 - 2.5, 0.0)
                    x, y = cx + u * ca - v * sa, cy + u * sa + v * ca
                    poly = rotate_geom(box(x - bw / 2, y - bh / 2, x + bw / 2, y + bh / 2), town.angle,
                                       origin=(x, y))
                    height = rng.uniform(4.0, 9.0) + 6.0 * (1 - dist / town.radius) * rng.random()
                    if not town.outline.contains(poly):
                        continue
                    out.append(Building(poly, float(height), int(rng.integers(0, 4))))
    return out


def _tracks(grid: DemoGrid, roads: list[Road], avoid, rng: np.random.Generator, count: int) -> list[Road]:
    """Dirt tracks (3 m) branching off the road network into fields, forest and hills."""
    tracks: list[Road] = []
    base = [r for r in roads if r.highway in ("primary", "secondary", "tertiary")]
    inner = box(*grid.bounds).buffer(-0.05 * min(grid.width, grid.height))
    tries = 0
    while len(tracks) < count and tries < 200:
        tries += 1
        road = base[int(rng.integers(0, len(base)))].geometry
        d = rng.uniform(0.1, 0.9) * road.length
        p = road.interpolate(d)
        q = road.interpolate(min(d + 5.0, road.length))
        turn = rng.choice([-1, 1]) * rng.uniform(math.radians(75), math.radians(105))
        heading = math.atan2(q.y - p.y, q.x - p.x) + turn
        length = rng.uniform(250.0, 650.0) * max(grid.scale, 0.4)
        end = (p.x + length * math.cos(heading), p.y + length * math.sin(heading))
        line = curvy_line((p.x, p.y), end, rng, wiggle=0.03, step=8.0)
        if not inner.contains(Point(end)) or line.intersects(avoid):
            continue
        others = [t.geometry.buffer(25.0) for t in tracks]
        if others and line.intersection(shapely.union_all(others)).length > 10.0:
            continue
        tracks.append(Road(line, "track", f"Farm Track {len(tracks) + 1}"))
    return tracks


def _footways(grid: DemoGrid, rng: np.random.Generator, count: int) -> list[Road]:
    paths = []
    for k in range(count):
        start = grid.xy(rng.uniform(0.12, 0.88), rng.uniform(0.12, 0.88))
        heading = rng.uniform(0, 2 * math.pi)
        length = rng.uniform(150.0, 400.0) * max(grid.scale, 0.4)
        end = (start[0] + length * math.cos(heading), start[1] + length * math.sin(heading))
        paths.append(Road(curvy_line(start, end, rng, wiggle=0.08, step=6.0), "footway", f"Footpath {k + 1}"))
    return paths


# --------------------------------------------------------------------------- assembly
def build_landscape(grid: DemoGrid, seed: int) -> Landscape:
    """Terrain, lowland cover, rivers, lake, fields, towns, roads and buildings of the demo country."""
    h, w = grid.shape
    s = grid.scale
    log.info("landscape: terrain and lowland cover (%d x %d m)", w, h)
    elev = _elevation(grid, seed)
    rng = stream(seed, "cover")
    cover = np.full(grid.shape, GRASS, dtype=np.uint8)
    lowland = elev < ELEV_LOWLAND
    n_for = smooth_noise(rng, grid.shape, scale=max(380.0 * s, 120.0), octaves=3)
    n_shr = smooth_noise(rng, grid.shape, scale=max(110.0 * s, 50.0), octaves=2)
    n_ag = smooth_noise(rng, grid.shape, scale=max(800.0 * s, 260.0), octaves=2)
    n_bare = smooth_noise(rng, grid.shape, scale=60.0, octaves=2)
    n_wood = smooth_noise(rng, grid.shape, scale=50.0, octaves=2)

    t_for = quantile_threshold(n_for, 0.45, lowland)
    cover[(n_for > t_for) & (elev < 0.45)] = TREE
    shrub_belt = (n_for > t_for - 0.6) & (n_for <= t_for) & (n_shr > -0.2) & (elev < 0.45)
    cover[shrub_belt] = SHRUB
    # the mountain: shrubby slopes, bare rock, moss/lichen band, snow cap
    slope = (elev >= ELEV_LOWLAND) & (elev < 0.50)
    cover[slope & (n_shr > -0.3)] = SHRUB
    cover[slope & (n_shr <= -0.3)] = GRASS
    rock = (elev >= 0.50) & (elev < 0.64)
    cover[rock] = BARE
    cover[rock & (n_shr > 0.9)] = SHRUB
    cover[(elev >= 0.64) & (elev < 0.80)] = MOSS
    cover[elev >= 0.80] = SNOW

    # farmland: parcels 40-150 m in the lowland's agricultural zone
    t_ag = quantile_threshold(n_ag, 0.55, lowland)
    ag = lowland & (n_ag > t_ag)
    parcel_id, parcel_angle = _parcels(grid, ag, stream(seed, "parcels"))
    use_rng = stream(seed, "parcel-use")
    use = use_rng.choice(np.array([CROP, GRASS, SHRUB, TREE], dtype=np.uint8), size=len(parcel_angle),
                         p=[0.84, 0.10, 0.02, 0.04])
    in_parcel = parcel_id >= 0
    cover[in_parcel] = use[parcel_id[in_parcel]]
    margin = in_parcel & ((parcel_id != shift(parcel_id, 0, 1, fill=-1))
                          | (parcel_id != shift(parcel_id, 1, 0, fill=-1)))
    cover[margin] = GRASS
    cover[ag & (n_wood > quantile_threshold(n_wood, 0.05, ag))] = TREE  # woodlots among the fields
    cover[lowland & (n_bare > quantile_threshold(n_bare, 0.035, lowland))] = BARE
    del n_for, n_shr, n_ag, n_bare, n_wood, margin

    log.info("landscape: towns, river, lake, roads, buildings")
    geo_rng = stream(seed, "geometry")
    towns = _towns(grid, geo_rng)
    river_line, river = _river(grid, stream(seed, "river"))
    lake_rng = stream(seed, "lake")
    lake_c = grid.xy(0.13 + lake_rng.uniform(-0.01, 0.01), 0.72 + lake_rng.uniform(-0.02, 0.02))
    lake = _blob(lake_c, max(0.075 * min(w, h), 60.0), lake_rng, roughness=0.22)

    # town ground: lawns, dirt yards and garden trees
    town_rng = stream(seed, "towns")
    town_mask = geometry_mask(grid, shapely.union_all([t.outline for t in towns]))
    n_town = smooth_noise(town_rng, grid.shape, scale=16.0, octaves=2)
    yard = np.full(grid.shape, GRASS, dtype=np.uint8)
    yard[n_town > 0.35] = BARE
    yard[n_town < -0.75] = TREE
    cover[town_mask] = yard[town_mask]
    del yard, n_town

    # water and wetlands
    wet_rng = stream(seed, "wetland")
    n_wet = smooth_noise(wet_rng, grid.shape, scale=110.0, octaves=2)
    river_margin = geometry_mask(grid, river.buffer(24.0)) & (n_wet > 0.45) & ~town_mask
    lake_margin = geometry_mask(grid, lake.buffer(14.0)) | (geometry_mask(grid, lake.buffer(48.0)) & (n_wet > -0.3))
    marsh_c = (lake_c[0] + rng.uniform(-1, 1) * 0.1 * w, lake_c[1] + 0.12 * h)
    marsh = geometry_mask(grid, _blob(marsh_c, max(45.0 * s, 25.0) + 30.0, wet_rng, roughness=0.3))
    cover[(river_margin | lake_margin | marsh) & (elev < ELEV_LOWLAND)] = WETLAND
    cover[geometry_mask(grid, shapely.union_all([river, lake]))] = WATER
    del n_wet, river_margin, lake_margin, marsh

    # roads and buildings
    main = _main_roads(grid, towns, geo_rng)
    streets: list[Road] = []
    for town in towns:
        _align_town(town, main, town_rng)
        streets.extend(_streets(town, main))
    avoid_tracks = shapely.union_all([lake.buffer(40.0), river.buffer(5.0)] + [t.outline for t in towns])
    tracks = _tracks(grid, main, avoid_tracks, stream(seed, "tracks"), count=8)
    roads = main + streets + tracks
    road_polys = [r.geometry.buffer(r.width / 2.0) for r in roads]
    candidates: list[Building] = []
    for town in towns:
        candidates.extend(_buildings(town, town_rng))
    blockers = shapely.STRtree(road_polys + [river.buffer(4.0), lake.buffer(50.0)])
    buildings = []
    for b in candidates:
        if len(blockers.query(b.geometry.buffer(2.0), predicate="intersects")) == 0:
            buildings.append(b)
    building_id = rasterize_shapes(grid, [(b.geometry, i + 1) for i, b in enumerate(buildings)], dtype="int32")
    cover[building_id > 0] = BUILDING
    order = sorted(range(len(roads)), key=lambda i: HIGHWAY_KIND[roads[i].highway])
    road_kind = rasterize_shapes(grid, [(road_polys[i], HIGHWAY_KIND[roads[i].highway]) for i in order])
    cover[road_kind > 0] = ROAD
    footways = _footways(grid, stream(seed, "footways"), count=6)
    log.info("landscape: %d roads, %d buildings, %d parcels", len(roads), len(buildings), len(parcel_angle))
    return Landscape(grid=grid, cover=cover, elevation=elev, parcel_id=parcel_id, parcel_angle=parcel_angle,
                     building_id=building_id, road_kind=road_kind, buildings=buildings, roads=roads,
                     footways=footways, river_line=river_line, river=river, lake=lake, towns=towns)
