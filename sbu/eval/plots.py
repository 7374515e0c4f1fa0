"""Figures of the evaluation and of a sweep's summary, drawn from result tables (never from notebook state), each
condition in its :mod:`sbu.eval.style` colour and marker, every axis labelled, a CI only over two seeds or more."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from sbu.eval import style
from sbu.eval.stats import LONG_FORMAT, confidence
from sbu.eval.targets import PRIVLEAK_TARGET

MAX_PANELS = 12  # a sweep's summary figure draws at most this many metrics unless the sweep file names them (plot)


def _legend(ax, handles, **kw) -> None:
    """A legend beside the panel (never over the points)."""
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7, frameon=False, **kw)


def _handle(name: str, linestyle: str = "") -> Line2D:
    """A legend entry in a condition's colour and marker."""
    return Line2D([], [], color=style.look(name).colour, marker=style.look(name).marker, linestyle=linestyle,
                  label=name)


def _target_line(ax) -> Line2D:
    ax.axvline(PRIVLEAK_TARGET, **style.THRESHOLD)
    return Line2D([], [], **style.THRESHOLD, label=f"|PrivLeak| = {PRIVLEAK_TARGET:.2f} (SRA's target)")


def privacy_utility(table: pd.DataFrame, attack: str = "min_k_plus_plus", ax=None):
    """Each model as a point (one seed): how far its membership signal on the forget set is from the retrain
    model's (|PrivLeak|, left is better) against what it kept (retain accuracy, up is better). Models are named in
    the legend, in their palette colour and marker, so that labels never print over each other."""
    data = table.assign(leak=table[f"{attack} PrivLeak"].abs())
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    for name, row in data.iterrows():
        ax.plot(row["leak"], row["retain accuracy"], linestyle="", marker=style.look(name).marker,
                color=style.look(name).colour, markersize=9, alpha=0.85)
    handles = [_handle(str(name)) for name in data.index] + [_target_line(ax)]
    ax.set_xlabel(f"|PrivLeak| ({attack}; relative AUC gap, 0 = like the retrain model)")
    ax.set_ylabel("retain accuracy (share correct, closed-book)")
    ax.set_title("privacy–utility of each model, one seed")
    _legend(ax, handles)
    return ax


def entropy_shift(entropies: dict[str, dict[str, object]], ax=None):
    """Distributions of per-token answer entropy, ``{probe set: {model: entropies}}``, one panel per probe set."""
    rows = [(probe, model, float(h)) for probe, per_model in entropies.items() for model, values in per_model.items()
            for h in values]
    data = pd.DataFrame(rows, columns=["probe set", "model", "entropy (nats)"])
    models = list(dict.fromkeys(data["model"]))
    grid = sns.displot(data=data, x="entropy (nats)", hue="model", col="probe set", kind="hist", element="step",
                       stat="density", common_norm=False, height=3.2, aspect=1.3, palette=style.colours(models))
    for ax in grid.axes.flat:  # every panel labelled, not only the outer ones
        ax.set_xlabel("answer-token entropy (nats)")
        ax.set_ylabel("density (per nat)")
    grid.set_titles("{col_name} probes")
    grid.figure.suptitle("answer-token entropy before and after unlearning, one seed", y=1.04)
    return grid


def training_curves(logs: dict[str, pd.DataFrame], ax=None):
    """The forget term of the loss per step of each unlearning run, in each method's colour."""
    data = pd.concat([log.assign(method=name) for name, log in logs.items()], ignore_index=True)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
    sns.lineplot(data=data, x="step", y="forget_term", hue="method", palette=style.colours(logs), ax=ax)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("forget term of the loss (nats; each method its own)")
    ax.set_title("unlearning runs, one seed (same LoRA, same step budget)")
    ax.legend(title="method", fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return ax


@dataclass(frozen=True)
class Panel:
    """One backflow measure: its panel title and its y axis (label with unit; a share is drawn on 0–1)."""

    title: str
    ylabel: str
    share: bool


BACKFLOW_PANELS = {
    "forget_acc_closed_book": Panel("forget accuracy, closed-book", "accuracy (share correct)", True),
    "forget_acc_agent": Panel("forget accuracy, through the agent", "accuracy (share correct)", True),
    "memory_exposure": Panel("memory exposure (top-k)", "share of forget questions", True),
    "facts_back_in_memory": Panel("forgotten facts back in memory", "share of forgotten facts", True),
    "recreated_artifacts": Panel("cached answers re-created", "cached answers (count)", False),
    "refused": Panel("write-backs refused by the barrier", "write-backs (count)", False)}


def _seeds(table: pd.DataFrame) -> int:
    return int(table["seed"].nunique()) if "seed" in table.columns else 1


def backflow_curves(table: pd.DataFrame, retrain_forget_accuracy: float | None = None) -> Figure:
    """One panel per backflow measure, one line per condition (its palette colour and marker), integer rounds on x
    (round 0: right after unlearning); with a ``seed`` column of two seeds or more, the mean ± 95 % CI over seeds."""
    n = _seeds(table)
    rounds = sorted(table["round"].unique())
    fig, axes = plt.subplots(2, 3, figsize=(11, 6), layout="constrained")
    conditions = list(dict.fromkeys(table["condition"]))
    for ax, (column, panel) in zip(axes.ravel(), BACKFLOW_PANELS.items()):
        for condition in conditions:
            rows = table[table.condition == condition]
            stats = [confidence(rows.loc[rows["round"] == r, column].astype(float)) for r in rounds]
            mean = [s[0] for s in stats]
            half = [0.0 if np.isnan(s[1]) else s[1] for s in stats]
            ax.errorbar(rounds, mean, yerr=half if n >= 2 else None, color=style.look(condition).colour,
                        marker=style.look(condition).marker, capsize=3, markersize=6, alpha=0.9)
        if retrain_forget_accuracy is not None and column == "forget_acc_closed_book":
            ax.axhline(retrain_forget_accuracy, **style.REFERENCE)
        style.round_ticks(ax, rounds)
        ax.set_xlabel("round (0: right after unlearning)")
        ax.set_ylabel(panel.ylabel)
        ax.set_title(panel.title, fontsize=10)
        if panel.share:
            ax.set_ylim(-0.03, 1.03)
        else:
            ax.set_ylim(bottom=0)
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    handles = [_handle(c) for c in conditions]
    if retrain_forget_accuracy is not None:
        handles.append(Line2D([], [], **style.REFERENCE, label="retrain model's closed-book forget accuracy"))
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4), fontsize=8, frameon=False)
    fig.suptitle(f"backflow round by round, {style.seeds_phrase(n)}")
    return fig


