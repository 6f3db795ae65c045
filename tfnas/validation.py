"""The argument checks every tfnas constructor uses: one message format for all.

Each check returns the value (converted) or raises a `ValueError` that names the argument
and what was received, e.g. `population_size must be >= 2. Received: population_size=1`.
Plain Python and numpy: importing it does not import TensorFlow.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """Returns `value` if it is an int in `[low, high]`, else raises a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer. Received: {name}={value!r}")
    _check_range(name, value, low, high)
    return int(value)


def check_float(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> float:
    """Returns `value` as a float if it is a finite number in range, else raises ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise ValueError(f"{name} must be a number. Received: {name}={value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite. Received: {name}={value!r}")
    _check_range(name, value, low, high, low_inclusive, high_inclusive)
    return float(value)


def check_categories(categories: Any) -> list[int]:
    """Returns `categories` (the number of candidates of each decision, each >= 1, at least
    one decision) as a list of ints, else raises a ValueError naming it."""
    if isinstance(categories, (str, bytes)) or not isinstance(categories, Sequence):
        raise ValueError(
            f"categories must be a sequence of ints >= 1. Received: categories={categories!r}"
        )
    if not categories:
        raise ValueError(
            f"categories must name at least one decision. Received: categories={categories!r}"
        )
    return [check_int(f"categories[{i}]", k, low=1) for i, k in enumerate(categories)]


def check_one_of(name: str, value: Any, options: tuple) -> Any:
    """Returns `value` if it is one of `options`, else raises a ValueError naming it."""
    if value not in options:
        raise ValueError(f"{name} must be one of {list(options)}. Received: {name}={value!r}")
    return value


def check_writable_dir(name: str, path: Any) -> str:
    """Returns `path` if it is, or can be made, a directory this process may write to.

    Nothing is created: the nearest existing ancestor of `path` must be a writable
    directory, so that a search fails before any work rather than at its first save.
    """
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path).strip():
        raise ValueError(f"{name} must be a non-empty path. Received: {name}={path!r}")
    path = os.fspath(path)
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        where = "it" if existing == os.path.abspath(path) else f"{existing!r}, above it,"
        raise ValueError(
            f"{name} must be a directory, but {where} is a file. Received: {name}={path!r}. "
            f"Pass another {name}, or move the file away."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(
            f"{name} must be a directory this process can write to, but {existing!r} is not "
            f"writable. Received: {name}={path!r}. Pass another {name}, or make it writable."
        )
    return path


def _check_range(name, value, low, high, low_inclusive=True, high_inclusive=True):
    too_low = low is not None and (value < low if low_inclusive else value <= low)
    too_high = high is not None and (value > high if high_inclusive else value >= high)
    if not (too_low or too_high):
        return
    if low is not None and high is not None:
        interval = f"{'[' if low_inclusive else '('}{low}, {high}{']' if high_inclusive else ')'}"
        requirement = f"in {interval}"
    elif low is not None:
        requirement = f"{'>=' if low_inclusive else '>'} {low}"
    else:
        requirement = f"{'<=' if high_inclusive else '<'} {high}"
    raise ValueError(f"{name} must be {requirement}. Received: {name}={value!r}")
