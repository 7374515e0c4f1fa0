"""Every back end behind one URL behaves the same: named graphs in, the same quads and hashes out."""

from __future__ import annotations

import pytest
from rdflib import Literal, URIRef

from sbu.errors import StoreError, StoreUnavailableError
from sbu.memory import open_store

EX = "https://example.org/"


def _fill(store):
    store.update(f"""INSERT {{ GRAPH <{EX}g1> {{ <{EX}a> <{EX}says> "one" }}
                               GRAPH <{EX}g2> {{ <{EX}b> <{EX}says> "two" . <{EX}b> <{EX}about> <{EX}a> }} }}
                     WHERE {{}}""")


def test_named_graphs_go_in_and_come_out(store):
    _fill(store)
    assert len(store) == 3
    rows = store.query("SELECT ?g WHERE { GRAPH ?g { ?s ?p ?o } } GROUP BY ?g ORDER BY ?g")
    assert [str(r[0]) for r in rows] == [f"{EX}g1", f"{EX}g2"]


def test_bound_values_select_without_pasting_text(store):
    _fill(store)
    # the bound variable is projected: Oxigraph refuses one that is not (docs/backends.md, trap 3)
    rows = store.query("SELECT ?s ?o WHERE { GRAPH ?g { ?s ?p ?o } }", {"s": URIRef(f"{EX}a")})
    assert [str(r[1]) for r in rows] == [str(Literal("one"))]


def test_delete_of_one_graph_leaves_the_other(store):
    _fill(store)
    store.update(f"DROP GRAPH <{EX}g1>")
    assert len(store) == 2 and "one" not in store.nquads()


def test_every_back_end_gives_the_same_content_hash(store):
    reference = open_store("memory:")
    _fill(reference)
    _fill(store)
    assert store.content_hash() == reference.content_hash()


def test_store_on_disk_keeps_its_content(tmp_path):
    url = f"oxigraph:{tmp_path / 'store'}"
    with open_store(url) as memory:
        _fill(memory)
        before = memory.content_hash()
    with open_store(url, create=False) as again:
        assert again.content_hash() == before


@pytest.mark.parametrize("url", ["", "redis://x", "memory:extra", "oxigraph"])
def test_unknown_urls_are_refused(url):
    with pytest.raises(StoreError, match="memory URL"):
        open_store(url)


def test_a_store_path_that_does_not_exist_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="no memory store"):
        open_store(f"oxigraph:{tmp_path / 'missing' / 'deeper'}")
    with pytest.raises(StoreError, match="create=False"):
        open_store(f"oxigraph:{tmp_path / 'absent'}", create=False)
    assert not (tmp_path / "absent").exists()


def test_an_unreachable_endpoint_is_a_clear_error():
    from sbu.memory.server import free_port

    with pytest.raises(StoreUnavailableError, match="does not answer"):
        open_store(f"http://127.0.0.1:{free_port()}/query")


def test_servers_started_at_once_each_serve_their_own_store(tmp_path):
    """Each server binds a port the system gives it and the port is read back from the system, so servers started
    side by side (test workers, benchmarks) never answer for each other's store."""
    from concurrent.futures import ThreadPoolExecutor
    from contextlib import ExitStack

    from sbu.memory.server import oxigraph_serve

    with ExitStack() as stack, ThreadPoolExecutor(4) as pool:
        urls = list(pool.map(lambda i: stack.enter_context(oxigraph_serve(tmp_path / f"s{i}")), range(4)))
        assert len(set(urls)) == 4
        for i, url in enumerate(urls):
            open_store(url).update(f'INSERT DATA {{ <{EX}server> <{EX}number> "{i}" }}')
        for i, url in enumerate(urls):
            rows = open_store(url).query(f"SELECT ?n WHERE {{ <{EX}server> <{EX}number> ?n }}")
            assert [str(r[0]) for r in rows] == [str(i)]


def test_a_server_that_cannot_start_says_why_in_one_line(tmp_path):
    """A store folder another server holds: the error is oxigraph's own first line, not its stack backtrace."""
    from sbu.memory.server import oxigraph_serve

    with oxigraph_serve(tmp_path / "held"), pytest.raises(StoreUnavailableError, match="lock") as error:
        with oxigraph_serve(tmp_path / "held", timeout=10):
            pass
    assert "backtrace" not in str(error.value) and "\n" not in str(error.value)


def test_a_bulk_read_pauses_garbage_collection_and_restores_it_as_it_was():
    import gc

    from sbu.memory.store import bulk

    assert gc.isenabled()
    with bulk():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with pytest.raises(RuntimeError), bulk():
            raise RuntimeError("a failing read")
        assert not gc.isenabled(), "a caller that had it off keeps it off"
    finally:
        gc.enable()
