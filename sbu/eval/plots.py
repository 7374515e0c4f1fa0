"""Figures of the evaluation, drawn from result tables (never from notebook state)."""

from __future__ import annotations

import pandas as pd


def privacy_utility(table: pd.DataFrame, attack: str = "min_k_plus_plus", ax=None):
    """Each model as a point: how far its membership signal on the forget set is from the retrain model's
    (|PrivLeak|, left is better) against what it kept (retain accuracy, up is better)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    data = table.assign(model=table.index, leak=table[f"{attack} PrivLeak"].abs())
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4.5))
    sns.scatterplot(data=data, x="leak", y="retain accuracy", hue="model", s=90, ax=ax, legend=False)
    for _, row in data.iterrows():
        ax.annotate(row.model, (row.leak, row["retain accuracy"]), textcoords="offset points", xytext=(6, 4),
                    fontsize=8)
    ax.axvline(0.10, color="#999999", linestyle=":", linewidth=1)
    ax.set_xlabel(f"|PrivLeak| ({attack}; 0 = like the retrain model)")
    ax.set_ylabel("retain accuracy (closed-book)")
    ax.set_title("privacy–utility: forget like retraining, keep the rest")
    return ax


def entropy_shift(entropies: dict[str, dict[str, object]], ax=None):
    """Distributions of per-token answer entropy, ``{probe set: {model: entropies}}``, one panel per probe set."""
    import seaborn as sns

    rows = [(probe, model, float(h)) for probe, per_model in entropies.items() for model, values in per_model.items()
            for h in values]
    data = pd.DataFrame(rows, columns=["probe set", "model", "entropy (nats)"])
    grid = sns.displot(data=data, x="entropy (nats)", hue="model", col="probe set", kind="hist", element="step",
                       stat="density", common_norm=False, height=3.2, aspect=1.3)
    grid.figure.suptitle("answer-token entropy before and after unlearning", y=1.04)
    return grid


def training_curves(logs: dict[str, pd.DataFrame], ax=None):
    """The total loss per step of each unlearning run."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    data = pd.concat([log.assign(method=name) for name, log in logs.items()], ignore_index=True)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    sns.lineplot(data=data, x="step", y="forget_term", hue="method", ax=ax)
    ax.set_ylabel("forget term of the loss")
    ax.set_title("unlearning runs (same LoRA, same step budget)")
    return ax
