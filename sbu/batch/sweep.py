"""The sweep file: its schema and checks (every key, every parameter against the notebook's cell tagged
``parameters``, every value against :mod:`sbu.params`), and the plan it makes — one :class:`Run` per grid point,
each in a folder named by its values."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path

import papermill as pm
import yaml

from sbu.batch.run import RunOutcome
from sbu.errors import ConfigError, DataFileError, ParameterError
from sbu.params import check_values, rules

PROJECT = Path(__file__).resolve().parents[2]
SWEEP_KEYS = ("notebook", "params", "grid", "collect", "plot")
SET_BY_BATCH = "out_dir"  # each run's folder; a sweep file may not set it
TYPE_CHECKS = {"int": lambda v: isinstance(v, int) and not isinstance(v, bool),
               "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
               "str": lambda v: isinstance(v, str), "bool": lambda v: isinstance(v, bool),
               "list": lambda v: isinstance(v, list), "dict": lambda v: isinstance(v, dict)}


@dataclass(frozen=True)
class Sweep:
    """A sweep file, checked: the notebook it runs, its fixed parameters, its grid and what to collect and draw."""

    name: str
    path: Path
    notebook: Path
    params: dict
    grid: dict[str, list]
    collect: str = "results.csv"
    plot: tuple[str, ...] = ()  # the metrics summary.png draws; empty: every metric, up to plots.MAX_PANELS

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
    folder = Path(notebooks_dir) if notebooks_dir else PROJECT / "notebooks"
    notebook = find_notebook(raw["notebook"], folder).resolve()  # a Dask worker has another working directory
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
    except yaml.YAMLError as err:  # name the file and line, not YAML's "<unicode string>"
        mark = getattr(err, "problem_mark", None)
        at = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"sweep file {at} is not valid YAML: {problem}") from None
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
    _check_values(notebook, settings, where)


def _check_values(notebook: Path, settings: list[tuple[str, str, list]], where: str) -> None:
    """The values every run will get, checked as the notebook's check cell will check them (:mod:`sbu.params`):
    each value on its own, so that a sweep that would fail inside a run fails here, before any run starts."""
    if rules(notebook.name) is None:  # a notebook the package does not ship: its declared types are all there is
        return
    for section, key, values in settings:
        for value in values:
            try:
                check_values(notebook.name, {key: value})
            except ParameterError as err:
                raise ParameterError(f"{where}: {section}.{key}: {err}") from None


# ---------------------------------------------------------------------------------------------- runs


def run_id(point: dict) -> str:
    """A folder name readable from the grid values, e.g. ``forget_splits=forget01,seed=0`` (keys sorted, so that
    reordering the grid does not rename finished runs)."""
    text = ",".join(f"{key}={_clean(grid_label(point[key]))}" for key in sorted(point))
    if len(text) > 120:  # file names stop at 255 bytes; keep it readable and unique
        text = text[:100] + "-" + hashlib.sha1(json.dumps(point, sort_keys=True).encode()).hexdigest()[:10]
    return text


def grid_label(value) -> str:
    """A grid value as one cell of a table or a piece of a run id; list values joined by ``+``."""
    if isinstance(value, list):
        return "+".join(grid_label(v) for v in value)
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
    """One grid point of a sweep: what it runs with and where; status, seconds and error are filled in as it runs."""

    run_id: str
    grid: dict
    parameters: dict  # everything papermill injects, out_dir included
    folder: Path
    status: str = "pending"  # → done, failed or skipped
    seconds: float = float("nan")
    error: str = ""
    outcome: RunOutcome | None = None  # how it ended, once it ran


def plan_runs(sweep: Sweep, sweep_dir: Path) -> list[Run]:
    """One pending run per grid point, in the grid's order, each with its own folder under ``sweep_dir``."""
    runs = []
    for point in sweep.points():
        folder = sweep_dir / run_id(point)
        parameters = {**sweep.params, **point, SET_BY_BATCH: str(folder)}
        runs.append(Run(run_id(point), point, parameters, folder))
    return runs
