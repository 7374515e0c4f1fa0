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

The parts: :mod:`sbu.batch.sweep` reads and checks the sweep file and plans the runs, :mod:`sbu.batch.runner`
executes them (process pool, markers, resume, progress), :mod:`sbu.batch.collect` writes the tables, the summary
(:func:`sbu.eval.stats.summarize`) and its figure (:func:`sbu.eval.plots.draw_summary`); :func:`run_sweep` here
does the three in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sbu.batch.collect import write_tables
from sbu.batch.runner import THREAD_VARIABLES, execute_runs, finished_before, threads_per_run
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
              notebooks_dir: str | Path | None = None, echo=print) -> SweepReport:
    """Check the sweep, run what is not finished, write the tables and figures, print a short report."""
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ConfigError(f"--workers must be a whole number ≥ 1 (processes running notebooks at once), got {workers}")
    sweep = load_sweep(sweep_file, notebooks_dir)  # everything is checked before anything is written
    folder = (Path(out) if out else PROJECT / "results").resolve() / sweep.name
    runs = plan_runs(sweep, folder)
    changed = 0
    for run in runs:
        done = finished_before(run, sweep.collect)
        if done:
            run.status, run.seconds = "skipped", done.get("seconds", float("nan"))
        changed += not done and (run.folder / "done.json").is_file()
    if changed:
        echo(f"[sbu batch] {changed} finished run(s) ran with other parameters (or lost their {sweep.collect}): "
             "running them again")
    folder.mkdir(parents=True, exist_ok=True)
    execute_runs(runs, sweep, workers, sweep.name)
    written = write_tables(runs, sweep, folder, echo)
    report = SweepReport(sweep, folder, runs, written)
    print_report(report, echo)
    return report


def print_report(report: SweepReport, echo=print) -> None:
    """The counts, the files written and one line per failed run, pointing at its failed.json."""
    counts = {status: sum(run.status == status for run in report.runs) for status in ("done", "failed", "skipped")}
    echo(f"[sbu batch] {report.sweep.name}: {len(report.runs)} runs — {counts['done']} done, {counts['failed']} "
         f"failed, {counts['skipped']} skipped (finished before)")
    echo(f"  in {report.folder}: " + ", ".join(path.name for path in report.written))
    for run in report.failed:
        echo(f"  failed {run.run_id}: {run.error}  ({run.folder / 'failed.json'})")
