"""The targets for the base and retrain models, checked against a measured table."""

from __future__ import annotations

import pandas as pd

PRIVLEAK_TARGET = 0.10  # SRA's target: |PrivLeak| at most this (drawn as a line in the privacy–utility figures)

# (probe set, mode, model, comparison, threshold, what it means)
BASE_MODEL_TARGETS = [
    ("trained patients", "closed-book", "base", ">=", 0.90, "memorizes trained patients' facts"),
    ("holdout patients", "closed-book", "base", "near", 0.25, "knows nothing of unseen patients (chance = 0.25)"),
    ("holdout patients", "fact in context", "base", ">=", 0.80, "reads facts from its context"),
    ("knowledge base, held-out phrasing", "closed-book", "base", ">=", 0.80, "general knowledge, new phrasing"),
    (None, "LOSS attack ROC-AUC", "base", ">=", 0.90, "forget patients are recognisable members"),
    (None, "LOSS attack ROC-AUC", "retrain", "within 0.1 of", 0.50, "retrain cannot tell forget from holdout"),
]


def base_model_targets(table: pd.DataFrame, train_seconds: float | None = None) -> pd.DataFrame:
    """One row per target: the measured value and whether it is met. ``table`` is indexed by (probe set, mode)
    with one column per model, as :meth:`sbu.experiment.Experiment.model_table` returns it."""
    rows = []
    for probe, mode, model, op, threshold, meaning in BASE_MODEL_TARGETS:
        if model not in table.columns:
            continue
        sel = table.xs(mode, level="mode")[model] if probe is None else table.loc[(probe, mode), model]
        value = float(sel.iloc[0]) if isinstance(sel, pd.Series) else float(sel)
        met = {">=": value >= threshold, "near": abs(value - threshold) <= 0.1,
               "within 0.1 of": abs(value - threshold) <= 0.1}[op]
        rows.append({"target": meaning, "model": model, "measured": round(value, 3),
                     "wanted": f"{op} {threshold}", "met": bool(met)})
    if train_seconds is not None:
        rows.append({"target": "smoke base model trains in ≤ 3 minutes on 2 cores", "model": "base",
                     "measured": round(train_seconds, 1), "wanted": "<= 180 s", "met": train_seconds <= 180})
    return pd.DataFrame(rows)


def describe(targets: pd.DataFrame) -> str:
    """A few sentences, read from a run's targets table, for a notebook's "what we saw" cell."""
    met = targets[targets["met"]]
    missed = targets[~targets["met"]]
    lines = [f"{len(met)} of {len(targets)} targets met in this run."]
    for _, row in missed.iterrows():
        lines.append(f"Missed: {row['target']} ({row['model']}): measured {row['measured']}, wanted {row['wanted']}.")
    for _, row in met.iterrows():
        lines.append(f"Met: {row['target']} ({row['model']}): {row['measured']} ({row['wanted']}).")
    return "\n".join(lines)
