"""Durability of forgetting in the weights, method by method, beside the retrain gold standard.

The profile's base and retrain models (from the cache; trained once, ``--data-seed``); for each seed (a repeat of
everything after training), the forget split's unlearning sets, then for every arm (the base model, each unlearning
method, retrain) one row of ``sbu.eval.durability`` / ``sbu.eval.mia`` measures:

- closed-book forget accuracy after unlearning and after ``--rounds`` consolidations on retained data only;
- the targeted relearning attack (fine-tune on ``--share`` of the forgotten facts, accuracy on the rest) and its
  excess over the same attack on the retrain model;
- LOSS and Min-K%++ membership AUC (forget vs holdout patients), mean answer entropy on the forget answers;
- L2 distance and loss barrier between the base weights and the arm's; retain and test accuracy, before and after
  the rounds; unlearning seconds.

A method is ``name`` or ``name:key=value,key=value`` (hyper-parameters, e.g. ``sra:prior=counterfactual``). Run
from the repository root:

    .venv/bin/python benchmarks/durability.py --profile smoke --split forget05 --seeds 0 1 2 \\
        --methods sra sra:prior=counterfactual sra_wide sra_distort --out results/durability.csv
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from sbu.data.cohort import trained_patients
from sbu.data.forget_set import ForgetSet
from sbu.eval import durability
from sbu.eval.accuracy import probe_sets
from sbu.eval.mia import loss_attack, min_k_plus_plus_attack, roc_auc
from sbu.eval.stats import confidence
from sbu.experiment import Experiment
from sbu.model.scoring import accuracy
from sbu.unlearn.forget_sets import unlearning_sets
from sbu.unlearn.loop import unlearn

RETAINED_PROBES = 200  # a seeded sample of the retained patients' questions (the utility column)


def parse_method(spec: str) -> tuple[str, dict]:
    """``name`` or ``name:key=value,…`` → (name, hyper-parameters); numbers are read as numbers."""
    name, _, rest = spec.partition(":")
    hparams = {}
    for pair in filter(None, rest.split(",")):
        key, _, value = pair.partition("=")
        for kind in (int, float):
            try:
                value = kind(value)
                break
            except ValueError:
                continue
        hparams[key] = value
    return name, hparams


def measure(arm: str, lm, base, retrain_attack, items, rounds, seed: int, share: float, seconds: float) -> dict:
    forget, holdout, retained, test = items["forget"], items["holdout"], items["retained"], items["test"]
    attack = durability.relearning_attack(lm, forget, share=share, seed=seed)
    benign = durability.benign_relearning(lm, rounds, forget, retained, seed=seed)
    after = benign.retain[-1]
    return {
        "arm": arm, "seed": seed,
        "forget acc": benign.forget[0], f"forget acc after {len(rounds)} rounds": benign.forget[-1],
        "attack recovery": attack.after, "attack before": attack.before,
        "excess recovery": None if retrain_attack is None else durability.excess_recovery(attack, retrain_attack),
        "LOSS AUC": roc_auc(loss_attack(lm.model, lm.tokenizer, forget), loss_attack(lm.model, lm.tokenizer, holdout)),
        "Min-K%++ AUC": roc_auc(min_k_plus_plus_attack(lm.model, lm.tokenizer, forget),
                                min_k_plus_plus_attack(lm.model, lm.tokenizer, holdout)),
        "entropy": durability.answer_entropy(lm, forget),
        "L2 from base": durability.weight_distance(base, lm),
        "barrier": durability.loss_barrier(base, lm, retained).barrier,
        "retain acc": benign.retain[0], f"retain acc after {len(rounds)} rounds": after,
        "test acc": accuracy(lm.model, lm.tokenizer, test), "unlearn seconds": seconds,
        "_attack": attack,
    }


def run(profile: str, split: str, seeds: list[int], methods: list[str], rounds_n: int, share: float,
        overrides: dict, data_seed: int = 0) -> list[dict]:
    """Every arm × seed. Seeds repeat what is stochastic after training (the unlearning run, the attacker's split
    and adapter, the benign rounds, the retained probe sample) on one cohort and one trained base and retrain model
    (``data_seed``), as the study does."""
    exp = Experiment.from_params(profile=profile, seed=data_seed, forget_split=split,
                                 out_dir=tempfile.mkdtemp(prefix="durability-"), **overrides)
    corpus = exp.corpus
    base, retrain = exp.base_model(), exp.retrain_model()
    probes = probe_sets(corpus, split)
    kept = set(trained_patients(corpus)) - set(corpus.splits[split])
    kept_items = [q for q in corpus.qa if q.about in kept and q.phrasing == "train"]
    rows = []
    for seed in seeds:
        sets = unlearning_sets(corpus, ForgetSet.of_split(corpus, split), seed=seed)
        items = {"forget": sets.forget_items, "holdout": probes["holdout patients"],
                 "retained": random.Random(f"durability-{seed}").sample(kept_items,
                                                                       min(RETAINED_PROBES, len(kept_items))),
                 "test": probes["knowledge base, held-out phrasing"]}
        rounds = durability.retained_rounds(corpus, corpus.splits[split], rounds=rounds_n, seed=seed)
        print(f"seed {seed}: θ0 asked about never-seen patients scores the forget options at "
              f"{durability.stranger_accuracy(base, corpus, sets.forget_items, seed):.2f} (the counterfactual "
              "prior's target; chance 0.25)", flush=True)
        gold = measure("retrain", retrain, base, None, items, rounds, seed, share, float("nan"))
        retrain_attack = gold.pop("_attack")
        gold["excess recovery"] = 0.0
        rows.append(gold)
        arms = [("base", base, 0.0)]
        for spec in methods:
            name, hparams = parse_method(spec)
            started = time.perf_counter()
            unlearned = unlearn(base, sets.forget, sets.retain, name,
                                config=exp.unlearn_config(name, **{"seed": seed, **hparams}),
                                counterfactual=sets.counterfactual, progress=False)
            arms.append((spec, unlearned.merged(), time.perf_counter() - started))
        for arm, lm, seconds in arms:
            row = measure(arm, lm, base, retrain_attack, items, rounds, seed, share, seconds)
            del row["_attack"]
            rows.append(row)
            print(f"seed {seed}: {arm} measured", flush=True)
    return rows


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean ± 95 % CI over seeds of every numeric column, per arm (the mean alone with one seed)."""
    out = {}
    for arm, group in table.groupby("arm", sort=False):
        cells = {}
        for column in table.columns.drop(["arm", "seed"]):
            values = group[column].dropna().to_numpy(dtype=float)
            if not len(values):
                cells[column] = ""
            elif len(values) == 1:
                cells[column] = f"{values[0]:.2f}"
            else:
                mean, half, _ = confidence(values)
                cells[column] = f"{mean:.2f} ± {half:.2f}"
        out[arm] = cells
    return pd.DataFrame(out).T


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--split", default="forget05")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="repeats after training (unlearning, "
                        "attack, benign rounds)")
    parser.add_argument("--data-seed", type=int, default=0, help="the cohort's and the trained models' seed")
    parser.add_argument("--methods", nargs="+", default=["sra", "sra:prior=counterfactual", "sra_wide",
                                                         "sra_distort"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--share", type=float, default=0.2)
    parser.add_argument("--overrides", type=json.loads, default={},
                        help='experiment settings over the profile\'s, as JSON: \'{"train": {"epochs": 10}}\'')
    parser.add_argument("--out", default="results/durability.csv")
    args = parser.parse_args()
    load_at_start = os.getloadavg()[0]
    rows = run(args.profile, args.split, args.seeds, args.methods, args.rounds, args.share, args.overrides,
               args.data_seed)
    table = pd.DataFrame(rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    print(f"{args.profile} {json.dumps(args.overrides) if args.overrides else ''}, {args.split}, seeds {args.seeds}, "
          f"torch threads {torch.get_num_threads()}, {os.cpu_count()} cores, {platform.machine()}, "
          f"load average {load_at_start:.1f} at the start and {os.getloadavg()[0]:.1f} at the end")
    print(summary(table).to_string())
    print(f"per-seed rows: {out}")


if __name__ == "__main__":
    main()
