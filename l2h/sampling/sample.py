"""Choice of the training blocks (docs/method.md §5): about 30 % of the country's area whose class shares
match the national shares, with a minimum number of blocks in every region.

Input: one row per block with ``block_id``, ``region``, ``area_km2``, ``labelled_share`` (share of
the block's area with a training label) and ``share_<code>`` for codes 1..11 (shares of the block's
*labelled* area). :func:`select_training_blocks` returns a :class:`SelectionResult`.

The problem
-----------
Block i has labelled area ``a_i = area_km2_i * labelled_share_i`` and class area ``a_ic = a_i *
share_ic``. The overall share of class c is ``p_c = sum_i a_ic / sum_i a_i`` over **all** blocks
(the country). The share of the selection is ``sum x_i a_ic / sum x_i a_i``, a ratio; it is
linearised exactly as the deviation ``D_c = sum_i x_i (a_ic - p_c a_i)`` (zero if and only if the
selection has share p_c), measured in labelled-area units and divided by the target labelled area
``T = target_fraction * sum_i a_i`` so that it reads as a share. The objective is
``sum_c w_c |D_c|`` with ``w_c = 1 / sqrt(p_c)`` (classes with p_c == 0 are dropped), so a
percentage point of a rare class costs more than one of a common class. Constraints:

* only *eligible* blocks can be chosen: ``labelled_share >= min_labelled_share`` and, when
  ``train_regions`` is given, a region in that list;
* selected area within ``(target_fraction +- tolerance) * total area``, the total being the area
  of **all** blocks (SinoLC-1's 30 % is of the country), or of the blocks of ``train_regions``
  when training is restricted to them (e.g. spatial cross-validation: all of the training regions
  with ``target_fraction`` 1);
* at least ``min_blocks_per_region`` blocks in every region that has eligible blocks (with
  ``train_regions``: in every listed region).

Two methods
-----------
``exact`` (at most ``exact_max_blocks`` eligible blocks): the integer program itself, one binary
per block, solved by CBC (PuLP's bundled solver) with ``threads=1``. A seeded heuristic solution
(the iterated local search below, from a random start) is passed as a MIP start, so a solve stopped
by the node limit is never worse than the heuristic.

``strata`` (more eligible blocks; a 100,000-binary program is too slow for CBC): blocks are grouped
into strata (region x dominant class x labelled-share bin x full/edge block size); one integer
variable ``0..n_s`` per stratum counts the blocks taken from it, with the stratum's mean area and
mean deviation vector as coefficients, and the same constraints (area window shrunk by
``strata_area_margin`` of its half-width to leave room for the within-stratum spread). CBC solves
this small program; the counts are then filled with blocks drawn from each stratum in a seeded
random order, and a deterministic local search on the real blocks (best improving add / drop /
swap that keeps every constraint) removes the within-stratum error. Measured on this 2-core machine
(bench/sampling_national.py, synthetic tables, 34 regions, k = 5): 40,000 blocks in ~1 s and
100,000 in ~1-2 s, largest class-share difference < 1e-6 (the requirement is 1 percentage point);
the local search there makes ~15 moves.

Solver reporting
----------------
PuLP gives no access to CBC's best bound, so CBC writes its log (``logPath``) and the log is parsed:
the ``Result - ...`` line gives the status, ``Objective value:`` the incumbent and ``Lower bound:``
the best bound (CBC omits that line when it proves optimality: bound = objective). ``gap`` is the
*absolute* gap ``objective - bound`` of CBC's own problem, in objective units (weighted share
deviation), i.e. of the block program for ``exact`` and of the stratum program for ``strata``
(``details['gap_scope']`` says which); the relative gap is in ``details['gap_rel']`` but says little
here: the LP bound of this program is 0 (any fractional selection can match the shares), so the
relative gap is 1 whenever the optimum is not proven. CBC stops as soon as the incumbent is within
``gap_abs`` of the bound, or at its node limit (``exact_max_nodes`` / ``strata_max_nodes``).

On these programs CBC's own heuristics are weak (100 synthetic blocks: objective 0.067 after 40 s),
so the exact method first runs a seeded iterated local search (0.015 in 0.4 s on the same problem)
and hands its result to CBC as the MIP start. For a few dozen blocks CBC then proves optimality;
for hundreds to thousands it either stops at once because the start is already within ``gap_abs``
(5,000 synthetic blocks: 3 s) or runs to its node limit, rarely improving on the start.

Budgets and determinism
-----------------------
Every search stops on a count, never on the clock, so a seed gives the same selection on any machine:
the local search after ``max_moves`` improving moves (or when no move improves), the iterated local
search after ``heuristic_kicks`` rounds, CBC after ``exact_max_nodes`` / ``strata_max_nodes``
branch-and-bound nodes (or on optimality / ``gap_abs``, which are deterministic too). CBC runs with one
thread and fixed random seeds; columns enter the model in a seeded random order and carry a seeded
perturbation ``eps * u_i`` (u_i in [0, 1), total at most 1e-7, far below ``gap_abs``: it separates
exact ties only) -- the seed reaches the solution mainly through the column order, the MIP start and
the within-stratum draw.

The default budgets are sized from measurements on this 2-core machine: a local-search move costs
~50-60 ms at 100,000 blocks (a search from a deliberately bad start that used all 500 moves: 27 s), so
500 moves, with the ~1.5 s the rest of a national call takes, stay within the 60 s goal; the national
strata searches make ~15 moves, ~80 from a random start. A CBC node of the exact program costs ~1 ms
at 800 blocks and ~8 ms at 5,000. The exact method's 20,000 nodes let CBC prove the demo's optimum
(48 blocks: optimal in ~9 s; 1,000 nodes stopped at a gap of 0.04 with a class-share deviation of 0.29
points instead of 0.13) and cost at most ~3 min at 5,000 blocks; the strata program needs far fewer
(1,000). 100 kicks of the iterated local search take ~0.1-9 s up to 5,000 blocks.

``time_limit`` (seconds of wall clock for the whole call, default 600) is only a *safety stop*, far
above what these budgets take (the tests and bench/sampling_national.py never reach it): it ends a
search whose budgets were set too high for the machine. When it stops a search, a warning is logged
and ``details['safety_stop']`` names the stage, because the selection then depends on the machine's
speed.
"""

