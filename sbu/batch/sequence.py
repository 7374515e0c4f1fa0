"""``sbu run``: the notebooks into one results folder, two at a time by default, with a line that says what will
happen and how long it took last time, and a progress bar per notebook that names the running cell and its own bar.

The bar reads the executed notebook as papermill saves it (at each cell's start and end, and every few seconds
while a cell prints), the way the sweep's bar does (:func:`sbu.batch.runner.run_progress`). How long each notebook
took is kept per profile in ``$SBU_CACHE/run-times.json``, for the next run's estimate."""

from __future__ import annotations

import json
import multiprocessing
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from sbu.batch.runner import run_progress, threads_per_run
from sbu.cache import cache_dir
from sbu.files import write_atomic
from sbu.kernel import clear_outputs, execute_notebook, execute_timed

POLL_SECONDS = 1.0


@dataclass(frozen=True)
class NotebookRun:
    """One notebook of ``sbu run``: where it is, where its executed copy and outputs go, and its parameters."""

    notebook: Path
    out: Path
    parameters: dict


def timings_file() -> Path:
    return cache_dir() / "run-times.json"


def _read_times() -> dict:
    """``run-times.json`` as a mapping; empty when missing or unreadable (it is only an estimate)."""
    try:
        record = json.loads(timings_file().read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def last_times(profile: str) -> dict[str, float]:
    """Seconds each notebook took at ``profile`` in the last run on this machine (empty: none yet)."""
    try:
        return {k: float(v) for k, v in _read_times().get(profile, {}).items()}
    except (AttributeError, TypeError, ValueError):
        return {}


def record_time(profile: str, notebook: str, seconds: float) -> None:
    record = _read_times()
    if not isinstance(record.get(profile), dict):
        record[profile] = {}
    record[profile][notebook] = round(seconds, 1)
    timings_file().parent.mkdir(parents=True, exist_ok=True)
    write_atomic(timings_file(), json.dumps(record, indent=1) + "\n")


def plan_line(runs: list[NotebookRun], profile: str, models: str, jobs: int = 2) -> str:
    """The first line of ``sbu run``: which notebooks, at which profile, where the models come from, and how
    long they should take, ``jobs`` at a time, by this machine's last run of each."""
    names = ", ".join(run.notebook.stem for run in runs)
    known = last_times(profile)
    took = [known[run.notebook.stem] for run in runs if run.notebook.stem in known]
    if len(took) == len(runs):
        estimate = f"about {_minutes(_makespan(took, jobs))} (by this machine's last run)"
    else:
        estimate = "no earlier run at this profile here to estimate from (the README gives measured times)"
    return f"[sbu run] {len(runs)} notebook(s) at profile {profile}: {names}; {models}; {estimate}"


def _makespan(seconds: list[float], jobs: int) -> float:
    """How long runs of these lengths take ``jobs`` at a time, the longest first, each to the first free slot."""
    ends = [0.0] * max(1, jobs)
    for length in sorted(seconds, reverse=True):
        ends[ends.index(min(ends))] += length
    return max(ends)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def execute_all(runs: list[NotebookRun], profile: str, jobs: int = 2, prepare_only: bool = False) -> None:
    """Execute the notebooks, ``jobs`` at a time (each kernel gets the cores / ``jobs`` threads, as a sweep's runs
    do), under one bar per notebook of its code cells with the running cell's first line and own progress bar.
    Each notebook's seconds are recorded for the next estimate. After the first failure no other notebook starts;
    the running ones end, then the failure is raised."""
    if prepare_only:
        for run in runs:
            execute_notebook(run.notebook, run.out / run.notebook.name, cwd=str(run.notebook.parent),
                             parameters=run.parameters, progress_bar=False, prepare_only=True)
            clear_outputs(run.out / run.notebook.name)  # a handout shows nothing before the student runs it
        return
    at_once = max(1, min(jobs, len(runs)))
    threads = threads_per_run(at_once)
    for run in runs:  # an earlier run's notebook in the same folder would show as this run's progress
        (run.out / run.notebook.name).unlink(missing_ok=True)
    bars = [tqdm(desc=run.notebook.stem, unit="cell", position=i, dynamic_ncols=True, bar_format=BAR)
            for i, run in enumerate(runs)]
    ticking = sys.stderr.isatty()  # a terminal redraws the elapsed time every second; a log gets changes only
    failure = None
    # spawn: a fresh interpreter per notebook process, the same on Linux and macOS, no forked kernel state
    took, started = last_times(profile), {}
    with ProcessPoolExecutor(at_once, mp_context=multiprocessing.get_context("spawn")) as pool:
        queue = longest_first(list(enumerate(runs)), took)
        going = {}  # handed to the pool only as a process frees up, so that a failure can stop the rest
        while queue or going:
            while queue and len(going) < at_once and failure is None:
                i, run = queue.pop(0)
                going[pool.submit(execute_timed, run.notebook, run.out / run.notebook.name, run.parameters,
                                  threads)] = i
                bars[i].reset()  # its elapsed time counts from its start
                started[i] = time.monotonic()
            if failure is not None:
                queue.clear()
            if not going:
                break
            finished, _ = wait(going, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
            for i, run in enumerate(runs):
                # the time left ticks every second: in a terminal only, a log gets a line when something changed
                left = _left(took.get(run.notebook.stem), started.get(i)) if ticking and i in going.values() else ""
                _show(run.out / run.notebook.name, bars[i], always=ticking, left=left)
            for future in finished:
                run = runs[going.pop(future)]
                if future.exception() is not None:
                    failure = failure or future.exception()
                else:
                    record_time(profile, run.notebook.stem, future.result())
    for bar in bars:
        bar.close()
    if failure is not None:
        raise failure


def _left(last: float | None, start: float | None) -> str:
    """The time left for a running notebook, by how long it took last time (empty without a last time)."""
    if last is None or start is None:
        return ""
    remaining = last - (time.monotonic() - start)
    return f"about {_minutes(remaining)} left" if remaining > 0 else "longer than last time"


def longest_first(queue: list[tuple[int, NotebookRun]], took: dict[str, float]) -> list[tuple[int, NotebookRun]]:
    """The order to start the notebooks in, so that the longest does not start last: by this machine's last
    times, longest first; without them, the last notebook first (the later ones run the longer studies)."""
    if all(run.notebook.stem in took for _, run in queue):
        return sorted(queue, key=lambda item: -took[item[1].notebook.stem])
    return queue[::-1]


BAR = "{desc}: {n}/{total} cells |{bar:20}| {elapsed}{postfix}"


def _show(target: Path, bar: tqdm, always: bool = True, left: str = "") -> None:
    progress = run_progress(target)
    if progress is None:
        return
    postfix = " · ".join(p for p in (left, progress.code, progress.running) if p)
    changed = (bar.total, bar.n, bar.postfix) != (progress.cells, progress.cells_done, postfix)
    bar.total, bar.n = progress.cells, progress.cells_done
    bar.set_postfix_str(postfix, refresh=False)
    if changed or always:
        bar.refresh()
