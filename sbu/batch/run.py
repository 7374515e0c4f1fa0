"""One run of a sweep, as a worker process executes it — in the local pool or on a Dask worker: a fresh folder,
the notebook, and ``done.json`` or ``failed.json``. :func:`execute_run` takes a :class:`RunTask` and gives back a
:class:`RunOutcome`, and both pickle as they are. This module imports only what a run needs (papermill, not the
package's models or memory), so that a worker process starts in seconds."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
from papermill.exceptions import PapermillExecutionError

from sbu.batch.folder import notebook_hash
from sbu.errors import DataFileError
from sbu.files import write_atomic
from sbu.kernel import execute_notebook, use_threads

TRACEBACK_LINES = 20
LOCAL = "local"  # where a run of the local pool ran (done.json's worker)


@dataclass(frozen=True)
class RunTask:
    """What a worker process needs for one run (picklable)."""

    notebook: Path
    folder: Path
    parameters: dict
    collect: str
    run_id: str
    notebook_sha256: str  # the code the sweep planned with; a worker whose notebook differs fails the run
    threads: int | None = None  # the kernel's thread count; None: its default


@dataclass(frozen=True)
class RunOutcome:
    """How one run ended, as its marker records it: done or failed, seconds, and for a failure the exception's
    type, message, the notebook cell and the traceback's last lines."""

    status: str  # done or failed
    seconds: float = float("nan")
    threads: str = ""
    worker: str = LOCAL
    error_type: str = ""
    message: str = ""
    cell: str = ""
    traceback: tuple[str, ...] = ()

    @property
    def error(self) -> str:
        """One line for runs.csv and the report."""
        return f"{self.error_type}: {(self.message.strip().splitlines() or [''])[0]}"[:300] if self.error_type else ""


def execute_run(task: RunTask, worker: str = LOCAL) -> RunOutcome:
    """Run one grid point in an empty folder and leave its marker. A failure of the run is its outcome; only a
    folder that cannot be written raises. Runs in a worker process of the local pool or on a Dask worker."""
    use_threads(task.threads)  # the kernel papermill starts inherits this process's environment
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    fresh_folder(task.folder)
    start = time.perf_counter()
    try:
        _check_notebook(task, worker)
        execute_notebook(task.notebook, task.folder / task.notebook.name, parameters=task.parameters,
                         cwd=str(task.notebook.parent), progress_bar=False)
        _check_collected(task.folder / task.collect)
    except Exception as err:  # any failure of one run is recorded; the sweep goes on
        outcome = failure_outcome(err, round(time.perf_counter() - start, 2), threads, worker)
        write_marker(task, outcome)
        return outcome
    outcome = RunOutcome("done", round(time.perf_counter() - start, 2), threads, worker)
    write_marker(task, outcome)
    return outcome


def _check_notebook(task: RunTask, worker: str) -> None:
    if not task.notebook.is_file():
        raise DataFileError(f"no notebook {task.notebook} on {worker}")
    if notebook_hash(task.notebook) != task.notebook_sha256:
        raise DataFileError(f"{task.notebook} on {worker} is not the notebook the sweep was started with (its code "
                            "differs: another checkout, or edited since)")


def failure_outcome(err: BaseException, seconds: float, threads: str = "", worker: str = LOCAL) -> RunOutcome:
    """The outcome of a run that raised ``err``: exception type, message and the traceback's last lines; for a
    notebook cell, the cell's own error."""
    if isinstance(err, PapermillExecutionError):
        lines = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(err.traceback)).splitlines()
        return RunOutcome("failed", seconds, threads, worker, err.ename, err.evalue, f"In [{err.exec_count}]",
                          tuple(lines[-TRACEBACK_LINES:]))
    lines = "".join(traceback.format_exception(err)).splitlines()
    return RunOutcome("failed", seconds, threads, worker, type(err).__name__, str(err), "",
                      tuple(lines[-TRACEBACK_LINES:]))


def write_marker(task: RunTask, outcome: RunOutcome) -> None:
    """done.json or failed.json: the run, its parameters, the notebook code it ran and how it ended. Written
    through a temporary file: a marker is either whole or absent, never a torn file read as done."""
    record = {"run_id": task.run_id, "parameters": task.parameters, "notebook_sha256": task.notebook_sha256,
              **{k: v for k, v in asdict(outcome).items() if k != "status" and v not in ("", ())}}
    name = "done.json" if outcome.status == "done" else "failed.json"
    write_atomic(task.folder / name, json.dumps(record, indent=1, default=str) + "\n")


def fresh_folder(folder: Path) -> None:
    """Empty the run's folder: what a failed or killed run left must not mix with the new run's files."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def _check_collected(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"the notebook finished but wrote no {path.name} into its out_dir {path.parent}")
    pd.read_csv(path)  # a table that does not parse fails the run, not the collection at the end
