"""A real ``oxigraph serve`` on 127.0.0.1 (PyPI package ``oxigraph``), for the endpoint back end in tests and
benchmarks: started on a free port, waited for, and stopped by its PID."""

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
    """Serve the store folder ``location``; yield the query URL (``http://127.0.0.1:PORT/query``)."""
    location = Path(location)
    location.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = subprocess.Popen([oxigraph_binary(), "serve", "--location", str(location), "--bind", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{base}/query?query=ASK%7B%7D", timeout=1)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    raise StoreUnavailableError(
                        f"oxigraph serve did not start: {proc.stderr.read().decode(errors='replace')[-500:]}"
                    ) from None
                time.sleep(0.1)
        yield f"{base}/query"
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
