"""Standing obligations, measured: SBU's closed-book forget accuracy round by round through the agent's loop, with
and without the request's standing obligation, next to the gold standard (the retrain model + the closure).

Arms of :mod:`sbu.eval.backflow`, each on a fresh memory, then ``--rounds`` rounds of the loop (answer,
write back, consolidate on what was read and written):

- ``sbu + obligation + dual update`` (the default): the protocol, the barrier, and after each consolidation
  re-verify (the agent through memory and the weights closed-book) → re-suppress
  (:class:`sbu.sync.StandingObligations`); every consolidation's loss also keeps the obligation's forget set where
  the verified model had it (``ProtocolConfig.dual_update``, weight 10);
- ``…, commit at ε/2``: the same, the request's own PARAMETER round stopping once the closed-book leakage is
  0.5 · ε (``ProtocolConfig.commit_to``);
- ``sbu + obligation + dual update (1)``: the dual update with weight 1;
- ``sbu + obligation``: re-verify → re-suppress only, no dual update;
- ``sbu + obligation, rounds stop at ε/2``: that, each re-suppression round stopping once the closed-book leakage
  is back to 0.5 · ε instead of running the whole unlearning budget;
- ``sbu + obligation, agent check only``: that, re-verifying only the agent's answers through memory;
- ``sbu``: the protocol and the barrier only (what the request left at commit, then nothing);
- ``retrain + closure``: the retrain model that never saw the patients, memory closed as SBU closes it.

Prints one row per arm and round (closed-book forget accuracy, leakage re-verified, re-suppression rounds, seconds
of the standing work) and writes them to ``--out`` as CSV. ``--time-retrain`` also trains the retrain model afresh
in the same process, with the same threads, and prints each arm's request plus standing work as a share of that.
Run from the repository root:

    .venv/bin/python benchmarks/obligations.py                  # smoke, forget05, seed 0, 5 rounds
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from sbu.data.cohort import patients_in
from sbu.eval.backflow import Arm, loop_secrets, prepare, queries, run_rounds
from sbu.experiment import Experiment
from sbu.model.cache import trained_model

NO_DUAL = ("dual_update", 0.0)
ARMS = (Arm("sbu + obligation + dual update", protocol=True, barrier=True, obligations=True),
        Arm("sbu + obligation + dual update, commit at ε/2", protocol=True, barrier=True, obligations=True,
            protocol_options=(("commit_to", 0.5),)),
        Arm("sbu + obligation + dual update (1)", protocol=True, barrier=True, obligations=True,
            protocol_options=(("dual_update", 1.0),)),
        Arm("sbu + obligation", protocol=True, barrier=True, obligations=True, protocol_options=(NO_DUAL,)),
        Arm("sbu + obligation, rounds stop at ε/2", protocol=True, barrier=True, obligations=True,
            protocol_options=(NO_DUAL, ("resuppress_to", 0.5))),
        Arm("sbu + obligation, agent check only", protocol=True, barrier=True, obligations=True,
            protocol_options=(NO_DUAL, ("closed_book_check", False))),
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
    parser.add_argument("--arms", nargs="+", metavar="NAME", choices=[a.name for a in ARMS[:-1]],
                        help="the arms to run besides the gold standard (default: all)")
    parser.add_argument("--time-retrain", action="store_true",
                        help="train the retrain model again here (not from the cache) to time it side by side")
    args = parser.parse_args()
    arms = [a for a in ARMS[:-1] if not args.arms or a.name in args.arms] + [ARMS[-1]]

    exp = Experiment.from_params(profile=args.profile, seed=args.seed, out_dir=args.out,
                                 forget_split=args.forget_split)
    base, retrain = exp.base_model(), exp.retrain_model()
    corpus, seed = exp.corpus, args.seed
    patients = patients_in(corpus, args.forget_split)
    forget_items = [q for q in corpus.qa if q.about in set(patients) and q.phrasing == "train"]
    secrets = loop_secrets(corpus, patients, forget_items)
    loop_queries = queries(corpus, patients, seed=seed)
    rows = []
    for arm in arms:
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
    if args.time_retrain:
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            trained_model(corpus, exp.config.model, exp.config.train, exclude=args.forget_split, progress=False,
                          cache=Path(folder), shipped=False)
            trained, how = time.perf_counter() - started, "retraining's wall time in this run"
    else:
        trained, how = retrain.info.get("train_seconds"), "the retrain model's recorded training time (not this run)"
    for arm in arms[:-1]:
        own = table[table.condition == arm.name]
        work = own.unlearn_seconds.iloc[0] + own.obligation_seconds.sum()
        print(f"{arm.name}: the request and its standing work through {args.rounds} consolidations took {work:.0f} s, "
              f"{work / trained:.1%} of {how} ({trained:.0f} s; {torch.get_num_threads()} thread(s))")


if __name__ == "__main__":
    main()
