"""Standing obligations, measured: SBU's closed-book forget accuracy round by round through the agent's loop, with
and without the request's standing obligation, next to the gold standard (the retrain model + the closure).

Three arms of :mod:`sbu.eval.backflow` on one fresh memory each, then ``--rounds`` rounds of the loop (answer,
write back, consolidate on what was read and written):

- ``sbu + obligation``: the protocol, the barrier, and after each consolidation re-verify (the agent through memory
  and the weights closed-book) → re-suppress (:class:`sbu.sync.StandingObligations`);
- ``sbu + obligation, rounds stop at ε/2``: the same, each re-suppression round stopping once the closed-book
  leakage is back to 0.5 · ε instead of running the whole unlearning budget;
- ``sbu + obligation, agent check only``: the same as the first, re-verifying only the agent's answers through
  memory;
- ``sbu``: the protocol and the barrier only (what the request left at commit, then nothing);
- ``retrain + closure``: the retrain model that never saw the patients, memory closed as SBU closes it.

Prints one row per arm and round (closed-book forget accuracy, leakage re-verified, re-suppression rounds, seconds
of the standing work) and writes them to ``--out`` as CSV. Run from the repository root:

    .venv/bin/python benchmarks/obligations.py                  # smoke, forget05, seed 0, 5 rounds
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from sbu.data.cohort import patients_in
from sbu.eval.backflow import Arm, loop_secrets, prepare, queries, run_rounds
from sbu.experiment import Experiment

ARMS = (Arm("sbu + obligation", protocol=True, barrier=True, obligations=True),
        Arm("sbu + obligation, rounds stop at ε/2", protocol=True, barrier=True, obligations=True,
            protocol_options=(("resuppress_to", 0.5),)),
        Arm("sbu + obligation, agent check only", protocol=True, barrier=True, obligations=True,
            protocol_options=(("closed_book_check", False),)),
        Arm("sbu", protocol=True, barrier=True),
        Arm("retrain + closure", memory=True, parameter="retrain"))
COLUMNS = ["condition", "round", "forget_acc_closed_book", "obligation_leakage", "obligation_leakage_after",
           "resuppression_rounds", "obligation_seconds", "retain_acc_agent", "unlearn_seconds", "seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--forget-split", default="forget05")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default="results/benchmarks/obligations")
    args = parser.parse_args()

    exp = Experiment.from_params(profile=args.profile, seed=args.seed, out_dir=args.out,
                                 forget_split=args.forget_split)
    base, retrain = exp.base_model(), exp.retrain_model()
    corpus, seed = exp.corpus, args.seed
    patients = patients_in(corpus, args.forget_split)
    forget_items = [q for q in corpus.qa if q.about in set(patients) and q.phrasing == "train"]
    secrets = loop_secrets(corpus, patients, forget_items)
    loop_queries = queries(corpus, patients, seed=seed)
    rows = []
    for arm in ARMS:
        started = time.perf_counter()
        condition = prepare(arm, corpus, base, patients, work=Path(args.out) / "work" / arm.name.replace(" ", "-"),
                            unlearn={"steps": exp.config.unlearn_steps}, seed=seed, retrain=retrain)
        arm_rows = run_rounds(condition, corpus, forget_items, loop_queries, secrets, args.rounds, seed=seed)
        seconds = time.perf_counter() - started
        rows += [{**row, "unlearn_seconds": condition.unlearn_seconds, "seconds": seconds} for row in arm_rows]
        condition.agent.store.close()
        print(f"[obligations] {arm.name}: {seconds:.0f} s", flush=True)
    table = pd.DataFrame(rows)[COLUMNS]
    Path(args.out).mkdir(parents=True, exist_ok=True)
    table.to_csv(Path(args.out) / "obligations.csv", index=False)
    wide = table.pivot(index="round", columns="condition", values="forget_acc_closed_book")
    print(f"\nclosed-book forget accuracy, {args.profile} {args.forget_split} seed {seed}:")
    print(wide.round(3).to_string())
    print("\n" + table.round(3).to_string(index=False))
    trained = retrain.info.get("train_seconds")
    for arm in ARMS[:-1]:
        own = table[table.condition == arm.name]
        work = own.unlearn_seconds.iloc[0] + own.obligation_seconds.sum()
        print(f"{arm.name}: the request and its standing work through {args.rounds} consolidations took {work:.0f} s, "
              f"{work / trained:.0%} of the retrain model's recorded training time ({trained:.0f} s, "
              f"{retrain.info.get('torch_threads')} thread(s); this run: {torch.get_num_threads()})")


if __name__ == "__main__":
    main()