from __future__ import annotations

import json
import logging
import math
import re
import tempfile
import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from l2h.core.classes import BY_CODE, CLASS_CODES
from l2h.core.errors import ConfigError, InputError, L2HError
from l2h.core.io import atomic_path

log = logging.getLogger(__name__)

SHARE_COLUMNS = tuple(f"share_{c}" for c in CLASS_CODES)
REQUIRED_COLUMNS = ("block_id", "region", "area_km2", "labelled_share", *SHARE_COLUMNS)
FULL_BLOCK_KM2 = 16.384 ** 2  # a 16384 px block at 1 m: 268.435456 km²
_EPS_TOTAL = 1e-7  # the seeded tie-break perturbation sums to at most this
_SHARE_SUM_TOL = 0.01


class InfeasibleSelectionError(ConfigError):
    """The selection constraints cannot all be met; the message names the constraint."""


class _SafetyStop:
    """The wall-clock safety stop of one call (``time_limit``); see the module docstring.

    The searches stop on their iteration / node budgets; this is read only to end a search that
    the budgets would let run longer than ``seconds``. Each stage it stops is recorded in ``hit``
    and logged as a warning (once per stage): the result then depends on the machine's speed.
    """

    def __init__(self, seconds: float):
        self.seconds = float(seconds)
        self.deadline = time.monotonic() + self.seconds
        self.hit: list[str] = []

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def reached(self, stage: str) -> bool:
        """Whether the safety stop has passed; if so, record and log it for ``stage``."""
        if time.monotonic() < self.deadline:
            return False
        self.record(stage)
        return True

    def record(self, stage: str) -> None:
        if stage not in self.hit:
            self.hit.append(stage)
            log.warning("training-block selection: the safety stop time_limit=%gs ended the %s before its "
                        "budget; the selection now depends on this machine's speed (raise time_limit "
                        "or lower the budgets)", self.seconds, stage)


