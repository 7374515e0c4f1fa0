"""``sbu run``'s first line and per-notebook progress, on a small notebook of the test's own run by a real kernel."""

from __future__ import annotations

import json
import time

import nbformat
import pytest

from sbu.batch.sequence import NotebookRun, _left, _makespan, execute_all, last_times, longest_first, plan_line
from sbu.cli import _models_line
from sbu.kernel import execute_notebook


@pytest.fixture
def notebook(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("steps = 3", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("import sys, time\nfrom tqdm import tqdm\n"
                                  "for _ in tqdm(range(steps), desc='inner', file=sys.stdout):\n"
                                  "    time.sleep(2)"),
        nbformat.v4.new_code_cell("print('finished')"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "nb" / "07_small.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    return path


def _copy(notebook, name):
    other = notebook.with_name(name)
    other.write_text(notebook.read_text())
    return other


def test_notebooks_run_side_by_side_under_a_bar_each_and_their_times_feed_the_next_estimate(
        notebook, tmp_path, capsys, private_cache):
    notebooks = (notebook, _copy(notebook, "08_b.ipynb"))
    runs = [NotebookRun(nb, tmp_path / "out" / nb.stem, {"steps": 3}) for nb in notebooks]
    for run in runs:
        run.out.mkdir(parents=True)
    first = plan_line(runs, "smoke", "models shipped with the package (nothing to train)")
    assert first.startswith("[sbu run] 2 notebook(s) at profile smoke: 07_small, 08_b;") and "no earlier run" in first
    execute_all(runs, "smoke", jobs=2)
    err = capsys.readouterr().err
    for name in ("07_small", "08_b"):
        assert f"{name}: 4/4 cells" in err  # papermill's injected parameters cell counts too
    assert "inner" in err and "for _ in tqdm(range(steps)" in err  # the running cell and its own bar
    for run in runs:
        executed = json.loads((run.out / run.notebook.name).read_text())
        assert "finished" in "".join(executed["cells"][-1]["outputs"][0]["text"])
    times = last_times("smoke")
    assert set(times) == {"07_small", "08_b"} and all(t >= 6 for t in times.values())  # three 2 s sleeps each
    assert "last run" in plan_line(runs, "smoke", "")
    took = max(times.values())  # two at a time, the two take as long as the longer; one at a time, the sum
    assert f"about {took:.0f} s" in plan_line(runs, "smoke", "", jobs=2) or took >= 60
    assert f"about {sum(times.values()):.0f} s" in plan_line(runs, "smoke", "", jobs=1) or sum(times.values()) >= 60
    assert "no earlier run" in plan_line(runs, "paper", "")


def test_a_failing_notebook_stops_the_ones_not_started_and_is_raised(notebook, tmp_path, private_cache):
    nb = nbformat.read(notebook, as_version=4)
    nb.cells[2].source = "raise ValueError('broken on purpose')"
    nbformat.write(nb, notebook)
    later = _copy(notebook, "08_b.ipynb")
    runs = [NotebookRun(nb, tmp_path / nb.stem, {"steps": 0}) for nb in (later, notebook)]  # the last starts first
    for run in runs:
        run.out.mkdir()
    with pytest.raises(Exception, match="broken on purpose"):
        execute_all(runs, "smoke", jobs=1)
    assert last_times("smoke") == {}
    assert not (runs[0].out / later.name).exists()  # never started


@pytest.mark.parametrize("params, shipped", [
    ({"profile": "smoke", "seed": 0}, True),
    ({"profile": "smoke", "seed": 0, "forget_splits": ["forget05"]}, True),
    ({"profile": "smoke", "seed": 1}, False),
    ({"profile": "smoke", "forget_split": "forget10"}, False),
    ({"profile": "paper"}, False),
    ({"profile": "smoke", "dataset": "pubmedqa"}, False),
])
def test_the_first_line_says_whether_models_will_train(params, shipped):
    assert ("nothing to train" in _models_line(params)) is shipped


def test_the_longest_notebook_starts_first(tmp_path):
    runs = list(enumerate(NotebookRun(tmp_path / f"0{i}_n.ipynb", tmp_path, {}) for i in range(1, 5)))
    names = [run.notebook.stem for _, run in longest_first(runs, {})]
    assert names == ["04_n", "03_n", "02_n", "01_n"]  # nothing measured yet: the last first
    took = {"01_n": 50, "02_n": 100, "03_n": 210, "04_n": 120}
    assert [run.notebook.stem for _, run in longest_first(runs, took)] == ["03_n", "04_n", "02_n", "01_n"]
    assert _makespan(list(took.values()), 2) == 260  # 03 then 01 on one side, 04 then 02 on the other
    assert _makespan(list(took.values()), 1) == 480 and _makespan(list(took.values()), 8) == 210


def test_an_executed_notebook_keeps_each_progress_bar_at_its_last_state(notebook, tmp_path):
    """A cell's stdout and its stderr are each merged and read as a terminal shows them: one line per bar that
    stays, none for a nested bar that clears itself, no carriage returns or cursor codes; what the cell printed
    besides is kept whole, blank lines aside."""
    nb = nbformat.read(notebook, as_version=4)
    nb.cells[1].source = ("import sys\nfrom tqdm import tqdm\n"
                          "for _ in tqdm(range(2), desc='outer', file=sys.stderr):\n"
                          "    for _ in tqdm(range(3), desc='inner', file=sys.stderr, leave=False, position=1):\n"
                          "        print('x', end='', flush=True)\n"
                          "print('\\nkept\\ttabs\\n\\nand lines')")
    nbformat.write(nb, notebook)
    executed = tmp_path / "executed.ipynb"
    execute_notebook(notebook, executed, cwd=str(notebook.parent), progress_bar=False)
    outputs = nbformat.read(executed, as_version=4).cells[1].outputs
    streams = {out.name: out.text for out in outputs if out.output_type == "stream"}
    assert [out.name for out in outputs].count("stderr") == 1 and [o.name for o in outputs].count("stdout") == 1
    assert "\r" not in streams["stderr"] and "\x1b" not in streams["stderr"]
    assert [line.split(":")[0] for line in streams["stderr"].splitlines()] == ["outer"]
    assert "outer: 100%" in streams["stderr"] and "2/2" in streams["stderr"]
    assert streams["stdout"] == "xxxxxx\nkept\ttabs\nand lines\n"


def test_a_running_notebook_shows_the_time_left_by_its_last_run():
    assert _left(60, time.monotonic() - 15) in {f"about {n} s left" for n in range(40, 46)}
    assert _left(600, time.monotonic() - 60) in {"about 9.0 min left", "about 8.9 min left"}
    assert _left(10, time.monotonic() - 30) == "longer than last time"
    assert _left(None, time.monotonic()) == "" and _left(60, None) == ""
