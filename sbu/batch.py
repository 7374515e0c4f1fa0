"""Sweeps: one notebook run with papermill over every combination of a parameter grid (``sbu batch``).

A sweep file, e.g. ``params/sweeps/seeds.yaml``::

    # what the sweep is for
    notebook: 04_evaluation     # a notebook of notebooks/ (or --notebooks-dir): its name, or a prefix of one
    params: {profile: smoke}    # fixed parameters (optional)
    grid:                       # every combination of these lists runs once
      seed: [0, 1, 2]
    collect: results.csv        # the CSV each run writes into its out_dir (optional; default results.csv)
    plot: [forget acc, test acc]   # the metrics summary.png draws (optional; default: all, at most 12)

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
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from sbu.errors import ConfigError, DataFileError
from sbu.eval.plots import draw_summary, panel_metrics
from sbu.eval.stats import LONG_FORMAT, is_seed_column, summarize

PROJECT = Path(__file__).resolve().parents[1]
SWEEP_KEYS = ("notebook", "params", "grid", "collect", "plot")
SET_BY_BATCH = "out_dir"  # each run's folder; a sweep file may not set it
TYPE_CHECKS = {"int": lambda v: isinstance(v, int) and not isinstance(v, bool),
               "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
               "str": lambda v: isinstance(v, str), "bool": lambda v: isinstance(v, bool),
               "list": lambda v: isinstance(v, list), "dict": lambda v: isinstance(v, dict)}
TRACEBACK_LINES = 20
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")  # what torch and numpy size their thread pools by
PROGRESS_SECONDS = 5.0  # how often the bar reads the running notebooks' progress


# ---------------------------------------------------------------------------------------------- the sweep file


@dataclass(frozen=True)
class Sweep:
    name: str
    path: Path
    notebook: Path
    params: dict
    grid: dict[str, list]
    collect: str = "results.csv"
    plot: tuple[str, ...] = ()  # the metrics summary.png draws; empty: every metric, at most MAX_PANELS

    def points(self) -> list[dict]:
        """Every combination of the grid's values, in the file's order."""
        return [dict(zip(self.grid, values)) for values in itertools.product(*self.grid.values())]


def load_sweep(path: str | Path, notebooks_dir: str | Path | None = None) -> Sweep:
    """Read a sweep file and check it against its notebook; raise a :class:`ConfigError` naming the bad key."""
    path = Path(path)
    raw = _read_mapping(path)
    where = f"sweep file {path}"
    unknown = sorted(set(raw) - set(SWEEP_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; a sweep file has the keys {', '.join(SWEEP_KEYS)}")
    if not isinstance(raw.get("notebook"), str) or not raw["notebook"]:
        raise ConfigError(f"{where}: 'notebook' must name a notebook, e.g. notebook: 04_evaluation")
    notebook = find_notebook(raw["notebook"], Path(notebooks_dir) if notebooks_dir else PROJECT / "notebooks")
    params = _check_params(raw.get("params") or {}, where)
    grid = _check_grid(raw.get("grid"), where)
    both = sorted(set(params) & set(grid))
    if both:
        raise ConfigError(f"{where}: {both[0]!r} is in both params and grid; keep it in one of them")
    collect = _check_collect(raw.get("collect", "results.csv"), where)
    plot = _check_plot(raw.get("plot", []), where)
    _check_against_notebook(notebook, params, grid, where)
    sweep = Sweep(name=path.stem, path=path, notebook=notebook, params=params, grid=grid, collect=collect,
                  plot=plot)
    _check_run_ids(sweep, where)
    return sweep


def _read_mapping(path: Path) -> dict:
    if not path.is_file():
        raise DataFileError(f"no sweep file {path}; sweeps live in params/sweeps/NAME.yaml")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"sweep file {path} is not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"sweep file {path} must be a mapping with the keys {', '.join(SWEEP_KEYS)}, "
                          f"not {type(raw).__name__}")
    return raw


def find_notebook(name: str, folder: Path) -> Path:
    """The one notebook of ``folder`` called ``name`` (stem or file name) or, failing that, starting with it —
    the matching of ``sbu run``."""
    found = sorted(folder.glob("*.ipynb"))
    exact = [p for p in found if name in (p.stem, p.name)]
    matches = exact or [p for p in found if p.stem.startswith(name)]
    if len(matches) == 1:
        return matches[0]
    available = [p.stem for p in found]
    if not matches:
        raise ConfigError(f"notebook {name!r} matches no notebook of {folder}; available: {available}")
    raise ConfigError(f"notebook {name!r} matches {[p.stem for p in matches]} in {folder}; give more of the name")


def _check_params(params, where: str) -> dict:
    if not isinstance(params, dict):
        raise ConfigError(f"{where}: 'params' must be a mapping of parameter: value, e.g. {{profile: smoke}}")
    return dict(params)


def _check_grid(grid, where: str) -> dict[str, list]:
    if not isinstance(grid, dict) or not grid:
        raise ConfigError(f"{where}: 'grid' must map at least one parameter to a list of values, e.g. "
                          "grid: {seed: [0, 1, 2]}")
    for key, values in grid.items():
        if not isinstance(values, list):
            raise ConfigError(f"{where}: grid.{key} is {values!r}, not a list; write {key}: [{values!r}] (each "
                              f"value of the list is one run)")
        if not values:
            raise ConfigError(f"{where}: grid.{key} is an empty list; give at least one value")
        repeated = [v for i, v in enumerate(values) if v in values[:i]]
        if repeated:
            raise ConfigError(f"{where}: grid.{key} lists {repeated[0]!r} twice; each value is one run")
    return dict(grid)


def _check_collect(collect, where: str) -> str:
    if not isinstance(collect, str) or not collect or Path(collect).is_absolute() or ".." in Path(collect).parts:
        raise ConfigError(f"{where}: 'collect' must be a file name inside each run's out_dir, such as results.csv; "
                          f"got {collect!r}")
    return collect


def _check_plot(plot, where: str) -> tuple[str, ...]:
    if not isinstance(plot, list) or not all(isinstance(m, str) and m for m in plot):
        raise ConfigError(f"{where}: 'plot' must be a list of metric names (the table's metric column), e.g. "
                          f"plot: [forget acc, test acc]; got {plot!r}")
    return tuple(dict.fromkeys(plot))


def notebook_parameters(notebook: Path) -> dict[str, dict]:
    """The notebook's parameters as papermill reads them: ``{name: {inferred_type_name, default, help}}``."""
    import papermill as pm

    try:
        return pm.inspect_notebook(str(notebook))
    except Exception as err:  # not JSON, not a notebook: say which file
        raise ConfigError(f"cannot read the parameters of {notebook}: {type(err).__name__}: {err}") from None


