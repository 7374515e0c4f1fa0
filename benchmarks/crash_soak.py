"""Crash safety under load: ``sbu forget`` killed with SIGKILL at random points, over many runs, each
finished by ``sbu resume``; after every run the crash-safety invariants must hold.

Half the runs are killed at a named point of :mod:`sbu.faults` drawn at random (every state boundary, between the
memory step's two updates, between the graph update and the keys' destruction, between a compaction's renames — the
N-th time it is reached, for points that repeat), the other half by the parent after a random delay (wherever the
process happens to be). Each run uses a fresh copy of the same on-disk memory (the tiny test cohort, ingested anew)
and forgets the same patient, so after the resume its memory must equal an uninterrupted run's, timestamps aside.
Invariants checked every time: the request committed; memory equals the uninterrupted run's; no forgotten value is
in a live text; every retained fact is; no half-done compaction is left beside the store. Run from the repository root:

    .venv/bin/python benchmarks/crash_soak.py --runs 50 --minutes 20
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

POINTS = ["after-RECEIVED", "after-BARRIER", "memory-apply", "erase-keys", "compact-swap", "after-MEMORY",
          "after-PARAMETER", "after-VERIFY", "after-MEMORY@2", "after-PARAMETER@2", "erase-keys@2", "compact-swap@2"]


def _cli(args: list[str], env: dict, delay: float | None = None) -> int:
    process = subprocess.Popen([sys.executable, "-m", "sbu.cli", *args], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    if delay is None:
        process.wait()
    else:
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
    return process.returncode


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--minutes", type=float, default=20.0, help="stop starting new runs after this long")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from sbu.data.cohort import generate
    from sbu.eval.exposure import forgotten_strings
    from sbu.journal import Journal
    from sbu.memory import open_store
    from sbu.memory.ingest import ingest
    from sbu.memory.texts import live_texts
    from sbu.model.cache import trained_model
    from sbu.sync import memory_content
    from tests.conftest import TINY_COHORT, TINY_MODEL, TINY_TRAIN

    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="sbu-soak-"))
    env = {**os.environ, "SBU_CACHE": str(root / "cache")}
    env.pop("SBU_FAULT", None)
    os.environ["SBU_CACHE"] = env["SBU_CACHE"]
    corpus = generate(TINY_COHORT)
    model = trained_model(corpus, TINY_MODEL, TINY_TRAIN, progress=False, cache=root / "models")
    corpus.write(root / "corpus")
    patient = corpus.splits["forget10"][0]
    common = ["--patient", patient, "--model", str(model.path), "--corpus", str(root / "corpus"), "--steps", "4",
              "--max-rounds", "2", "--epsilon", "0.0"]  # ε = 0: usually two rounds, so the @2 points are reached

    def fresh(name: str) -> Path:
        """A store of its own (ingested, not copied: a copy would share its original's key store, whose keys the
        other runs' forgets destroy)."""
        (root / name).mkdir()
        with open_store(f"oxigraph:{root / name / 'store'}") as store:
            ingest(store, corpus)
        return root / name

    reference_dir = fresh("reference")
    assert _cli(["forget", "--store", f"oxigraph:{reference_dir / 'store'}", "--work", str(reference_dir / "work"),
                 *common], env) == 0, "the uninterrupted run failed"
    with open_store(f"oxigraph:{reference_dir / 'store'}", create=False) as store:
        reference = memory_content(store)
    started = time.perf_counter()
    secrets = forgotten_strings(corpus, [patient])
    kept = [f.text for f in corpus.facts if f.about != patient]
    rows = []
    for run in range(args.runs):
        if time.perf_counter() - started > args.minutes * 60:
            break
        folder = fresh(f"run{run}")
        run_env = dict(env)
        if run % 2 == 0:
            how = rng.choice(POINTS)
            run_env["SBU_FAULT"], delay = how, None
        else:
            delay = rng.uniform(2.0, 14.0)
            how = f"timer {delay:.1f} s"
        rc = _cli(["forget", "--store", f"oxigraph:{folder / 'store'}", "--work", str(folder / "work"), *common],
                  run_env, delay)
        journal = Journal(folder / "work" / "journal.jsonl")
        at_kill = journal.records()[-1]["state"] if journal.records() else "(nothing journaled)"
        resumed = _cli(["resume", "--work", str(folder / "work")], env) if journal.pending() else None
        if not journal.records():  # killed before RECEIVED: nothing to resume; the request is simply sent again
            resumed = _cli(["forget", "--store", f"oxigraph:{folder / 'store'}", "--work", str(folder / "work"),
                            *common], env)
        with open_store(f"oxigraph:{folder / 'store'}", create=False) as store:
            same = memory_content(store) == reference
            texts = list(live_texts(store).values())
        leaked = sum(any(s in t for t in texts) for s in secrets)
        lost = sum(k not in texts for k in kept)
        committed = journal.records()[-1]["state"] == "COMMITTED"
        leftovers = len(list(folder.glob("store.*")))
        rows.append({"run": run, "kill": how, "exit": rc, "journal at kill": at_kill, "resumed": resumed,
                     "committed": committed, "same memory": same, "leaked values": leaked, "facts lost": lost,
                     "leftovers": leftovers})
        print(rows[-1], flush=True)
        shutil.rmtree(folder)
    import pandas as pd

    table = pd.DataFrame(rows)
    killed = int((table["exit"] == -9).sum())
    print(f"\nruns: {len(table)} in {(time.perf_counter() - started) / 60:.1f} min; killed by SIGKILL: {killed}; "
          f"resumed: {int(table['resumed'].notna().sum())}; committed: {int(table['committed'].sum())}; "
          f"memory equal to the uninterrupted run: {int(table['same memory'].sum())}; forgotten values left: "
          f"{int(table['leaked values'].sum())}; retained facts lost: {int(table['facts lost'].sum())}; "
          f"half-done compactions left: {int(table['leftovers'].sum())}")
    print(table.groupby("journal at kill").size().to_string())
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
