"""Ingestion and the dependency closure, on every back end, against a pure-Python traversal."""

from __future__ import annotations

import pytest
from rdflib import URIRef

from sbu.errors import StoreError
from sbu.memory.closure import closure, seeds_of
from sbu.memory.ingest import ingest
from sbu.memory.sparql import load_query, with_values
from sbu.memory.vocab import iri


def _downstream(corpus, seeds: set[str]) -> set[str]:
    """Independent reference: breadth-first over the corpus records' derived_from links."""
    children: dict[str, set[str]] = {}
    for art in corpus.artifacts:
        for src in art.derived_from:
            children.setdefault(src, set()).add(art.id)
    found, frontier = set(seeds), list(seeds)
    while frontier:
        for child in children.get(frontier.pop(), ()):
            if child not in found:
                found.add(child)
                frontier.append(child)
    return found


def test_ingest_writes_one_named_graph_per_assertion(store, tiny_corpus):
    ingest(store, tiny_corpus)
    graphs = {str(r[0]) for r in store.query("SELECT DISTINCT ?g WHERE { GRAPH ?g { ?s ?p ?o } }")}
    assert {str(iri(f.id)) for f in tiny_corpus.facts} <= graphs
    assert len(graphs) == len(tiny_corpus.facts) + 1  # + the metadata graph


def test_closure_of_a_patient_matches_a_python_traversal(store, tiny_corpus):
    ingest(store, tiny_corpus)
    patient = tiny_corpus.splits["forget10"][0]
    seeds = seeds_of(store, patient)
    alone = {a.id for a in tiny_corpus.artifacts if set(a.about) == {patient}}  # its episodes and summary
    assert alone and {str(s) for s in seeds} == {str(iri(x)) for x in
                                                 {f.id for f in tiny_corpus.facts_about([patient])} | alone}
    expected = _downstream(tiny_corpus, {f.id for f in tiny_corpus.facts_about([patient])})
    assert alone <= expected  # in the cohort, they derive from the patient's facts anyway
    assert {str(x) for x in closure(store, seeds)} == {str(iri(x)) for x in expected}
    kinds = {a.kind for a in tiny_corpus.artifacts if a.id in expected}
    assert {"episode", "patient_summary", "condition_summary"} <= kinds


def test_every_back_end_ingests_the_same_content(store, tiny_corpus):
    from sbu.memory import open_store

    reference = open_store("memory:")
    ingest(reference, tiny_corpus)
    ingest(store, tiny_corpus)
    assert store.content_hash() == reference.content_hash()


def test_values_blocks_take_only_valid_iris():
    query = load_query("closure")
    with pytest.raises(StoreError, match="at least one"):
        with_values(query, "seed", [])
    with pytest.raises(StoreError, match="not a valid IRI"):
        with_values(query, "seed", ["https://x/a> } DROP ALL {"])
    with pytest.raises(StoreError, match="not a valid IRI"):
        with_values(query, "seed", [URIRef("https://x/a> } DROP ALL { <b")])


def test_record_ids_cannot_break_out_of_an_iri():
    assert ">" not in str(iri("patient/p1> } DROP ALL { <x"))


def test_schema_documents_every_class_the_ingestion_writes():
    from importlib import resources

    from rdflib import Graph
    from rdflib.namespace import OWL, RDF

    from sbu.memory.vocab import ARTIFACT_CLASS, ENTITY_CLASS, SBU

    schema = Graph().parse(str(resources.files("sbu.memory") / "schema.ttl"))
    documented = set(schema.subjects(RDF.type, OWL.Class))
    assert {*ENTITY_CLASS.values(), *ARTIFACT_CLASS.values(), SBU.Assertion, SBU.ForgetRequest} <= documented
