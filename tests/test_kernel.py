"""``sbu.kernel.execute_notebook``: papermill with the kernel on Unix sockets in a folder of its own, removed when
the notebook ends, whether it finished or failed. Real papermill and a python3 kernel, on the sweep notebook."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from papermill.exceptions import PapermillExecutionError

from sbu.kernel import execute_notebook

NOTEBOOK = Path(__file__).resolve().parent / "data" / "sweep_notebook.ipynb"

pytestmark = pytest.mark.skipif(os.name == "nt", reason="Windows keeps papermill's TCP kernel")


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """Temporary folders of this test go under its own folder, so the check sees no other test's kernels."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_the_kernel_listens_on_sockets_of_its_own_and_they_go_when_it_ends(private_tmp):
    out = private_tmp / "out"
    execute_notebook(NOTEBOOK, private_tmp / "run.ipynb", parameters={"x": 1, "out_dir": str(out)},
                     progress_bar=False)
    kernel = json.loads((out / "environment.json").read_text())
    assert kernel["transport"] == "ipc"
    assert Path(kernel["ip"]).parent.name.startswith("sbu-kernel-")
    assert not list(private_tmp.glob("sbu-kernel-*")), "the sockets' folder is removed when the notebook ends"


def test_a_failing_notebook_raises_its_cell_error_and_leaves_no_sockets(private_tmp):
    with pytest.raises(PapermillExecutionError, match="the value this run was told to fail on"):
        execute_notebook(NOTEBOOK, private_tmp / "run.ipynb", progress_bar=False,
                         parameters={"x": 2, "fail_on": 2, "out_dir": str(private_tmp / "out")})
    assert not list(private_tmp.glob("sbu-kernel-*"))
