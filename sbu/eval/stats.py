"""The one confidence interval the package reports: mean ± Student-t half-width over repeats (seeds), for one list
of values (:func:`confidence`) and for every group of a long-format result table (:func:`summarize`) — the summary
``sbu batch`` writes for a sweep and the replication study reads."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

LONG_FORMAT = ("condition", "metric", "value")  # the columns a table needs to be summarised
SEED_NAME = re.compile(r"(^|_)seeds?($|_)")  # seed, seeds, data_seed, run_seed: the repeats a summary pools over


def confidence(values: Sequence[float], level: float = 0.95) -> tuple[float, float, int]:
    """Mean, the half-width of its Student-t confidence interval (NaN below two values), and n (NaNs left out)."""
    v = np.asarray([x for x in values if not np.isnan(x)], dtype=float)
    if len(v) == 0:
        return float("nan"), float("nan"), 0
    if len(v) < 2:
        return float(v.mean()), float("nan"), 1
    half = stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return float(v.mean()), float(half), len(v)


def is_seed_column(name: str) -> bool:
    """Whether a column holds repeats (a seed of some kind) rather than a condition."""
    return bool(SEED_NAME.search(name))


def summarize(table: pd.DataFrame) -> pd.DataFrame | None:
    """n, mean and the 95 % confidence half-width (Student t) of ``value``, grouped by every column but
    ``value``, ``run_id`` and the seed columns (the repeats); ``None`` if the table is not long-format
    (``condition``, ``metric``, numeric ``value``)."""
    if not set(LONG_FORMAT) <= set(table.columns) or not pd.api.types.is_numeric_dtype(table["value"]):
        return None
    by = [c for c in table.columns if c not in ("value", "run_id") and not is_seed_column(c)]
    rows = [(*(key if isinstance(key, tuple) else (key,)), *confidence(group))
            for key, group in table.groupby(by, dropna=False, sort=False)["value"]]
    summary = pd.DataFrame(rows, columns=[*by, "mean", "ci95", "n"])
    return summary[[*by, "n", "mean", "ci95"]]
