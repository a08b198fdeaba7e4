"""PNG figures (quicklooks, report plots, the sample map): made without pyplot's global state and
written the same way everywhere: atomically, tightly cropped, without the Matplotlib version in the
file (so that the same figure gives the same bytes)."""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from l2h.core.io import atomic_path


def new_figure(width: float, height: float, dpi: int = 110) -> Figure:
    """A Matplotlib figure of `width` x `height` inches drawn by the Agg canvas (no display)."""
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: str | os.PathLike) -> Path:
    """Lay `fig` out and write it to `path` as a PNG, atomically; the path."""
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None}, bbox_inches="tight", pad_inches=0.15)
    return Path(path)
