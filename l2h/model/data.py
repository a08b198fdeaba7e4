"""Training windows: deterministic, CRS-aware patches of imagery + the coarse label brought to 1 m.

A :class:`TrainingWindows` dataset is *map-style* and **stateless**: sample ``i`` is a pure function
of ``(seed, i)`` --

1. a NumPy generator seeded with ``(seed, i, attempt)`` picks a training block (probability
   proportional to its area) and a ``patch_size`` x ``patch_size`` window inside it, aligned to
   whole pixels of the run grid (a block smaller than the patch gives a window sticking out of it,
   filled as nodata);
2. the imagery is read in that window (windowed read of the intersecting part when the source is
   on the run grid, otherwise a ``WarpedVRT`` onto the window, bilinear) as float32;
3. the region's coarse label (e.g. 10 m) is sampled at the centre of every 1 m pixel (nearest
   neighbour, exact for any integer or non-integer ratio), codes 1..11 become class indices 0..10
   with :func:`l2h.model.loss.codes_to_targets` (0 = outside the region and 255 = ignore -> 255), and
   pixels without imagery (all bands equal to the imagery's nodata, 0 by default, or outside the
   source) become 255 as well;
4. when less than ``min_labelled`` of the window is labelled the draw is repeated with the next
   ``attempt`` (at most ``max_attempts``); the best-labelled draw is used if none reaches it;
5. ``(x - mean) / std`` per band with pixels without imagery set to 0 (`normalise`, shared with
   inference, so that they look like the network's zero padding), then -- when ``augment`` -- a
   rotation by ``k`` x 90 degrees and a horizontal flip drawn from the same generator.

So training step ``s`` with batch ``B`` simply uses indices ``s*B .. s*B+B-1``: resuming needs no
data-loader state, and ``DataLoader(num_workers=n)`` gives the same batches for every ``n``.
Raster handles are opened lazily in ``__getitem__`` and cached per process (they are not
picklable and must not cross a ``fork``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import CRSError, RasterioError
from rasterio.io import MemoryFile
from rasterio.transform import from_origin
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from l2h.core.classes import CLASS_CODES
from l2h.core.errors import ConfigError, InputError
from l2h.inputs.imagery import describe_source, is_xml
from l2h.model.loss import codes_to_targets
from l2h.model.norm import normalise
from l2h.sampling.block_stats import training_rows

IGNORE_INDEX = 255
NUM_CLASSES = len(CLASS_CODES)  # class indices 0..10 of codes 1..11
DEFAULT_MAX_ATTEMPTS = 8
_JITTER_STREAM = 7919  # the colour jitter's generator: (seed, i, this), apart from the window draws
_EPS = 1e-6


@dataclass(frozen=True)
class TrainingSpec:
    """One training block: where it is and where its label and imagery come from.

    ``bounds``: (xmin, ymin, xmax, ymax) in the run's CRS, edges on the run grid.
    ``label``: path of the region's coarse label raster (codes 1..11, 255 ignore, 0 outside).
    ``label_sets``: path of the region's class-set label (uint16, bit c = class code c possible;
    :mod:`l2h.labels.harmonize`), read only when training learns from ambiguous pixels.
    ``imagery``: a GDAL dataset name (path, VRT, ``/vsicurl/`` URL or GDAL XML text); may differ
    per region. ``crs``: the run's CRS (None = the label's CRS, which the workflow writes in the
    run's CRS). ``resolution``: the run grid's pixel size (metres).
    """

    block_id: str
    region: str
    bounds: tuple[float, float, float, float]
    label: str
    imagery: str
    crs: str | None = None
    resolution: float = 1.0
    label_sets: str | None = None

    @property
    def area(self) -> float:
        """Area of the block in square map units."""
        xmin, ymin, xmax, ymax = self.bounds
        return max(xmax - xmin, 0.0) * max(ymax - ymin, 0.0)


def _per_region(value: str | Mapping[str, str], region: str, what: str) -> str:
    if isinstance(value, Mapping):
        if region not in value:
            raise ConfigError(f"no {what} given for region {region!r} (have: {', '.join(sorted(value))})")
        return str(value[region])
    value = str(value)
    return value.replace("{region}", region) if not is_xml(value) else value


def load_training_specs(blocks_csv: str | os.PathLike, training_blocks_csv: str | os.PathLike,
                        labels: str | Mapping[str, str], imagery: str | Mapping[str, str],
                        crs: str | None = None, resolution: float = 1.0,
                        label_sets: str | Mapping[str, str] | None = None) -> list[TrainingSpec]:
    """The training blocks as :class:`TrainingSpec` s, in the order of ``training_blocks_csv``.

    ``blocks_csv``: the block table (columns block_id, region, xmin, ymin, xmax, ymax, ...);
    ``training_blocks_csv``: column block_id. ``labels`` / ``imagery`` / ``label_sets`` (optional):
    a path template where ``{region}`` is replaced by the region (e.g.
    ``resources/labels/{region}.tif``), one path for every region, or a mapping region -> path.
    """
    specs = []
    for row in training_rows(blocks_csv, training_blocks_csv, ("region", "xmin", "ymin", "xmax", "ymax")):
        block, region = row["block_id"], row["region"]
        bounds = tuple(float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax"))
        sets = _per_region(label_sets, region, "class-set label") if label_sets is not None else None
        specs.append(TrainingSpec(block, region, bounds, _per_region(labels, region, "label"),
                                  _per_region(imagery, region, "imagery"), crs, float(resolution), sets))
    if not specs:
        raise InputError(f"{training_blocks_csv} lists no training blocks")
    return specs


def training_class_areas(blocks_csv: str | os.PathLike, training_blocks_csv: str | os.PathLike) -> list[float]:
    """Labelled km² of each class index (code - 1) over the training blocks, from the block table's
    area, labelled share and class shares: the label's class frequencies, exact and without reading
    a raster (for ``train.class_weights: labels``)."""
    areas = [0.0] * NUM_CLASSES
    columns = ("area_km2", "labelled_share", *(f"share_{c}" for c in CLASS_CODES))
    for row in training_rows(blocks_csv, training_blocks_csv, columns):
        try:
            labelled = float(row["area_km2"]) * float(row["labelled_share"])
            for k, code in enumerate(CLASS_CODES):
                areas[k] += labelled * float(row[f"share_{code}"])
        except ValueError as exc:
            raise InputError(f"{blocks_csv}: block {row['block_id']} has a non-numeric area or share ({exc})") from None
    return areas


def specs_digest(specs: Sequence[TrainingSpec]) -> str:
    """A short hash of the training data description (to refuse resuming on other data)."""
    text = json.dumps([asdict(s) for s in specs], sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# ---------------------------------------------------------------------------------- raster access


class _Source:
    """An open imagery source (and the MemoryFile that holds GDAL XML text)."""

    def __init__(self, source: str):
        self.source = source
        self._memfile = None
        try:
            if is_xml(source):
                self._memfile = MemoryFile(source.encode("utf-8"), ext="xml")
                self.ds = self._memfile.open()
            else:
                self.ds = rasterio.open(source)
        except RasterioError as exc:
            if self._memfile is not None:
                self._memfile.close()
            raise InputError(f"imagery {describe_source(source)}: cannot be opened: {exc}") from None

    def close(self) -> None:
        self.ds.close()
        if self._memfile is not None:
            self._memfile.close()


def _read_clipped(ds, band_indexes: list[int], col: int, row: int, width: int, height: int,
                  dtype: str, fill: float = 0) -> tuple[np.ndarray, np.ndarray]:
    """Read a pixel window that may stick out of `ds`; (data (bands, h, w), inside mask (h, w))."""
    out = np.full((len(band_indexes), height, width), fill, dtype=dtype)
    inside = np.zeros((height, width), dtype=bool)
    c0, r0 = max(col, 0), max(row, 0)
    c1, r1 = min(col + width, ds.width), min(row + height, ds.height)
    if c1 > c0 and r1 > r0:
        data = ds.read(band_indexes, window=Window(c0, r0, c1 - c0, r1 - r0), out_dtype=dtype)
        out[:, r0 - row:r1 - row, c0 - col:c1 - col] = data
        inside[r0 - row:r1 - row, c0 - col:c1 - col] = True
    return out, inside


def _north_up(transform) -> bool:
    return transform.b == 0 and transform.d == 0 and transform.a > 0 and transform.e < 0


@dataclass(frozen=True)
class PriorSettings:
    """The label prior of the pseudo-labels (:mod:`l2h.maps.label_prior`): strength in nats, how it
    reaches 1 m, and the road surface GeoPackages whose roads it draws at 1 m."""

    strength: float
    interpolation: str = "bilinear"
    roads: tuple[str, ...] = ()


@dataclass(frozen=True)
class WindowDraw:
    """Where sample ``i`` came from: the spec index, the window's bounds, the attempt used,
    its labelled share and the augmentation (rotations by 90 degrees, horizontal flip)."""

    spec_index: int
    bounds: tuple[float, float, float, float]
    col: int  # pixel offset inside the block (from its west edge)
    row: int  # pixel offset inside the block (from its north edge)
    attempt: int
    labelled_share: float
    rot90: int
    flip: bool


class TrainingWindows(torch.utils.data.Dataset):
    """Deterministic training patches; see the module doc.

    ``specs``: the training blocks; ``patch_size``: window side in pixels; ``seed``: the data
    seed; ``in_channels``: the band count the model expects (None = whatever the imagery has,
    all sources must agree); ``normalisation``: {"mean": [...], "std": [...]} per band (None =
    raw values); ``min_labelled``: minimum labelled share of a window before it is re-drawn;
    ``augment``: random rot90 + flip; ``length``: the nominal dataset length (indices are
    unbounded in practice); ``sets``: also return each window's class sets (from the specs'
    ``label_sets``), for the partial-label loss; ``colour_jitter`` j (with ``augment``): the raw
    imagery of a window is scaled by a brightness factor and one factor per band, each drawn
    uniformly from [1 - j, 1 + j] (another acquisition has another radiometry); ``rare_draws`` k > 1:
    draw k candidate windows and keep the one whose label has the highest mean ``class_rarity``
    (a weight per class index, e.g. its inverse frequency; unlabelled pixels count 0), so that
    windows holding rare classes are seen more often. ``edge_cells``: also return where the window's
    pixels lie in an edge cell of the coarse label (:meth:`_read_edge_cells`), for the cell loss.
    ``prior``: also return the window's label-prior bonus (:class:`l2h.maps.label_prior.LabelPrior` on
    the specs' class-set labels) and its valid-imagery mask, for pseudo-labels.

    Construction opens every label and imagery source once to check them (missing label,
    band count, CRS, grid) and closes them again; ``__getitem__`` reopens lazily per process.
    ``self[i]`` -> ``(image float32 [C, H, W], target int64 [H, W])``, plus ``sets int64 [H, W]``
    (bit k = class index k possible) with ``sets``, then ``cells int64 [H, W]`` with ``edge_cells``,
    then ``bonus float32 [K, H, W]`` and ``valid int64 [H, W]`` (1 = imagery) with ``prior``;
    ``draw(i)`` tells where sample ``i`` came from.
    """

    def __init__(self, specs: Sequence[TrainingSpec], patch_size: int = 128, seed: int = 0,
                 in_channels: int | None = None, normalisation: Mapping[str, Sequence[float]] | None = None,
                 min_labelled: float = 0.3, augment: bool = True, max_attempts: int = DEFAULT_MAX_ATTEMPTS,
                 length: int = 2**31 - 1, sets: bool = False, colour_jitter: float = 0.0,
                 rare_draws: int = 1, class_rarity: Sequence[float] | None = None, edge_cells: bool = False,
                 prior: PriorSettings | None = None):
        specs = list(specs)
        if not specs:
            raise ConfigError("no training blocks given (the training block list is empty)")
        if not isinstance(patch_size, int) or patch_size < 1:
            raise ConfigError(f"patch_size must be a positive integer, got {patch_size!r}")
        if not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"data seed must be an integer >= 0, got {seed!r}")
        if not 0.0 <= min_labelled <= 1.0:
            raise ConfigError(f"min_labelled must be within [0, 1], got {min_labelled}")
        if max_attempts < 1:
            raise ConfigError(f"max_attempts must be >= 1, got {max_attempts}")
        self.specs = specs
        self.patch_size = patch_size
        self.seed = seed
        self.min_labelled = float(min_labelled)
        self.augment = bool(augment)
        self.max_attempts = int(max_attempts)
        self.length = int(length)
        self.sets = bool(sets)
        self.edge_cells = bool(edge_cells)
        self.prior = prior
        if not 0.0 <= colour_jitter < 1.0:
            raise ConfigError(f"colour_jitter must be within [0, 1), got {colour_jitter}")
        self.colour_jitter = float(colour_jitter)
        if not isinstance(rare_draws, int) or rare_draws < 1:
            raise ConfigError(f"rare_draws must be an integer >= 1, got {rare_draws!r}")
        self.rare_draws = rare_draws
        self._code_rarity = np.zeros(256, np.float64)  # label code -> weight of its class
        if rare_draws > 1:
            if class_rarity is None or len(class_rarity) != NUM_CLASSES:
                raise ConfigError(f"rare_draws > 1 needs one rarity weight per class ({NUM_CLASSES}), got "
                                  f"{class_rarity!r}")
            self._code_rarity[list(CLASS_CODES)] = np.asarray(class_rarity, np.float64)
        missing = [s.block_id for s in specs if s.label_sets is None]
        if (self.sets or prior is not None) and missing:
            raise ConfigError(f"training blocks {', '.join(missing[:5])} have no class-set label (label_sets), "
                              f"which learning from ambiguous pixels and pseudo-labels need")

        self._grid: list[tuple[CRS, float, int, int]] = []  # crs, res, block width px, height px
        areas = []
        for s in specs:
            xmin, ymin, xmax, ymax = s.bounds
            if not (s.resolution > 0 and xmax > xmin and ymax > ymin):
                raise ConfigError(f"training block {s.block_id}: bounds {s.bounds} / resolution "
                                  f"{s.resolution} do not describe a block")
            areas.append(s.area)
        self._cum = np.cumsum(np.asarray(areas, dtype=np.float64))
        self._cum /= self._cum[-1]

        self.in_channels = self._check_sources(in_channels)
        self.mean = np.zeros(self.in_channels, np.float32)
        self.std = np.ones(self.in_channels, np.float32)
        if normalisation is not None:
            mean = np.asarray(normalisation["mean"], np.float32).reshape(-1)
            std = np.asarray(normalisation["std"], np.float32).reshape(-1)
            if mean.size != self.in_channels or std.size != self.in_channels or not np.all(std > 0):
                raise ConfigError(f"normalisation needs {self.in_channels} means and {self.in_channels} "
                                  f"stds > 0, got mean={mean.tolist()} std={std.tolist()}")
            self.mean, self.std = mean, std
        self._pid = None
        self._handles: dict[tuple[str, str], object] = {}

    # ---------------------------------------------------------------- checks and handles

    def _check_sources(self, in_channels: int | None) -> int:
        labels: dict[str, tuple] = {}
        counts: dict[str, int] = {}
        for s in self.specs:
            for path in [s.label] + ([s.label_sets] if self.sets else []):
                if path not in labels:
                    if not Path(path).is_file():
                        raise InputError(f"training label {path} (region {s.region}) does not exist")
                    try:
                        with rasterio.open(path) as src:
                            labels[path] = (src.crs, src.transform, src.count)
                    except RasterioError as exc:
                        raise InputError(f"training label {path}: cannot be read: {exc}") from None
                lcrs, ltransform, _ = labels[path]
                if lcrs is None or not _north_up(ltransform):
                    raise InputError(f"training label {path}: needs a CRS and a north-up grid")
                try:
                    crs = CRS.from_user_input(s.crs) if s.crs else lcrs
                except CRSError as exc:
                    raise ConfigError(f"training block {s.block_id}: bad CRS {s.crs!r}: {exc}") from None
                if crs != lcrs:
                    raise InputError(f"training label {path} is in {lcrs}, the run's CRS is {crs}; "
                                     f"labels must be on the run's grid")
            w = round((s.bounds[2] - s.bounds[0]) / s.resolution)
            h = round((s.bounds[3] - s.bounds[1]) / s.resolution)
            self._grid.append((crs, float(s.resolution), w, h))
            if s.imagery not in counts:
                src = _Source(s.imagery)
                try:
                    counts[s.imagery] = src.ds.count
                    if src.ds.crs is None:
                        raise InputError(f"imagery {describe_source(s.imagery)}: has no CRS")
                finally:
                    src.close()
        if in_channels is None:
            found = sorted(set(counts.values()))
            if len(found) > 1:
                raise InputError("imagery sources have different band counts: " + ", ".join(
                    f"{describe_source(k)}: {v}" for k, v in counts.items()))
            return found[0]
        for source, count in counts.items():
            if count != in_channels:
                raise InputError(f"imagery {describe_source(source)} has {count} bands, but the model "
                                 f"expects {in_channels} (one per configured band)")
        return int(in_channels)

    def _handle(self, kind: str, name: str):
        if self._pid != os.getpid():  # first use in this process (e.g. a DataLoader worker)
            self._handles = {}
            self._pid = os.getpid()
        key = (kind, name)
        if key not in self._handles:
            if kind == "prior":
                from l2h.maps.label_prior import LabelPrior

                p = self.prior
                self._handles[key] = LabelPrior(sorted({s.label_sets for s in self.specs}), p.strength,
                                                num_classes=NUM_CLASSES, interpolation=p.interpolation, roads=p.roads)
                return self._handles[key]
            if kind == "image":
                self._handles[key] = _Source(name)
            else:
                try:
                    self._handles[key] = rasterio.open(name)
                except RasterioError as exc:
                    raise InputError(f"training label {name}: cannot be read: {exc}") from None
        handle = self._handles[key]
        return handle.ds if kind == "image" else handle

    def close(self) -> None:
        """Close this process' raster handles (they reopen on the next access)."""
        if self._pid == os.getpid():
            for handle in self._handles.values():
                with contextlib.suppress(Exception):
                    handle.close()
        self._handles = {}

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_handles"], state["_pid"] = {}, None
        return state

    def __len__(self) -> int:
        return self.length

    # ---------------------------------------------------------------- sampling

    def _locate(self, i: int, attempt: int) -> tuple[int, int, int, int, bool]:
        rng = np.random.default_rng([self.seed, int(i), attempt])
        b = int(np.searchsorted(self._cum, rng.random(), side="right"))
        b = min(b, len(self.specs) - 1)
        _, _, w, h = self._grid[b]
        col = int(rng.integers(0, max(w - self.patch_size, 0) + 1))
        row = int(rng.integers(0, max(h - self.patch_size, 0) + 1))
        k = int(rng.integers(0, 4))
        flip = bool(rng.integers(0, 2))
        return b, col, row, k, flip

    def _read_image(self, spec: TrainingSpec, crs: CRS, res: float, x0: float,
                    ytop: float) -> tuple[np.ndarray, np.ndarray]:
        """(raw image float32 (C, P, P), valid (P, P)) of the window at (x0, ytop)."""
        p = self.patch_size
        ds = self._handle("image", spec.imagery)
        nodata = ds.nodata if ds.nodata is not None else 0
        bands = list(range(1, self.in_channels + 1))
        t = ds.transform
        aligned = (ds.crs == crs and _north_up(t) and abs(t.a - res) <= _EPS * res
                   and abs(-t.e - res) <= _EPS * res)
        if aligned:
            fc, fr = (x0 - t.c) / res, (t.f - ytop) / res
            aligned = abs(fc - round(fc)) < 1e-3 and abs(fr - round(fr)) < 1e-3
        if aligned:
            image, inside = _read_clipped(ds, bands, round(fc), round(fr), p, p, "float32", nodata)
        else:
            transform = from_origin(x0, ytop, res, res)
            try:
                with WarpedVRT(ds, crs=crs, transform=transform, width=p, height=p,
                               resampling=Resampling.bilinear, src_nodata=nodata, nodata=0) as vrt:
                    image = vrt.read(bands, out_dtype="float32")
            except RasterioError as exc:
                raise InputError(f"imagery {describe_source(spec.imagery)}: cannot be read for block "
                                 f"{spec.block_id}: {exc}") from None
            inside, nodata = np.ones((p, p), bool), 0
        valid = inside & ~np.all(image == nodata, axis=0)
        image[:, ~valid] = 0
        return image, valid

    def _label_cells(self, ds, res: float, x0: float, ytop: float) -> tuple[np.ndarray, np.ndarray]:
        """Rows and columns of a label raster's cells at the centres of the window's pixels."""
        t = ds.transform
        centres = (np.arange(self.patch_size) + 0.5) * res
        cols = np.floor((x0 + centres - t.c) / t.a).astype(np.int64)
        rows = np.floor((ytop - centres - t.f) / t.e).astype(np.int64)
        return rows, cols

    def _read_codes(self, path: str, res: float, x0: float, ytop: float, dtype: str = "uint8") -> np.ndarray:
        """A label raster's values (P, P) at the centres of the window's pixels (nearest; 0 outside)."""
        ds = self._handle("label", path)
        rows, cols = self._label_cells(ds, res, x0, ytop)
        c0, r0 = int(cols[0]), int(rows[0])
        data, _ = _read_clipped(ds, [1], c0, r0, int(cols[-1]) - c0 + 1, int(rows[-1]) - r0 + 1,
                                dtype, 0)
        return data[0][(rows - r0)[:, None], (cols - c0)[None, :]]

    def _read_edge_cells(self, b: int, col: int, row: int) -> np.ndarray:
        """(P, P) int64: where a pixel lies in an *edge cell* of the coarse label -- a labelled cell
        with a neighbour (of its 8) that holds another code or no class (255; 0, outside the region,
        does not count) -- the number of that cell, unique within the window; -1 elsewhere.

        An edge cell is where the 1 m truth is most likely mixed: its label says what the cell
        holds most of, not what each of its pixels is (:class:`l2h.model.loss.L2HLoss`'s cell loss).
        """
        spec = self.specs[b]
        x0, ytop = self._window(b, col, row)
        ds = self._handle("label", spec.label)
        rows, cols = self._label_cells(ds, self._grid[b][1], x0, ytop)
        r0, c0 = int(rows[0]) - 1, int(cols[0]) - 1  # one cell of margin for the neighbours
        h, w = int(rows[-1]) - r0 + 2, int(cols[-1]) - c0 + 2
        codes = _read_clipped(ds, [1], c0, r0, w, h, "uint8", 0)[0][0]
        padded = np.pad(codes, 1)
        edge = np.zeros(codes.shape, bool)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                other = padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
                edge |= (other != codes) & (other != 0)
        edge &= (codes >= 1) & (codes <= NUM_CLASSES)
        rr, cc = (rows - r0)[:, None], (cols - c0)[None, :]
        return np.where(edge[rr, cc], rr * w + cc, -1).astype(np.int64)

    def _read_sets(self, b: int, col: int, row: int, valid: np.ndarray) -> np.ndarray:
        """The class sets (P, P) int64 of a window: bit k = class index k possible (code k + 1);
        0 where nothing is known or there is no imagery."""
        spec = self.specs[b]
        x0, ytop = self._window(b, col, row)
        bits = self._read_codes(spec.label_sets, self._grid[b][1], x0, ytop, "uint16").astype(np.int64)
        bits = (bits >> 1) & ((1 << NUM_CLASSES) - 1)  # code bits 1..11 -> class index bits 0..10
        bits[~valid] = 0
        return bits

    def _window(self, b: int, col: int, row: int) -> tuple[float, float]:
        spec = self.specs[b]
        res = self._grid[b][1]
        return spec.bounds[0] + col * res, spec.bounds[3] - row * res

    def raw(self, i: int, attempt: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple]:
        """One draw without re-drawing, normalisation or augmentation:
        (image float32 (C, P, P), target int64 (P, P), valid imagery (P, P), locate tuple)."""
        loc = self._locate(i, attempt)
        b, col, row = loc[:3]
        spec = self.specs[b]
        crs, res = self._grid[b][:2]
        x0, ytop = self._window(b, col, row)
        image, valid = self._read_image(spec, crs, res, x0, ytop)
        codes = self._read_codes(spec.label, res, x0, ytop)
        target = codes_to_targets(torch.from_numpy(codes)).numpy()
        target[~valid] = IGNORE_INDEX
        return image, target, valid, loc

    def _rarest_attempt(self, i: int) -> int:
        """Of the first ``rare_draws`` candidate windows of sample ``i``, the one whose labelled
        pixels are of the rarest classes (the first of equals); only labels are read."""
        scores = []
        for attempt in range(self.rare_draws):
            b, col, row = self._locate(i, attempt)[:3]
            x0, ytop = self._window(b, col, row)
            codes = self._read_codes(self.specs[b].label, self._grid[b][1], x0, ytop)
            scores.append(float(self._code_rarity[codes].mean()))
        return int(np.argmax(scores))

    def _sample(self, i: int) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], WindowDraw]:
        best = None
        attempts = range(self.max_attempts)
        if self.rare_draws > 1:  # the rarest candidate first; further draws only if it lacks labels
            attempts = [self._rarest_attempt(i), *range(self.rare_draws, self.rare_draws + self.max_attempts - 1)]
        for attempt in attempts:
            image, target, valid, loc = self.raw(i, attempt)
            share = float(np.mean(target != IGNORE_INDEX))
            if best is None or share > best[4]:
                best = (image, target, valid, loc, share, attempt)
            if share >= self.min_labelled:
                break
        image, target, valid, (b, col, row, k, flip), share, attempt = best
        extras = [self._read_sets(b, col, row, valid)] if self.sets else []
        if self.edge_cells:
            extras.append(self._read_edge_cells(b, col, row))
        x0, ytop = self._window(b, col, row)
        res = self._grid[b][1]
        p = self.patch_size
        if self.prior is not None:
            bonus = self._handle("prior", "").bonus(from_origin(x0, ytop, res, res), (p, p))
            extras += [np.zeros((NUM_CLASSES, p, p), np.float32) if bonus is None else bonus, valid.astype(np.int64)]
        draw = WindowDraw(b, (x0, ytop - p * res, x0 + p * res, ytop), col, row, attempt, share,
                          k if self.augment else 0, flip if self.augment else False)
        return image, target, extras, draw

    def draw(self, i: int) -> WindowDraw:
        """Where sample ``i`` comes from (block, window bounds, attempt, augmentation)."""
        return self._sample(i)[3]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        if i < 0:
            raise IndexError(f"sample index must be >= 0, got {i}")
        image, target, extras, draw = self._sample(int(i))
        if self.augment and self.colour_jitter > 0:
            rng = np.random.default_rng([self.seed, int(i), _JITTER_STREAM])
            j = self.colour_jitter
            gain = rng.uniform(1 - j, 1 + j) * rng.uniform(1 - j, 1 + j, size=image.shape[0])
            image = image * gain.astype(np.float32)[:, None, None]
        image = normalise(image, self.mean, self.std)
        rasters = [image, target, *extras]
        if draw.rot90:
            rasters = [np.rot90(r, draw.rot90, axes=(-2, -1)) for r in rasters]
        if draw.flip:
            rasters = [r[..., ::-1] for r in rasters]
        return tuple(torch.from_numpy(np.ascontiguousarray(r, dtype=np.float32 if r.dtype.kind == "f" else np.int64))
                     for r in rasters)


