"""``sbu batch``: a notebook over a parameter grid — checked before it runs, failures recorded without stopping the
others, resumed where it stopped, collected into one tidy table with a summary; and every notebook's parameters
documented for ``papermill --help-notebook``.

The sweeps run the real thing (papermill, a python3 kernel) on ``tests/data/sweep_notebook.ipynb``, which writes
a long-format table with three repeat seeds and fails when ``x == fail_on``.
"""

from __future__ import annotations

import ast
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from scipy import stats

from sbu.batch.runner import RunProgress, progress_line, run_progress, threads_per_run
from sbu.batch.sweep import Run, load_sweep, plan_runs, run_id
from sbu.cli import main
from sbu.errors import ConfigError, ParameterError, SbuError
from sbu.eval import study
from sbu.eval.plots import MAX_PANELS, draw_summary, panel_metrics
from sbu.eval.stats import summarize

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
NOTEBOOK = DATA / "sweep_notebook.ipynb"


def _sweep_file(folder: Path, content, name: str = "xs") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    return path


def _batch(sweep: Path, out: Path, *options: str) -> int:
    return main(["batch", str(sweep), "--out", str(out), "--notebooks-dir", str(DATA), *options])


# ------------------------------------------------------------------------------ a sweep with one failing run

FAILING = {"notebook": "sweep_notebook", "params": {"fail_on": 2}, "grid": {"x": [1, 2, 3]}}


@pytest.fixture(scope="module")
def first_start(tmp_path_factory):
    """Three runs over two workers, x = 2 failing; what the first start left."""
    folder = tmp_path_factory.mktemp("sweep")
    sweep, out = _sweep_file(folder, FAILING), folder / "results"
    code = _batch(sweep, out, "--workers", "2")
    return sweep, out / "xs", code


def _executed(sweep_dir: Path, run: str) -> Path:
    return sweep_dir / run / NOTEBOOK.name


def test_one_failing_run_does_not_stop_the_others(first_start):
    _, sweep_dir, code = first_start
    assert code == 1, "a failed run makes the exit status 1"
    for run in ("x=1", "x=3"):
        assert (sweep_dir / run / "done.json").is_file() and _executed(sweep_dir, run).is_file()
        assert json.loads((sweep_dir / run / "done.json").read_text())["parameters"]["x"] == int(run[-1])
    failed = json.loads((sweep_dir / "x=2" / "failed.json").read_text())
    assert failed["error_type"] == "ValueError" and "told to fail on" in failed["message"]
    assert any("ValueError" in line for line in failed["traceback"])
    assert not (sweep_dir / "x=2" / "done.json").exists()

    runs = pd.read_csv(sweep_dir / "runs.csv").set_index("run_id")
    assert runs["status"].to_dict() == {"x=1": "done", "x=2": "failed", "x=3": "done"}
    assert "ValueError" in runs.loc["x=2", "error"] and runs.loc["x=1", "seconds"] > 0

    table = pd.read_csv(sweep_dir / "results.csv")
    assert sorted(table["run_id"].unique()) == ["x=1", "x=3"] and sorted(table["x"].unique()) == [1, 3]
    assert {"condition", "metric", "seed", "value"} <= set(table.columns)
    assert len(table) == 2 * 12


def test_starting_again_skips_finished_runs_and_retries_the_failed_one(first_start, capsys):
    sweep, sweep_dir, _ = first_start
    finished = {run: _executed(sweep_dir, run).stat().st_mtime_ns for run in ("x=1", "x=3")}
    failed_at = (sweep_dir / "x=2" / "failed.json").stat().st_mtime_ns

    assert _batch(sweep, sweep_dir.parent, "--workers", "2") == 1
    assert {run: _executed(sweep_dir, run).stat().st_mtime_ns for run in finished} == finished, "not re-executed"
    assert (sweep_dir / "x=2" / "failed.json").stat().st_mtime_ns != failed_at, "the failed run ran again"
    runs = pd.read_csv(sweep_dir / "runs.csv").set_index("run_id")
    assert runs["status"].to_dict() == {"x=1": "skipped", "x=2": "failed", "x=3": "skipped"}
    report = capsys.readouterr().out
    assert "0 done, 1 failed, 2 skipped" in report and "failed x=2: ValueError" in report


