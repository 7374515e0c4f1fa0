"""Memory fixtures: one parametrized store over every back end, the endpoint a real ``oxigraph serve``."""

from __future__ import annotations

import pytest

from sbu.memory import open_store
from sbu.memory.server import oxigraph_serve


@pytest.fixture(scope="session")
def oxigraph_server(tmp_path_factory):
    """A real ``oxigraph serve`` on 127.0.0.1 at a free port, stopped by its PID at the end of the session."""
    with oxigraph_serve(tmp_path_factory.mktemp("oxigraph")) as url:
        yield url[: -len("/query")]


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
