"""Per-region statistics of the training label: class shares, ignored share, product coverage and
agreement, unknown codes; written as CSV (one row per class) and JSON (everything)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from l2h.core.classes import BY_CODE, CLASS_CODES
from l2h.core.io import atomic_path
from l2h.labels.harmonize import LabelStats


def summarize(stats: LabelStats, region: str) -> dict:
    """A JSON-ready summary: shares are fractions of the region's pixels (labelled share of land)."""
    total = max(stats.region_pixels, 1)
    labelled = stats.region_pixels - stats.ignored_pixels
    pairs = {f"{a}~{b}": (agree / both if both else None) for (a, b), (agree, both) in stats.pair_agree.items()}
    products = {}
    for p, pixels in stats.product_pixels.items():
        mine = [v for k, v in pairs.items() if p in k.split("~") and v is not None]
        products[p] = dict(coverage=pixels / total, mean_pairwise_agreement=sum(mine) / len(mine) if mine else None,
                           unknown_code_pixels={str(c): n for c, n in sorted(stats.unknown_codes.get(p, {}).items())})
    return dict(region=region, region_pixels=stats.region_pixels, labelled_share=labelled / total,
                ignored_share=stats.ignored_pixels / total, road_pixels=stats.road_pixels,
                class_pixels={str(c): n for c, n in stats.class_pixels.items()},
                class_share_of_labelled={str(c): n / max(labelled, 1) for c, n in stats.class_pixels.items()},
                products=products, pairwise_agreement=pairs)


def write_stats(summary: dict, csv_path: str | Path, json_path: str | Path) -> None:
    """CSV: region, code, class, pixels, share_of_region, share_of_labelled (+ an 'ignored' row)."""
    total = max(summary["region_pixels"], 1)
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["region", "code", "class", "pixels", "share_of_region", "share_of_labelled"])
        for c in CLASS_CODES:
            n = summary["class_pixels"][str(c)]
            writer.writerow([summary["region"], c, BY_CODE[c].name, n, f"{n / total:.6f}",
                             f"{summary['class_share_of_labelled'][str(c)]:.6f}"])
        ignored = round(summary["ignored_share"] * total)
        writer.writerow([summary["region"], 255, "ignored (products disagree or have no data)", ignored,
                         f"{summary['ignored_share']:.6f}", ""])
    with atomic_path(json_path) as tmp:
        Path(tmp).write_text(json.dumps(summary, indent=1, ensure_ascii=False), encoding="utf-8")
