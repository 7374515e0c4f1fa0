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


BACKFLOW_PANELS = {"forget_acc_closed_book": "forget accuracy, closed-book",
                   "forget_acc_agent": "forget accuracy, through the agent",
                   "memory_exposure": "memory exposure (top-k)",
                   "facts_back_in_memory": "forgotten facts back in memory",
                   "recreated_artifacts": "cached answers re-created",
                   "refused": "write-backs refused by the barrier"}


def backflow_curves(table: pd.DataFrame, retrain_forget_accuracy: float | None = None):
    """One panel per backflow measure, one line per condition, rounds on x (round 0: right after unlearning)."""
    import seaborn as sns

    data = table.melt(id_vars=["condition", "round"], value_vars=list(BACKFLOW_PANELS), var_name="measure")
    data["measure"] = data["measure"].map(BACKFLOW_PANELS)
    grid = sns.relplot(data=data, x="round", y="value", hue="condition", col="measure", col_wrap=3, kind="line",
                       marker="o", height=2.6, aspect=1.25, facet_kws={"sharey": False})
    grid.set_titles("{col_name}")
    if retrain_forget_accuracy is not None:
        for name, ax in grid.axes_dict.items():
            if name.startswith("forget accuracy"):
                ax.axhline(retrain_forget_accuracy, color="#777777", linestyle=":", linewidth=1)
    grid.figure.suptitle("backflow round by round (dotted: the retrain model's closed-book forget accuracy)",
                         y=1.03)
    return grid


def request_costs(table: pd.DataFrame, ax=None):
    """Retained accuracy and seconds per request over a sequence of forget requests."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 3.5))
    x = table["patients forgotten"]
    ax.plot(x, table["retain acc (closed-book)"], marker="o", color="#1f77b4")
    ax.set_xlabel("patients forgotten (one request each)")
    ax.set_ylabel("retain accuracy (closed-book)", color="#1f77b4")
    twin = ax.twinx()
    twin.bar(x, table["seconds"], alpha=0.25, color="#ff7f0e")
    twin.set_ylabel("seconds per request", color="#ff7f0e")
    ax.set_title("many requests, one after another")
    return ax


def study_privacy_utility(summary: pd.DataFrame, attack: str = "min_k_plus_plus", ax=None):
    """The study's conditions as points, mean ± 95 % CI over seeds: |PrivLeak| (left: like retraining) against
    test accuracy (up: utility kept); a colour per condition, a marker per forget split, named in the legend
    (labels beside the points overlap where conditions agree, as SBU and its ablations do)."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    leak = summary[summary.metric == f"{attack} PrivLeak"].set_index(["forget_split", "condition"])
    test = summary[summary.metric == "test acc"].set_index(["forget_split", "condition"])
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    markers = dict(zip(dict.fromkeys(summary.forget_split), "osD^v", strict=False))
    names = list(dict.fromkeys(summary.condition))
    if len(names) > 10:  # tab20's dark shades first, then the light ones: neighbours in the table differ in hue
        colors = {c: plt.get_cmap("tab20")((2 * i) % 20 + (2 * i) // 20 % 2) for i, c in enumerate(names)}
    else:
        colors = {c: plt.get_cmap("tab10")(i) for i, c in enumerate(names)}
    for (split, condition), row in leak.iterrows():
        if (split, condition) not in test.index:
            continue
        t = test.loc[(split, condition)]
        ax.errorbar(abs(row["mean"]), t["mean"], xerr=row["ci95"] if row["ci95"] == row["ci95"] else None,
                    yerr=t["ci95"] if t["ci95"] == t["ci95"] else None, fmt=markers[split], color=colors[condition],
                    capsize=3, alpha=0.85)
    ax.axvline(0.10, color="#999999", linestyle=":", linewidth=1)
    ax.set_xlabel(f"|PrivLeak| ({attack}; 0 = like the retrain model)")
    ax.set_ylabel("test accuracy (closed-book)")
    ax.set_title("privacy–utility, mean ± 95 % CI over seeds")
    handles = [Line2D([], [], color=colors[c], marker="o", linestyle="", label=c) for c in names]
    if len(markers) > 1:
        handles += [Line2D([], [], color="#555555", marker=m, linestyle="", label=s) for s, m in markers.items()]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7, frameon=False)
    return ax


def study_costs(summary: pd.DataFrame, ax=None):
    """Wall time of each condition's unlearning against the number of patients forgotten (retrain + closure: the
    retraining's time), mean over seeds, log scale."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    data = summary[(summary.metric == "unlearn seconds") & (summary.condition != "none")]
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4))
    sns.lineplot(data=data, x="n_forgotten", y="mean", hue="condition", marker="o", ax=ax)
    ax.set_yscale("log")
    ax.set_xlabel("patients forgotten (forget01 / 05 / 10)")
    ax.set_ylabel("seconds (log)")
    ax.set_title("cost against forget size")
    return ax