def obligation_rounds(table: pd.DataFrame, condition: str = "sbu", epsilon: float | None = None,
                      retrain_forget_accuracy: float | None = None, ax=None):
    """The standing obligation at work, round by round (a backflow table's ``condition`` rows): the parameter
    leakage re-verified right after each consolidation and after its re-suppression, the closed-book forget
    accuracy the round ended with (in the condition's colour), and the PARAMETER rounds run (bars, right axis)."""
    rows = table[table.condition == condition].sort_values("round")
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 3.8), layout="constrained")
    ax.plot(rows["round"], rows["obligation_leakage"], marker="o", color="#555555",
            label="leakage after consolidation")
    ax.plot(rows["round"], rows["obligation_leakage_after"], marker="v", color="#aaaaaa",
            label="leakage after re-suppression")
    ax.plot(rows["round"], rows["forget_acc_closed_book"], marker=style.look(condition).marker,
            color=style.look(condition).colour, label="forget accuracy (closed-book)")
    if epsilon is not None:
        ax.axhline(epsilon, **style.THRESHOLD, label=f"ε = {epsilon:.2f} (leakage allowed)")
    if retrain_forget_accuracy is not None:
        ax.axhline(retrain_forget_accuracy, **style.REFERENCE, label="retrain model's forget accuracy")
    twin = ax.twinx()
    twin.bar(rows["round"], rows["resuppression_rounds"], alpha=0.2, color="#777777", width=0.4,
             label="re-suppression rounds (right axis)")
    twin.set_ylabel("re-suppression rounds (count)")
    twin.set_ylim(0, max(1, rows["resuppression_rounds"].max()) * 2)
    twin.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_zorder(twin.get_zorder() + 1)  # the lines over the bars
    ax.patch.set_visible(False)
    ax.set_ylim(0, 1.03)
    ax.set_xlabel("round (0: right after the request committed)")
    ax.set_ylabel("share of forget probes (0–1)")
    style.round_ticks(ax, rows["round"])
    lines, labels = ax.get_legend_handles_labels()
    bars, bar_labels = twin.get_legend_handles_labels()
    ax.legend(lines + bars, labels + bar_labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.12, 1),
              frameon=False)
    ax.set_title(f"{condition}: consolidate → re-verify → re-suppress, one seed")
    return ax


