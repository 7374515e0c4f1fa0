"""Memory fixtures: one parametrized store over every back end, the endpoint a real ``oxigraph serve``."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from sbu.memory import open_store


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def oxigraph_binary() -> str:
    found = shutil.which("oxigraph") or str(Path(sys.executable).with_name("oxigraph"))
    if not Path(found).exists():
        pytest.fail("the `oxigraph` server is not installed: it comes with the test extra (pip install -e '.[test]')")
    return found


@pytest.fixture(scope="session")
def oxigraph_server(tmp_path_factory):
    """A real ``oxigraph serve`` on 127.0.0.1 at a free port, stopped by its PID at the end of the session."""
    port = _free_port()
    proc = subprocess.Popen([oxigraph_binary(), "serve", "--location", str(tmp_path_factory.mktemp("oxigraph")),
                             "--bind", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{base}/query?query=ASK%7B%7D", timeout=1)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"oxigraph serve did not start: {proc.stderr.read().decode()[-500:]}")
            time.sleep(0.1)
    yield base
    os.kill(proc.pid, signal.SIGTERM)
    proc.wait(timeout=10)


@pytest.fixture(params=["oxigraph-memory", "oxigraph-disk", "memory", "endpoint"])
def store(request, tmp_path):
    """An empty store of each back end (the endpoint is emptied before each test)."""
    if request.param == "oxigraph-memory":
        memory = open_store("oxigraph:")
    elif request.param == "oxigraph-disk":
        memory = open_store(f"oxigraph:{tmp_path / 'store'}")
    elif request.param == "memory":
        memory = open_store("memory:")
    else:
        memory = open_store(request.getfixturevalue("oxigraph_server") + "/query")
        memory.update("CLEAR ALL")
    yield memory
    memory.close()



@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Each memory test gets its own cache folder (the barrier key file, embeddings), never the user's."""
    monkeypatch.setenv("SBU_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SBU_BARRIER_KEY", raising=False)
