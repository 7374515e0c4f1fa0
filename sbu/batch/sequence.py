"""``sbu run``: the notebooks one after another into one results folder, with a line that says what will happen and
how long it took last time, and a progress bar per notebook that names the running cell's own bar.

The bar reads the executed notebook as papermill saves it (at each cell's start and end, and every few seconds
while a cell prints), the way the sweep's bar does (:func:`sbu.batch.runner.run_progress`). How long each notebook
took is kept per profile in ``$SBU_CACHE/run-times.json``, for the next run's estimate."""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from sbu.batch.runner import run_progress
from sbu.cache import cache_dir
from sbu.files import write_atomic
from sbu.kernel import execute_notebook

SAVE_SECONDS = 3  # how often papermill saves a notebook whose cell is printing (its default: 30)
POLL_SECONDS = 1.0


@dataclass(frozen=True)
class NotebookRun:
    """One notebook of ``sbu run``: where it is, where its executed copy and outputs go, and its parameters."""

    notebook: Path
    out: Path
    parameters: dict


def timings_file() -> Path:
    return cache_dir() / "run-times.json"


def last_times(profile: str) -> dict[str, float]:
    """Seconds each notebook took at ``profile`` in the last run on this machine (empty: none yet)."""
    try:
        record = json.loads(timings_file().read_text())
        return {k: float(v) for k, v in record.get(profile, {}).items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def record_time(profile: str, notebook: str, seconds: float) -> None:
    path = timings_file()
    try:
        record = json.loads(path.read_text()) if path.is_file() else {}
        if not isinstance(record, dict):
            record = {}
    except (OSError, ValueError):
        record = {}
    record.setdefault(profile, {})[notebook] = round(seconds, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(record, indent=1) + "\n")


def plan_line(runs: list[NotebookRun], profile: str, models: str) -> str:
    """The first line of ``sbu run``: which notebooks, at which profile, where the models come from, and how
    long this machine took for them last time."""
    names = ", ".join(run.notebook.stem for run in runs)
    known = last_times(profile)
    took = [known[run.notebook.stem] for run in runs if run.notebook.stem in known]
    if len(took) == len(runs):
        estimate = f"about {_minutes(sum(took))} (this machine's last run)"
    else:
        estimate = "no earlier run at this profile here to estimate from (the README gives measured times)"
    return f"[sbu run] {len(runs)} notebook(s) at profile {profile}: {names}; {models}; {estimate}"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def execute_with_progress(run: NotebookRun, profile: str, prepare_only: bool = False) -> float:
    """Execute one notebook under a bar of its code cells that shows the running cell's own progress bar; the
    seconds it took (also recorded for the next estimate)."""
    target = run.out / run.notebook.name
    if prepare_only:
        execute_notebook(run.notebook, target, cwd=str(run.notebook.parent), parameters=run.parameters,
                         progress_bar=False, prepare_only=True)
        return 0.0
    bar = tqdm(desc=run.notebook.stem, unit="cell", dynamic_ncols=True,
               bar_format="{desc}: {n}/{total} cells |{bar:20}| {elapsed}{postfix}")
    done = threading.Event()
    watcher = threading.Thread(target=_watch, args=(target, bar, done), daemon=True)
    start = time.perf_counter()
    watcher.start()
    try:
        execute_notebook(run.notebook, target, cwd=str(run.notebook.parent), parameters=run.parameters,
                         progress_bar=False, autosave_cell_every=SAVE_SECONDS)
    finally:
        done.set()
        watcher.join()
        _show(target, bar)
        bar.close()
    seconds = time.perf_counter() - start
    record_time(profile, run.notebook.stem, seconds)
    return seconds


def _watch(target: Path, bar: tqdm, done: threading.Event) -> None:
    ticking = sys.stderr.isatty()  # a terminal redraws the elapsed time every second; a log gets changes only
    while not done.wait(POLL_SECONDS):
        _show(target, bar, always=ticking)


def _show(target: Path, bar: tqdm, always: bool = True) -> None:
    progress = run_progress(target)
    if progress is None:
        return
    postfix = " · ".join(p for p in (progress.code, progress.running) if p)
    changed = (bar.total, bar.n, bar.postfix) != (progress.cells, progress.cells_done, postfix)
    bar.total, bar.n = progress.cells, progress.cells_done
    bar.set_postfix_str(postfix, refresh=False)
    if changed or always:
        bar.refresh()
