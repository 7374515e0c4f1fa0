"""The one confidence interval the package reports: mean ± Student-t half-width over repeats (seeds)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confidence(values: Sequence[float], level: float = 0.95) -> tuple[float, float, int]:
    """Mean, the half-width of its Student-t confidence interval (NaN below two values), and n (NaNs left out)."""
    from scipy import stats

    v = np.asarray([x for x in values if not np.isnan(x)], dtype=float)
    if len(v) == 0:
        return float("nan"), float("nan"), 0
    if len(v) < 2:
        return float(v.mean()), float("nan"), 1
    half = stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return float(v.mean()), float(half), len(v)
