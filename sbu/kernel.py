"""Running a notebook with papermill on a kernel that listens on Unix sockets in a folder of its own.

papermill's kernel listens on TCP ports that jupyter_client chooses by binding port 0 and letting go of it; until the
kernel binds the port itself, any other process may take it. Two notebooks started at once (``sbu batch --workers
N``, the test workers) then fail now and then with "Kernel died before replying to kernel_info", the kernel's
traceback ending in "Address already in use". A Unix socket in a fresh private folder has no port another process can
take, and nothing outside this machine can connect to it. Windows has no ZMQ ipc transport and keeps TCP.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import papermill as pm
from traitlets.config import Config


def execute_notebook(notebook: str | Path, output: str | Path, **papermill_kwargs):
    """``papermill.execute_notebook(notebook, output, **papermill_kwargs)`` with the kernel on Unix sockets; the
    sockets' folder is removed when the notebook ends, whether it finished or failed."""
    if os.name == "nt":
        return pm.execute_notebook(str(notebook), str(output), **papermill_kwargs)
    with tempfile.TemporaryDirectory(prefix="sbu-kernel-") as sockets:
        config = Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(sockets, "kernel")}})
        return pm.execute_notebook(str(notebook), str(output), config=config, **papermill_kwargs)