@dataclass
class SelectionResult:
    """The chosen training blocks and how well they match the overall class shares.

    ``objective`` is sum_c w_c |D_c| of the returned selection (share units, no tie-break term);
    ``bound``/``gap`` come from CBC's log (see the module docstring for their scope);
    ``shares`` has one row per class: class, name, overall_share, selected_share, difference
    (selected - overall), weight (NaN for dropped classes).
    """

    selected: list[str]
    status: str
    objective: float
    gap: float | None
    method: str
    seconds: float
    selected_fraction: float
    shares: pd.DataFrame
    bound: float | None = None
    selected_area_km2: float = 0.0
    total_area_km2: float = 0.0
    area_window_km2: tuple[float, float] = (0.0, 0.0)
    region_counts: dict[str, int] = field(default_factory=dict)
    details: dict = field(default_factory=dict)

    def max_share_deviation(self, min_share: float = 0.01) -> float:
        """Largest |selected - overall| share over the classes with overall share >= min_share."""
        rows = self.shares[self.shares["overall_share"] >= min_share]
        return float(rows["difference"].abs().max()) if len(rows) else 0.0

    def summary(self) -> dict:
        """A JSON-ready dict (everything but the block list)."""
        return dict(
            method=self.method, status=self.status, objective=self.objective, bound=self.bound, gap=self.gap,
            seconds=self.seconds, n_selected=len(self.selected), selected_fraction=self.selected_fraction,
            selected_area_km2=self.selected_area_km2, total_area_km2=self.total_area_km2,
            area_window_km2=list(self.area_window_km2),
            max_share_deviation_classes_ge_1pct=self.max_share_deviation(0.01),
            region_counts=self.region_counts,
            shares=[{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
                    for row in self.shares.to_dict("records")],
            details=self.details,
        )


# ----------------------------------------------------------------------------------------------
# Input checks and the problem's arrays
# ----------------------------------------------------------------------------------------------


@dataclass
class _Problem:
    ids: np.ndarray            # block_id of the eligible blocks (str)
    region: np.ndarray         # region index (into region_names) of the eligible blocks
    region_names: list[str]
    required: np.ndarray       # minimum count per region index
    area: np.ndarray           # km², eligible blocks
    share_ls: np.ndarray       # labelled_share, eligible blocks
    dominant: np.ndarray       # dominant class index (0..10) of the eligible blocks
    B: np.ndarray              # (n, C_active) deviation vectors / T
    w: np.ndarray              # (C_active,) weights
    active: list[int]          # class codes in the objective
    lo: float                  # area window, km²
    hi: float
    total_area: float
    # for the shares table (all blocks)
    overall: np.ndarray        # (11,) overall shares
    class_area: np.ndarray     # (n, 11) labelled class area of the eligible blocks
    weights_all: np.ndarray    # (11,) weight or NaN


def _check_parameters(target_fraction, tolerance, min_blocks_per_region, min_labelled_share, time_limit,
                      exact_max_blocks, budgets: Mapping[str, int | None]) -> None:
    def num(name, value):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not math.isfinite(float(value)):
            raise ConfigError(f"'{name}' must be a finite number, got {value!r}")
        return float(value)

    if not 0 < num("target_fraction", target_fraction) <= 1:
        raise ConfigError(f"'target_fraction' must be in (0, 1], got {target_fraction!r}")
    if not 0 <= num("tolerance", tolerance) < 1:
        raise ConfigError(f"'tolerance' must be in [0, 1), got {tolerance!r}")
    if not 0 <= num("min_labelled_share", min_labelled_share) <= 1:
        raise ConfigError(f"'min_labelled_share' must be in [0, 1], got {min_labelled_share!r}")
    if num("time_limit", time_limit) <= 0:
        raise ConfigError(f"'time_limit' must be positive (seconds, a safety stop), got {time_limit!r}")
    ints = {"min_blocks_per_region": min_blocks_per_region, "exact_max_blocks": exact_max_blocks, **budgets}
    for name, value in ints.items():
        if value is None and name == "exact_max_nodes":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ConfigError(f"'{name}' must be a non-negative integer, got {value!r}")


def _check_table(blocks: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(blocks, pd.DataFrame):
        raise InputError(f"the block table must be a pandas DataFrame, got {type(blocks).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in blocks.columns]
    if missing:
        raise InputError(f"the block table lacks the column(s) {', '.join(missing)} "
                         f"(needs {', '.join(REQUIRED_COLUMNS)})")
    if blocks.empty:
        raise InputError("the block table has no rows")
    df = blocks[list(REQUIRED_COLUMNS)].copy()
    df["block_id"] = df["block_id"].astype(str)
    df["region"] = df["region"].astype(str)
    dup = df["block_id"][df["block_id"].duplicated()]
    if len(dup):
        raise InputError(f"block_id must be unique; repeated: {', '.join(dup.unique()[:5])}")
    for col in ("area_km2", "labelled_share", *SHARE_COLUMNS):
        try:
            df[col] = pd.to_numeric(df[col]).astype(float)
        except (TypeError, ValueError) as exc:
            raise InputError(f"column {col} is not numeric: {exc}") from None
        bad = df["block_id"][~np.isfinite(df[col].to_numpy())]
        if len(bad):
            raise InputError(f"column {col} has missing or infinite values (blocks {', '.join(bad[:5])})")
    bad = df["block_id"][df["area_km2"] <= 0]
    if len(bad):
        raise InputError(f"area_km2 must be positive (blocks {', '.join(bad[:5])})")
    bad = df["block_id"][(df["labelled_share"] < 0) | (df["labelled_share"] > 1 + 1e-9)]
    if len(bad):
        raise InputError(f"labelled_share must be in [0, 1] (blocks {', '.join(bad[:5])})")
    shares = df[list(SHARE_COLUMNS)].to_numpy()
    if (shares < 0).any():
        raise InputError("class shares (share_<code>) must not be negative")
    sums = shares.sum(axis=1)
    labelled = df["labelled_share"].to_numpy() > 0
    bad = labelled & (np.abs(sums - 1) > _SHARE_SUM_TOL)
    if bad.any():
        ex = df["block_id"].to_numpy()[bad][:5]
        raise InputError(f"the class shares of a labelled block must sum to 1 (off by more than "
                         f"{_SHARE_SUM_TOL}): blocks {', '.join(ex)}")
    norm = np.where(sums > 0, sums, 1.0)
    df[list(SHARE_COLUMNS)] = shares / norm[:, None]
    df["labelled_share"] = df["labelled_share"].clip(0, 1)
    return df


def _build_problem(df: pd.DataFrame, target_fraction, tolerance, k, min_labelled_share, train_regions,
                   class_weights) -> tuple[_Problem, dict]:
    area_all = df["area_km2"].to_numpy()
    ls_all = df["labelled_share"].to_numpy()
    shares_all = df[list(SHARE_COLUMNS)].to_numpy()
    lab_all = area_all * ls_all
    class_area_all = lab_all[:, None] * shares_all
    total_lab = lab_all.sum()
    if total_lab <= 0:
        raise InputError("no block has a labelled area (labelled_share is 0 everywhere)")
    overall = class_area_all.sum(axis=0) / total_lab
    known = sorted(df["region"].unique())
    regions_all = df["region"].to_numpy()
    eligible = ls_all >= min_labelled_share
    in_scope = np.ones(len(df), bool)  # the area the target fraction is of
    if train_regions is not None:
        if isinstance(train_regions, str) or not isinstance(train_regions, Iterable):
            raise ConfigError(f"'train_regions' must be a list of region names, got {train_regions!r}")
        train_regions = [str(r) for r in train_regions]
        if not train_regions:
            raise ConfigError("'train_regions' is empty: name at least one region (or leave it out for all)")
        unknown = sorted(set(train_regions) - set(known))
        if unknown:
            raise InfeasibleSelectionError(
                f"train_regions names unknown region(s) {', '.join(unknown)}; the block table has "
                f"{len(known)} regions: {', '.join(known[:40])}{' ...' if len(known) > 40 else ''}")
        in_scope = np.isin(regions_all, train_regions)
        eligible &= in_scope
    total_area = float(area_all[in_scope].sum())
    lo = max(0.0, (target_fraction - tolerance) * total_area)
    hi = min(total_area, (target_fraction + tolerance) * total_area)
    where = "" if train_regions is None else " in train_regions"
    if not eligible.any():
        raise InfeasibleSelectionError(
            f"no eligible block: none of the {len(df)} blocks{where} has labelled_share >= "
            f"min_labelled_share={min_labelled_share:g}")

    elig_regions = regions_all[eligible]
    region_names = sorted(set(train_regions)) if train_regions is not None else sorted(set(elig_regions))
    counts = pd.Series(elig_regions).value_counts()
    for r in region_names:
        n = int(counts.get(r, 0))
        if n < k:
            raise InfeasibleSelectionError(
                f"region {r} has only {n} eligible block{'s' if n != 1 else ''} but min_blocks_per_region is "
                f"{k} (eligible: labelled_share >= min_labelled_share={min_labelled_share:g})")

    area = area_all[eligible]
    elig_area = float(area.sum())
    if elig_area < lo:
        raise InfeasibleSelectionError(
            f"target area not reachable: the eligible blocks{where} cover {elig_area:,.1f} km² "
            f"({elig_area / total_area:.1%} of the total {total_area:,.1f} km²) but target_fraction - "
            f"tolerance = {target_fraction:g} - {tolerance:g} needs at least {lo:,.1f} km²")
    region_idx = np.searchsorted(region_names, elig_regions)
    if k > 0:
        min_area = 0.0
        for r_i in range(len(region_names)):
            a_r = np.sort(area[region_idx == r_i])
            min_area += a_r[:k].sum()
        if min_area > hi * (1 + 1e-12):
            raise InfeasibleSelectionError(
                f"min_blocks_per_region={k} needs at least {min_area:,.1f} km² (the {k} smallest eligible "
                f"blocks of each of the {len(region_names)} regions), more than the upper bound "
                f"(target_fraction + tolerance) x total = ({target_fraction:g} + {tolerance:g}) x "
                f"{total_area:,.1f} = {hi:,.1f} km²")
    _check_window_reachable(area, lo, hi, k * len(region_names), target_fraction, tolerance, total_area)

    if class_weights is None:
        weights_all = np.where(overall > 0, 1 / np.sqrt(np.where(overall > 0, overall, 1)), np.nan)
    else:
        if not isinstance(class_weights, Mapping):
            raise ConfigError(f"'class_weights' must map class codes to weights, got {class_weights!r}")
        bad = [c for c in class_weights if int(c) not in BY_CODE]
        if bad:
            raise ConfigError(f"'class_weights' names unknown class code(s) {bad}; codes are {list(CLASS_CODES)}")
        weights_all = np.array([float(class_weights.get(c, class_weights.get(str(c), 0.0))) for c in CLASS_CODES])
        if (weights_all < 0).any() or not np.isfinite(weights_all).all():
            raise ConfigError("'class_weights' must be finite and non-negative")
        weights_all = np.where(overall > 0, weights_all, np.nan)
    active_mask = (overall > 0) & (np.nan_to_num(weights_all) > 0)
    if not active_mask.any():
        raise ConfigError("no class has both a positive overall share and a positive weight")

    T = target_fraction * max(float(lab_all[in_scope].sum()), 1e-12)
    class_area = class_area_all[eligible]
    lab = lab_all[eligible]
    B = (class_area[:, active_mask] - overall[active_mask][None, :] * lab[:, None]) / T
    problem = _Problem(
        ids=df["block_id"].to_numpy()[eligible], region=region_idx, region_names=region_names,
        required=np.full(len(region_names), k, dtype=np.int64), area=area, share_ls=ls_all[eligible],
        dominant=np.argmax(df[list(SHARE_COLUMNS)].to_numpy()[eligible], axis=1),
        B=np.ascontiguousarray(B), w=weights_all[active_mask],
        active=[c for c, m in zip(CLASS_CODES, active_mask) if m],
        lo=lo, hi=hi, total_area=total_area, overall=overall, class_area=class_area, weights_all=weights_all)
    info = dict(n_blocks=len(df), n_eligible=int(eligible.sum()), n_regions=len(region_names),
                regions_without_eligible_blocks=sorted(set(known) - set(elig_regions)) if train_regions is None else [],
                target_labelled_area_km2=float(T))
    return problem, info


def _check_window_reachable(area, lo, hi, min_count, target_fraction, tolerance, total_area) -> None:
    """A necessary condition: some number m of blocks can total an area inside [lo, hi].

    m blocks total between the sum of the m smallest and of the m largest areas; when no such
    interval meets the window (always the case for equal-area blocks whose multiples miss it), no
    selection exists.
    """
    s = np.sort(area)
    smallest = np.concatenate([[0.0], np.cumsum(s)])
    largest = np.concatenate([[0.0], np.cumsum(s[::-1])])
    m = np.arange(len(s) + 1)
    ok = (m >= min_count) & (smallest <= hi * (1 + 1e-12)) & (largest >= lo * (1 - 1e-12))
    if ok.any():
        return
    below = largest[(largest < lo) & (m >= min_count)]
    above = smallest[(smallest > hi) & (m >= min_count)]
    near = []
    if len(below):
        near.append(f"{below.max():,.1f}")
    if len(above):
        near.append(f"{above.min():,.1f}")
    raise InfeasibleSelectionError(
        f"area window not reachable: no number of eligible blocks totals an area within "
        f"[{lo:,.1f}, {hi:,.1f}] km² (target_fraction +- tolerance = {target_fraction:g} +- {tolerance:g} "
        f"of {total_area:,.1f} km²); the nearest reachable totals are {' and '.join(near) or 'none'} km² "
        f"-- widen the tolerance")


# ----------------------------------------------------------------------------------------------
# Objective, heuristics
# ----------------------------------------------------------------------------------------------


def _objective(D: np.ndarray, w: np.ndarray) -> np.ndarray:
    return np.abs(D) @ w


def _random_start(p: _Problem, rng: np.random.Generator) -> np.ndarray | None:
    """K random blocks per region, then random blocks up to the middle of the window."""
    n = len(p.area)
    order = rng.permutation(n)
    sel = np.zeros(n, dtype=bool)
    taken = np.zeros(len(p.region_names), dtype=np.int64)
    for i in order:
        r = p.region[i]
        if taken[r] < p.required[r]:
            sel[i] = True
            taken[r] += 1
    S = p.area[sel].sum()
    mid = (p.lo + p.hi) / 2
    for i in order:
        if S >= mid:
            break
        if not sel[i] and S + p.area[i] <= p.hi:
            sel[i] = True
            S += p.area[i]
    return sel


def _local_search(p: _Problem, sel: np.ndarray, max_moves: int, stop: _SafetyStop,
                  n_candidates: int = 48, full_swap_pairs: int = 200_000) -> tuple[np.ndarray, dict]:
    """Best-improvement local search over add / drop / swap moves that keep (or restore) feasibility.

    First repairs the constraints (area below/above the window, regions short of their minimum) by
    the least harmful add/drop, then applies the best improving move until none improves or
    ``max_moves`` moves are made (the safety ``stop`` ends it earlier only on a far too slow
    machine). Adds and drops are evaluated exactly for every block; swaps for the pairs of the
    ``n_candidates`` best drops x best adds (by exact single-move value and by the linearised
    effect). Deterministic: ties go to the lowest index.
    """
    sel = sel.copy()
    B, w, area, region = p.B, p.w, p.area, p.region
    D = B[sel].sum(axis=0)
    S = float(area[sel].sum())
    cnt = np.bincount(region[sel], minlength=len(p.region_names))
    moves = repairs = 0
    tol = 1e-9 * max(p.total_area, 1.0)
    lo, hi = p.lo - tol, p.hi + tol

    def apply(add: int | None, drop: int | None):
        nonlocal D, S
        if add is not None:
            sel[add] = True
            D = D + B[add]
            S += area[add]
            cnt[region[add]] += 1
        if drop is not None:
            sel[drop] = False
            D = D - B[drop]
            S -= area[drop]
            cnt[region[drop]] -= 1

    # 1. repair
    for _ in range(len(area) + 1):
        short = np.flatnonzero(cnt < p.required)
        uns = np.flatnonzero(~sel)
        if len(short):
            cand = uns[np.isin(region[uns], short)]
            if not len(cand):
                break
            f = _objective(D + B[cand], w) + 1e3 * np.maximum(S + area[cand] - hi, 0) / max(p.hi, 1)
            apply(int(cand[np.argmin(f)]), None)
        elif S < lo:
            cand = uns[S + area[uns] <= hi]
            if not len(cand):  # every single block overshoots: take the smallest
                cand = uns[[np.argmin(area[uns])]] if len(uns) else uns
            if not len(cand):
                break
            apply(int(cand[np.argmin(_objective(D + B[cand], w))]), None)
        elif S > hi:
            s_idx = np.flatnonzero(sel)
            cand = s_idx[cnt[region[s_idx]] > p.required[region[s_idx]]]
            if not len(cand):
                break
            ok = S - area[cand] >= lo
            cand = cand[ok] if ok.any() else cand[[np.argmax(area[cand])]]
            apply(None, int(cand[np.argmin(_objective(D - B[cand], w))]))
        else:
            break
        repairs += 1

    # 2. improve
    while moves < max_moves and not stop.reached("local search"):
        cur = float(_objective(D, w))
        if cur <= 1e-12:
            break
        s_idx = np.flatnonzero(sel)
        u_idx = np.flatnonzero(~sel)
        f_add = _objective(D[None, :] + B[u_idx], w) if len(u_idx) else np.empty(0)
        f_drop = _objective(D[None, :] - B[s_idx], w) if len(s_idx) else np.empty(0)
        ok_add = S + area[u_idx] <= hi
        ok_drop = (S - area[s_idx] >= lo) & (cnt[region[s_idx]] > p.required[region[s_idx]])
        best_val, best = cur - 1e-12, None
        if ok_add.any():
            j = int(np.argmin(np.where(ok_add, f_add, np.inf)))
            if f_add[j] < best_val:
                best_val, best = float(f_add[j]), (int(u_idx[j]), None)
        if ok_drop.any():
            i = int(np.argmin(np.where(ok_drop, f_drop, np.inf)))
            if f_drop[i] < best_val:
                best_val, best = float(f_drop[i]), (None, int(s_idx[i]))
        # swaps: candidates by exact single-move value and by the linearised effect
        if len(s_idx) and len(u_idx):
            if len(s_idx) * len(u_idx) <= full_swap_pairs:
                add, drop = u_idx, s_idx
            else:
                g = w * np.sign(D)
                m = n_candidates
                lin_add, lin_drop = B[u_idx] @ g, B[s_idx] @ g
                cj = np.unique(np.concatenate([_smallest(f_add, m), _smallest(lin_add, m)]))
                ci = np.unique(np.concatenate([_smallest(f_drop, m), _smallest(-lin_drop, m)]))
                add, drop = u_idx[cj], s_idx[ci]
            newD = D[None, None, :] - B[drop][:, None, :] + B[add][None, :, :]
            f_sw = np.abs(newD) @ w
            newS = S - area[drop][:, None] + area[add][None, :]
            ok = (newS >= lo) & (newS <= hi)
            same = region[drop][:, None] == region[add][None, :]
            ok &= same | (cnt[region[drop]] > p.required[region[drop]])[:, None]
            f_sw = np.where(ok, f_sw, np.inf)
            flat = int(np.argmin(f_sw))
            a, b = divmod(flat, f_sw.shape[1])
            if f_sw[a, b] < best_val:
                best_val, best = float(f_sw[a, b]), (int(add[b]), int(drop[a]))
        if best is None:
            break
        apply(*best)
        moves += 1
    return sel, dict(local_search_moves=moves, repair_moves=repairs)


def _iterated_local_search(p: _Problem, rng: np.random.Generator, start: np.ndarray, n_kicks: int,
                           max_moves: int, stop: _SafetyStop) -> tuple[np.ndarray, dict]:
    """Local search, then ``n_kicks`` rounds of: 2-6 random same-region swaps of the best selection,
    local search again, keep it if feasible and better (a fixed count, so deterministic; only the
    safety ``stop`` could cut it short). Used as CBC's MIP start: on these problems it beats CBC's
    own heuristics by far (e.g. 100 blocks: 0.015 in 0.4 s against CBC's 0.067 after 40 s)."""
    best, info = _local_search(p, start, max_moves, stop)
    best_f = float(_objective(p.B[best].sum(0), p.w)) if _feasible(p, best) else math.inf
    kicks = improved = 0
    for _ in range(n_kicks):
        if best_f <= 1e-12 or stop.reached("iterated local search"):
            break
        cur = best.copy()
        for _ in range(int(rng.integers(2, 7))):
            s_idx = np.flatnonzero(cur)
            if not len(s_idx):
                break
            i = int(s_idx[rng.integers(len(s_idx))])
            cand = np.flatnonzero(~cur & (p.region == p.region[i]))
            if not len(cand):
                continue
            cur[i] = False
            cur[int(cand[rng.integers(len(cand))])] = True
        cur, _ = _local_search(p, cur, max_moves, stop)
        kicks += 1
        if _feasible(p, cur):
            f = float(_objective(p.B[cur].sum(0), p.w))
            if f < best_f - 1e-15:
                best, best_f = cur, f
                improved += 1
    return best, dict(info, kicks=kicks, improving_kicks=improved)


def _smallest(values: np.ndarray, m: int) -> np.ndarray:
    if len(values) <= m:
        return np.arange(len(values))
    idx = np.argpartition(values, m - 1)[:m]
    return np.sort(idx)


def _feasible(p: _Problem, sel: np.ndarray) -> bool:
    S = p.area[sel].sum()
    tol = 1e-9 * max(p.total_area, 1.0)
    cnt = np.bincount(p.region[sel], minlength=len(p.region_names))
    return bool(p.lo - tol <= S <= p.hi + tol and (cnt >= p.required).all())


# ----------------------------------------------------------------------------------------------
# CBC
# ----------------------------------------------------------------------------------------------

_RESULT_STATUS = (
    ("optimal solution found (within gap tolerance)", "optimal_within_gap"),
    ("optimal solution found", "optimal"),
    ("stopped on time", "time_limit"),
    ("stopped on node", "node_limit"),
    ("stopped on iterations", "iteration_limit"),
    ("stopped on gap", "optimal_within_gap"),
    ("infeasible", "infeasible"),
    ("unbounded", "unbounded"),
)


def parse_cbc_log(text: str) -> dict:
    """Status, incumbent objective and best bound from a CBC log (as written with ``logPath``).

    Returns {'status', 'objective', 'bound', 'gap' (objective - bound), 'gap_rel' (gap / |objective|),
    'result_line'}; values are None when absent. CBC omits 'Lower bound:' when it proves
    optimality; the bound is then the objective.
    """
    out: dict = dict(status=None, objective=None, bound=None, gap=None, gap_rel=None, result_line=None)
    m = re.search(r"^Result - (.+)$", text, re.M)
    if m:
        line = m.group(1).strip()
        out["result_line"] = line
        low = line.lower()
        for key, status in _RESULT_STATUS:
            if key in low:
                out["status"] = status
                break
        else:
            out["status"] = low.replace(" ", "_")
    for key, label in (("objective", "Objective value"), ("bound", "Lower bound")):
        m = re.search(rf"^{label}:\s+(\S+)", text, re.M)
        try:
            out[key] = float(m.group(1)) if m else out[key]
        except ValueError:
            pass
    if out["objective"] is not None:
        if out["bound"] is None and out["status"] in ("optimal", "optimal_within_gap"):
            out["bound"] = out["objective"]
        if out["bound"] is not None:
            out["gap"] = max(0.0, out["objective"] - out["bound"])
            out["gap_rel"] = out["gap"] / max(abs(out["objective"]), 1e-9)
    return out


def _var(prob, name: str, low=None, up=None, cat: str = "Continuous"):
    """A PuLP variable attached to ``prob`` (PuLP >= 3.3 deprecates the bare constructor)."""
    import pulp

    if hasattr(prob, "add_variable"):
        return prob.add_variable(name, low, up, cat=cat)
    return pulp.LpVariable(name, low, up, cat=cat)


def _solve_cbc(prob, stop: _SafetyStop, gap_abs: float, warm: bool, max_nodes: int | None, stage: str) -> dict:
    """Solve with CBC, single-threaded with fixed seeds, stopping on optimality, ``gap_abs`` or
    ``max_nodes`` (deterministic); CBC's own time limit is the rest of the safety stop, measured on
    the wall clock, which is recorded (and logged) as a safety stop of ``stage`` when it is hit."""
    import pulp

    with tempfile.TemporaryDirectory(prefix="l2h_cbc_") as tmp:
        log_path = Path(tmp) / "cbc.log"
        with warnings.catch_warnings():  # PuLP >= 3.3 warns that PULP_CBC_CMD goes away in 4.0
            warnings.simplefilter("ignore", DeprecationWarning)
            solver = pulp.PULP_CBC_CMD(msg=False, timeLimit=max(1, math.ceil(stop.remaining())), threads=1,
                                       gapAbs=gap_abs, warmStart=warm, logPath=str(log_path),
                                       maxNodes=max_nodes,
                                       options=["randomCbcSeed 1", "randomSeed 1", "timeMode elapsed"])
        try:
            prob.solve(solver)
        except pulp.PulpSolverError as exc:
            raise L2HError(f"CBC failed: {exc}") from None
        text = log_path.read_text(errors="replace") if log_path.exists() else ""
    info = parse_cbc_log(text)
    info["pulp_status"] = pulp.LpStatus.get(prob.status, str(prob.status))
    info["pulp_sol_status"] = prob.sol_status
    if info["status"] is None:
        info["status"] = info["pulp_status"].lower().replace(" ", "_")
    if info["status"] == "time_limit":
        stop.record(stage)
    return info


def _infeasible_message(what: str, p: _Problem, params: dict) -> str:
    return (f"CBC reports the {what} infeasible: no selection meets the area window "
            f"[{p.lo:,.1f}, {p.hi:,.1f}] km² (target_fraction={params['target_fraction']:g} +- "
            f"tolerance={params['tolerance']:g} of {p.total_area:,.1f} km²) together with "
            f"min_blocks_per_region={params['min_blocks_per_region']} in {len(p.region_names)} regions, "
            f"using the {len(p.area)} eligible blocks (min_labelled_share={params['min_labelled_share']:g}"
            f"{', train_regions=' + str(params['train_regions']) if params['train_regions'] is not None else ''})"
            f" -- widen the tolerance or lower min_blocks_per_region")


def _solve_exact(p: _Problem, rng: np.random.Generator, stop: _SafetyStop, gap_abs: float, params: dict):
    import pulp

    n, C = p.B.shape
    if params["warm_start"]:
        start = _random_start(p, rng)
        heur, ls_info = _iterated_local_search(p, rng, start, params["heuristic_kicks"], params["max_moves"], stop)
        heur_ok = _feasible(p, heur)
    else:
        heur, ls_info, heur_ok = None, {}, False
    order = rng.permutation(n)  # column order: the seed's way into CBC's branching
    eps = rng.random(n) * (_EPS_TOTAL / max(n, 1))

    prob = pulp.LpProblem("training_blocks", pulp.LpMinimize)
    x = {int(i): _var(prob, f"x{int(i)}", cat="Binary") for i in order}
    d = [_var(prob, f"d{c}", low=0) for c in range(C)]
    prob += pulp.lpSum(float(p.w[c]) * d[c] for c in range(C)) + pulp.LpAffineExpression(
        (x[i], float(eps[i])) for i in order)
    area_expr = pulp.LpAffineExpression((x[i], float(p.area[i])) for i in order)
    prob += area_expr >= p.lo, "area_min"
    prob += area_expr <= p.hi, "area_max"
    for r in range(len(p.region_names)):
        if p.required[r] > 0:
            members = [i for i in order if p.region[i] == r]
            prob += pulp.lpSum(x[i] for i in members) >= int(p.required[r]), f"region_{r}"
    for c in range(C):
        expr = pulp.LpAffineExpression((x[i], float(p.B[i, c])) for i in order if p.B[i, c] != 0)
        prob += d[c] - expr >= 0, f"dev_pos_{c}"
        prob += d[c] + expr >= 0, f"dev_neg_{c}"
    if heur_ok:
        D = p.B[heur].sum(axis=0)
        for i in order:
            x[i].setInitialValue(1 if heur[i] else 0)
        for c in range(C):
            d[c].setInitialValue(float(abs(D[c])))
    info = _solve_cbc(prob, stop, gap_abs, warm=heur_ok, max_nodes=params["exact_max_nodes"], stage="CBC solve")
    if info["status"] == "infeasible":
        raise InfeasibleSelectionError(_infeasible_message("block selection problem", p, params))
    values = np.array([x[i].value() if x[i].value() is not None else np.nan for i in range(n)])
    if np.isnan(values).any() or info["pulp_sol_status"] not in (1, 2):
        if heur_ok:
            info["status"] = f"{info['status']}_heuristic"
            return heur, info, ls_info
        raise L2HError(f"CBC found no feasible selection within exact_max_nodes={params['exact_max_nodes']} "
                       f"nodes and the safety stop time_limit={params['time_limit']:g} s "
                       f"(CBC: {info['result_line'] or info['pulp_status']}); raise exact_max_nodes or time_limit")
    sel = values > 0.5
    heur_f = float(_objective(p.B[heur].sum(0), p.w)) if heur_ok else None
    ls_info = dict(ls_info, heuristic_objective=heur_f)
    if not _feasible(p, sel):  # CBC's tolerances; should not happen
        if heur_ok:
            info["status"] = f"{info['status']}_heuristic"
            return heur, info, ls_info
        raise L2HError("CBC returned a selection violating the constraints")
    if heur_ok and heur_f < float(_objective(p.B[sel].sum(0), p.w)) - 2 * _EPS_TOTAL:  # CBC dropped the start
        info["status"] = f"{info['status']}_heuristic"
        return heur, info, ls_info
    return sel, info, ls_info


def _strata(p: _Problem, n_share_bins: int, min_labelled_share: float) -> np.ndarray:
    """Stratum index per eligible block: region x dominant class x labelled-share bin x full/edge."""
    edges = np.linspace(min_labelled_share, 1.0, n_share_bins + 1)[1:-1]
    ls_bin = np.searchsorted(edges, p.share_ls, side="right")
    full = p.area >= 0.95 * np.median(p.area)
    key = ((p.region.astype(np.int64) * len(CLASS_CODES) + p.dominant) * n_share_bins + ls_bin) * 2 + full
    _, stratum = np.unique(key, return_inverse=True)
    return stratum.ravel()


def _solve_strata(p: _Problem, rng: np.random.Generator, stop: _SafetyStop, gap_abs: float, params: dict,
                  n_share_bins: int, strata_area_margin: float, strata_max_nodes: int):
    import pulp

    t0 = time.perf_counter()
    stratum = _strata(p, n_share_bins, params["min_labelled_share"])
    n_s = int(stratum.max()) + 1
    size = np.bincount(stratum, minlength=n_s)
    mean_area = np.bincount(stratum, weights=p.area, minlength=n_s) / size
    mean_B = np.stack([np.bincount(stratum, weights=p.B[:, c], minlength=n_s) for c in range(p.B.shape[1])], 1)
    mean_B /= size[:, None]
    s_region = np.zeros(n_s, dtype=np.int64)
    s_region[stratum] = p.region
    half = (p.hi - p.lo) / 2
    lo_s, hi_s = p.lo + strata_area_margin * half, p.hi - strata_area_margin * half

    order = rng.permutation(n_s)
    eps = rng.random(n_s) * (_EPS_TOTAL / max(len(p.area), 1))
    C = p.B.shape[1]
    prob = pulp.LpProblem("training_strata", pulp.LpMinimize)
    y = {int(s): _var(prob, f"y{int(s)}", 0, int(size[s]), cat="Integer") for s in order}
    d = [_var(prob, f"d{c}", low=0) for c in range(C)]
    prob += pulp.lpSum(float(p.w[c]) * d[c] for c in range(C)) + pulp.LpAffineExpression(
        (y[s], float(eps[s])) for s in order)
    area_expr = pulp.LpAffineExpression((y[s], float(mean_area[s])) for s in order)
    prob += area_expr >= lo_s, "area_min"
    prob += area_expr <= hi_s, "area_max"
    for r in range(len(p.region_names)):
        if p.required[r] > 0:
            prob += pulp.lpSum(y[s] for s in order if s_region[s] == r) >= int(p.required[r]), f"region_{r}"
    for c in range(C):
        expr = pulp.LpAffineExpression((y[s], float(mean_B[s, c])) for s in order if mean_B[s, c] != 0)
        prob += d[c] - expr >= 0, f"dev_pos_{c}"
        prob += d[c] + expr >= 0, f"dev_neg_{c}"
    build_s = time.perf_counter() - t0
    info = _solve_cbc(prob, stop, gap_abs, warm=False, max_nodes=strata_max_nodes, stage="CBC stratum solve")
    if info["status"] == "infeasible" and strata_area_margin > 0:
        # the shrunk window may be what is infeasible: retry with the full one
        prob.constraints["area_min"].constant = -p.lo
        prob.constraints["area_max"].constant = -p.hi
        info = _solve_cbc(prob, stop, gap_abs, warm=False, max_nodes=strata_max_nodes, stage="CBC stratum solve")
    if info["status"] == "infeasible":
        raise InfeasibleSelectionError(_infeasible_message("stratum problem", p, params))
    counts = np.array([y[s].value() if y[s].value() is not None else np.nan for s in range(n_s)])
    if np.isnan(counts).any():
        raise L2HError(f"CBC found no feasible stratum allocation within strata_max_nodes={strata_max_nodes} "
                       f"nodes and the safety stop time_limit={params['time_limit']:g} s "
                       f"(CBC: {info['result_line'] or info['pulp_status']}); raise strata_max_nodes or time_limit")
    counts = np.clip(np.rint(counts), 0, size).astype(np.int64)
    # fill each stratum's count with blocks in a seeded random order
    key = rng.random(len(p.area))
    idx = np.lexsort((key, stratum))
    first = np.concatenate([[0], np.cumsum(size)[:-1]])
    rank = np.empty(len(p.area), dtype=np.int64)
    rank[idx] = np.arange(len(p.area)) - first[stratum[idx]]
    sel = rank < counts[stratum]
    before = float(_objective(p.B[sel].sum(0), p.w))
    sel, ls_info = _local_search(p, sel, params["max_moves"], stop)
    if not _feasible(p, sel):
        raise L2HError("the stratum allocation could not be repaired into a selection meeting the area "
                       f"window [{p.lo:,.1f}, {p.hi:,.1f}] km² and min_blocks_per_region="
                       f"{params['min_blocks_per_region']}; raise strata_area_margin or use the exact method")
    ls_info.update(n_strata=n_s, strata_build_seconds=build_s, strata_objective=info["objective"],
                   objective_before_local_search=before)
    return sel, info, ls_info


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------


def select_training_blocks(
    blocks: pd.DataFrame,
    target_fraction: float = 0.30,
    tolerance: float = 0.02,
    min_blocks_per_region: int = 1,
    min_labelled_share: float = 0.2,
    train_regions: list[str] | None = None,
    seed: int = 0,
    time_limit: float = 600,
    exact_max_blocks: int = 5000,
    *,
    class_weights: Mapping[int, float] | None = None,
    gap_abs: float = 1e-4,
    n_share_bins: int = 3,
    strata_area_margin: float = 0.8,
    strata_max_nodes: int = 1000,
    strata_gap_abs: float = 1e-3,
    heuristic_kicks: int = 100,
    max_moves: int = 500,
    exact_max_nodes: int | None = 20000,
    warm_start: bool = True,
) -> SelectionResult:
    """Choose the training blocks (see the module docstring for the program, the two methods and the
    budgets).

    ``exact_max_blocks``: at most this many *eligible* blocks -> exact per-block program, otherwise
    strata. ``time_limit``: a wall-clock *safety stop* in seconds for the whole call, far above what the
    budgets below take; if it ends a search, a warning is logged, ``details['safety_stop']`` names the
    stage and the selection depends on the machine's speed. ``gap_abs``: CBC stops when its incumbent is
    within this of its bound (objective units: weighted share deviation; 1e-4 ~ 0.01 percentage point).
    ``class_weights``: {code: weight} replacing 1/sqrt(p_c). Strata only: ``n_share_bins``
    labelled-share bins, ``strata_area_margin`` (fraction of the window's half-width kept free in the
    stratum program), ``strata_max_nodes`` (CBC node limit), ``strata_gap_abs`` (CBC's absolute gap on
    the stratum program: the within-stratum draw adds an error of ~2e-3 that the local search removes,
    so a finer stratum optimum buys nothing). ``max_moves``: improving moves per local search (both
    methods); ``heuristic_kicks``: rounds of the exact method's iterated local search;
    ``exact_max_nodes``: CBC node limit of the exact method (None: none, so CBC stops only on
    optimality, gap or the safety stop); ``warm_start=False``: no heuristic, CBC alone (exact method).
    The budgets are counts, so the same seed gives the same selection on any machine.

    Raises ConfigError (InfeasibleSelectionError) naming the constraint that cannot be met.
    """
    t0 = time.perf_counter()
    budgets = dict(strata_max_nodes=strata_max_nodes, heuristic_kicks=heuristic_kicks, max_moves=max_moves,
                   exact_max_nodes=exact_max_nodes)
    _check_parameters(target_fraction, tolerance, min_blocks_per_region, min_labelled_share, time_limit,
                      exact_max_blocks, budgets)
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise ConfigError(f"'seed' must be an integer, got {seed!r}")
    if not (isinstance(gap_abs, (int, float)) and gap_abs >= 0):
        raise ConfigError(f"'gap_abs' must be a non-negative number, got {gap_abs!r}")
    if not (isinstance(n_share_bins, int) and n_share_bins >= 1):
        raise ConfigError(f"'n_share_bins' must be a positive integer, got {n_share_bins!r}")
    if not 0 <= strata_area_margin < 1:
        raise ConfigError(f"'strata_area_margin' must be in [0, 1), got {strata_area_margin!r}")
    df = _check_table(blocks)
    k = int(min_blocks_per_region)
    p, info = _build_problem(df, float(target_fraction), float(tolerance), k, float(min_labelled_share),
                             train_regions, class_weights)
    params = dict(target_fraction=target_fraction, tolerance=tolerance, min_blocks_per_region=k,
                  min_labelled_share=min_labelled_share, train_regions=train_regions, time_limit=time_limit,
                  warm_start=bool(warm_start), **budgets)
    rng = np.random.default_rng(seed)
    stop = _SafetyStop(float(time_limit))
    if len(p.area) <= exact_max_blocks:
        method = "exact"
        sel, cbc, extra = _solve_exact(p, rng, stop, gap_abs, params)
        extra["gap_scope"] = "block program"
    else:
        method = "strata"
        sel, cbc, extra = _solve_strata(p, rng, stop, strata_gap_abs, params, n_share_bins, strata_area_margin,
                                        strata_max_nodes)
        extra["gap_scope"] = "stratum program"
    D = p.B[sel].sum(axis=0)
    objective = float(_objective(D, p.w))
    sel_area = float(p.area[sel].sum())
    sel_class = p.class_area[sel].sum(axis=0)
    sel_share = sel_class / sel_class.sum() if sel_class.sum() > 0 else np.zeros(len(CLASS_CODES))
    shares = pd.DataFrame({
        "class": list(CLASS_CODES), "name": [BY_CODE[c].name for c in CLASS_CODES],
        "overall_share": p.overall, "selected_share": sel_share, "difference": sel_share - p.overall,
        "weight": p.weights_all,
    })
    cnt = np.bincount(p.region[sel], minlength=len(p.region_names))
    details = dict(info, **extra, cbc_result=cbc["result_line"], cbc_objective=cbc["objective"],
                   gap_rel=cbc["gap_rel"],
                   seed=int(seed), time_limit=float(time_limit), exact_max_blocks=int(exact_max_blocks),
                   budgets=budgets, safety_stop=list(stop.hit))
    return SelectionResult(
        selected=sorted(p.ids[sel].tolist()), status=cbc["status"], objective=objective, gap=cbc["gap"],
        method=method, seconds=time.perf_counter() - t0, selected_fraction=sel_area / p.total_area,
        shares=shares, bound=cbc["bound"], selected_area_km2=sel_area, total_area_km2=p.total_area,
        area_window_km2=(p.lo, p.hi), region_counts={r: int(n) for r, n in zip(p.region_names, cnt)},
        details=details)


def write_selection(result: SelectionResult, out: str | Path, shares: str | Path, summary: str | Path) -> None:
    """Write a selection atomically: the chosen block ids (CSV, column block_id), the class shares
    overall vs selected (CSV) and the summary (JSON)."""
    with atomic_path(out) as tmp:
        pd.DataFrame({"block_id": result.selected}).to_csv(tmp, index=False)
    with atomic_path(shares) as tmp:
        result.shares.to_csv(tmp, index=False, float_format="%.6f")
    with atomic_path(summary) as tmp:
        Path(tmp).write_text(json.dumps(result.summary(), indent=1))
