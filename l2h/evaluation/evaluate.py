"""Accuracy assessment against reference points (docs/method.md §9): our map and every input product,
sampled at the same points, scored in the reference's own legend.

Reference points come from a CSV (x/y columns, a CRS column or one CRS) or a point vector file, in
any CRS; their class column uses the reference legend, and the config maps each of our classes to
one reference class. Products are sampled in their own tiles and CRS; a product code stands for a
*set* of our classes (e.g. Esri rangeland = {grass, shrub}): it counts as correct when the
reference class is one its set maps to (lenient to the products), and in the confusion matrix it
resolves to the reference class then, else to the set's lowest class. Points off a raster, on its
nodata or on a code without information are counted per source, not silently dropped.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import rasterio
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from l2h.core.classes import BY_CODE, BY_KEY
from l2h.core.errors import ConfigError, InputError
from l2h.core.io import atomic_path
from l2h.core.windows import iter_windows
from l2h.evaluation.metrics import Z95, bootstrap_scores, confusion_matrix, scores, stratified_estimates
from l2h.inputs.fetch_product import read_manifest

log = logging.getLogger(__name__)

OUTSIDE, NODATA, NO_INFO, UNKNOWN = -1, -2, -3, -4  # point status codes of a sampled source
STATUS_NAMES = {OUTSIDE: "outside", NODATA: "nodata", NO_INFO: "no_information", UNKNOWN: "unknown_code"}
NO_REGION = "(outside every region)"


def norm_label(value) -> str:
    """A class or stratum value as text: 3, 3.0 and "3" are the same class."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


@dataclass(frozen=True)
class Legend:
    """The reference legend (codes as text, in config order) and where each of our classes goes."""

    codes: tuple[str, ...]
    names: tuple[str, ...]
    ours: np.ndarray  # (256,) our class code -> reference index; -1 = not mapped

    @classmethod
    def from_config(cls, legend: dict, mapping: dict) -> Legend:
        """A legend from the config: the reference codes and the mapping of l2h classes onto them."""
        codes = tuple(norm_label(k) for k in legend)
        ours = np.full(256, -1, np.int64)
        for key, target in mapping.items():
            if key not in BY_KEY:
                raise ConfigError(f"config key 'evaluation.points.mapping.{key}': not one of our classes "
                                  f"({', '.join(BY_KEY)})")
            if norm_label(target) not in codes:
                raise ConfigError(f"config key 'evaluation.points.mapping.{key}': {target!r} is not in "
                                  f"evaluation.points.legend ({', '.join(codes)})")
            ours[BY_KEY[key].code] = codes.index(norm_label(target))
        return cls(codes, tuple(str(v) for v in legend.values()), ours)

    @property
    def k(self) -> int:
        """The number of reference classes."""
        return len(self.codes)


@dataclass
class Points:
    """Reference points: coordinates with their CRS, reference class index, stratum, region."""

    path: str
    x: np.ndarray
    y: np.ndarray
    crs: np.ndarray  # CRS text per point
    ref: np.ndarray  # index into the legend
    strata: np.ndarray | None = None
    region: np.ndarray | None = None
    all_regions: tuple[str, ...] = ()  # every region of the run, those without points too
    _cache: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.x)

    def coords_in(self, crs) -> tuple[np.ndarray, np.ndarray]:
        """The points' coordinates in `crs` (x/easting, y/northing)."""
        target = CRS.from_user_input(crs)
        key = target.to_wkt()
        if key not in self._cache:
            xs, ys = np.empty(len(self)), np.empty(len(self))
            for source in np.unique(self.crs):
                sel = self.crs == source
                t = Transformer.from_crs(CRS.from_user_input(source), target, always_xy=True)
                xs[sel], ys[sel] = t.transform(self.x[sel], self.y[sel])
            self._cache[key] = (xs, ys)
        return self._cache[key]