def request_costs(table: pd.DataFrame) -> Figure:
    """Forget requests one after another through SBU: retained accuracy after each (top, on 0–1) and the seconds
    each request took (bottom, from 0), one y axis per panel, integer counts of patients on x."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.5, 5.5), layout="constrained")
    x = table["patients forgotten"].astype(int)
    sbu = style.look("sbu")
    top.plot(x, table["retain acc (closed-book)"], marker=sbu.marker, color=sbu.colour)
    top.set_ylim(0, 1.03)
    top.set_ylabel("retain accuracy\n(share correct)")
    requests = table[x > 0]
    bottom.bar(requests["patients forgotten"].astype(int), requests["seconds"], color=sbu.colour, alpha=0.6,
               width=0.5)
    bottom.set_ylim(bottom=0)
    bottom.set_ylabel("wall time of the\nrequest (seconds)")
    for ax in (top, bottom):
        ax.set_xlabel("patients forgotten (one request each)")
        ax.set_xticks(sorted(set(x)))
        ax.set_xlim(min(x) - 0.5, max(x) + 0.5)
    top.set_title("SBU: forget requests one after another, one seed")
    return fig


def _mean_ci(summary: pd.DataFrame, metric: str) -> pd.DataFrame:
    return summary[summary.metric == metric].set_index(["forget_split", "condition"])


def study_privacy_utility(summary: pd.DataFrame, attack: str = "min_k_plus_plus", ax=None):
    """The study's conditions as points, mean ± 95 % CI over seeds (a point alone at one seed): |PrivLeak| (left:
    like retraining) against test accuracy (up: utility kept); each condition in its palette colour and marker, a
    fill per forget split, all named in the legend (labels beside the points would overlap where conditions agree,
    as SBU and its ablations do)."""
    leak, test = _mean_ci(summary, f"{attack} PrivLeak"), _mean_ci(summary, "test acc")
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    splits = list(dict.fromkeys(summary.forget_split))
    fills = dict(zip(splits, ("full", "none", "left", "bottom", "right", "top"), strict=False))
    n = int(summary["n"].max())
    for (split, condition), row in leak.iterrows():
        if (split, condition) not in test.index:
            continue
        t, look = test.loc[(split, condition)], style.look(condition)
        ax.errorbar(abs(row["mean"]), t["mean"], xerr=None if np.isnan(row["ci95"]) else row["ci95"],
                    yerr=None if np.isnan(t["ci95"]) else t["ci95"], fmt=look.marker, color=look.colour,
                    fillstyle=fills[split], capsize=3, alpha=0.85, markersize=7)
    handles = [_handle(c) for c in dict.fromkeys(summary.condition)]
    if len(splits) > 1:
        handles += [Line2D([], [], color="#555555", marker="o", fillstyle=fills[s], linestyle="", label=s)
                    for s in splits]
    handles.append(_target_line(ax))
    ax.set_xlabel(f"|PrivLeak| ({attack}; relative AUC gap, 0 = like the retrain model)")
    ax.set_ylabel("test accuracy (share correct, closed-book)")
    ax.set_title(f"privacy–utility, {style.seeds_phrase(n)}")
    _legend(ax, handles)
    return ax


def study_costs(summary: pd.DataFrame, ax=None):
    """Wall time of each condition's unlearning (retrain + closure: the retraining's), mean over seeds (± 95 % CI
    at two seeds or more): against the number of patients forgotten on a log scale when the study has several
    forget sizes, else one horizontal bar per condition from 0 s."""
    data = summary[(summary.metric == "unlearn seconds") & (summary.condition != "none")]
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    n = int(data["n"].max()) if len(data) else 1
    what = "abstracts" if set(data.get("dataset", ())) == {"pubmedqa"} else "patients"
    conditions = list(dict.fromkeys(data.condition))
    sizes = sorted(data["n_forgotten"].unique())
    if len(sizes) > 1:
        for condition in conditions:
            rows = data[data.condition == condition].sort_values("n_forgotten")
            look = style.look(condition)
            ax.errorbar(rows["n_forgotten"], rows["mean"], yerr=rows["ci95"].fillna(0) if n >= 2 else None,
                        marker=look.marker, color=look.colour, capsize=3)
        ax.set_yscale("log")
        ax.set_xticks(sizes, [str(int(s)) for s in sizes])
        ax.set_xlabel(f"{what} forgotten")
        ax.set_ylabel("unlearning wall time (seconds, log)")
        _legend(ax, [_handle(c, linestyle="-") for c in conditions])
    else:
        y = np.arange(len(conditions))
        ax.barh(y, data.set_index("condition").loc[conditions, "mean"],
                xerr=data.set_index("condition").loc[conditions, "ci95"].fillna(0) if n >= 2 else None,
                color=[style.look(c).colour for c in conditions], capsize=3)
        ax.set_yticks(y, conditions)
        ax.invert_yaxis()
        ax.set_xlim(left=0)
        ax.set_xlabel("unlearning wall time (seconds)")
        ax.set_ylabel("condition")
    size = f", {int(sizes[0])} {what} forgotten" if len(sizes) == 1 else ""
    ax.set_title(f"cost of unlearning{size}, {style.seeds_phrase(n)}")
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
        ax.set_ylabel(str(metric))
        ax.set_xlabel("condition")
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    if hue:
        fig.legend(*axes[0].get_legend_handles_labels(), title=", ".join(hue), loc="outside right upper", fontsize=8)
    fig.suptitle(style.seeds_phrase(int(data["n"].max())), fontsize=10)
    return fig


def _told_by(summary: pd.DataFrame, column: str, hue: list[str]) -> bool:
    """Whether a column says nothing the hue does not: one value in the whole table, or one per hue value (a
    run's ``forget_split`` beside the swept ``forget_splits``). Such a column would only lengthen the x labels
    and split one condition into one tick per run."""
    if summary[column].nunique(dropna=False) <= 1:
        return True
    return bool(hue) and bool((summary.groupby(hue, dropna=False)[column].nunique(dropna=False) <= 1).all())
