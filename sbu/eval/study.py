"""The replication study: every condition × forget split × seed in one tidy table, the
paper-style main table with 95 % confidence intervals, and the paper's claims checked against the run.

Conditions are :class:`~sbu.eval.backflow.Arm` s: no unlearning, memory-only (the closure), parameter-only (each
unlearning method, no barrier, memory untouched), SBU (the synchronized protocol), and the gold standard —
retrain without the forgotten patients + the memory closure. Ablations are SBU arms with one part taken away
(barrier, verify rounds, repair) or one SRA choice changed (prior, τ).

Seeds [choice]: ``seeds`` are repeats of everything stochastic *after* training — the unlearning run (LoRA
init, batches, SRA's reference draws), the protocol, the agent loop's order and consolidation, probe sampling —
on one cohort and one trained base/retrain model (the experiment's ``seed``), as open-unlearning repeats
unlearning on one fine-tuned model. The data seed is swept by ``params/sweeps/seeds.yaml`` (a new cohort and
new models per seed).

Data: the synthetic cohort, or PubMedQA-L (``dataset="pubmedqa"``), where abstracts play the patients' part and
every probe is a cloze item of an abstract's sentence (:mod:`sbu.data.pubmed_study`); "naming a forgotten
patient" then means holding the start of a forgotten abstract's sentence (:func:`sbu.eval.backflow.cue`).

Per (split, seed, condition) the table holds, with the model right after unlearning: forget / retain / collateral
(retained patients sharing a condition with a forgotten one) / test accuracy closed-book, every attack's ROC-AUC
(forget vs holdout; 1.0 = members stand out) and PrivLeak against the retrain arm of the same split and seed; memory
exposure right after unlearning; after ``rounds`` rounds of the agent's loop: forget accuracy closed-book, every
attack's AUC and PrivLeak again (in ``results.csv`` only: the holdout patients are in the agent's memory, and
consolidation trains on what the loop retrieves, so after the loop they are no longer clean non-members — read these
with care), memory exposure, forgotten facts back in memory, cached answers naming a forgotten patient, write-backs
refused, retained accuracy through the agent; the unlearning's wall time and its ratio to retraining.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from tqdm import tqdm

from sbu import checks
from sbu.data.cohort import patients_in
from sbu.data.forget_set import ForgetSet
from sbu.data.schema import Corpus
from sbu.errors import ConfigError
from sbu.eval import plots, style
from sbu.eval.backflow import Arm, loop_secrets, prepare, queries, run_rounds
from sbu.eval.mia import attack_aucs, privleak
from sbu.eval.stats import confidence, summarize
from sbu.eval.unlearning import PRIVLEAK_ATTACK, evaluate, probe_sets
from sbu.model.network import CausalLM
from sbu.unlearn import METHODS as UNLEARNING_METHODS
from sbu.unlearn.forget_sets import unlearning_sets

RETRAIN = "retrain + closure"

# the main table's columns, in order: metric name in the tidy table → column label
MAIN_METRICS = {
    "forget acc": "forget acc",
    "retain acc": "retain acc",
    "collateral acc": "collateral acc",
    "test acc": "test acc",
    f"{PRIVLEAK_ATTACK} AUC": "MIA AUC (Min-K%++)",
    f"{PRIVLEAK_ATTACK} PrivLeak": "PrivLeak",
    "exposure r0": "exposure",
    "exposure rR": "exposure after R",
    "forget acc rR": "forget acc after R",
    "facts back rR": "facts back after R",
    "recreated rR": "re-created answers after R",
    "refused": "refused write-backs",
    "retain acc agent rR": "retain acc (agent) after R",
    "unlearn seconds": "seconds",
    "cost vs retrain": "cost / retrain",
}


def arms(methods: Sequence[str] = ("sra",), ablations: bool = False) -> list[Arm]:
    """The study's conditions in table order; with ``ablations``, SBU with one part removed or one choice changed."""
    unknown = [m for m in methods if m not in UNLEARNING_METHODS]
    if unknown or not methods:
        raise ConfigError(f"methods must be a non-empty list of {', '.join(UNLEARNING_METHODS)}; got "
                          f"{list(methods)!r}")
    sbu = {"protocol": True, "barrier": True, "obligations": True}  # the protocol as committed requests keep it
    out = [Arm("none"), Arm("memory-only", memory=True)]
    out += [Arm(f"parameter-only ({m})", parameter=m) for m in dict.fromkeys(methods)]
    out += [Arm("sbu", **sbu), Arm(RETRAIN, memory=True, parameter="retrain")]
    if ablations:
        out += [Arm("sbu − barrier", protocol=True, barrier=False, obligations=True),
                Arm("sbu − obligation", protocol=True, barrier=True),
                Arm("sbu − verify rounds", **sbu, max_rounds=1),
                Arm("sbu − repair", **sbu, repair=False),
                Arm("sbu, prior uniform", **sbu, unlearn=(("prior", "uniform"),)),
                Arm("sbu, prior random_model", **sbu, unlearn=(("prior", "random_model"),)),
                Arm("sbu, τ = 0.5", **sbu, unlearn=(("tau", 0.5),)),
                Arm("sbu, τ = 4", **sbu, unlearn=(("tau", 4.0),))]
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "arm"


