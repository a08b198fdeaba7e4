"""Report figures of the accuracy assessment and the survey comparison (PNG, Matplotlib's Agg canvas
without pyplot): normalised confusion matrices, OA per region, sources compared with their 95 %
intervals, survey class shares per region, and the class legend."""

from __future__ import annotations

import numpy as np
from matplotlib.patches import Patch

from l2h.core.classes import CLASSES
from l2h.core.figures import new_figure, save_png
from l2h.evaluation.metrics import Z95

SOURCE_COLOURS = ("#1b6ca8", "#e8743b", "#5aa469", "#9c6ade", "#c94c4c", "#8c8c8c")


def confusion_figure(path, results: dict, legend, blind=frozenset()) -> None:
    """One heatmap per source: confusion matrix normalised by reference row (producer's view);
    ``blind``: reference classes the map cannot give (no training label showed them), marked ✗ on its axes."""
    n = len(results)
    cols = min(n, 2)
    rows = -(-n // cols)
    size = 2.2 + 0.42 * legend.k
    fig = new_figure(size * cols, size * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, r in zip(axes, results.values()):
        cm = r.cm.astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            norm = cm / cm.sum(axis=1, keepdims=True)
        ax.imshow(np.nan_to_num(norm), cmap="Blues", vmin=0, vmax=1)
        for i in range(legend.k):
            for j in range(legend.k):
                if cm[i, j]:
                    ax.text(j, i, f"{norm[i, j]:.2f}".lstrip("0"), ha="center", va="center", fontsize=6,
                            color="white" if norm[i, j] > 0.6 else "black")
        labels = [f"{c} ✗" if r.name == "map" and i in blind else c for i, c in enumerate(legend.codes)]
        ax.set_xticks(range(legend.k), labels, fontsize=7)
        ax.set_yticks(range(legend.k), labels, fontsize=7)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("reference", fontsize=8)
        ax.set_title(f"{r.name}: OA {r.scores['oa']:.3f}, n = {r.n}"
                     + ("\n✗ = no training label showed it: never predicted" if r.name == "map" and blind else ""),
                     fontsize=9)
    for ax in axes[n:]:
        ax.set_visible(False)
    save_png(fig, path)


def region_oa_figure(path, results: dict) -> None:
    """Grouped bars: OA of each source in each region (points in the region on top of the bars)."""
    regions = sorted({region for r in results.values() for region, _, _ in r.region_oa})
    fig = new_figure(max(5.0, 1.4 * len(regions) * max(1, len(results)) / 2 + 2), 4.0)
    ax = fig.add_subplot()
    width = 0.8 / max(len(results), 1)
    for s, r in enumerate(results.values()):
        by_region = {region: (n, oa) for region, n, oa in r.region_oa}
        xs = [i + (s - (len(results) - 1) / 2) * width for i in range(len(regions))]
        oas = [by_region.get(region, (0, np.nan))[1] for region in regions]
        ax.bar(xs, oas, width, label=r.name, color=SOURCE_COLOURS[s % len(SOURCE_COLOURS)])
    counts = {region: n for region, n, _ in next(iter(results.values())).region_oa}
    ax.set_xticks(range(len(regions)), [f"{region}\n(n = {counts.get(region, 0)})" for region in regions], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("overall accuracy")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    save_png(fig, path)


def sources_figure(path, results: dict, held_out: dict | None = None) -> None:
    """Bars of OA, kappa, mIoU (and area-weighted OA when stratified) per source, with 95 % intervals;
    with ``held_out`` (the same sources scored outside the training blocks) their OA and mIoU first."""
    metrics = ["oa", "kappa", "miou"]
    weighted = all(r.weighted for r in results.values())
    first = ["OA, held out", "mIoU, held out"] if held_out else []
    labels = first + ["OA", "kappa", "mIoU"] + (["OA (area-weighted)"] if weighted else [])
    fig = new_figure(2.0 + 1.6 * len(labels), 4.0)
    ax = fig.add_subplot()
    width = 0.8 / len(results)
    for s, r in enumerate(results.values()):
        before = [held_out[r.name]] * 2 if held_out else []
        values = [float(h.scores[m]) for h, m in zip(before, ("oa", "miou"))] + [float(r.scores[m]) for m in metrics]
        lows = [float(h.ci[m][0]) for h, m in zip(before, ("oa", "miou"))] + [float(r.ci[m][0]) for m in metrics]
        highs = [float(h.ci[m][1]) for h, m in zip(before, ("oa", "miou"))] + [float(r.ci[m][1]) for m in metrics]
        if weighted:
            oa, se = r.weighted["oa"]
            values.append(oa)
            lows.append(oa - Z95 * se)
            highs.append(oa + Z95 * se)
        values, lows, highs = map(np.array, (values, lows, highs))
        err = np.nan_to_num(np.vstack([values - lows, highs - values]))
        xs = np.arange(len(labels)) + (s - (len(results) - 1) / 2) * width
        ax.bar(xs, values, width, yerr=err, capsize=3, label=f"{r.name} (n = {r.n})",
               color=SOURCE_COLOURS[s % len(SOURCE_COLOURS)])
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylim(0, 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    save_png(fig, path)


def legend_figure(path, legend) -> None:
    """Our classes (colours) and the reference class each maps to."""
    fig = new_figure(6.0, 0.35 * len(CLASSES) + 0.8)
    ax = fig.add_subplot()
    handles = [Patch(facecolor=c.colour, edgecolor="#444444", linewidth=0.5,
                     label=f"{c.code} {c.name}  →  reference {legend.codes[legend.ours[c.code]]} "
                           f"({legend.names[legend.ours[c.code]]})" if legend.ours[c.code] >= 0
                     else f"{c.code} {c.name}  →  (not mapped)")
               for c in CLASSES]
    ax.legend(handles=handles, loc="center left", frameon=False, fontsize=9)
    ax.set_axis_off()
    ax.set_title("l2h classes and the reference legend", fontsize=10)
    save_png(fig, path)


def survey_figure(path, shares, regions: list[str], classes: list[str]) -> None:
    """One panel per region (and national): class shares of our map beside the survey's.

    `shares`: DataFrame with columns region, class, map_share, survey_share."""
    n = len(regions)
    cols = min(n, 2)
    rows = -(-n // cols)
    fig = new_figure(5.5 * cols, 3.2 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    xs = np.arange(len(classes))
    for ax, region in zip(axes, regions):
        part = shares[shares["region"] == region].set_index("class").reindex(classes)
        ax.bar(xs - 0.2, part["survey_share"], 0.4, label="survey", color="#8c8c8c")
        ax.bar(xs + 0.2, part["map_share"], 0.4, label="our map", color="#1b6ca8")
        ax.set_xticks(xs, classes, rotation=45, ha="right", fontsize=7)
        ax.set_title(region, fontsize=9, parse_math=False)
        ax.set_ylabel("share of area", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes[n:]:
        ax.set_visible(False)
    save_png(fig, path)