def read_points(cfg: dict, legend: Legend) -> Points:
    """Read the reference points named by config `evaluation.points` (CSV or point vector file)."""
    path = cfg["file"]
    class_col = cfg["class_column"]
    strata_col = (cfg.get("strata") or {}).get("column")
    if str(path).lower().endswith(".csv"):
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise InputError(f"reference points {path}: not a readable CSV ({exc})") from None
        xcol, ycol, crs_col = cfg.get("x", "x"), cfg.get("y", "y"), cfg.get("crs_column")
        if not crs_col and not cfg.get("crs"):
            raise ConfigError(f"reference points {path}: give evaluation.points.crs_column (a column "
                              f"holding each point's CRS) or evaluation.points.crs (one CRS for all)")
        _require_columns(path, frame, [xcol, ycol, class_col] + [c for c in (crs_col, strata_col) if c])
        try:
            x, y = frame[xcol].astype(float).to_numpy(), frame[ycol].astype(float).to_numpy()
        except ValueError as exc:
            raise InputError(f"reference points {path}: columns {xcol!r}/{ycol!r} must be numbers ({exc})") from None
        crs = frame[crs_col].to_numpy(object) if crs_col else np.full(len(frame), cfg["crs"], object)
    else:
        try:
            frame = pyogrio.read_dataframe(path, layer=cfg.get("layer"))
        except Exception as exc:  # pyogrio raises several types for unreadable files
            raise InputError(f"reference points {path}: cannot be read as a vector dataset ({exc})") from None
        _require_columns(path, frame, [class_col] + ([strata_col] if strata_col else []))
        if frame.crs is None:
            raise InputError(f"reference points {path}: has no CRS; assign one (e.g. with ogr2ogr -a_srs)")
        if not (frame.geometry.geom_type == "Point").all():
            raise InputError(f"reference points {path}: every feature must be a single point, found "
                             f"{sorted(set(frame.geometry.geom_type) - {'Point'})}")
        x, y = frame.geometry.x.to_numpy(), frame.geometry.y.to_numpy()
        crs = np.full(len(frame), frame.crs.to_wkt(), object)
    if len(frame) == 0:
        raise InputError(f"reference points {path}: holds no points")
    for text in set(crs):
        try:
            CRS.from_user_input(text)
        except CRSError:
            raise InputError(f"reference points {path}: {text!r} is not a CRS") from None
    labels = np.array([norm_label(v) for v in frame[class_col]], object)
    mapped = {legend.codes[i] for i in set(legend.ours[legend.ours >= 0].tolist())}
    bad = sorted(set(labels) - mapped)
    if bad:
        counts = ", ".join(f"{b!r} ({int((labels == b).sum())} points)" for b in bad)
        raise InputError(f"reference points {path}: class value(s) {counts} in column {class_col!r} are not "
                         f"covered by config evaluation.points.mapping, which maps our classes to "
                         f"{', '.join(sorted(mapped))}; map one of our classes to each, or remove those points")
    ref = np.array([legend.codes.index(v) for v in labels], np.int64)
    strata = np.array([norm_label(v) for v in frame[strata_col]], object) if strata_col else None
    return Points(str(path), x, y, crs, ref, strata)


def _require_columns(path, frame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"reference points {path}: no column(s) {', '.join(map(repr, missing))} (config "
                         f"evaluation.points); its columns are: {', '.join(map(str, frame.columns))}")


def assign_regions(points: Points, regions) -> np.ndarray:
    """The region slug holding each point (`regions`: GeoDataFrame indexed by slug), or NO_REGION."""
    import geopandas as gpd

    xs, ys = points.coords_in(regions.crs)
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(xs, ys), crs=regions.crs)
    joined = pts.sjoin(regions[["geometry"]].rename_axis("slug").reset_index(), predicate="within", how="left")
    first = joined[~joined.index.duplicated()]["slug"]
    return first.fillna(NO_REGION).to_numpy(object)


