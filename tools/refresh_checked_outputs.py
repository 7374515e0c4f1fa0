"""Write into the notebooks the outputs that nbval checks: each notebook is executed at its defaults with papermill
(into a temporary folder), and the outputs of its cells marked ``# NBVAL_CHECK_OUTPUT`` are copied into the
notebook; every other cell is left without outputs. Run it after a change that moves one of those numbers, and
commit the notebooks: ``.venv/bin/python tools/refresh_checked_outputs.py [notebooks/01_memory_pathway.ipynb …]``.
``tests/test_nbval.py`` then checks that a fresh execution reproduces them."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import nbformat

from sbu.kernel import execute_notebook

MARK = "# NBVAL_CHECK_OUTPUT"
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def checked(cell) -> bool:
    return cell.cell_type == "code" and cell.source.lstrip().startswith(MARK)


def refresh(notebook: Path) -> int:
    """Execute ``notebook`` and copy its checked cells' outputs into it; the number of cells copied."""
    with tempfile.TemporaryDirectory() as folder:
        executed = Path(folder) / notebook.name
        execute_notebook(notebook, executed, cwd=str(notebook.parent), progress_bar=False,
                         parameters={"out_dir": str(Path(folder) / "out")})
        outputs = {cell.id: cell.outputs for cell in nbformat.read(executed, as_version=4).cells if checked(cell)}
    source = nbformat.read(notebook, as_version=4)
    code = [cell for cell in source.cells if cell.cell_type == "code"]
    for count, cell in enumerate(code, start=1):
        # nbval compares a cell only if it was run (an execution count); the others stay empty and unnumbered
        cell.outputs = outputs.get(cell.id, []) if checked(cell) else []
        cell.execution_count = count if checked(cell) else None
        for output in cell.outputs:
            if output.get("output_type") == "execute_result":
                output["execution_count"] = count
    nbformat.write(source, notebook)
    return len(outputs)


if __name__ == "__main__":
    for path in [Path(p) for p in sys.argv[1:]] or sorted(NOTEBOOKS.glob("0*.ipynb")):
        print(f"{path.name}: {refresh(path)} checked cell(s) written", flush=True)
