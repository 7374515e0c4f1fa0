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
the notebook's cell tagged ``parameters`` (with the type it declares) and, for the project's notebooks, every value
against what the notebook's check cell allows (:mod:`sbu.params`), non-empty lists in the grid.

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
the sweep folder safe, :mod:`sbu.batch.run` executes one run and leaves its marker (all a worker process imports, so
it starts in seconds), :mod:`sbu.batch.runner` the rest of running (resume, the pool loop, progress),
:mod:`sbu.batch.cluster` puts them on Dask, :mod:`sbu.batch.collect` writes the tables, the summary
(:func:`sbu.eval.stats.summarize`) and its figure (:func:`sbu.eval.plots.draw_summary`);
:func:`sbu.batch.start.run_sweep` does them in order. This package's own module imports nothing.
"""
