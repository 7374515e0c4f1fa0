"""A real ``oxigraph serve`` on 127.0.0.1 (PyPI package ``oxigraph``), for the endpoint back end in tests and
benchmarks: started on a port the system chooses, waited for, and stopped by its PID."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

from sbu.errors import StoreUnavailableError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def oxigraph_binary() -> str:
    found = shutil.which("oxigraph") or str(Path(sys.executable).with_name("oxigraph"))
    if not Path(found).exists():
        raise StoreUnavailableError("the `oxigraph` server is not installed: it comes with the test extra "
                                    "(pip install -e '.[test]')")
    return found


@contextlib.contextmanager
def oxigraph_serve(location: str | Path, timeout: float = 30.0):
    """Serve the store folder ``location``; yield the query URL (``http://127.0.0.1:PORT/query``).

    The server binds a port the system chooses (``127.0.0.1:0``) and the port is read back from the system: a port
    chosen here and handed over would leave a moment in which another process can take it, and that process might
    even be another oxigraph server, whose store we would then talk to."""
    location = Path(location)
    location.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([oxigraph_binary(), "serve", "--location", str(location), "--bind", "127.0.0.1:0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline, port = time.monotonic() + timeout, None
        while True:
            port = port or listening_port(proc.pid)
            if port and _answers(port):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait(timeout=30)
                error = proc.stderr.read().decode(errors="replace").split("\n\nStack backtrace")[0].strip()
                raise StoreUnavailableError(f"oxigraph serve did not start: {error[-500:] or 'no answer'}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/query"
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def _answers(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/query?query=ASK%7B%7D", timeout=1)
        return True
    except OSError:
        return False


def listening_port(pid: int) -> int | None:
    """The TCP port the process ``pid`` listens on, as the system reports it; None while it listens on none."""
    try:
        return next((c.laddr.port for c in psutil.Process(pid).net_connections(kind="tcp")
                     if c.status == psutil.CONN_LISTEN), None)
    except psutil.Error:  # gone, or not ours to read: the caller's wait sees it exit or time out
        return None