def run_study(corpus: Corpus, base: CausalLM, retrains: dict[str, CausalLM], *, work: str | Path,
              splits: Sequence[str] = ("forget05",), seeds: Sequence[int] = (0,),
              conditions: Sequence[Arm] | None = None, rounds: int = 1, unlearn: dict | None = None,
              dataset: str = "cohort", progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every arm for every split and seed. Returns the tidy results (dataset, forget_split, n_forgotten, seed,
    condition, metric, value) and the round-by-round backflow table (the rows of
    :func:`sbu.eval.backflow.round_metrics` with split and seed)."""
    conditions = list(conditions or arms())
    checks.integer("rounds", rounds, 1)
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise ConfigError(f"seeds must be a non-empty list of integers ≥ 0, got {list(seeds)!r}")
    missing = [s for s in splits if s not in retrains]
    if missing:
        raise ConfigError(f"no retrain model for {missing}: the gold standard is needed for every split")
    tidy, per_round = [], []
    bar = tqdm(total=len(splits) * len(seeds) * len(conditions), desc="study", unit="condition", disable=not progress)
    for split in splits:
        patients = patients_in(corpus, split)
        forget_items = [q for q in corpus.qa if q.about in set(patients) and q.phrasing == "train"]
        secrets = loop_secrets(corpus, patients, forget_items)
        retrain = retrains[split]
        retrain_seconds = (retrain.info or {}).get("train_seconds") or float("nan")
        for seed in seeds:
            sets = unlearning_sets(corpus, ForgetSet.of_split(corpus, split), seed=seed)
            probes = probe_sets(corpus, sets)
            loop_queries = queries(corpus, patients, seed=seed)
            evaluated: dict[int, dict] = {}
            for arm in conditions:
                bar.set_postfix_str(f"{split} seed {seed}: {arm.name}")
                started = time.perf_counter()
                folder = Path(work) / split / f"seed{seed}" / _slug(arm.name)
                condition = prepare(arm, corpus, base, patients, work=folder, unlearn=unlearn, seed=seed,
                                    retrain=retrain)
                lm = condition.agent.lm
                if id(lm) not in evaluated:  # none and memory-only share the base model
                    evaluated[id(lm)] = evaluate(lm, corpus, sets, retrain, seed=seed)
                rows = run_rounds(condition, corpus, forget_items, loop_queries, secrets, rounds, seed=seed)
                condition.agent.store.close()
                final = condition.agent.lm  # after the loop's consolidations
                after = attack_aucs(final.model, final.tokenizer, probes["forget"], probes["holdout"])
                seconds = condition.unlearn_seconds + (retrain_seconds if arm.parameter == "retrain" else 0.0)
                first, last = rows[0], rows[-1]
                metrics = {
                    **{k.replace(" accuracy", " acc"): v for k, v in evaluated[id(lm)].items()
                       if k != "reference AUC"},  # the reference attack needs a retrain model that is not lm
                    "exposure r0": first["memory_exposure"], "exposure rR": last["memory_exposure"],
                    "forget acc rR": last["forget_acc_closed_book"], "facts back rR": last["facts_back_in_memory"],
                    "recreated rR": last["recreated_artifacts"], "refused": sum(r["refused"] for r in rows),
                    "retain acc agent rR": last["retain_acc_agent"],
                    **{f"{attack} AUC rR": auc for attack, auc in after.items()}, "unlearn seconds": seconds,
                    "cost vs retrain": seconds / retrain_seconds, "study seconds": time.perf_counter() - started}
                key = {"dataset": dataset, "forget_split": split, "n_forgotten": len(patients), "seed": seed,
                       "condition": arm.name}
                tidy += [{**key, "metric": m, "value": float(v)} for m, v in metrics.items()]
                per_round += [{**r, "condition": arm.name, "forget_split": split, "seed": seed} for r in rows]
                bar.update()
    bar.close()
    table = _with_privleak(pd.DataFrame(tidy))
    return table, pd.DataFrame(per_round)


def _with_privleak(table: pd.DataFrame) -> pd.DataFrame:
    """PrivLeak of every attack against the retrain arm of the same split and seed."""
    aucs = table[table.metric.str.contains(" AUC")]
    rows = []
    for (_, _, metric), group in aucs.groupby(["forget_split", "seed", "metric"]):
        reference = group.loc[group.condition == RETRAIN, "value"]
        if reference.empty:
            continue
        for row in group.itertuples(index=False):
            rows.append({**row._asdict(), "metric": metric.replace(" AUC", " PrivLeak"),
                         "value": privleak(row.value, float(reference.iloc[0]))})
    return pd.concat([table, pd.DataFrame(rows)], ignore_index=True)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean, 95 % CI half-width and n over seeds for every (dataset, split, condition, metric): the same summary
    ``sbu batch`` writes for a sweep (:func:`sbu.eval.stats.summarize`)."""
    return summarize(table)


def main_table(table: pd.DataFrame, forget_split: str | None = None, digits: int = 2) -> pd.DataFrame:
    """The paper-style table: one row per condition, the main metrics as "mean ± CI" (CI over seeds; a single seed
    shows the value alone). ``forget_split``: one split (default: the first in the table)."""
    split = forget_split or table["forget_split"].iloc[0]
    s = summary(table[table.forget_split == split])
    s = s[s.metric.isin(MAIN_METRICS)]
    order = list(dict.fromkeys(table.loc[table.forget_split == split, "condition"]))

    def cell(row) -> str:
        d = 0 if row.metric in ("recreated rR", "refused") else digits
        if np.isnan(row["mean"]):  # nothing to measure (no collateral patient, no paraphrase): not a number
            return "—"
        mean = f"{row['mean']:.{d}f}"
        return mean if np.isnan(row.ci95) else f"{mean} ± {row.ci95:.{d}f}"

    s = s.assign(cell=s.apply(cell, axis=1))
    wide = s.pivot(index="condition", columns="metric", values="cell").reindex(order)
    wide = wide[[m for m in MAIN_METRICS if m in wide.columns]]
    wide.columns = [MAIN_METRICS[m] for m in wide.columns]
    wide.columns.name = f"{split} (n seeds = {int(s.n.max())})"
    return wide


def _mean(table: pd.DataFrame, condition: str, metric: str, split: str) -> tuple[float, float]:
    values = table.loc[(table.condition == condition) & (table.metric == metric) & (table.forget_split == split),
                       "value"]
    mean, half, _ = confidence(values)
    return mean, half


def claims(table: pd.DataFrame, rounds: int, methods: Sequence[str] = ("sra",)) -> pd.DataFrame:
    """The paper's claims, each checked per forget split against this run's numbers."""
    rows = []
    for split in dict.fromkeys(table.forget_split):
        def m(condition, metric, split=split):
            return _mean(table, condition, metric, split)

        def show(x):
            return f"{x[0]:.2f}" + ("" if np.isnan(x[1]) else f" ± {x[1]:.2f}")

        conditions = set(table.loc[table.forget_split == split, "condition"])
        if "memory-only" in conditions:
            e0, eR, back = m("memory-only", "exposure r0"), m("memory-only", "exposure rR"), m("memory-only",
                                                                                                "facts back rR")
            rows.append((split, "memory-only unlearning leaks back through the loop",
                         f"exposure {show(e0)} → {show(eR)} after {rounds} round(s); facts back in memory {show(back)}",
                         eR[0] > e0[0] or back[0] > 0))
        for method in methods:
            name = f"parameter-only ({method})"
            if name in conditions:
                f0, fR, eR = m(name, "forget acc"), m(name, "forget acc rR"), m(name, "exposure rR")
                rows.append((split, f"{name} unlearning leaks back through the loop",
                             f"closed-book forget acc {show(f0)} → {show(fR)}; memory exposure {show(eR)}",
                             fR[0] > f0[0] + 0.05 or eR[0] > 0.05))
        if "sbu" in conditions and RETRAIN in conditions:
            eR, back, rec = m("sbu", "exposure rR"), m("sbu", "facts back rR"), m("sbu", "recreated rR")
            fR, gold = m("sbu", "forget acc rR"), m(RETRAIN, "forget acc rR")
            rows.append((split, "SBU does not leak back",
                         f"exposure {show(eR)}, facts back {show(back)}, re-created answers {show(rec)}; forget acc "
                         f"after the loop {show(fR)} vs retrain + closure {show(gold)}",
                         eR[0] == 0 and back[0] == 0 and rec[0] == 0 and abs(fR[0] - gold[0]) <= 0.10))
            leak = m("sbu", f"{PRIVLEAK_ATTACK} PrivLeak")
            # SBU's parameter step is SRA: parameter-only SRA is its single-pathway ablation (the claims above);
            # the paper's MIA comparison is against the other unlearning methods
            baselines = {c: abs(m(c, f"{PRIVLEAK_ATTACK} PrivLeak")[0]) for c in conditions
                         if c.startswith("parameter-only") and c != "parameter-only (sra)"}
            if baselines:
                best = min(baselines, key=baselines.get)
                gain = (baselines[best] - abs(leak[0])) / baselines[best] if baselines[best] else float("nan")
                rows.append((split, "SBU's membership signal is closer to retraining's than the best other "
                             "unlearning method's (paper: a ~24.8 % better MIA score)",
                             f"|PrivLeak| ({PRIVLEAK_ATTACK}) SBU {abs(leak[0]):.3f} vs {best} {baselines[best]:.3f}: "
                             f"{100 * gain:.1f} % closer", abs(leak[0]) < baselines[best]))
        if "sbu" in conditions and "none" in conditions:
            t, t0 = m("sbu", "test acc"), m("none", "test acc")
            r, r0 = m("sbu", "retain acc"), m("none", "retain acc")
            rows.append((split, "SBU keeps utility (test ≥ 98 % and retain ≥ 95 % of the model before unlearning)",
                         f"test acc {show(t)} vs {show(t0)}; retain acc {show(r)} vs {show(r0)}",
                         t[0] >= 0.98 * t0[0] and r[0] >= 0.95 * r0[0]))
    return pd.DataFrame(rows, columns=["split", "claim", "measured", "held"])


def describe_claims(found: pd.DataFrame) -> str:
    """The claims as sentences, every number from the run."""
    held = int(found.held.sum())
    lines = [f"{held} of {len(found)} claim checks held in this run."]
    lines += [f"[{'held' if row.held else 'NOT held'}] {row.split}: {row.claim}: {row.measured}."
              for row in found.itertuples()]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------- a study run in pieces
def from_sweep(folder: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The study of an ``sbu batch`` sweep of notebook 04 whose runs each hold some of its splits or seeds (a long
    study run in pieces, each resumable on its own): the ``results.csv`` and ``rounds.csv`` of every finished run
    (its ``done.json`` is there), one table each, as :func:`run_study` returns them for the whole grid."""
    folder = Path(folder)
    runs = sorted(p.parent for p in folder.glob("*/done.json"))
    if not runs:
        raise ConfigError(f"no finished run in {folder}: give the folder of a notebook-04 sweep (`sbu batch` writes "
                          "results/NAME/<run-id>/done.json when a run finishes)")
    missing = [f"{run.name}/{name}" for run in runs for name in ("results.csv", "rounds.csv")
               if not (run / name).is_file()]
    if missing:
        raise ConfigError(f"not a notebook-04 sweep: {', '.join(missing[:3])} missing in {folder}")
    results = pd.concat([pd.read_csv(run / "results.csv") for run in runs], ignore_index=True)
    per_round = pd.concat([pd.read_csv(run / "rounds.csv") for run in runs], ignore_index=True)
    key = ["forget_split", "seed", "condition", "metric"]
    twice = results[results.duplicated(key, keep=False)]
    if not twice.empty:
        first = twice.iloc[0]
        raise ConfigError(f"runs of {folder} overlap: {first.condition!r} on {first.forget_split} seed {first.seed} "
                          "is in more than one run; a study in pieces needs runs that split its splits or seeds "
                          "(compare other sweeps with the summary `sbu batch` writes)")
    return results, per_round


def summary_figures(table: pd.DataFrame, out: str | Path) -> list[Path]:
    """The study's figures drawn from its summary alone (:func:`summary`, or a ``summary.csv`` read back):
    privacy–utility and cost against forget size, PNG and SVG in ``out``. Returns the paths written."""
    paths = []
    for name, draw in (("privacy_utility", plots.study_privacy_utility), ("costs", plots.study_costs)):
        figure = draw(table).figure
        paths += style.save(figure, out, name)
        plt.close(figure)
    return paths


def write_report(results: pd.DataFrame, per_round: pd.DataFrame, out: str | Path,
                 headline_split: str | None = None) -> dict[str, pd.DataFrame]:
    """What notebook 04 writes after its run, from a study's tables: ``summary.csv``, ``main_table_<split>.csv``,
    ``claims.csv`` and the figures (privacy–utility, backflow round by round for ``headline_split`` — default
    forget05 when the study has it — and cost against forget size) as PNG and SVG. Rounds and parameter-only
    methods are read from the tables. Returns the summary, the main tables and the claims."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    splits = list(dict.fromkeys(results.forget_split))
    headline = headline_split or ("forget05" if "forget05" in splits else splits[0])
    if headline not in splits:
        raise ConfigError(f"headline_split {headline!r} is not in the study (splits: {', '.join(splits)})")
    rounds = int(per_round["round"].max())
    methods = [c[len("parameter-only ("):-1] for c in dict.fromkeys(results.condition)
               if c.startswith("parameter-only (")]
    table = summary(results)
    tables = {split: main_table(results, split) for split in splits}
    found = claims(results, rounds, methods)
    table.to_csv(out / "summary.csv", index=False)
    for split, wide in tables.items():
        wide.reset_index().to_csv(out / f"main_table_{split}.csv", index=False)
    found.to_csv(out / "claims.csv", index=False)
    gold = table.query("condition == @RETRAIN and metric == 'forget acc' and forget_split == @headline")
    backflow = plots.backflow_curves(per_round[per_round.forget_split == headline],
                                     float(gold["mean"].iloc[0]) if len(gold) else None)
    style.save(backflow, out, "backflow")
    plt.close(backflow)
    summary_figures(table, out)
    return {"summary": table, **{f"main_table_{s}": t for s, t in tables.items()}, "claims": found}
