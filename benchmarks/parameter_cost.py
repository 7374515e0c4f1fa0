"""Parameter pathway cost: SRA's wall time and memory as a ratio to retraining from scratch, side by side in one run
(target: ≤ 10 % of retraining's).

Each phase runs in its own fresh process (spawned one after the other, never at the same time), so that neither
inherits the other's allocations:

- ``sra``: load the base model (from the cache; training it is not SRA's cost), build the forget and retain sets,
  then time ``sbu.unlearn.loop.unlearn(..., "sra")`` with the profile's budget (``unlearn_steps``);
- ``retrain``: train the retrain gold standard from scratch (``trained_model(..., exclude=forget_split)`` into an
  empty cache folder, so it really trains).

Memory is the resident set size sampled every 10 ms while the phase runs: its peak, and its peak *increase* over
the moment the phase started (torch, transformers, peft, accelerate and the data are loaded by then in both
phases, so the increase is what the method itself needs; the process's peak also counts the ~440 MB runtime both
share, which alone is over 10 % of retraining's peak). Run from the repository root:

    .venv/bin/python benchmarks/parameter_cost.py                 # smoke profile, forget05
    .venv/bin/python benchmarks/parameter_cost.py --profile paper
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

TARGET = 0.10  # SRA cost / retrain cost


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class RssSampler:
    """Peak resident memory of this process while a block runs, sampled every ``every`` seconds."""

    def __init__(self, every: float = 0.01):
        self.every, self.peak, self._stop = every, 0.0, threading.Event()

    def __enter__(self):
        self.start = self.peak = _rss_mb()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, _rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())


def _phase(name: str, profile: str, seed: int, queue, sra_hparams: dict | None = None) -> None:
    import accelerate  # noqa: F401 — the libraries both phases use are loaded before measuring, like torch
    import peft  # noqa: F401
    import transformers  # noqa: F401

    from sbu.data.forget_set import ForgetSet
    from sbu.experiment import Experiment
    from sbu.model.cache import trained_model
    from sbu.unlearn.forget_sets import unlearning_sets
    from sbu.unlearn.loop import unlearn

    exp = Experiment.from_params(profile=profile, seed=seed, out_dir=tempfile.mkdtemp(prefix="sbu-cost-"))
    corpus, config = exp.corpus, exp.config
    if name == "sra":
        base = exp.base_model()
        sets = unlearning_sets(corpus, ForgetSet.of_split(corpus, config.forget_split), seed=seed)
        with RssSampler() as rss:
            started = time.perf_counter()
            unlearn(base, sets.forget, sets.retain, "sra", seed=seed, progress=False,
                    **{"steps": config.unlearn_steps, **(sra_hparams or {})})
            seconds = time.perf_counter() - started
    else:
        with tempfile.TemporaryDirectory(prefix="sbu-retrain-") as cache, RssSampler() as rss:
            started = time.perf_counter()
            trained_model(corpus, config.model, config.train, exclude=config.forget_split, progress=False,
                          cache=Path(cache))
            seconds = time.perf_counter() - started
    queue.put({"phase": name, "seconds": seconds, "peak_rss_mb": rss.peak, "rss_increase_mb": rss.peak - rss.start})


def run(profile: str, seed: int, sra_hparams: dict | None = None) -> list[dict]:
    context = mp.get_context("spawn")
    results = []
    for name in ("sra", "retrain"):
        queue = context.Queue()
        process = context.Process(target=_phase, args=(name, profile, seed, queue, sra_hparams))
        process.start()
        results.append(queue.get())
        process.join()
        if process.exitcode:
            raise SystemExit(f"the {name} phase failed (exit code {process.exitcode})")
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sra-batch-size", type=int, help="SRA's batch size (default: UnlearnConfig's); smaller "
                        "batches show how much of SRA's memory is activations")
    args = parser.parse_args(argv)
    sra_hparams = {"batch_size": args.sra_batch_size} if args.sra_batch_size else {}
    import pandas as pd

    print(f"Machine: cpus {os.cpu_count()}, python {platform.python_version()}, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; profile {args.profile}, seed {args.seed}, "
          f"SRA {sra_hparams or 'defaults'}")
    table = pd.DataFrame(run(args.profile, args.seed, sra_hparams)).set_index("phase")
    print(table.round(2).to_string())
    sra, retrain = table.loc["sra"], table.loc["retrain"]
    for column, label in (("seconds", "wall time"), ("peak_rss_mb", "peak memory (RSS)"),
                          ("rss_increase_mb", "memory increase during the phase")):
        ratio = sra[column] / retrain[column]
        print(f"  {'✔' if ratio <= TARGET else '✘'} SRA / retrain, {label}: {ratio:.3f} (target ≤ {TARGET:.2f})")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
