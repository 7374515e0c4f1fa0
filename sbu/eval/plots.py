"""Figures of the evaluation and of a sweep's summary, drawn from result tables (never from notebook state)."""

from __future__ import annotations

from typing import Protocol

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from sbu.eval.stats import LONG_FORMAT

MAX_PANELS = 12  # a sweep's summary figure draws at most this many metrics unless the sweep file names them (plot)


def privacy_utility(table: pd.DataFrame, attack: str = "min_k_plus_plus", ax=None):
    """Each model as a point: how far its membership signal on the forget set is from the retrain model's
    (|PrivLeak|, left is better) against what it kept (retain accuracy, up is better)."""
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
    rows = [(probe, model, float(h)) for probe, per_model in entropies.items() for model, values in per_model.items()
            for h in values]
    data = pd.DataFrame(rows, columns=["probe set", "model", "entropy (nats)"])
    grid = sns.displot(data=data, x="entropy (nats)", hue="model", col="probe set", kind="hist", element="step",
                       stat="density", common_norm=False, height=3.2, aspect=1.3)
    grid.figure.suptitle("answer-token entropy before and after unlearning", y=1.04)
    return grid


def training_curves(logs: dict[str, pd.DataFrame], ax=None):
    """The total loss per step of each unlearning run."""
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


def obligation_rounds(table: pd.DataFrame, condition: str = "sbu", epsilon: float | None = None,
                      retrain_forget_accuracy: float | None = None, ax=None):
    """The standing obligation at work, round by round (a backflow table's ``condition`` rows): the parameter
    leakage re-verified right after each consolidation and after its re-suppression, the closed-book forget
    accuracy the round ended with, and the PARAMETER rounds run (bars)."""
    rows = table[table.condition == condition].sort_values("round")
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 3.8))
    ax.plot(rows["round"], rows["obligation_leakage"], marker="o", label="leakage after consolidation")
    ax.plot(rows["round"], rows["obligation_leakage_after"], marker="v", label="leakage after re-suppression")
    ax.plot(rows["round"], rows["forget_acc_closed_book"], marker="s", label="forget accuracy (closed-book)")
    if epsilon is not None:
        ax.axhline(epsilon, color="#d62728", linestyle="--", linewidth=1, label="ε")
    if retrain_forget_accuracy is not None:
        ax.axhline(retrain_forget_accuracy, color="#777777", linestyle=":", linewidth=1, label="retrain model")
    twin = ax.twinx()
    twin.bar(rows["round"], rows["resuppression_rounds"], alpha=0.2, color="#2ca02c", width=0.4)
    twin.set_ylabel("re-suppression rounds", color="#2ca02c")
    twin.set_ylim(0, max(1, rows["resuppression_rounds"].max()) * 2)
    ax.set_zorder(twin.get_zorder() + 1)  # the lines over the bars
    ax.patch.set_visible(False)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("round (0: right after the request committed)")
    ax.set_xticks(rows["round"])
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(f"{condition}: consolidate → re-verify → re-suppress")
    return ax


def request_costs(table: pd.DataFrame, ax=None):
    """Retained accuracy and seconds per request over a sequence of forget requests."""
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
    data = summary[(summary.metric == "unlearn seconds") & (summary.condition != "none")]
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4))
    sns.lineplot(data=data, x="n_forgotten", y="mean", hue="condition", marker="o", ax=ax)
    ax.set_yscale("log")
    ax.set_xlabel("patients forgotten (forget01 / 05 / 10)")
    ax.set_ylabel("seconds (log)")
    ax.set_title("cost against forget size")
    return ax


class NamesPanels(Protocol):
    """What :func:`panel_metrics` reads of a sweep (:class:`sbu.batch.sweep.Sweep`): the metrics it names to draw."""

    plot: tuple[str, ...]