def band_statistics(specs: Sequence[TrainingSpec], patch_size: int = 128, n_samples: int = 64,
                    seed: int = 0, in_channels: int | None = None) -> dict:
    """Per-band mean and std over the valid (non-nodata) pixels of ``n_samples`` windows drawn in
    the training blocks (deterministic for a given seed) -> {"mean": [...], "std": [...],
    "pixels": n}. A window without imagery is drawn again (up to the training windows' attempts),
    as training does, so imagery covering a small part of the blocks still gets its statistics.
    A band with (almost) no spread gets std 1. Raises InputError when no draw finds imagery."""
    if n_samples < 1:
        raise ConfigError(f"stats_samples must be >= 1, got {n_samples}")
    ds = TrainingWindows(specs, patch_size, seed, in_channels=in_channels, min_labelled=0.0, augment=False)
    c = ds.in_channels
    total = np.zeros(c, np.float64)
    total_sq = np.zeros(c, np.float64)
    n = 0
    try:
        for i in range(n_samples):
            for attempt in range(ds.max_attempts):
                image, _, valid, _ = ds.raw(i, attempt)
                if valid.any():
                    break
            pixels = image[:, valid].astype(np.float64)
            total += pixels.sum(axis=1)
            total_sq += np.square(pixels).sum(axis=1)
            n += pixels.shape[1]
    finally:
        ds.close()
    if n == 0:
        raise InputError(f"no imagery found in {n_samples} windows ({ds.max_attempts} draws each) of the "
                         f"{len(ds.specs)} training blocks "
                         f"(is the imagery covering them? e.g. {describe_source(ds.specs[0].imagery)})")
    mean = total / n
    var = np.maximum(total_sq / n - mean**2, 0.0)
    std = np.sqrt(var)
    std = np.where(std > 1e-6 * np.maximum(np.abs(mean), 1.0), std, 1.0)
    return {"mean": [float(v) for v in mean], "std": [float(v) for v in std], "pixels": int(n)}


def worker_count(requested: int) -> int:
    """DataLoader workers to use: ``requested`` bounded by the CPUs available (>= 0)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(0, min(int(requested), cpus))


__all__ = ["TrainingSpec", "TrainingWindows", "WindowDraw", "PriorSettings", "band_statistics", "load_training_specs",
           "training_class_areas",
           "specs_digest", "worker_count", "IGNORE_INDEX"]
