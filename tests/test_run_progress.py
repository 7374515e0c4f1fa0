"""``sbu run``'s first line and per-notebook progress, on a small notebook of the test's own run by a real kernel."""

from __future__ import annotations

import json

import nbformat
import pytest

from sbu.batch.sequence import NotebookRun, execute_with_progress, last_times, plan_line
from sbu.cli import _models_line


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


def test_a_notebook_runs_under_a_bar_of_its_cells_and_its_time_feeds_the_next_estimate(
        notebook, tmp_path, capsys, private_cache):
    run = NotebookRun(notebook, tmp_path / "out", {"steps": 3})
    run.out.mkdir()
    first = plan_line([run], "smoke", "models shipped with the package (nothing to train)")
    assert first.startswith("[sbu run] 1 notebook(s) at profile smoke: 07_small;") and "no earlier run" in first
    seconds = execute_with_progress(run, "smoke")
    err = capsys.readouterr().err
    assert "07_small:" in err and "cells" in err and "4/4 cells" in err  # papermill's injected parameters cell too
    assert "inner" in err and "for _ in tqdm(range(steps)" in err  # the running cell and its own bar
    executed = json.loads((run.out / notebook.name).read_text())
    assert "finished" in "".join(executed["cells"][-1]["outputs"][0]["text"])
    assert last_times("smoke") == {"07_small": pytest.approx(seconds, abs=0.1)}
    assert "about" in plan_line([run], "smoke", "") and "last run" in plan_line([run], "smoke", "")
    assert "no earlier run" in plan_line([run], "paper", "")


def test_a_failing_cell_still_ends_the_bar_and_records_nothing(notebook, tmp_path, capsys, private_cache):
    nb = nbformat.read(notebook, as_version=4)
    nb.cells[2].source = "raise ValueError('broken on purpose')"
    nbformat.write(nb, notebook)
    run = NotebookRun(notebook, tmp_path / "out", {"steps": 1})
    run.out.mkdir()
    with pytest.raises(Exception, match="broken on purpose"):
        execute_with_progress(run, "smoke")
    assert last_times("smoke") == {}


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