def _sample_band(src, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Pixel values at the points, -1 off the raster; reads each internal block once (memory bounded)."""
    out = np.full(len(xs), -1, np.int64)
    cols, rows = ~src.transform * (xs, ys)
    rows, cols = np.floor(rows).astype(np.int64), np.floor(cols).astype(np.int64)
    inside = (rows >= 0) & (rows < src.height) & (cols >= 0) & (cols < src.width)
    bh, bw = src.block_shapes[0]
    bh, bw = max(bh, 256), max(bw, 256)  # strip-organised files: read 256-row windows
    keys = (rows // bh) * (src.width // bw + 1) + cols // bw
    for key in np.unique(keys[inside]):
        sel = np.flatnonzero(inside & (keys == key))
        r0, c0 = rows[sel[0]] // bh * bh, cols[sel[0]] // bw * bw
        window = rasterio.windows.Window(c0, r0, min(bw, src.width - c0), min(bh, src.height - r0))
        data = src.read(1, window=window)
        out[sel] = data[rows[sel] - r0, cols[sel] - c0]
    return out


def sample_map(path: str | Path, points: Points, legend: Legend) -> np.ndarray:
    """Our map at the points as reference indices; OUTSIDE off the map, NODATA on its nodata."""
    with rasterio.open(path) as src:
        xs, ys = points.coords_in(src.crs)
        values = _sample_band(src, xs, ys)
        nodata = src.nodata
    out = np.where(values < 0, OUTSIDE, NODATA)
    valid = (values >= 0) & (values != nodata) & (legend.ours[np.clip(values, 0, 255)] >= 0)
    out[valid] = legend.ours[values[valid]]
    return out


def sample_product(manifest: str | Path, points: Points, legend: Legend) -> tuple[str, np.ndarray]:
    """A product at the points (tiles in their own CRS; later tiles over earlier ones, as harmonize):
    its id and, per point, the reference index it scores as (see module doc) or a status code."""
    product = read_manifest(manifest)
    codes = np.full(len(points), OUTSIDE, np.int64)
    for path in product.paths:
        try:
            with rasterio.open(path) as src:
                xs, ys = points.coords_in(src.crs)
                values = _sample_band(src, xs, ys)
        except rasterio.errors.RasterioError as exc:
            raise InputError(f"product {product.id}: tile {path} unreadable ({exc})") from None
        covered = values >= 0
        is_nodata = np.isin(values, product.nodata)
        codes[covered & is_nodata & (codes == OUTSIDE)] = NODATA
        codes[covered & ~is_nodata] = values[covered & ~is_nodata]
    out = codes.copy()
    for i in np.flatnonzero(codes >= 0):
        entry = product.codes.get(int(codes[i]))
        if entry is None:
            out[i] = UNKNOWN
            continue
        targets = sorted({int(legend.ours[c]) for c in entry.classes if legend.ours[c] >= 0})
        if not targets:
            out[i] = NO_INFO
        elif points.ref[i] in targets:
            out[i] = points.ref[i]
        else:
            out[i] = legend.ours[min(entry.classes)]
    return product.id, out


def class_areas_km2(path: str | Path, window: int = 4096) -> tuple[np.ndarray, float | None]:
    """(area in km² of each code 0..255, the raster's nodata) of a uint8 class raster, counted
    window by window (memory bounded)."""
    counts = np.zeros(256, np.int64)
    with rasterio.open(path) as src:
        for w in iter_windows(src.width, src.height, window):
            counts += np.bincount(src.read(1, window=w).ravel(), minlength=256)
        pixel_km2 = abs(src.transform.a * src.transform.e) / 1e6
        nodata = src.nodata
    return counts * pixel_km2, nodata


def map_class_areas(path: str | Path) -> dict[str, float]:
    """Area (km²) of each class present in a class raster, by code as text (the map's strata)."""
    km2, nodata = class_areas_km2(path)
    return {str(c): float(km2[c]) for c in range(256) if km2[c] and c != nodata}


def read_strata_areas(path: str | Path) -> dict[str, float]:
    """Stratum -> area_km2 from a CSV with columns stratum, area_km2."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise InputError(f"strata areas {path}: unreadable ({exc})") from None
    if not rows or not {"stratum", "area_km2"} <= set(rows[0]):
        raise InputError(f"strata areas {path}: expected a CSV with columns stratum, area_km2")
    try:
        return {norm_label(r["stratum"]): float(r["area_km2"]) for r in rows}
    except ValueError as exc:
        raise InputError(f"strata areas {path}: area_km2 must be a number ({exc})") from None


@dataclass
class SourceResult:
    """One source's scores on the points where it has data."""

    name: str
    status: dict[str, int]
    n: int
    cm: np.ndarray
    scores: dict
    ci: dict
    region_oa: list[tuple[str, int, float]]
    weighted: dict | None = None


def score_source(name: str, pred: np.ndarray, points: Points, legend: Legend, iterations: int, seed: int,
                 stratum_area: dict | None, subset: np.ndarray | None = None) -> SourceResult:
    """Scores, bootstrap intervals, OA per region and (stratified) area-weighted estimates of one
    source; ``subset`` (bool per point): score only those points (no area weighting then)."""
    if subset is not None:
        pred = np.where(subset, pred, OUTSIDE)
        stratum_area = None
    valid = pred >= 0
    status = {"scored": int(valid.sum())} | {s: int((pred == c).sum()) for c, s in STATUS_NAMES.items()}
    if subset is not None:
        status["outside"] -= int((~subset).sum())
    ref, p = points.ref[valid], pred[valid]
    cm = confusion_matrix(ref, p, legend.k)
    strata = points.strata[valid] if points.strata is not None else None
    result = SourceResult(name, status, int(valid.sum()), cm, scores(cm),
                          bootstrap_scores(ref, p, legend.k, iterations, seed, strata), [])
    regions = points.region[valid] if points.region is not None else np.full(len(ref), NO_REGION, object)
    for region in sorted(set(regions) | set(points.all_regions)):  # a region without points: 0, no OA
        sel = regions == region
        result.region_oa.append((region, int(sel.sum()), float((ref[sel] == p[sel]).mean()) if sel.any() else np.nan))
    if stratum_area is not None and len(ref):
        result.weighted = stratified_estimates(ref, p, legend.k, strata, stratum_area)
    return result


def _f(value) -> float | None:
    value = float(value)
    return None if np.isnan(value) else round(value, 6)


def summary(r: SourceResult) -> dict:
    """The JSON entry of one source."""
    out = {"oa": _f(r.scores["oa"]), "kappa": _f(r.scores["kappa"]), "miou": _f(r.scores["miou"]),
           "n_points": r.n, "oa_ci95": [_f(v) for v in r.ci["oa"]], "kappa_ci95": [_f(v) for v in r.ci["kappa"]],
           "miou_ci95": [_f(v) for v in r.ci["miou"]], "points": r.status}
    if r.weighted:
        oa, se = r.weighted["oa"]
        out["area_weighted"] = {"oa": _f(oa), "oa_ci95": [_f(oa - Z95 * se), _f(oa + Z95 * se)],
                                "strata_without_points": r.weighted["strata_without_points"]}
    return out


def in_boxes(points: Points, boxes: Sequence[tuple[float, float, float, float]], crs) -> np.ndarray:
    """Whether each point lies inside one of the boxes (xmin, ymin, xmax, ymax) given in `crs`."""
    xs, ys = points.coords_in(crs)
    inside = np.zeros(len(points), bool)
    for xmin, ymin, xmax, ymax in boxes:
        inside |= (xs >= xmin) & (xs < xmax) & (ys > ymin) & (ys <= ymax)
    return inside


def _subset_entry(n_points: int, results: dict[str, SourceResult]) -> dict:
    return {"n_points": n_points, "map": summary(results["map"]),
            "products": {name: summary(r) for name, r in results.items() if name != "map"}}


def evaluate(points_cfg: dict, map_path: str | Path, manifests: Sequence[str], out_dir: str | Path,
             regions=None, run_name: str = "run",
             training_blocks: tuple[Sequence[tuple[float, float, float, float]], str] | None = None,
             unpredictable: Sequence[int] = ()) -> dict:
    """Score our map and every product at the reference points; write accuracy.json, the CSV
    tables and the figures into `out_dir`; return the JSON document.

    ``training_blocks``: (the training blocks' bounds, their CRS). The points are then also scored
    in two parts, ``held_out`` (outside every training block: land the network never saw; the
    honest measure) and ``in_training_blocks`` (in-sample), each for the map and every product.
    ``unpredictable``: codes of our classes the model can never predict (its metadata); they are
    listed in accuracy.json and marked beside the map's per-class scores.
    """
    from l2h.evaluation import report_figures as reportfigs

    legend = Legend.from_config(points_cfg["legend"], points_cfg["mapping"])
    points = read_points(points_cfg, legend)
    if regions is not None:
        points.region = assign_regions(points, regions)
        points.all_regions = tuple(str(slug) for slug in regions.index)
    stratum_area = None
    strata_cfg = points_cfg.get("strata")
    if strata_cfg:
        if strata_cfg.get("areas_csv"):
            stratum_area = read_strata_areas(strata_cfg["areas_csv"])
        else:  # strata are our map classes: stratum values may be our codes or keys
            points.strata = np.array([str(BY_KEY[s].code) if s in BY_KEY else s for s in points.strata], object)
            stratum_area = map_class_areas(map_path)
        unknown = sorted(set(points.strata) - set(stratum_area))
        if unknown:
            raise InputError(f"reference points {points.path}: stratum value(s) {', '.join(map(repr, unknown))} "
                             f"(column {strata_cfg['column']!r}) have no area in "
                             f"{strata_cfg.get('areas_csv') or 'the map ' + str(map_path)}")
    iterations, seed = int(points_cfg.get("bootstrap", 1000)), int(points_cfg.get("seed", 0))
    preds = {"map": sample_map(map_path, points, legend)}
    for manifest in manifests:
        product_id, pred = sample_product(manifest, points, legend)
        preds[product_id] = pred
    results = {name: score_source(name, pred, points, legend, iterations, seed, stratum_area)
               for name, pred in preds.items()}
    parts, part_sizes = {}, {}
    if training_blocks is not None:
        inside = in_boxes(points, *training_blocks)
        for part, subset in (("held_out", ~inside), ("in_training_blocks", inside)):
            parts[part] = {name: score_source(name, pred, points, legend, iterations, seed, None, subset)
                           for name, pred in preds.items()}
            part_sizes[part] = int(subset.sum())
    for part, scored in [*parts.items(), ("all points", results)]:
        for r in scored.values():
            log.info("%s, %s: OA %.3f [%.3f, %.3f], kappa %.3f, mIoU %.3f on %d points (%s)", part, r.name,
                     r.scores["oa"], *r.ci["oa"], r.scores["kappa"], r.scores["miou"], r.n,
                     ", ".join(f"{k} {v}" for k, v in r.status.items() if k != "scored" and v) or "all scored")
    common = np.logical_and.reduce([p >= 0 for p in preds.values()])
    doc = {
        "run": run_name,
        "reference": {"file": points.path, "n_points": len(points), "legend": dict(zip(legend.codes, legend.names)),
                      "stratified": stratum_area is not None, "bootstrap": iterations, "seed": seed},
        **{part: _subset_entry(part_sizes[part], scored) for part, scored in parts.items()},
        "classes_the_model_cannot_predict": [
            {"code": int(c), "class": BY_CODE[int(c)].name,
             "reference_class": legend.codes[legend.ours[int(c)]] if legend.ours[int(c)] >= 0 else None}
            for c in sorted(unpredictable)],
        "map": summary(results["map"]),
        "products": {name: summary(r) for name, r in results.items() if name != "map"},
        "common_points": {"n_points": int(common.sum()),
                          "oa": {name: _f((points.ref[common] == p[common]).mean()) if common.any() else None
                                 for name, p in preds.items()}},
    }
    out_dir = Path(out_dir)
    blind = reference_classes_out_of_reach(legend, unpredictable)
    write_tables(out_dir, results, legend, blind)
    reportfigs.confusion_figure(out_dir / "confusion.png", results, legend, blind)
    reportfigs.region_oa_figure(out_dir / "region_oa.png", results)
    reportfigs.sources_figure(out_dir / "sources.png", results, parts.get("held_out"))
    reportfigs.legend_figure(out_dir / "legend.png", legend)
    with atomic_path(out_dir / "accuracy.json") as tmp:
        tmp.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return doc


def write_csv(path: Path, header: Sequence[str], rows) -> None:
    """Write a CSV table atomically (header, then rows)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(header)
            w.writerows(rows)


def _r(v) -> str:
    return "" if v is None or np.isnan(v) else f"{float(v):.4f}"


def reference_classes_out_of_reach(legend: Legend, unpredictable: Sequence[int]) -> set[int]:
    """Indices of the reference classes the map can never give: every one of our classes that maps
    onto them is one the model cannot predict."""
    ours = {code: int(legend.ours[code]) for code in BY_CODE if legend.ours[code] >= 0}
    return {i for i in range(legend.k)
            if any(k == i for k in ours.values()) and all(c in set(unpredictable) for c, k in ours.items() if k == i)}


def write_tables(out_dir: Path, results: dict[str, SourceResult], legend: Legend,
                 blind: set[int] = frozenset()) -> None:
    """class_metrics.csv, confusion.csv, region_oa.csv, points.csv and (stratified) area_estimates.csv;
    ``blind``: reference classes the map cannot give (marked in class_metrics.csv)."""
    metric_names = ("producers", "users", "f1", "iou")
    rows = []
    for r in results.values():
        for i, code in enumerate(legend.codes):
            row = [r.name, code, legend.names[i], int(r.cm[i].sum()), int(r.cm[:, i].sum())]
            for m in metric_names:
                row += [_r(r.scores[m][i]), _r(r.ci[m][i][0]), _r(r.ci[m][i][1])]
            rows.append(row + [("no" if i in blind else "yes") if r.name == "map" else ""])
    write_csv(out_dir / "class_metrics.csv",
               ["source", "class", "name", "n_reference", "n_predicted"]
               + [f"{m}{s}" for m in metric_names for s in ("", "_lo95", "_hi95")] + ["model_can_predict"], rows)
    write_csv(out_dir / "confusion.csv", ["source", "reference", "predicted", "count"],
               [[r.name, legend.codes[i], legend.codes[j], int(r.cm[i, j])]
                for r in results.values() for i in range(legend.k) for j in range(legend.k)])
    write_csv(out_dir / "region_oa.csv", ["source", "region", "n_points", "oa"],
               [[r.name, region, n, _r(oa)] for r in results.values() for region, n, oa in r.region_oa])
    status_names = ["scored", *STATUS_NAMES.values()]
    write_csv(out_dir / "points.csv", ["source", *status_names],
               [[r.name, *(r.status[s] for s in status_names)] for r in results.values()])
    weighted = [r for r in results.values() if r.weighted]
    if weighted:
        rows = []
        for r in weighted:
            w = r.weighted
            for i, code in enumerate(legend.codes):
                share, se = w["area_share"][i]
                rows.append([r.name, code, legend.names[i], _r(share), f"{share * w['area']:.4f}",
                             f"{Z95 * se * w['area']:.4f}", _r(w["users"][i][0]), _r(Z95 * w["users"][i][1]),
                             _r(w["producers"][i][0]), _r(Z95 * w["producers"][i][1])])
        write_csv(out_dir / "area_estimates.csv",
                   ["source", "class", "name", "area_share", "area_km2", "area_km2_ci95", "users", "users_ci95",
                    "producers", "producers_ci95"], rows)