def _check_against_notebook(notebook: Path, params: dict, grid: dict[str, list], where: str) -> None:
    declared = notebook_parameters(notebook)
    if not declared:
        raise ConfigError(f"{notebook} has no parameters: a sweep needs its cell tagged 'parameters'")
    if SET_BY_BATCH not in declared:
        raise ConfigError(f"{notebook.name} has no parameter {SET_BY_BATCH!r}: each run writes into its own folder")
    settings = [("params", key, [value]) for key, value in params.items()]
    settings += [("grid", key, values) for key, values in grid.items()]
    for section, key, values in settings:
        if key == SET_BY_BATCH:
            raise ConfigError(f"{where}: {section}.{key} is set by sbu batch (each run's folder); remove it")
        if key not in declared:
            raise ConfigError(f"{where}: {section}.{key} is not a parameter of {notebook.name}; its parameters "
                              f"are {', '.join(k for k in declared if k != SET_BY_BATCH)}")
        kind = declared[key]["inferred_type_name"]
        for value in values:
            if kind in TYPE_CHECKS and not TYPE_CHECKS[kind](value):
                hint = f" (one list per run: {key}: [[a], [b, c]])" if kind == "list" and section == "grid" else ""
                raise ConfigError(f"{where}: {section}.{key} must be a {kind}, as {notebook.name} declares it; "
                                  f"got {value!r}{hint}")


# ---------------------------------------------------------------------------------------------- runs


def run_id(point: dict) -> str:
    """A folder name readable from the grid values, e.g. ``forget_splits=forget01,seed=0`` (keys sorted, so that
    reordering the grid does not rename finished runs)."""
    text = ",".join(f"{key}={_clean(_label(point[key]))}" for key in sorted(point))
    if len(text) > 120:  # file names stop at 255 bytes; keep it readable and unique
        text = text[:100] + "-" + hashlib.sha1(json.dumps(point, sort_keys=True).encode()).hexdigest()[:10]
    return text


def _label(value) -> str:
    """A grid value as one cell of a table or a piece of a run id; list values joined by ``+``."""
    if isinstance(value, list):
        return "+".join(_label(v) for v in value)
    return json.dumps(value) if isinstance(value, bool | None | dict) else str(value)


