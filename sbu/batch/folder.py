"""The sweep folder's safety: one ``sbu batch`` at a time holds it (a lock file), a run's marker is read back whole
or named as damaged, and a run knows which notebook it ran (a hash of the notebook's code).

The lock is ``filelock``'s ``flock`` on ``.sbu-batch.lock`` in the sweep folder: the kernel lets go of it when the
process ends, however it ends, so a killed ``sbu batch`` never leaves the folder locked. Markers (``done.json``,
``failed.json``) are written whole through a temporary file (:func:`sbu.files.write_atomic`); one that does not
parse was written by something else, and resuming from it would guess, so it stops the sweep naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from sbu.errors import SweepFolderError

LOCK_NAME = ".sbu-batch.lock"
MARKERS = ("done.json", "failed.json")


@contextmanager
def locked(folder: Path) -> Iterator[Path]:
    """Create ``folder`` if needed and hold its lock while the block runs; a second holder gets a
    :class:`SweepFolderError` at once instead of waiting (two sweeps emptying each other's run folders)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SweepFolderError(f"cannot write into the results folder {folder}: {err.strerror or err}") from None
    check_writable(folder)  # before the lock: a lock file that cannot be created would read as held by another
    lock = FileLock(folder / LOCK_NAME, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise SweepFolderError(f"another sbu batch is running on {folder} (it holds {folder / LOCK_NAME}); wait "
                               "for it to finish, or give this one another --out") from None
    except OSError as err:
        raise SweepFolderError(f"cannot write into the results folder {folder}: {err.strerror or err}") from None
    try:
        yield folder
    finally:
        lock.release()


def check_writable(folder: Path) -> None:
    """A sweep folder this process cannot write into (a read-only mount, another user's folder) stops the sweep
    before any run starts, not after every run failed on it."""
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SweepFolderError(f"cannot write into the results folder {folder}: it is read-only for this user")


def read_marker(path: Path) -> dict | None:
    """A run's marker as written, or None where there is none; a marker that is not a JSON object is a
    :class:`SweepFolderError` naming it."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise SweepFolderError(f"cannot read the run marker {path}: {err.strerror or err}") from None
    try:
        record = json.loads(text)
    except ValueError as err:
        raise SweepFolderError(f"the run marker {path} is damaged ({err}); delete it to run that run again") from None
    if not isinstance(record, dict) or not isinstance(record.get("parameters"), dict):
        raise SweepFolderError(f"the run marker {path} is damaged (no parameters object); delete it to run that "
                               "run again")
    return record


def check_markers(run_folders: list[Path]) -> None:
    """Read every marker of the sweep before anything is run: a damaged one stops the sweep naming its file."""
    for folder in run_folders:
        for name in MARKERS:
            read_marker(folder / name)


def notebook_hash(notebook: Path) -> str:
    """The SHA-256 of the notebook's code cells, in order: what a run computes with. Outputs, metadata and
    markdown are left out, so saving the notebook in Jupyter does not make finished runs run again."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    code = ["".join(cell.get("source", "")) for cell in cells if cell.get("cell_type") == "code"]
    return hashlib.sha256(json.dumps(code).encode()).hexdigest()
