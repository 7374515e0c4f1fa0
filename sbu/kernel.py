"""Running a notebook with papermill on a kernel that listens on Unix sockets in a folder of its own.

papermill's kernel listens on TCP ports that jupyter_client chooses by binding port 0 and letting go of it; until the
kernel binds the port itself, any other process may take it. Two notebooks started at once (``sbu batch --workers
N``, the test workers) then fail now and then with "Kernel died before replying to kernel_info", the kernel's
traceback ending in "Address already in use". A Unix socket in a fresh private folder has no port another process can
take, and nothing outside this machine can connect to it. Windows has no ZMQ ipc transport and keeps TCP.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path

import nbformat
import papermill as pm
from traitlets.config import Config

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")  # what torch and numpy size their thread pools by
SAVE_SECONDS = 3  # how often papermill saves a notebook whose cell is printing, for progress bars (its default: 30)
CURSOR_UP = "\x1b[A"  # how a nested progress bar returns to its line
TOKENS = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|\r|\n|[^\x1b\r\n]+")  # escape codes, returns, line feeds, text


def execute_notebook(notebook: str | Path, output: str | Path, **papermill_kwargs):
    """``papermill.execute_notebook(notebook, output, **papermill_kwargs)`` with the kernel on Unix sockets; the
    sockets' folder is removed when the notebook ends, whether it finished or failed."""
    try:
        if os.name == "nt":
            return pm.execute_notebook(str(notebook), str(output), **papermill_kwargs)
        with tempfile.TemporaryDirectory(prefix="sbu-kernel-") as sockets:
            config = Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(sockets, "kernel")}})
            return pm.execute_notebook(str(notebook), str(output), config=config, **papermill_kwargs)
    finally:
        if Path(output).is_file():  # also after a failed cell: papermill has written the notebook up to it
            tidy_streams(output)


def use_threads(threads: int | None) -> None:
    """Set this process's thread count for the kernels it starts next (they inherit the environment); None keeps
    what is there."""
    if threads:
        os.environ.update({name: str(threads) for name in THREAD_VARIABLES})


def execute_timed(notebook: Path, output: Path, parameters: dict, threads: int | None = None) -> float:
    """Execute a notebook at its own thread count (its kernel inherits it); the seconds it took. What ``sbu run``'s
    pool processes call: it lives here so that a fresh process imports papermill, not the package's heavy parts."""
    use_threads(threads)
    start = time.perf_counter()
    execute_notebook(notebook, output, cwd=str(notebook.parent), parameters=parameters, progress_bar=False,
                     autosave_cell_every=SAVE_SECONDS)
    return time.perf_counter() - start


def tidy_streams(path: str | Path) -> None:
    """Leave each cell's printed output as a terminal would show it: all of a cell's stdout in one output and all
    its stderr in another (each where it first printed), a progress bar's redraws (carriage returns) resolved to
    its last state, colour and cursor codes dropped. An executed notebook then holds one final line per progress
    bar instead of every redraw, whatever the cell printed in between."""
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        outputs, first = [], {}  # first: each stream's output, where the stream first printed
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") in first:
                first[out["name"]]["text"] += out["text"]
                continue
            if out.get("output_type") == "stream":
                first[out["name"]] = out
            outputs.append(out)
        for out in first.values():
            out["text"] = _as_shown(out["text"])
        if "outputs" in cell:
            cell["outputs"] = [o for o in outputs if o.get("output_type") != "stream" or o["text"].strip()]
    nbformat.write(nb, str(path))


def clear_outputs(path: str | Path) -> None:
    """Remove every output and execution count from a notebook (a handout written with ``--prepare-only``)."""
    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(nb, str(path))


def _as_shown(text: str) -> str:
    """What a terminal shows of ``text``: a line feed moves down, a carriage return starts the line over, the
    cursor-up code of a nested progress bar moves up; other escape codes are dropped."""
    screen, row, fresh = [""], 0, False  # fresh: the next text overwrites the line (after a carriage return)
    for token in TOKENS.findall(text):
        if token == "\n":
            row += 1
            if row == len(screen):
                screen.append("")
            fresh = False
        elif token == "\r":
            fresh = True
        elif token == CURSOR_UP:
            row = max(0, row - 1)
        elif token.startswith("\x1b"):
            continue
        else:
            screen[row] = token if fresh else screen[row] + token
            fresh = False
    return "\n".join(line.rstrip() for line in screen if line.strip()) + ("\n" if text.endswith("\n") else "")