def _clean(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]", "_", text)


def _check_run_ids(sweep: Sweep, where: str) -> None:
    seen: dict[str, dict] = {}
    for point in sweep.points():
        other = seen.setdefault(run_id(point), point)
        if other != point:
            raise ConfigError(f"{where}: grid points {other} and {point} get the same folder name {run_id(point)!r}; "
                              "make the values differ in letters or digits")


@dataclass
class Run:
    run_id: str
    grid: dict
    parameters: dict  # everything papermill injects, out_dir included
    folder: Path
    status: str = "pending"  # → done, failed or skipped
    seconds: float = float("nan")
    error: str = ""
    failure: dict = field(default_factory=dict)


def plan_runs(sweep: Sweep, sweep_dir: Path) -> list[Run]:
    runs = []
    for point in sweep.points():
        folder = sweep_dir / run_id(point)
        parameters = {**sweep.params, **point, SET_BY_BATCH: str(folder)}
        runs.append(Run(run_id(point), point, parameters, folder))
    return runs


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
    from sbu.kernel import execute_notebook

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
    import pandas as pd

    if not path.is_file():
        raise FileNotFoundError(f"the notebook finished but wrote no {path.name} into its out_dir {path.parent}")
    pd.read_csv(path)  # a table that does not parse fails the run, not the collection at the end


def describe_failure(err: BaseException) -> dict:
    """Exception type, message and the traceback's last lines; for a notebook cell, the cell's own error."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(err, PapermillExecutionError):
        lines = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(err.traceback)).splitlines()
        return {"error_type": err.ename, "message": err.evalue, "cell": f"In [{err.exec_count}]",
                "traceback": lines[-TRACEBACK_LINES:]}
    lines = "".join(traceback.format_exception(err)).splitlines()
    return {"error_type": type(err).__name__, "message": str(err), "traceback": lines[-TRACEBACK_LINES:]}


def write_json(path: Path, record: dict) -> None:
    """Write through a temporary file: a marker is either whole or absent, never a torn file read as done."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1, default=str) + "\n")
    os.replace(tmp, path)


def execute_runs(runs: list[Run], sweep: Sweep, workers: int, name: str) -> None:
    """Run the pending runs through a process pool with a progress bar; fill in each run's status. While runs are
    going, the bar shows how far each has got: code cells done in its notebook and the progress bar of the cell
    it is running (as papermill last saved the notebook: at every cell's start and end, and every 30 s)."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from tqdm import tqdm

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
            label = ",".join(_label(v) for v in run.grid.values()) or run.run_id
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


# ---------------------------------------------------------------------------------------------- tables


def grid_columns(sweep: Sweep, tables: list) -> dict[str, str]:
    """The column name of each grid parameter in the tidy table: its own name, or ``run_<name>`` where a run's
    table already has a column of that name (a notebook's own ``seed`` of repeat seeds, say)."""
    taken = {column for table in tables for column in table.columns} | {"run_id"}
    return {key: f"run_{key}" if key in taken else key for key in sweep.grid}


def collect_results(runs: list[Run], sweep: Sweep):
    """Every finished run's table, one after another, with ``run_id`` and the grid values as columns."""
    import pandas as pd

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
    return _label(value) if isinstance(value, list | dict) else value


def runs_table(runs: list[Run], sweep: Sweep):
    import pandas as pd

    rows = [{"run_id": run.run_id, **{k: _cell(v) for k, v in run.grid.items()}, "status": run.status,
             "seconds": run.seconds, "error": run.error} for run in runs]
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------- the whole sweep


@dataclass
class SweepReport:
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
            for kind in ("png", "svg"):
                figure.savefig(outputs[f"summary.{kind}"], dpi=150)
            written += [outputs["summary.csv"], outputs["summary.png"], outputs["summary.svg"]]
    for path in set(outputs.values()) - set(written):
        path.unlink(missing_ok=True)
    return written


def print_report(report: SweepReport, echo=print) -> None:
    counts = {status: sum(run.status == status for run in report.runs) for status in ("done", "failed", "skipped")}
    echo(f"[sbu batch] {report.sweep.name}: {len(report.runs)} runs — {counts['done']} done, {counts['failed']} "
         f"failed, {counts['skipped']} skipped (finished before)")
    echo(f"  in {report.folder}: " + ", ".join(path.name for path in report.written))
    for run in report.failed:
        echo(f"  failed {run.run_id}: {run.error}  ({run.folder / 'failed.json'})")
