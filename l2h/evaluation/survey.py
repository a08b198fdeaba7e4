"""Our map's class shares per region against official survey statistics (docs/method.md §9).

The survey table (region, class, area) uses the survey's own legend; the config maps each of our
classes to a survey class. Per region: the share of each survey class in our map (pixel counts of
the region's COG, window by window) and in the survey, and the weighted error
E = Σ_c w_c·|map_share_c − survey_share_c| with w_c the survey share; the same over all regions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from l2h.core.classes import BY_KEY
from l2h.core.errors import InputError
from l2h.evaluation.evaluate import class_areas_km2, write_csv
from l2h.inputs.regions import slugify

log = logging.getLogger(__name__)
NATIONAL = "national"


def read_survey(cfg: dict, region_names: Mapping[str, str]) -> pd.DataFrame:
    """The survey table as columns region (slug), class, area_km2, restricted to the run's regions."""
    path = cfg["table"]
    cols = [cfg.get("region_column", "region"), cfg.get("class_column", "class"), cfg.get("area_column", "area_km2")]
    try:
        frame = pd.read_csv(path, dtype={cols[0]: str, cols[1]: str}, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"survey table {path}: not a readable CSV ({exc})") from None
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise InputError(f"survey table {path}: no column(s) {', '.join(map(repr, missing))} (config "
                         f"evaluation.survey); its columns are: {', '.join(frame.columns)}")
    frame = frame[cols].set_axis(["region", "class", "area_km2"], axis=1)
    try:
        frame["area_km2"] = frame["area_km2"].astype(float)
    except ValueError as exc:
        raise InputError(f"survey table {path}: column {cols[2]!r} must hold numbers ({exc})") from None
    targets = {str(v) for v in cfg["mapping"].values()}
    unmapped = sorted(set(frame["class"].str.strip()) - targets)
    if unmapped:
        raise InputError(f"survey table {path}: class(es) {', '.join(map(repr, unmapped))} are not covered by "
                         f"config evaluation.survey.mapping (which maps our classes to "
                         f"{', '.join(sorted(targets))})")
    lookup = {name: slug for slug, name in region_names.items()} | {slug: slug for slug in region_names}
    lookup |= {slugify(name): slug for slug, name in region_names.items()}
    frame["region"] = [lookup.get(r.strip(), lookup.get(slugify(r))) for r in frame["region"]]
    absent = sorted(set(region_names) - set(frame["region"].dropna()))
    if absent:
        raise InputError(f"survey table {path}: no rows for region(s) "
                         f"{', '.join(f'{region_names[s]} ({s})' for s in absent)} (column {cols[0]!r})")
    extra = int(frame["region"].isna().sum())
    if extra:
        log.info("survey table %s: %d row(s) of regions outside this run ignored", path, extra)
    frame["class"] = frame["class"].str.strip()
    return frame.dropna(subset=["region"]).groupby(["region", "class"], as_index=False)["area_km2"].sum()


def weighted_error(map_share: np.ndarray, survey_share: np.ndarray) -> float:
    """Σ_c w_c·|map_share_c − survey_share_c| with w = the survey shares."""
    return float((survey_share * np.abs(map_share - survey_share)).sum())


def compare_survey(cfg: dict, region_maps: Mapping[str, str], region_names: Mapping[str, str],
                   out_dir: str | Path) -> pd.DataFrame:
    """Write survey_shares.csv, survey_error.csv and survey.png into `out_dir`; return the errors."""
    from l2h.evaluation import report_figures as reportfigs

    survey = read_survey(cfg, region_names)
    classes = list(dict.fromkeys([str(v) for v in cfg["mapping"].values()] + sorted(set(survey["class"]))))
    rows = []
    for slug, path in sorted(region_maps.items()):
        km2, _ = class_areas_km2(path)
        ours = {c: 0.0 for c in classes}
        for key, target in cfg["mapping"].items():
            ours[str(target)] += km2[BY_KEY[key].code]
        theirs = survey[survey["region"] == slug].set_index("class")["area_km2"]
        rows += [(slug, c, float(theirs.get(c, 0.0)), ours[c]) for c in classes]
    table = pd.DataFrame(rows, columns=["region", "class", "survey_km2", "map_km2"])
    national = table.groupby("class", as_index=False, sort=False)[["survey_km2", "map_km2"]].sum()
    table = pd.concat([table, national.assign(region=NATIONAL)[table.columns]], ignore_index=True)
    for side in ("survey", "map"):
        total = table.groupby("region")[f"{side}_km2"].transform("sum")
        table[f"{side}_share"] = (table[f"{side}_km2"] / total).fillna(0.0)
    table["difference"] = table["map_share"] - table["survey_share"]
    errors = pd.DataFrame([
        (region, weighted_error(part["map_share"].to_numpy(), part["survey_share"].to_numpy()),
         part["survey_km2"].sum(), part["map_km2"].sum())
        for region, part in table.groupby("region", sort=False)],
        columns=["region", "weighted_error", "survey_km2", "map_km2"])
    out_dir = Path(out_dir)
    write_csv(out_dir / "survey_shares.csv", list(table.columns),
               [[region, cls, *(f"{v:.6f}" for v in values)]
                for region, cls, *values in table.itertuples(index=False, name=None)])
    write_csv(out_dir / "survey_error.csv", list(errors.columns),
               [[r.region, f"{r.weighted_error:.6f}", f"{r.survey_km2:.6f}", f"{r.map_km2:.6f}"]
                for r in errors.itertuples(index=False)])
    reportfigs.survey_figure(out_dir / "survey.png", table, list(errors["region"]), classes)
    for r in errors.itertuples(index=False):
        log.info("survey %s: weighted share error %.4f (survey %.3f km2, map %.3f km2)", r.region,
                 r.weighted_error, r.survey_km2, r.map_km2)
    return errors