def test_runs_at_once_share_the_cores_out(first_start):
    """Two runs at once: each kernel gets half the cores as its thread count (two notebooks that each start a
    thread per core slow each other several-fold); a count set in the environment is kept; done.json says which.
    Each kernel listens on Unix sockets of its own (sbu.kernel): two kernels on TCP ports chosen at once can lose a
    port to each other, and a run then fails with "Kernel died before replying to kernel_info"."""
    _, sweep_dir, _ = first_start
    expected = os.environ.get("OMP_NUM_THREADS") or str(max(1, os.cpu_count() // 2))
    for x in (1, 3):
        seen = json.loads((sweep_dir / f"x={x}" / "environment.json").read_text())
        assert seen["OMP_NUM_THREADS"] == expected
        assert seen["transport"] == ("tcp" if os.name == "nt" else "ipc")
        assert json.loads((sweep_dir / f"x={x}" / "done.json").read_text())["threads"] == expected


def test_progress_reads_the_cells_each_run_has_finished(first_start):
    """The bar's postfix reads how far a run has got from the notebook papermill saves at every cell: every code
    cell of a finished run, fewer of the failed one (it stopped at the cell that raised); a run not started yet
    (the pool queues one ahead) is left out."""
    _, sweep_dir, _ = first_start
    code_cells = sum(c["cell_type"] == "code" for c in json.loads(_executed(sweep_dir, "x=1").read_text())["cells"])
    assert run_progress(_executed(sweep_dir, "x=1")) == RunProgress(code_cells, code_cells)
    failed = run_progress(_executed(sweep_dir, "x=2"))
    assert failed.cells == code_cells and 0 < failed.cells_done < code_cells and failed.running == ""
    assert run_progress(sweep_dir / "nowhere" / NOTEBOOK.name) is None
    going = [Run("x=2", {"x": 2}, {}, sweep_dir / "x=2"), Run("x=9", {"x": 9}, {}, sweep_dir / "x=9")]
    line = progress_line({"done": 1, "failed": 0, "skipped": 0}, going, NOTEBOOK.name)
    assert line == f"2 {failed.cells_done}/{code_cells} | done=1"


def test_progress_shows_the_bar_of_the_cell_that_is_running(first_start, tmp_path):
    """A long cell (notebook 04's study) prints a tqdm bar; papermill saves its output as it goes, and the sweep's
    bar shows the last state of it."""
    import io

    from tqdm import tqdm

    _, sweep_dir, _ = first_start
    printed = io.StringIO()
    with tqdm(total=54, desc="study", unit="condition", file=printed, mininterval=0) as inner:
        inner.update(12)
        inner.set_postfix_str("forget05 seed 1: sbu")
    notebook = json.loads(_executed(sweep_dir, "x=1").read_text())
    last = [c for c in notebook["cells"] if c["cell_type"] == "code"][-1]
    last["metadata"]["papermill"]["status"] = "running"
    last["outputs"] = [{"output_type": "stream", "name": "stderr", "text": [printed.getvalue()]}]
    (tmp_path / "x=7").mkdir()
    (tmp_path / "x=7" / NOTEBOOK.name).write_text(json.dumps(notebook))
    progress = run_progress(tmp_path / "x=7" / NOTEBOOK.name)
    assert progress.running == "study 12/54" and progress.cells_done == progress.cells - 1
    line = progress_line({"done": 0}, [Run("x=7", {"x": 7}, {}, tmp_path / "x=7")], NOTEBOOK.name)
    assert line == f"7 {progress.cells_done}/{progress.cells} · study 12/54"


@pytest.mark.parametrize(("workers", "cpus", "environ", "threads"), [
    (1, 2, {}, None), (2, 2, {}, 1), (2, 16, {}, 8), (3, 2, {}, 1), (3, 16, {}, 5),
    (2, 16, {"OMP_NUM_THREADS": "3"}, None), (2, 16, {"MKL_NUM_THREADS": "3"}, None)])
def test_thread_count_per_run(workers, cpus, environ, threads):
    assert threads_per_run(workers, cpus, environ) == threads


def test_a_fixed_sweep_finishes_every_run_and_summarises_them(first_start, capsys):
    sweep, sweep_dir, _ = first_start
    _sweep_file(sweep.parent, {**FAILING, "params": {"fail_on": -1}})
    assert _batch(sweep, sweep_dir.parent, "--workers", "2") == 0
    assert all((sweep_dir / f"x={x}" / "done.json").is_file() for x in (1, 2, 3))
    assert not (sweep_dir / "x=2" / "failed.json").exists(), "a retried run starts from an empty folder"
    report = capsys.readouterr().out
    assert "2 finished run(s) ran with other parameters" in report and "3 done, 0 failed" in report, (
        "a changed fixed parameter runs the finished runs again")

    summary = pd.read_csv(sweep_dir / "summary.csv")
    assert list(summary.columns) == ["x", "condition", "metric", "n", "mean", "ci95"], "seed is pooled over"
    treated = summary.set_index(["x", "condition", "metric"]).loc[(2, "treated", "score")]
    half_width = stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)  # values 4, 5, 6: sd 1
    assert treated["n"] == 3 and treated["mean"] == pytest.approx(5) and treated["ci95"] == pytest.approx(half_width)
    assert (sweep_dir / "summary.png").stat().st_size > 0 and (sweep_dir / "summary.svg").stat().st_size > 0
    assert len(pd.read_csv(sweep_dir / "results.csv")) == 3 * 12


# ------------------------------------------------------------------------------ everything checked first


@pytest.mark.parametrize(("content", "message"), [
    ({"notebook": "no_such_notebook", "grid": {"x": [1]}}, "'no_such_notebook' matches no notebook"),
    ({"notebook": "sweep_notebook", "grid": {"y": [1, 2]}}, "grid.y is not a parameter of sweep_notebook.ipynb; "
                                                             "its parameters are x, fail_on, hold_on, release_file"),
    ({"notebook": "sweep_notebook", "params": {"z": 1}, "grid": {"x": [1]}}, "params.z is not a parameter"),
    ({"notebook": "sweep_notebook", "grid": {"x": []}}, "grid.x is an empty list"),
    ({"notebook": "sweep_notebook", "grid": {"x": 1}}, "grid.x is 1, not a list; write x: [1]"),
    ({"notebook": "sweep_notebook", "grid": {"x": [1, 2, 1]}}, "grid.x lists 1 twice"),
    ({"notebook": "sweep_notebook", "grid": {"x": ["one"]}}, "grid.x must be a int"),
    ({"notebook": "sweep_notebook", "grid": {"out_dir": ["a"]}}, "grid.out_dir is set by sbu batch"),
    ({"notebook": "sweep_notebook", "params": {"x": 1}, "grid": {"x": [1]}}, "'x' is in both params and grid"),
    ({"notebook": "sweep_notebook", "grid": {"x": [1]}, "colect": "a.csv"}, "unknown key 'colect'"),
    ({"notebook": "sweep_notebook"}, "'grid' must map at least one parameter"),
    ({"notebook": "sweep_notebook", "grid": {"x": [1]}, "collect": "../a.csv"}, "'collect' must be a file name"),
    ({"notebook": "sweep_notebook", "grid": {"x": [1]}, "plot": "score"}, "'plot' must be a list of metric names"),
    ("- just\n- a list\n", "must be a mapping with the keys notebook, params, grid, collect, plot"),
    ("notebook: sweep_notebook\ngrid: [unclosed\n", "xs.yaml, line 3, column 1 is not valid YAML: expected ',' or ']'"),
], ids=["unknown-notebook", "unknown-grid-parameter", "unknown-fixed-parameter", "empty-grid-list",
        "grid-value-not-a-list", "repeated-value", "wrong-type", "out-dir-in-grid", "key-in-params-and-grid",
        "unknown-key", "no-grid", "collect-outside-out-dir", "plot-not-a-list", "not-a-mapping", "bad-yaml"])
def test_a_wrong_sweep_file_is_a_clear_error_and_writes_nothing(tmp_path, capsys, content, message):
    sweep, out = _sweep_file(tmp_path, content), tmp_path / "results"
    assert _batch(sweep, out) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(ConfigError):
        load_sweep(sweep, DATA)


@pytest.mark.parametrize(("content", "message"), [
    ({"params": {"profile": "bogus"}, "grid": {"seed": [0]}},
     "params.profile: profile must be one of paper, smoke, smoke-study, got 'bogus'"),
    ({"grid": {"seed": [0, "seven"]}}, "grid.seed must be a int"),
    ({"grid": {"seed": [0, -1]}}, "grid.seed: seed must be an integer in [0, 4_294_967_295], got -1"),
    ({"grid": {"forget_splits": [["forget05"], ["f"]]}}, "grid.forget_splits: forget_splits must be a list of forget "
                                                         "splits (forget01, forget05, forget10), got ['f']"),
    ({"params": {"seeds": [0, 0]}, "grid": {"seed": [0]}}, "params.seeds: seeds lists 0 twice"),
    ({"params": {"methods": ["sra", "nope"]}, "grid": {"seed": [0]}}, "params.methods: methods must be a list of"),
], ids=["unknown-profile", "wrong-type", "negative-seed", "unknown-split", "repeated-seed", "unknown-method"])
def test_a_sweep_of_a_shipped_notebook_is_refused_before_any_run_when_a_value_is_wrong(tmp_path, capsys, content,
                                                                                       message):
    """The values every run would get are checked as notebook 04's check cell checks them (sbu.params): one line,
    exit 2, nothing written, instead of runs that fail one by one inside the notebook."""
    sweep, out = _sweep_file(tmp_path, {"notebook": "04_evaluation", **content}), tmp_path / "results"
    assert main(["batch", str(sweep), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not out.exists()


def test_a_sweep_of_notebook_02_takes_any_subset_of_methods(tmp_path):
    grid = {"methods": [["npo"], ["sra", "grad_diff"], ["all"]]}
    sweep = load_sweep(_sweep_file(tmp_path, {"notebook": "02_parameter_pathway", "grid": grid}))
    assert [run_id(point) for point in sweep.points()] == ["methods=npo", "methods=sra+grad_diff", "methods=all"]
    with pytest.raises(ParameterError, match=r"grid\.methods: methods must be .* or \[all\], got \['sra', 'al'\]"):
        load_sweep(_sweep_file(tmp_path, {"notebook": "02_parameter_pathway", "grid": {"methods": [["sra", "al"]]}}))


def test_a_missing_sweep_file_is_a_clear_error(tmp_path, capsys):
    assert _batch(tmp_path / "nothing.yaml", tmp_path / "results") == 2
    assert f"no sweep file {tmp_path / 'nothing.yaml'}" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_workers_must_be_at_least_one(tmp_path, capsys):
    sweep = _sweep_file(tmp_path, {"notebook": "sweep_notebook", "grid": {"x": [1]}})
    assert _batch(sweep, tmp_path / "results", "--workers", "0") == 2
    assert "--workers must be a whole number ≥ 1" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_errors_are_sbu_errors(tmp_path):
    with pytest.raises(SbuError, match="no sweep file"):
        load_sweep(tmp_path / "nothing.yaml")


# ------------------------------------------------------------------------------ the sweep folder


def _environment() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def _wait_for_file(path: Path, process: subprocess.Popen, seconds: float = 240) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not path.is_file():
        assert process.poll() is None, f"the first sbu batch ended early ({process.returncode})"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.1)


def _snapshot(folder: Path) -> dict:
    return {path: path.stat().st_mtime_ns for path in folder.rglob("*")}


def test_a_second_batch_on_the_same_folder_is_refused_while_the_first_runs(tmp_path, capsys):
    """Two processes on one sweep folder would empty each other's run folders: the second gets a one-line error
    and changes nothing; once the first has ended (the lock goes with its process) a start works again."""
    release = tmp_path / "release"
    sweep = _sweep_file(tmp_path, {"notebook": "sweep_notebook", "grid": {"x": [1]},
                                   "params": {"hold_on": 1, "release_file": str(release)}})
    out = tmp_path / "results"
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen([sys.executable, "-m", "sbu.cli", "batch", str(sweep), "--out", str(out),
                              "--notebooks-dir", str(DATA)], stdout=log, stderr=subprocess.STDOUT,
                             env=_environment())
    try:
        _wait_for_file(out / "xs" / "x=1" / "held.json", first)
        before = _snapshot(out)
        assert _batch(sweep, out) == 2
        err = capsys.readouterr().err
        assert f"another sbu batch is running on {out / 'xs'}" in err and len(err.strip().splitlines()) == 1
        assert _snapshot(out) == before
        release.touch()
        assert first.wait(timeout=240) == 0, (tmp_path / "first.log").read_text()[-2000:]
    finally:
        if first.poll() is None:
            os.kill(first.pid, 9)
            first.wait()
    assert _batch(sweep, out) == 0
    assert "0 done, 0 failed, 1 skipped" in capsys.readouterr().out


def test_a_pool_process_killed_mid_run_leaves_a_failed_marker(tmp_path):
    """The local pool's process dies with its run (killed, out of memory): the run is recorded as failed by sbu
    batch itself, with a failed.json, so a later start runs it again and nothing counts it as done."""
    release = tmp_path / "release"
    sweep = _sweep_file(tmp_path, {"notebook": "sweep_notebook", "grid": {"x": [1]},
                                   "params": {"hold_on": 1, "release_file": str(release)}})
    out = tmp_path / "results"
    log = (tmp_path / "batch.log").open("w")
    batch = subprocess.Popen([sys.executable, "-m", "sbu.cli", "batch", str(sweep), "--out", str(out),
                              "--notebooks-dir", str(DATA)], stdout=log, stderr=subprocess.STDOUT,
                             env=_environment())
    try:
        _wait_for_file(out / "xs" / "x=1" / "held.json", batch)
        held = json.loads((out / "xs" / "x=1" / "held.json").read_text())
        os.kill(held["worker"], 9)  # the pool's process, then the run's kernel
        os.kill(held["kernel"], 9)
        assert batch.wait(timeout=240) == 1, (tmp_path / "batch.log").read_text()[-2000:]
    finally:
        if batch.poll() is None:
            os.kill(batch.pid, 9)
            batch.wait()
    failed = json.loads((out / "xs" / "x=1" / "failed.json").read_text())
    assert failed["error_type"] == "BrokenProcessPool" and failed["worker"] == "a worker that was lost"
    assert not (out / "xs" / "x=1" / "done.json").exists()
    assert pd.read_csv(out / "xs" / "runs.csv")["status"].tolist() == ["failed"]


def test_a_finished_run_is_redone_when_its_notebooks_code_changed(tmp_path, capsys):
    """done.json holds the hash of the notebook's code cells: an edited markdown cell leaves the run finished,
    an edited code cell runs it again."""
    from sbu.batch.folder import notebook_hash

    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    notebook = notebooks / NOTEBOOK.name
    notebook.write_text(NOTEBOOK.read_text())
    sweep, out = _sweep_file(tmp_path, {"notebook": "sweep_notebook", "grid": {"x": [1]}}), tmp_path / "results"

    def start() -> str:
        assert main(["batch", str(sweep), "--out", str(out), "--notebooks-dir", str(notebooks)]) == 0
        return capsys.readouterr().out

    start()
    done = json.loads((out / "xs" / "x=1" / "done.json").read_text())
    assert done["notebook_sha256"] == notebook_hash(NOTEBOOK)
    content = json.loads(notebook.read_text())
    content["cells"][0]["source"].append("\n\nA note that changes nothing.")
    notebook.write_text(json.dumps(content))
    assert "1 runs — 0 done, 0 failed, 1 skipped" in start()
    content["cells"][-1]["source"].append("\nassert True  # a change to the code\n")
    notebook.write_text(json.dumps(content))
    report = start()
    assert "1 finished run(s) ran with other parameters or another version of sweep_notebook.ipynb" in report
    assert "1 runs — 1 done, 0 failed, 0 skipped" in report
    assert json.loads((out / "xs" / "x=1" / "done.json").read_text())["notebook_sha256"] == notebook_hash(notebook)
    assert notebook_hash(notebook) != notebook_hash(NOTEBOOK)


@pytest.mark.parametrize("marker", ["done.json", "failed.json"])
@pytest.mark.parametrize("content", ['{"run_id": "x=1", "param', "[1, 2]"], ids=["torn", "not-an-object"])
def test_a_damaged_marker_stops_the_sweep_naming_it(tmp_path, capsys, marker, content):
    sweep, out = _sweep_file(tmp_path, {"notebook": "sweep_notebook", "grid": {"x": [1, 2]}}), tmp_path / "results"
    damaged = out / "xs" / "x=2" / marker
    damaged.parent.mkdir(parents=True)
    damaged.write_text(content)
    assert _batch(sweep, out) == 2
    err = capsys.readouterr().err
    assert f"the run marker {damaged} is damaged" in err and len(err.strip().splitlines()) == 1
    assert damaged.read_text() == content
    assert {p.name for p in (out / "xs").iterdir()} == {"x=2", ".sbu-batch.lock"}, "no run started"


def test_a_read_only_results_folder_is_a_one_line_error(tmp_path, capsys):
    sweep = _sweep_file(tmp_path, {"notebook": "sweep_notebook", "grid": {"x": [1]}})
    if os.geteuid() != 0:
        out = tmp_path / "read-only"
        out.mkdir()
        out.chmod(0o555)
    elif Path("/sys/fs").is_dir():  # root writes into any folder of a writable file system: take sysfs
        out = Path("/sys/fs/sbu-results")
    else:
        pytest.skip("root, and no read-only file system to point at")
    try:
        assert _batch(sweep, out) == 2
    finally:
        if out.is_relative_to(tmp_path):
            out.chmod(0o755)
    err = capsys.readouterr().err
    assert f"cannot write into the results folder {out / 'xs'}" in err and len(err.strip().splitlines()) == 1
    assert not (out / "xs").exists()


# ------------------------------------------------------------------------------ small parts


def test_run_ids_are_readable_sorted_and_safe_for_file_names():
    assert run_id({"seed": 1}) == "seed=1"
    assert run_id({"seed": 0, "forget_splits": ["forget01"]}) == "forget_splits=forget01,seed=0"
    assert run_id({"methods": ["sra", "npo"], "note": "a b/c"}) == "methods=sra+npo,note=a_b_c"
    assert len(run_id({"methods": ["m" * 40] * 10})) <= 120


def test_a_run_folder_without_a_marker_is_not_finished(tmp_path):
    sweep_file = _sweep_file(tmp_path, {"notebook": "sweep_notebook", "grid": {"x": [1]}})
    from sbu.batch.folder import notebook_hash
    from sbu.batch.run import fresh_folder
    from sbu.batch.runner import finished_before

    sweep = load_sweep(sweep_file, DATA)
    (run,) = plan_runs(sweep, tmp_path / "xs")
    run.folder.mkdir(parents=True)
    (run.folder / "results.csv").write_text("condition,metric,value\na,m,1\n")  # killed before its marker
    assert finished_before(run, sweep.collect, notebook_hash(NOTEBOOK)) is None
    fresh_folder(run.folder)
    assert not any(run.folder.iterdir()), "it is rerun from an empty folder"


def test_summary_pools_repeat_and_per_run_seeds_and_leaves_n_of_one_without_ci():
    table = pd.DataFrame({"run_id": ["seed=0", "seed=1", "seed=2", "seed=0"], "seed": [0, 1, 2, 0],
                          "condition": ["a", "a", "a", "b"], "metric": ["acc"] * 4, "value": [0.5, 0.6, 0.7, 0.9]})
    summary = summarize(table).set_index("condition")
    assert list(summary.columns) == ["metric", "n", "mean", "ci95"]
    assert summary.loc["a", "mean"] == pytest.approx(0.6)
    assert summary.loc["a", "ci95"] == pytest.approx(stats.t.ppf(0.975, 2) * 0.1 / math.sqrt(3))
    assert summary.loc["b", "n"] == 1 and math.isnan(summary.loc["b", "ci95"])
    assert summarize(table.rename(columns={"metric": "measure"})) is None, "not long-format: no summary"


def test_the_summary_figure_draws_the_metrics_the_sweep_names_or_at_most_twelve(tmp_path):
    many = pd.DataFrame({"metric": [f"m{i}" for i in range(MAX_PANELS + 3)]})
    notes = []
    sweep = load_sweep(_sweep_file(tmp_path, {"notebook": "sweep_notebook", "grid": {"x": [1]}}), DATA)
    assert panel_metrics(many, sweep, notes.append) == [f"m{i}" for i in range(MAX_PANELS)]
    assert "15 metrics" in notes[-1] and "plot: [m0, m1]" in notes[-1]
    named = load_sweep(_sweep_file(tmp_path, {"notebook": "sweep_notebook", "grid": {"x": [1]},
                                              "plot": ["m3", "nope", "m1"]}), DATA)
    assert named.plot == ("m3", "nope", "m1")
    assert panel_metrics(many, named, notes.append) == ["m3", "m1"]
    assert "'nope'" in notes[-1]
    notes.clear()
    assert panel_metrics(many.head(3), sweep, notes.append) == ["m0", "m1", "m2"] and not notes
    summary = pd.DataFrame({"condition": "c", "metric": [f"m{i}" for i in range(4)], "n": 3, "mean": 0.5,
                            "ci95": 0.1})
    figure = draw_summary(summary, [], ["m3", "m1"])
    assert [ax.get_title() for ax in figure.axes if ax.get_visible()] == ["m3", "m1"], "the order plot gives"


def test_summary_figure_has_one_tick_per_condition_whatever_the_runs_add():
    """A run's own columns that the hue already tells (forget_split beside the swept forget_splits) or that never
    change (dataset) do not split a condition into one tick per run."""
    rows = [{"forget_splits": split, "forget_split": split, "dataset": "cohort", "condition": condition,
             "metric": "forget acc", "n": 3, "mean": 0.5, "ci95": 0.1}
            for split in ("forget10", "forget01") for condition in ("none", "sbu", "retrain + closure")]
    figure = draw_summary(pd.DataFrame(rows), ["forget_splits"], ["forget acc"])
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == ["none", "sbu", "retrain + closure"]
    rows += [{**row, "forget_split": "other"} for row in rows[:1]]  # a column the hue does not tell stays
    labels = [t.get_text() for t in draw_summary(pd.DataFrame(rows), ["forget_splits"], ["forget acc"]
                                                 ).axes[0].get_xticklabels()]
    assert "none · forget10" in labels and "none · other" in labels


def test_shipped_sweeps_check_out_against_notebook_04():
    sweeps = sorted((ROOT / "params" / "sweeps").glob("*.yaml"))
    assert [p.stem for p in sweeps] == ["forget_size", "methods", "paper", "pubmedqa", "seeds", "study"]
    for path in sweeps:
        assert path.read_text().startswith("# "), f"{path.name}: open with a line saying what the sweep is for"
    grids = {p.stem: load_sweep(p) for p in sweeps}  # the full check: notebook 04's parameters and their types
    for name, sweep in grids.items():
        assert sweep.plot and set(sweep.plot) <= set(study.MAIN_METRICS), f"{name}: plot names what the study writes"
    assert {name: [run_id(point) for point in sweep.points()] for name, sweep in grids.items()} == {
        "forget_size": ["forget_splits=forget10", "forget_splits=forget05", "forget_splits=forget01"],
        "methods": ["methods=sra", "methods=grad_diff", "methods=npo", "methods=simnpo"],
        "paper": [f"forget_splits={split},seeds={seed}" for split in ("forget05", "forget01", "forget10")
                  for seed in (0, 1, 2)],
        "pubmedqa": ["forget_splits=forget05"],
        "seeds": ["seed=0", "seed=1", "seed=2"], "study": ["seed=0"]}


# ------------------------------------------------------------------------------ papermill --help-notebook


HELP_NOTEBOOKS = [*sorted((ROOT / "notebooks").glob("*.ipynb")), NOTEBOOK]


def _parameter_cell_names(notebook: Path) -> list[str]:
    cells = json.loads(notebook.read_text())["cells"]
    cell = next(c for c in cells if "parameters" in c["metadata"].get("tags", []))
    return [node.target.id for node in ast.parse("".join(cell["source"])).body if isinstance(node, ast.AnnAssign)]


@pytest.mark.parametrize("notebook", HELP_NOTEBOOKS, ids=[p.stem for p in HELP_NOTEBOOKS])
def test_help_notebook_lists_every_parameter_with_its_type_and_help(notebook):
    import papermill as pm

    declared = pm.inspect_notebook(str(notebook))
    assert list(declared) == _parameter_cell_names(notebook), (
        "papermill skipped a parameter (a line it cannot parse, such as an '=' in the help comment)")
    shown = subprocess.run([sys.executable, "-m", "papermill", "--help-notebook", str(notebook)],
                           capture_output=True, text=True, check=True).stdout
    for name, p in declared.items():
        assert p["inferred_type_name"] not in ("None", ""), f"{notebook.name}: {name} has no type annotation"
        assert p["help"], f"{notebook.name}: {name} has no help comment"
        definition = f"  {name}: {p['inferred_type_name']} (default {p['default']})"
        assert definition in shown, f"{notebook.name}: {name} is not listed by papermill --help-notebook"
        after = shown.split(definition, 1)[1].split("\n")
        assert p["help"] in (after[0].strip() or after[1].strip()), f"{notebook.name}: {name} is shown without help"


def test_a_worker_process_imports_what_a_run_needs_and_not_the_models_or_memory():
    """What a pool process or a Dask worker unpickles a run with — one run's module, the cluster's worker side —
    loads papermill, not torch, transformers, rdflib or the package's parameter checks (seconds per process)."""
    heavy = ("torch", "transformers", "peft", "rdflib", "pyoxigraph", "matplotlib", "sbu.model", "sbu.params")
    code = ("import sys, sbu.batch.run, sbu.batch.cluster; "
            f"print(','.join(m for m in {heavy!r} if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env=_environment())
    assert loaded.stdout.strip() == "", loaded.stdout
