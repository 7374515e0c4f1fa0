"""Same seed, same numbers, as a test: nbval executes notebooks 01 and 02 afresh and compares the outputs of their
cells marked ``# NBVAL_CHECK_OUTPUT`` (cohort tables, memory contents, plan and apply counts, the barrier's
decisions, the base-model and reading tables, the unlearning data's sizes) with the outputs committed in the
notebooks (``tools/refresh_checked_outputs.py`` writes them).

nbval runs in a pytest of its own, on a copy of each notebook whose ``out_dir`` points into the test's folder, so
nothing is written into the checkout, and that ends at its last checked cell (the papermill tests run every cell);
the unchecked cells before it run but are not compared (``--nbval-lax``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
MARK = "# NBVAL_CHECK_OUTPUT"


def notebook_copy(notebook: Path, folder: Path, keep: int | None = None) -> Path:
    """The notebook with ``out_dir`` in ``folder`` (and only its first ``keep`` cells, if given)."""
    nb = nbformat.read(notebook, as_version=4)
    nb.cells = nb.cells[:keep] if keep else nb.cells
    parameters = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    lines = [f"out_dir: str = {str(folder / 'out')!r}" if line.startswith("out_dir") else line
             for line in parameters.source.splitlines()]
    parameters.source = "\n".join(lines)
    copy = folder / notebook.name
    nbformat.write(nb, copy)
    return copy


def _nbval(notebook: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "--nbval-lax", "--nbval-current-env",
                           "-p", "no:xdist", "-p", "no:cacheprovider", "-o", "addopts=", "--rootdir",
                           str(notebook.parent), str(notebook)], cwd=notebook.parent, capture_output=True, text=True,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"}, timeout=900)


@pytest.mark.smoke_model
@pytest.mark.parametrize("name", ["01_memory_pathway", "02_parameter_pathway"])
def test_a_fresh_execution_reproduces_the_committed_outputs(name, tmp_path):
    notebook = NOTEBOOKS / f"{name}.ipynb"
    cells = nbformat.read(notebook, as_version=4).cells
    marked = [c for c in cells if c.cell_type == "code" and c.source.startswith(MARK)]
    assert len(marked) >= 4 and all(c.outputs for c in marked), "the checked cells carry their committed outputs"
    assert not [c for c in cells if c.cell_type == "code" and not c.source.startswith(MARK) and c.outputs]
    last = max(i for i, c in enumerate(cells) if c.cell_type == "code" and c.source.startswith(MARK))
    run = _nbval(notebook_copy(notebook, tmp_path, keep=last + 1))  # the cells after the last checked one need not run
    assert run.returncode == 0, run.stdout[-4000:]
    assert " passed" in run.stdout and "failed" not in run.stdout and "Cell outputs differ" not in run.stdout


def test_a_changed_number_is_caught(tmp_path):
    """The check can fail: one number of the committed cohort table altered, nbval reports the cell."""
    notebook = NOTEBOOKS / "01_memory_pathway.ipynb"
    first_marked = next(i for i, c in enumerate(nbformat.read(notebook, as_version=4).cells)
                        if c.cell_type == "code" and c.source.startswith(MARK))
    copy = notebook_copy(notebook, tmp_path, keep=first_marked + 1)
    nb = nbformat.read(copy, as_version=4)
    result = nb.cells[first_marked].outputs[0]
    result["data"]["text/plain"] = result["data"]["text/plain"].replace("holdout        12", "holdout        13")
    assert "13" in result["data"]["text/plain"]
    nbformat.write(nb, copy)
    run = _nbval(copy)
    assert run.returncode != 0 and "1 failed" in run.stdout, run.stdout[-3000:]
    assert "Cell outputs differ" in run.stdout and "mismatch 'text/plain'" in run.stdout, run.stdout[-3000:]
