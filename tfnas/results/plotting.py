"""Matplotlib figures for tfnas's PNG outputs (Pareto fronts, alpha histories, cells).

The object-oriented API with the Agg canvas: no pyplot state, no display needed, and the
user's backend is left untouched.
"""

from __future__ import annotations

import os


def new_figure(width: float, height: float):
    """A `matplotlib.figure.Figure` of `width` x `height` inches on an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_png(figure, path: str | os.PathLike) -> str:
    """Writes `figure` to `path` as a PNG (creating its folder) and returns the path."""
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    figure.savefig(path, format="png", dpi=120)
    return path
