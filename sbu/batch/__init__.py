"""Sweeps: one notebook run with papermill over every combination of a parameter grid (``sbu batch``).

A sweep file, e.g. ``params/sweeps/seeds.yaml``::

    # what the sweep is for
    notebook: 04_evaluation     # a notebook of notebooks/ (or --notebooks-dir): its name, or a prefix of one
    params: {profile: smoke}    # fixed parameters (optional)
    grid:                       # every combination of these lists runs once
      seed: [0, 1, 2]
    collect: results.csv        # the CSV each run writes into its out_dir (optional; default results.csv)
    plot: [forget acc, test acc]   # the metrics summary.png draws (optional; default: all, up to plots.MAX_PANELS)

A list-valued parameter takes one list per run: ``forget_splits: [[forget01], [forget05]]``. The whole file is
checked before anything is written: known keys, the notebook, every parameter of ``params`` and ``grid`` against
the notebook's cell tagged ``parameters`` (with the type it declares), non-empty lists in the grid.

Where results go (``--out`` replaces ``results/``)::

    results/NAME/                 NAME: the sweep file's name without .yaml
      seed=1/                     one folder per run, named by its grid values; the notebook's out_dir
        04_evaluation.ipynb       the executed notebook
        results.csv               what the notebook wrote (collect)
        done.json | failed.json   the run's marker: parameters and seconds | the error and its traceback
      results.csv                 every finished run's table, with run_id and the grid values as columns
      runs.csv                    one row per run: status done, failed or skipped, seconds, error
      summary.csv, summary.png/.svg   n, mean and 95 % CI per group, when the table is long-format

Resuming: starting a sweep again skips the runs whose ``done.json`` holds the same parameters (and whose table
is there); failed runs, runs whose folder has no marker (killed) and runs whose parameters changed are run again
from an empty folder. A failed run never stops the others.

Progress: one bar for the sweep; while runs go, it shows how far each has got in its notebook (code cells done).

Cores: with ``--workers N`` each run's kernel gets the machine's cores divided by N as its thread count
(``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``), so that N notebooks do not each start a thread per core and slow one
another several-fold; a thread count set in the environment is left as it is. ``done.json`` records it.

Folder safety: one ``sbu batch`` at a time on a sweep folder (a lock file, ``.sbu-batch.lock``; a second gets an
error at once); a finished run is run again when its notebook's code changed (``done.json`` holds the SHA-256 of
the code cells), not only its parameters; a damaged ``done.json`` or ``failed.json`` stops the sweep naming it.

On a Dask cluster (``--scheduler tcp://HOST:PORT``, or ``--cluster slurm|pbs|sge|lsf CONFIG.yaml`` through
dask-jobqueue) each run goes to a worker, which runs the notebook into the same folders: the checkout and the results
folder must be on a file system the workers share. Every worker is checked before a run starts
(:mod:`sbu.batch.cluster`). The local pool is the default.

The parts: :mod:`sbu.batch.sweep` reads and checks the sweep file and plans the runs, :mod:`sbu.batch.folder` keeps
the sweep folder safe, :mod:`sbu.batch.runner` executes the runs (one run, markers, resume, the pool loop, progress),
:mod:`sbu.batch.cluster` puts them on Dask, :mod:`sbu.batch.collect` writes the tables, the summary
(:func:`sbu.eval.stats.summarize`) and its figure (:func:`sbu.eval.plots.draw_summary`); :func:`run_sweep` here
does them in order.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from sbu.batch.cluster import check_workers, cluster_pool, dask_client, read_jobqueue_config
from sbu.batch.collect import write_tables
from sbu.batch.folder import check_markers, locked, notebook_hash
from sbu.batch.runner import (
    THREAD_VARIABLES,
    execute_run,
    execute_runs,
    finished_before,
    local_pool,
    run_tasks,
    threads_per_run,
)
from sbu.batch.sweep import PROJECT, Run, Sweep, load_sweep, plan_runs
from sbu.errors import ConfigError

__all__ = ["THREAD_VARIABLES", "SweepReport", "run_sweep", "threads_per_run"]


@dataclass(frozen=True)
class SweepReport:
    """What a start of a sweep did: each run's status, and the files it wrote into the sweep's folder."""

    sweep: Sweep
    folder: Path
    runs: list[Run]
    written: list[Path]

    @property
    def failed(self) -> list[Run]:
        return [run for run in self.runs if run.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed


def run_sweep(sweep_file: str | Path, workers: int = 1, out: str | Path | None = None,
              notebooks_dir: str | Path | None = None, echo=print, scheduler: str | None = None,
              cluster: tuple[str, str | Path] | None = None) -> SweepReport:
    """Check the sweep, run what is not finished — in a local pool of ``workers`` processes, or on the Dask
    scheduler at ``scheduler``, or on a dask-jobqueue ``cluster`` (kind, settings file) — write the tables and
    figures, print a short report."""
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ConfigError(f"--workers must be a whole number ≥ 1 (processes running notebooks at once), got {workers}")
    if scheduler and cluster:
        raise ConfigError("give --scheduler (a Dask scheduler running) or --cluster (one dask-jobqueue starts), not "
                          "both")
    if (scheduler or cluster) and workers != 1:
        raise ConfigError("--workers sizes the local pool; on a Dask cluster the workers decide how many runs go at "
                          "once (one per worker)")
    sweep = load_sweep(sweep_file, notebooks_dir)  # everything is checked before anything is written
    jobqueue = read_jobqueue_config(*cluster) if cluster else None
    folder = (Path(out) if out else PROJECT / "results").resolve() / sweep.name
    code_hash = notebook_hash(sweep.notebook)
    with ExitStack() as stack:
        client = stack.enter_context(dask_client(scheduler, jobqueue, echo)) if scheduler or jobqueue else None
        stack.enter_context(locked(folder))
        runs = plan_runs(sweep, folder)
        check_markers([run.folder for run in runs])
        _skip_finished(runs, sweep, code_hash, echo)
        pending = sum(run.status == "pending" for run in runs)
        if client is not None:
            check_workers(client, sweep.notebook, code_hash, folder)
            (pool, execute), threads = stack.enter_context(cluster_pool(client)), None
        else:
            (pool, threads), execute = local_pool(workers, pending), execute_run
        execute_runs(runs, run_tasks(runs, sweep, code_hash, threads), sweep, pool, execute)
        written = write_tables(runs, sweep, folder, echo)
    report = SweepReport(sweep, folder, runs, written)
    print_report(report, echo)
    return report


def _skip_finished(runs: list[Run], sweep: Sweep, code_hash: str, echo=print) -> None:
    changed = 0
    for run in runs:
        done = finished_before(run, sweep.collect, code_hash)
        if done:
            run.status, run.seconds = "skipped", done.get("seconds", float("nan"))
        changed += not done and (run.folder / "done.json").is_file()
    if changed:
        echo(f"[sbu batch] {changed} finished run(s) ran with other parameters or another version of "
             f"{sweep.notebook.name} (or lost their {sweep.collect}): running them again")


def print_report(report: SweepReport, echo=print) -> None:
    """The counts, the files written and one line per failed run, pointing at its failed.json."""
    counts = {status: sum(run.status == status for run in report.runs) for status in ("done", "failed", "skipped")}
    echo(f"[sbu batch] {report.sweep.name}: {len(report.runs)} runs — {counts['done']} done, {counts['failed']} "
         f"failed, {counts['skipped']} skipped (finished before)")
    echo(f"  in {report.folder}: " + ", ".join(path.name for path in report.written))
    for run in report.failed:
        echo(f"  failed {run.run_id}: {run.error}  ({run.folder / 'failed.json'})")
