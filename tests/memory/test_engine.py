"""On the default back end every query and update runs in Oxigraph's engine, never in rdflib's Python SPARQL
evaluator (docs/backends.md, trap 2: oxrdflib falls back to it silently, 1 ms becomes 15 s at 100k). The check traces
Python calls: rdflib's evaluator is Python code, Oxigraph's is not."""

from __future__ import annotations

import sys
from contextlib import contextmanager

from sbu.memory import open_store
from sbu.memory.barrier import Barrier
from sbu.memory.forget import forget
from sbu.memory.ingest import ingest
from sbu.memory.texts import live_texts

RDFLIB_ENGINE = ("rdflib/plugins/sparql/evaluate.py", "rdflib/plugins/sparql/update.py")


@contextmanager
def rdflib_engine_calls():
    """Collect the names of rdflib SPARQL-engine functions called inside the block."""
    calls: list[str] = []

    def trace(frame, event, arg):
        if event == "call" and frame.f_code.co_filename.endswith(RDFLIB_ENGINE):
            calls.append(frame.f_code.co_name)

    sys.setprofile(trace)
    try:
        yield calls
    finally:
        sys.setprofile(None)


def _one_request(store, corpus):
    ingest(store, corpus)
    forget(store, [corpus.splits["forget10"][0]], Barrier(bytes(32)))
    live_texts(store)
    store.content_hash()


def test_the_default_back_end_never_uses_rdflibs_engine(tiny_corpus):
    store = open_store("oxigraph:")
    with rdflib_engine_calls() as calls:
        _one_request(store, tiny_corpus)
    assert calls == []


def test_the_check_sees_rdflibs_engine_when_it_runs(tiny_corpus):
    store = open_store("memory:")  # rdflib's own store: every query goes through its evaluator
    with rdflib_engine_calls() as calls:
        _one_request(store, tiny_corpus)
    assert "evalQuery" in calls and "evalUpdate" in calls
