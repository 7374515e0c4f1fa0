"""Demonstrations that a notebook runs as one call.

:func:`crash_and_resume` is notebook 03's crash demonstration: a forget request through the command line on a memory
on disk, ``sbu forget`` killed with SIGKILL at a fault point (:mod:`sbu.faults`, set by ``SBU_FAULT``), then
``sbu resume`` to finish it — real processes, killed for real — and whether the memory ends up as an uninterrupted
request left it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sbu.errors import SbuError
from sbu.journal import Journal
from sbu.memory import MemoryStore, open_store
from sbu.sync import memory_content


@dataclass(frozen=True)
class CrashResume:
    """What :func:`crash_and_resume` saw."""

    fault: str  # the fault point sbu forget was killed at
    killed_exit: int  # exit status of the killed sbu forget (-9: SIGKILL)
    states_at_crash: tuple[str, ...]  # the request's journal states when it was killed
    resume_exit: int  # exit status of sbu resume
    states_after: tuple[str, ...]  # the journal states after the resume
    same_memory: bool  # the memory equals the uninterrupted request's (timestamps aside)

    @property
    def ok(self) -> bool:
        """Killed by SIGKILL, resumed, committed, into the uninterrupted request's memory."""
        return (self.killed_exit == -9 and self.resume_exit == 0 and self.states_after[-1:] == ("COMMITTED",)
                and self.same_memory)

    def record(self) -> dict:
        """The result as notebook 03 shows it and keeps it in metrics.json."""
        return {"killed at": self.fault, "exit code of the killed process": self.killed_exit,
                "journal at the crash": " → ".join(self.states_at_crash), "resume exit code": self.resume_exit,
                "journal after resume": " → ".join(self.states_after),
                "memory equals the uninterrupted run's": self.same_memory}

    def table(self) -> pd.DataFrame:
        return pd.Series(self.record()).to_frame("crash and resume")

    def describe(self) -> str:
        return (f"Killed at {self.fault} (exit {self.killed_exit}), resumed (exit {self.resume_exit}); memory equal to "
                f"the uninterrupted run: {self.same_memory}.")


def _sbu(args: list[str], fault: str | None = None) -> subprocess.CompletedProcess:
    """``sbu ARGS`` in a new process (this Python), with ``SBU_FAULT`` set to ``fault`` only."""
    env = {k: v for k, v in os.environ.items() if k != "SBU_FAULT"}
    if fault:
        env["SBU_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "sbu.cli", *args], env=env, capture_output=True, text=True)


def crash_and_resume(folder: str | Path, patient: str, model: str | Path, reference: MemoryStore, *,
                     fault: str = "after-MEMORY", steps: int = 0, profile: str = "smoke", seed: int = 0,
                     corpus: str | Path | None = None) -> CrashResume:
    """Forget ``patient`` through the command line and crash it: ``sbu ingest`` into a fresh store in
    ``folder``/store (``folder`` is emptied first), ``sbu forget`` with the model at ``model`` killed at ``fault``
    (journal and adapters in ``folder``/work), then ``sbu resume``. The memory it leaves is compared with
    ``reference``, the memory an uninterrupted request for the same patient left.

    ``steps``: SRA steps per round (0: the profile's budget); ``profile`` and ``seed``: the cohort, unless
    ``corpus`` names a corpus folder (:meth:`sbu.data.schema.Corpus.write`)."""
    folder = Path(folder)
    store, work = folder / "store", folder / "work"
    corpus_args = ["--profile", profile, "--seed", str(seed)] + (["--corpus", str(corpus)] if corpus else [])
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    ingested = _sbu(["ingest", "--store", f"oxigraph:{store}", *corpus_args])
    if ingested.returncode != 0:
        raise SbuError(f"sbu ingest into {store} failed (exit {ingested.returncode}): {ingested.stderr[-2000:]}")
    killed = _sbu(["forget", "--patient", patient, "--store", f"oxigraph:{store}", "--model", str(model),
                   "--work", str(work), *(["--steps", str(steps)] if steps else []), *corpus_args], fault=fault)
    journal = Journal(work / "journal.jsonl")
    states_at_crash = tuple(r["state"] for r in journal.records())
    resumed = _sbu(["resume", "--work", str(work)])
    states_after = tuple(r["state"] for r in journal.records())
    with open_store(f"oxigraph:{store}", create=False) as crashed:
        same = memory_content(crashed) == memory_content(reference)
    return CrashResume(fault, killed.returncode, states_at_crash, resumed.returncode, states_after, same)
