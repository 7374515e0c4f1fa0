"""Executing a sweep's runs: each in a fresh folder, through a local pool of processes, leaving ``done.json`` or
``failed.json``; which runs finished before (resume); and how far the running ones have got (the progress bar)."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import shutil
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from papermill.exceptions import PapermillExecutionError
from tqdm import tqdm

from sbu.batch.sweep import SET_BY_BATCH, Run, Sweep, grid_label
from sbu.files import write_atomic
from sbu.kernel import execute_notebook

TRACEBACK_LINES = 20
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")  # what torch and numpy size their thread pools by
PROGRESS_SECONDS = 5.0  # how often the bar reads the running notebooks' progress


def finished_before(run: Run, collect: str) -> dict | None:
    """The run's ``done.json`` if it finished with the same parameters and its table is still there."""
    try:
        done = json.loads((run.folder / "done.json").read_text())
    except (OSError, ValueError):
        return None
    same = _comparable(done.get("parameters", {})) == _comparable(run.parameters)
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
    threads: int | None = None  # the kernel's thread count; None: its default


def threads_per_run(workers: int, cpus: int | None = None, environ=None) -> int | None:
    """The thread count each of ``workers`` runs at once gets: the cores shared out, at least one. None (the
    kernel's default) for one run at a time, or when the environment already sets a thread count."""
    environ = os.environ if environ is None else environ
    if workers <= 1 or any(environ.get(name) for name in THREAD_VARIABLES):
        return None
    return max(1, (cpus or os.cpu_count() or 1) // workers)


def execute_run(task: RunTask) -> dict:
    """Run one grid point in an empty folder and leave its marker; never raises. Runs in a worker process."""
    if task.threads:  # the kernel papermill starts inherits this process's environment
        os.environ.update({name: str(task.threads) for name in THREAD_VARIABLES})
    fresh_folder(task.folder)
    start = time.perf_counter()
    try:
        execute_notebook(task.notebook, task.folder / task.notebook.name, parameters=task.parameters,
                         cwd=str(task.notebook.parent), progress_bar=False)
        _check_collected(task.folder / task.collect)
    except Exception as err:  # any failure of one run is recorded; the sweep goes on
        failure = describe_failure(err)
        record = {"run_id": task.run_id, "parameters": task.parameters,
                  "seconds": round(time.perf_counter() - start, 2), **failure}
        write_json(task.folder / "failed.json", record)
        return {"status": "failed", **record}
    record = {"run_id": task.run_id, "parameters": task.parameters, "seconds": round(time.perf_counter() - start, 2),
              "threads": os.environ.get("OMP_NUM_THREADS", "default")}
    write_json(task.folder / "done.json", record)
    return {"status": "done", **record}


def fresh_folder(folder: Path) -> None:
    """Empty the run's folder: what a failed or killed run left must not mix with the new run's files."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def _check_collected(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"the notebook finished but wrote no {path.name} into its out_dir {path.parent}")
    pd.read_csv(path)  # a table that does not parse fails the run, not the collection at the end


def describe_failure(err: BaseException) -> dict:
    """Exception type, message and the traceback's last lines; for a notebook cell, the cell's own error."""
    if isinstance(err, PapermillExecutionError):
        lines = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(err.traceback)).splitlines()
        return {"error_type": err.ename, "message": err.evalue, "cell": f"In [{err.exec_count}]",
                "traceback": lines[-TRACEBACK_LINES:]}
    lines = "".join(traceback.format_exception(err)).splitlines()
    return {"error_type": type(err).__name__, "message": str(err), "traceback": lines[-TRACEBACK_LINES:]}


def write_json(path: Path, record: dict) -> None:
    """Write through a temporary file: a marker is either whole or absent, never a torn file read as done."""
    write_atomic(path, json.dumps(record, indent=1, default=str) + "\n")


def execute_runs(runs: list[Run], sweep: Sweep, workers: int, name: str) -> None:
    """Run the pending runs through a process pool with a progress bar; fill in each run's status. While runs are
    going, the bar shows how far each has got: code cells done in its notebook and the progress bar of the cell
    it is running (as papermill last saved the notebook: at every cell's start and end, and every 30 s)."""
    pending = [run for run in runs if run.status == "pending"]
    counts = {"done": 0, "failed": 0, "skipped": len(runs) - len(pending)}
    bar = tqdm(total=len(runs), initial=counts["skipped"], desc=f"sweep {name}", unit="run")
    bar.set_postfix(counts)
    if pending:
        for run in pending:  # what an earlier start left would show as this start's progress until the run begins
            (run.folder / sweep.notebook.name).unlink(missing_ok=True)
        # spawn: a fresh interpreter per worker, the same on Linux and macOS, and no forked ZMQ or kernel state
        context = multiprocessing.get_context("spawn")
        at_once = min(workers, len(pending))
        threads = threads_per_run(at_once)
        with ProcessPoolExecutor(max_workers=at_once, mp_context=context) as pool:
            futures = {pool.submit(execute_run, RunTask(sweep.notebook, run.folder, run.parameters, sweep.collect,
                                                        run.run_id, threads)): run for run in pending}
            waiting, shown = set(futures), ""
            while waiting:
                finished, waiting = wait(waiting, timeout=PROGRESS_SECONDS, return_when=FIRST_COMPLETED)
                for future in finished:
                    _record_outcome(futures[future], future)
                    counts[futures[future].status] += 1
                    bar.update()
                line = progress_line(counts, [futures[f] for f in waiting if f.running()], sweep.notebook.name)
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
    return RunProgress(status.count("completed"), len(code), _last_bar(running) if running else "")


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


def _record_outcome(run: Run, future) -> None:
    try:
        outcome = future.result()
    except Exception as err:  # the worker itself died (killed, out of memory)
        outcome = {"status": "failed", "seconds": float("nan"), **describe_failure(err)}
    run.status, run.seconds = outcome["status"], outcome["seconds"]
    if run.status == "failed":
        run.failure = outcome
        run.error = f"{outcome['error_type']}: {(str(outcome['message']).strip().splitlines() or [''])[0]}"[:300]
