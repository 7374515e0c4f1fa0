"""Executing a sweep's runs: which runs finished before (resume); the loop that hands the runs to a pool — the
local process pool, or a Dask cluster's (:mod:`sbu.batch.cluster`) — and shows how far the running ones have got
(the progress bar). One run is :func:`sbu.batch.run.execute_run`, on this machine or on a Dask worker."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Executor, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from sbu.batch.folder import read_marker
from sbu.batch.run import RunOutcome, RunTask, execute_run, failure_outcome, write_marker
from sbu.batch.sweep import SET_BY_BATCH, Run, Sweep, grid_label
from sbu.kernel import THREAD_VARIABLES

PROGRESS_SECONDS = 5.0  # how often the bar reads the running notebooks' progress


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


def threads_per_run(workers: int, cpus: int | None = None, environ=None) -> int | None:
    """The thread count each of ``workers`` runs at once gets: the cores shared out, at least one. None (the
    kernel's default) for one run at a time, or when the environment already sets a thread count."""
    environ = os.environ if environ is None else environ
    if workers <= 1 or any(environ.get(name) for name in THREAD_VARIABLES):
        return None
    return max(1, (cpus or os.cpu_count() or 1) // workers)


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
