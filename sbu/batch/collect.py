"""Collecting a sweep's results: every finished run's table in one tidy table with the grid values as columns,
one row per run, and from a long-format table the summary (n, mean, 95 % CI per group) and its figure."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sbu.batch.sweep import Run, Sweep, grid_label
from sbu.eval.plots import draw_summary, panel_metrics
from sbu.eval.stats import LONG_FORMAT, is_seed_column, summarize
from sbu.eval.style import save as save_figure


def grid_columns(sweep: Sweep, tables: list) -> dict[str, str]:
    """The column name of each grid parameter in the tidy table: its own name, or ``run_<name>`` where a run's
    table already has a column of that name (a notebook's own ``seed`` of repeat seeds, say)."""
    taken = {column for table in tables for column in table.columns} | {"run_id"}
    return {key: f"run_{key}" if key in taken else key for key in sweep.grid}


def collect_results(runs: list[Run], sweep: Sweep) -> tuple[pd.DataFrame | None, dict[str, str]]:
    """Every finished run's table, one after another, with ``run_id`` and the grid values as columns, and the
    column of each grid parameter (:func:`grid_columns`); ``None, {}`` while no run has finished."""
    finished = [run for run in runs if run.status in ("done", "skipped")]
    tables = [pd.read_csv(run.folder / sweep.collect) for run in finished]
    if not tables:
        return None, {}
    columns = grid_columns(sweep, tables)
    tidy = [table.assign(run_id=run.run_id, **{columns[k]: _cell(v) for k, v in run.grid.items()})
            for run, table in zip(finished, tables)]
    table = pd.concat(tidy, ignore_index=True)
    front = ["run_id", *columns.values()]
    return table[front + [c for c in table.columns if c not in front]], columns


def _cell(value):
    """A grid value as a table cell: lists and mappings as one readable string, numbers and text as they are."""
    return grid_label(value) if isinstance(value, list | dict) else value


def runs_table(runs: list[Run], sweep: Sweep) -> pd.DataFrame:
    """runs.csv: one row per run with its grid values, status, seconds and error."""
    rows = [{"run_id": run.run_id, **{k: _cell(v) for k, v in run.grid.items()}, "status": run.status,
             "seconds": run.seconds, "error": run.error} for run in runs]
    return pd.DataFrame(rows)


def write_tables(runs: list[Run], sweep: Sweep, folder: Path, echo=print) -> list[Path]:
    """runs.csv always; results.csv, summary.csv and the figures from what finished. Files of an earlier start
    that this one cannot write are removed, so the folder never shows stale results."""
    outputs = {name: folder / name for name in ("runs.csv", "results.csv", "summary.csv", "summary.png",
                                                "summary.svg")}
    runs_table(runs, sweep).to_csv(outputs["runs.csv"], index=False)
    written = [outputs["runs.csv"]]
    table, columns = collect_results(runs, sweep)
    if table is not None:
        table.to_csv(outputs["results.csv"], index=False)
        written.append(outputs["results.csv"])
        summary = summarize(table)
        if summary is None:
            echo(f"[sbu batch] note: {sweep.collect} is not long-format (columns {', '.join(LONG_FORMAT)}, numeric "
                 "value): no summary or figures")
        elif summary.empty:
            echo(f"[sbu batch] note: the runs' {sweep.collect} have no rows: no summary or figures")
        else:
            summary.to_csv(outputs["summary.csv"], index=False)
            hue = [c for k, c in columns.items() if not is_seed_column(c) and not is_seed_column(k)]
            figure = draw_summary(summary, hue, panel_metrics(summary, sweep, echo))
            save_figure(figure, folder, "summary")
            written += [outputs["summary.csv"], outputs["summary.png"], outputs["summary.svg"]]
    for path in set(outputs.values()) - set(written):
        path.unlink(missing_ok=True)
    return written