def panel_metrics(summary: pd.DataFrame, sweep: NamesPanels, echo=print) -> list[str]:
    """The metrics a sweep's summary figure draws: the sweep file's ``plot`` (those the table has), else every
    metric up to MAX_PANELS, with a note saying how to choose when there are more."""
    metrics = list(dict.fromkeys(summary["metric"]))
    if sweep.plot:
        missing = [m for m in sweep.plot if m not in metrics]
        if missing:
            echo(f"[sbu batch] note: plot names metrics the table does not have: {', '.join(map(repr, missing))}")
        chosen = [m for m in sweep.plot if m in metrics]
        return chosen or metrics[:MAX_PANELS]
    if len(metrics) > MAX_PANELS:
        echo(f"[sbu batch] note: {len(metrics)} metrics; summary.png draws the first {MAX_PANELS} — name the ones "
             f"to draw in the sweep file, e.g. plot: [{', '.join(metrics[:2])}]")
    return metrics[:MAX_PANELS]


def draw_summary(summary: pd.DataFrame, hue: list[str], metrics: list[str] | None = None) -> Figure:
    """A sweep's summary figure: one small panel per metric (``metrics``, in that order; default every metric of
    the summary), mean ± 95 % CI of each condition, one colour per value of the swept parameters in ``hue``. Drawn
    on a bare Figure (Agg for PNG), so pyplot's backend is never touched."""
    others = [c for c in summary.columns if c not in (*LONG_FORMAT, "n", "mean", "ci95", *hue)
              and not _told_by(summary, c, hue)]
    data = summary.assign(
        x=summary[["condition", *others]].astype(str).agg(" · ".join, axis=1),
        hue=summary[hue].astype(str).agg(", ".join, axis=1) if hue else "")
    metrics = list(metrics or dict.fromkeys(data["metric"]))
    data = data[data["metric"].isin(metrics)]
    levels = list(dict.fromkeys(data["hue"]))
    colours = sns.color_palette("colorblind", len(levels))
    ncols = min(len(metrics), 4)
    nrows = -(-len(metrics) // ncols)
    widest = data.groupby("metric")["x"].nunique().max()  # conditions side by side in one panel
    fig = Figure(figsize=(max(3.4, 0.3 * widest) * ncols, (2.8 + 0.06 * data["x"].str.len().max()) * nrows),
                 layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    width = 0.8 / len(levels)
    for ax, metric in zip(axes, metrics):
        panel = data[data["metric"] == metric]
        xs = list(dict.fromkeys(panel["x"]))
        for i, (level, colour) in enumerate(zip(levels, colours)):
            part = panel[panel["hue"] == level]
            pos = [xs.index(x) - 0.4 + width * (i + 0.5) for x in part["x"]]
            ax.errorbar(pos, part["mean"], yerr=part["ci95"].fillna(0), fmt="o", color=colour, capsize=3,
                        label=level or None)
        rotation = 90 if len(xs) > 6 else 30 if len(xs) > 3 else 0  # many conditions: upright labels do not overlap
        ax.set_xticks(range(len(xs)), xs, rotation=rotation, ha="right" if rotation == 30 else "center")
        ax.set_xlim(-0.6, len(xs) - 0.4)
        ax.set_title(str(metric), fontsize=10)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    if hue:
        fig.legend(*axes[0].get_legend_handles_labels(), title=", ".join(hue), loc="outside right upper", fontsize=8)
    fig.suptitle("mean ± 95 % CI over seeds", fontsize=10)
    return fig


def _told_by(summary: pd.DataFrame, column: str, hue: list[str]) -> bool:
    """Whether a column says nothing the hue does not: one value in the whole table, or one per hue value (a
    run's ``forget_split`` beside the swept ``forget_splits``). Such a column would only lengthen the x labels
    and split one condition into one tick per run."""
    if summary[column].nunique(dropna=False) <= 1:
        return True
    return bool(hue) and bool((summary.groupby(hue, dropna=False)[column].nunique(dropna=False) <= 1).all())
