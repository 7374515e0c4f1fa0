"""Applying a forget request on every back end: prune, tombstone with redaction, repair — and nothing else."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from rdflib import URIRef

from sbu.memory.barrier import Barrier
from sbu.memory.closure import seeds_of
from sbu.memory.forget import forget
from sbu.memory.ingest import ingest
from sbu.memory.sparql import load_query, with_values
from sbu.memory.vocab import ID_BASE, META, PROV, SBU, iri

KEY = bytes(range(32))
LIVE_DERIVATIONS = """PREFIX prov: <http://www.w3.org/ns/prov#>
SELECT ?x ?s WHERE { GRAPH <https://w3id.org/sbu/graph/meta> {
  ?x prov:wasDerivedFrom ?s FILTER NOT EXISTS { ?x prov:wasInvalidatedBy ?r } } }"""
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _forgotten_strings(corpus, patient):
    """The patient's name, every value of theirs that no retained record also holds, and the sentences of their
    facts (which carry even a short value such as an age in context)."""
    mine = corpus.facts_about([patient])
    retained = " ".join([f.text for f in corpus.facts if f.about != patient]
                        + [a.text for a in corpus.artifacts if patient not in a.about])
    name = next(e.name for e in corpus.entities if e.id == patient)
    return [name] + [f.value for f in mine if f.value not in retained] + [t for f in mine for t in f.texts]


def _found(strings, text: str) -> list[str]:
    """The strings that occur in ``text`` as whole words (a bare "89" inside a hex hash is not an age)."""
    return [s for s in strings if re.search(rf"(?<![0-9A-Za-z]){re.escape(s)}(?![0-9A-Za-z])", text)]


def _mentions(line: str, iris) -> bool:
    return any(f"<{x}>" in line for x in iris)


@pytest.fixture
def forgotten(store, tiny_corpus):
    ingest(store, tiny_corpus)
    patient = tiny_corpus.splits["forget10"][0]
    before = store.nquads().splitlines()
    plan, result = forget(store, [patient], Barrier(KEY), now=WHEN)
    return store, tiny_corpus, patient, plan, result, before


def test_isolated_records_are_gone_and_shared_ones_tombstoned(forgotten):
    store, corpus, patient, plan, result, _ = forgotten
    dump = store.nquads()
    assert result.pruned == plan.isolated | plan.entities_pruned
    assert not any(f"<{x}>" in dump for x in result.pruned), "a pruned IRI is still in memory"
    assert result.tombstoned == plan.shared and plan.shared
    for x in plan.shared:
        meta = {(str(r[1]), str(r[2])) for r in store.query(with_values(load_query("metadata"), "x", [x]))}
        props = {p for p, _ in meta}
        assert str(PROV.wasInvalidatedBy) in props and str(PROV.invalidatedAtTime) in props
        assert str(SBU.textHash) in props and str(SBU.text) not in props, "a tombstone keeps no text"
        assert str(PROV.wasDerivedFrom) not in props and str(SBU.about) not in props


def test_successors_derive_from_retained_sources_only(forgotten):
    store, corpus, patient, plan, result, _ = forgotten
    assert set(result.successors) == set(plan.shared)
    for old, new in result.successors.items():
        found = [(new, URIRef(str(r[1])), r[2], META) for r in
                 store.query(with_values(load_query("metadata"), "x", [new]))]
        rows = {(str(p), str(o)) for (_, p, _, _), o in zip(found, store.reveal(found))}
        sources = {URIRef(o) for p, o in rows if p == str(PROV.wasDerivedFrom)}
        assert (str(PROV.wasRevisionOf), str(old)) in rows
        assert sources and not sources & plan.closure
        text = next(o for p, o in rows if p == str(SBU.text))
        assert text == result.successor_texts[new]
        assert _found(_forgotten_strings(corpus, patient), text) == []


def test_nothing_outside_the_closure_changes(forgotten):
    store, corpus, patient, plan, result, before = forgotten
    touched = set(plan.closure) | set(plan.entities_pruned)
    after = set(store.nquads().splitlines())
    kept = [line for line in before if not _mentions(line, touched)]
    assert kept and all(line in after for line in kept)
    retained = [f for f in corpus.facts if f.about != patient]
    graphs = {str(r[0]) for r in store.query("SELECT DISTINCT ?g WHERE { GRAPH ?g { ?s ?p ?o } }")}
    assert {str(iri(f.id)) for f in retained} <= graphs, "a retained assertion was lost"


def test_no_live_artifact_derives_from_a_forgotten_one(forgotten):
    store, _, _, plan, _, _ = forgotten
    rows = store.query(LIVE_DERIVATIONS)
    assert not {URIRef(str(r[1])) for r in rows} & plan.closure


def test_no_plaintext_of_forgotten_values_in_the_export(forgotten):
    store, corpus, patient, *_ = forgotten
    dump = store.nquads()
    strings = _forgotten_strings(corpus, patient)
    assert len(strings) >= 3
    assert _found(strings, dump) == []
    assert patient not in dump.replace(ID_BASE, "")  # the request and the barrier hold only keyed hashes


def test_no_plaintext_left_in_the_on_disk_store_folder(tmp_path, tiny_corpus):
    from sbu.memory import open_store

    store = open_store(f"oxigraph:{tmp_path / 'memory'}")
    ingest(store, tiny_corpus)
    patient = tiny_corpus.splits["forget10"][0]
    forget(store, [patient], Barrier(KEY), now=WHEN)
    assert store.compact()
    # On binary files, a 2-digit age would match by chance: scan the strings of 6 characters or more (the name,
    # record number, marker, dose, dates, and every sentence, which holds the short values in context).
    strings = [s.encode() for s in _forgotten_strings(tiny_corpus, patient) if len(s) >= 6]
    files = [p for p in (tmp_path / "memory").rglob("*") if p.is_file()]
    assert files and not [(p.name, s) for p in files for s in strings if s in p.read_bytes()]
    other = tiny_corpus.splits["retain"][0]
    assert seeds_of(store, other), "compaction keeps what was retained"
    store.close()


def test_the_barrier_survives_a_reopen_and_refuses_the_forgotten(tmp_path, tiny_corpus):
    from sbu.memory import open_store

    path = tmp_path / "memory"
    store = open_store(f"oxigraph:{path}")
    ingest(store, tiny_corpus)
    patient = tiny_corpus.splits["forget10"][0]
    name = next(e.name for e in tiny_corpus.entities if e.id == patient)
    plan, _ = forget(store, [patient], Barrier(KEY), now=WHEN)
    store.close()
    store = open_store(f"oxigraph:{path}", create=False)
    barrier = Barrier.load(store, KEY)
    assert not barrier.check(f"Note: {name.upper()} called today.")  # normalized: case does not matter
    assert not barrier.check("A note.", about=[patient])
    assert not barrier.check("A note.", derived_from=sorted(plan.closure)[:1])
    value = next(f.value for f in tiny_corpus.facts_about([patient]) if f.attribute == "mrn")
    assert not barrier.check(f"The record number is {value}.", about=[patient])
    spaced = f"{value[:3]} {value[3:]}"
    assert not barrier.check(f"The record number is {spaced}.", about=["patient/p999"]), "a record number is unique"
    city = next(f.value for f in tiny_corpus.facts_about([patient]) if f.attribute == "city")
    assert not barrier.check(f"Lives in {city}.", about=[patient])
    assert barrier.check(f"Lives in {city}.", about=["patient/p999"]), "a value others may share is bound to its entity"
    assert barrier.check("Asthma is treated with an inhaler.")
    assert barrier.refused == 6
    assert barrier.refusals["about"] == 3, "a write about the patient is refused on its id too"
    assert barrier.refusals["unique_value"] == 2 and barrier.refusals["value"] == 2
    store.close()


def test_the_retriever_follows_a_request_in_the_same_step(tiny_corpus):
    from sbu.memory import open_store
    from sbu.memory.texts import live_texts
    from sbu.retrieval.hybrid import Retriever

    store = open_store("oxigraph:")
    ingest(store, tiny_corpus)
    retriever = Retriever.from_store(store)
    patient = tiny_corpus.splits["forget10"][0]
    name = next(e.name for e in tiny_corpus.entities if e.id == patient)
    assert any(name in hit.text for hit in retriever.search(f"Where does {name} live?"))
    plan, result = forget(store, [patient], Barrier(KEY), now=WHEN)
    removed, added = retriever.apply(result)
    assert removed == len(plan.closure) and added == len(result.successors)
    assert not any(name in hit.text for hit in retriever.search(f"Where does {name} live?", k=20))
    assert {h.iri for h in retriever.search("x", k=len(retriever))} <= set(live_texts(store))
    assert len(retriever) == len(live_texts(store))


def test_schema_documents_every_class_and_property_a_request_writes(forgotten):
    from importlib import resources

    from rdflib import Graph
    from rdflib.namespace import OWL, RDF

    store, corpus, *_ = forgotten
    schema = Graph().parse(str(resources.files("sbu.memory") / "schema.ttl"))
    documented = set(schema.subjects(RDF.type, None))
    attributes = {f"{SBU}{f.attribute}" for f in corpus.facts}  # sbu:<attribute>, documented in sbu:Assertion's text
    used = {str(t) for row in store.query("SELECT ?p ?o WHERE { GRAPH ?g { ?s ?p ?o } }") for t in row
            if str(t).startswith(str(SBU))} - attributes
    assert used and used <= {str(x) for x in documented}, used - {str(x) for x in documented}
    assert {OWL.Class, OWL.DatatypeProperty, OWL.ObjectProperty} >= {o for o in schema.objects(None, RDF.type)} - {
        OWL.Ontology}
