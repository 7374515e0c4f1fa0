"""Executing a sweep's runs: each in a fresh folder, leaving ``done.json`` or ``failed.json``; which runs finished
before (resume); the loop that hands the runs to a pool — the local process pool, or a Dask cluster's
(:mod:`sbu.batch.cluster`) — and shows how far the running ones have got (the progress bar).

:func:`execute_run` is the one way a run is executed, on this machine or on a Dask worker; it takes a
:class:`RunTask` and gives back a :class:`RunOutcome`, and both pickle as they are."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import shutil
import time
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Executor, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
from papermill.exceptions import PapermillExecutionError
from tqdm import tqdm

from sbu.batch.folder import notebook_hash, read_marker
from sbu.batch.sweep import SET_BY_BATCH, Run, Sweep, grid_label
from sbu.errors import DataFileError
from sbu.files import write_atomic
from sbu.kernel import THREAD_VARIABLES, execute_notebook, use_threads

TRACEBACK_LINES = 20
PROGRESS_SECONDS = 5.0  # how often the bar reads the running notebooks' progress
LOCAL = "local"  # where a run of the local pool ran (done.json's worker)


def finished_before(run: Run, collect: str, code_hash: str) -> dict | None:
    """The run's ``done.json`` if it finished with the same parameters and the same notebook code, and its table
    is still there; a damaged marker is a :class:`~sbu.errors.SweepFolderError` naming it."""
    done = read_marker(run.folder / "done.json")
    if done is None:
        return None
    same = _comparable(done["parameters"]) == _comparable(run.parameters) and done.get("notebook_sha256") == code_hash
    return done if same and (run.folder / collect).is_file() else None


def _comparable(parameters: dict) -> dict:
    # out_dir is where the run lies, not what it computed: a moved results folder is still finished
    return json.loads(json.dumps({k: v for k, v in parameters.items() if k != SET_BY_BATCH}, sort_keys=True))


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


def threads_per_run(workers: int, cpus: int | None = None, environ=None) -> int | None:
    """The thread count each of ``workers`` runs at once gets: the cores shared out, at least one. None (the
    kernel's default) for one run at a time, or when the environment already sets a thread count."""
    environ = os.environ if environ is None else environ
    if workers <= 1 or any(environ.get(name) for name in THREAD_VARIABLES):
        return None
    return max(1, (cpus or os.cpu_count() or 1) // workers)


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


def run_tasks(runs: list[Run], sweep: Sweep, code_hash: str, threads: int | None = None) -> list[RunTask]:
    """What each pending run hands to its worker."""
    return [RunTask(sweep.notebook, run.folder, run.parameters, sweep.collect, run.run_id, code_hash, threads)
            for run in runs if run.status == "pending"]


def local_pool(workers: int, pending: int) -> tuple[Executor, int | None]:
    """The default pool: ``workers`` processes on this machine (no more than there are runs), and the thread
    count each run gets (:func:`threads_per_run`)."""
    at_once = max(1, min(workers, pending))
    # spawn: a fresh interpreter per worker, the same on Linux and macOS, and no forked ZMQ or kernel state
    return ProcessPoolExecutor(max_workers=at_once, mp_context=multiprocessing.get_context("spawn")), \
        threads_per_run(at_once)


def execute_runs(runs: list[Run], tasks: list[RunTask], sweep: Sweep, pool: Executor,
                 execute: Callable[[RunTask], RunOutcome] = execute_run) -> None:
    """Hand each task to ``pool`` (``execute(task)`` there) with a progress bar; fill in each run's status. While
    runs are going, the bar shows how far each has got: code cells done in its notebook and the progress bar of
    the cell it is running (as papermill last saved the notebook: at every cell's start and end, and every 30 s)."""
    by_id = {run.run_id: run for run in runs}
    counts = {"done": 0, "failed": 0, "skipped": len(runs) - len(tasks)}
    bar = tqdm(total=len(runs), initial=counts["skipped"], desc=f"sweep {sweep.name}", unit="run")
    bar.set_postfix(counts)
    for task in tasks:  # what an earlier start left would show as this start's progress until the run begins
        (task.folder / sweep.notebook.name).unlink(missing_ok=True)
    with pool:
        futures = {pool.submit(execute, task): task for task in tasks}
        waiting, shown = set(futures), ""
        while waiting:
            finished, waiting = wait(waiting, timeout=PROGRESS_SECONDS, return_when=FIRST_COMPLETED)
            for future in finished:
                task = futures[future]
                record_outcome(by_id[task.run_id], task, future)
                counts[by_id[task.run_id].status] += 1
                bar.update()
            # a run whose notebook is not written yet is left out by progress_line: it has not started
            line = progress_line(counts, [by_id[futures[f].run_id] for f in waiting], sweep.notebook.name)
            if line != shown:  # a log file gets a line when something changed, not every few seconds
                bar.set_postfix_str(line)
                shown = line
    bar.close()


@dataclass(frozen=True)
class RunProgress:
    """How far one run has got in its notebook: code cells finished of all, and the running cell's progress bar."""

    cells_done: int
    cells: int
    running: str = ""  # the running cell's own progress bar, e.g. "study 12/54"
    code: str = ""  # the running cell's first line of code, e.g. "study, conditions = backflow_study(...)"


TQDM_LINE = re.compile(r"(?P<desc>[^\r\n|]*?):?\s*\d+%\|[^|]*\|\s*(?P<count>\d+/\d+)")


def run_progress(notebook: Path) -> RunProgress | None:
    """How far a run has got, from its executed notebook as papermill last saved it: code cells finished, and the
    last progress bar the running cell printed; None while there is no such notebook yet."""
    try:
        cells = json.loads(notebook.read_text())["cells"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    code = [cell for cell in cells if cell.get("cell_type") == "code"]
    status = [(cell.get("metadata", {}).get("papermill") or {}).get("status") for cell in code]
    running = next((cell for cell, state in zip(code, status) if state == "running"), None)
    if running is None:
        return RunProgress(status.count("completed"), len(code))
    return RunProgress(status.count("completed"), len(code), _last_bar(running), _first_code_line(running))


def _first_code_line(cell: dict) -> str:
    source = cell.get("source", "")
    lines = source.splitlines() if isinstance(source, str) else "".join(source).splitlines()
    code = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith(("#", "import ", "from "))]
    return code[0][:60] if code else ""


def _last_bar(cell: dict) -> str:
    streams = [out for out in cell.get("outputs", []) if out.get("output_type") == "stream"]
    text = "".join("".join(out.get("text", "")) for out in streams)
    for line in reversed(re.split(r"[\r\n]+", text)):
        found = TQDM_LINE.search(line)
        if found:
            return f"{found['desc'].strip()[:40]} {found['count']}".strip()
    return ""


def progress_line(counts: dict, going: list[Run], notebook_name: str) -> str:
    """The bar's postfix, the running runs first (a terminal cuts the end of a long line): each started run's
    grid values, its code cells done and its running cell's bar (``forget10 3/11 · study 12/54``), then the
    counts. A run whose notebook is not written yet is left out: the pool hands a worker its next run early."""
    parts = []
    for run in sorted(going, key=lambda r: r.run_id):
        progress = run_progress(run.folder / notebook_name)
        if progress:
            label = ",".join(grid_label(v) for v in run.grid.values()) or run.run_id
            parts.append(f"{label} {progress.cells_done}/{progress.cells}"
                         + (f" · {progress.running}" if progress.running else ""))
    parts.append(" ".join(f"{k}={v}" for k, v in counts.items() if v))
    return " | ".join(p for p in parts if p)


def record_outcome(run: Run, task: RunTask, future) -> None:
    """Fill in the run from its future. A worker that died with the run (killed, out of memory, a Dask worker lost
    more often than the scheduler retries) left no marker: its failure is written here, so it is on record too."""
    try:
        outcome = future.result()
    except Exception as err:
        outcome = failure_outcome(err, float("nan"), worker="a worker that was lost")
        try:
            write_marker(task, outcome)
        except OSError:
            pass  # runs.csv still says why
    run.status, run.seconds, run.outcome = outcome.status, outcome.seconds, outcome
    run.error = outcome.error
