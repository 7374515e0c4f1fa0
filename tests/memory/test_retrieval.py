"""Hybrid retrieval over live memory, with the real MiniLM model and real bm25s.

Incremental updates keep the BM25 statistics of the last compaction, so between compactions scores may differ from
a fresh index's by a little: the tests ask the same top-ranked documents of the incremental index, and the very same
hits (scores included) after :meth:`Retriever.rebuild`.
"""

from __future__ import annotations

import re

import pytest
from rdflib import URIRef

from sbu.errors import ConfigError
from sbu.memory.ingest import ingest
from sbu.memory.texts import live_texts
from sbu.memory.vocab import iri
from sbu.retrieval.dense import Embedder
from sbu.retrieval.hybrid import Retriever
from sbu.retrieval.lexical import tokens

SUCCESSORS = {  # repaired artifacts a forget request of patient p000 might write
    iri("cohort_summary/urinary_tract_infection/r1"):
        "Revised cohort summary for urinary tract infection: treated first with nitrofurantoin. Patients: Kaul Tatavo.",
    iri("answer/a1"): "Cached answer: the allergy of Kaul Tatavo is recorded in the visit notes of 2024.",
}
QUERIES = ["What is the medical record number of Kevi Kefe?", "Which genetic marker does Bosin Drumi carry?",
           "first-line drug for gout", "cohort summary urinary tract infection nitrofurantoin",
           "Kaul Tatavo allergy", "CYP2D6*4"]


@pytest.fixture(scope="module")
def embedder(tmp_path_factory):
    """One embedder for the module, its cache in a temporary folder: each text is embedded once."""
    return Embedder(cache=tmp_path_factory.mktemp("embeddings"))


@pytest.fixture(scope="module")
def docs(tiny_corpus) -> dict[URIRef, str]:
    return {iri(f.id): f.text for f in tiny_corpus.facts} | {iri(a.id): a.text for a in tiny_corpus.artifacts}


@pytest.fixture
def retriever(docs, embedder):
    return Retriever(docs, embedder=embedder)


def _memory_of(corpus, patient: str) -> set[URIRef]:
    """The facts about a patient and the artifacts about them (what forgetting them removes from the index)."""
    return ({iri(f.id) for f in corpus.facts_about([patient])}
            | {iri(a.id) for a in corpus.artifacts if patient in a.about})


def test_a_patient_fact_comes_first_for_a_question_naming_patient_and_attribute(retriever, tiny_corpus):
    patients = [e for e in tiny_corpus.entities if e.type == "patient"]
    for patient in patients:
        facts = {f.attribute: iri(f.id) for f in tiny_corpus.facts_about([patient.id])}
        for question, attribute in ((f"What is the medical record number of {patient.name}?", "mrn"),
                                    (f"Which genetic marker does {patient.name} carry?", "marker")):
            top = retriever.search(question, k=1)[0]
            assert top.iri == facts[attribute], question
            assert top.lexical_rank is not None and top.dense_rank is not None


def test_identifiers_and_numbers_are_tokens():
    assert {"hla-b*57:01", "hla", "57", "01", "75", "mg", "2025-08-25", "2025"} <= set(
        tokens("Carries HLA-B*57:01; takes 75 mg since 2025-08-25."))
    assert "the" not in tokens("The dose")


def test_an_exact_identifier_is_found_lexically(embedder):
    docs = {iri("fact/x/marker"): "Ana Bel carries the genetic marker HLA-B*57:01.",
            iri("fact/y/marker"): "Ana Bel carries the genetic marker HLA-B*58:01.",
            iri("fact/x/mrn"): "The medical record number of Ana Bel is 163083."}
    retriever = Retriever(docs, embedder=embedder)
    top = retriever.search("HLA-B*57:01", k=1)[0]
    assert (top.iri, top.lexical_rank) == (iri("fact/x/marker"), 1)
    assert retriever.search("record 163083", k=1)[0].iri == iri("fact/x/mrn")


def test_removed_documents_never_come_back_from_either_side(retriever, docs, tiny_corpus):
    removed = _memory_of(tiny_corpus, "patient/p000")
    assert retriever.remove(removed) == len(removed)
    assert retriever.remove(removed) == 0
    assert len(retriever) == len(docs) - len(removed)
    for node in removed:
        assert node not in retriever
        hits = retriever.search(docs[node], k=len(docs))
        assert not {hit.iri for hit in hits} & removed
        # every live document, ranked 1…n on the dense side and 1…m without a gap on the lexical side
        assert sorted(hit.dense_rank for hit in hits) == list(range(1, len(retriever) + 1))
        lexical = sorted(hit.lexical_rank for hit in hits if hit.lexical_rank is not None)
        assert lexical == list(range(1, len(lexical) + 1))


def test_added_documents_are_found(retriever, docs):
    assert retriever.add(SUCCESSORS) == len(SUCCESSORS)
    assert retriever.add(SUCCESSORS) == 0  # adding again changes nothing (a resumed step)
    assert len(retriever) == len(docs) + len(SUCCESSORS)
    for node, text in SUCCESSORS.items():
        top = retriever.search(text, k=1)[0]
        assert (top.iri, top.text, top.lexical_rank, top.dense_rank) == (node, text, 1, 1)


def test_adding_a_new_text_under_a_known_iri_replaces_the_old_one(retriever, docs):
    node = iri("fact/p001/city")
    old = docs[node]
    assert retriever.add({node: "Kevi Kefe moved to Tromsø."}) == 1
    assert len(retriever) == len(docs)
    assert retriever.search("Where does Kevi Kefe live? Tromsø", k=1)[0].iri == node
    assert all(hit.text != old for hit in retriever.search(old, k=len(docs)))


def test_incremental_updates_agree_with_a_fresh_index(docs, embedder, tiny_corpus):
    removed = _memory_of(tiny_corpus, "patient/p000")
    incremental = Retriever(docs, embedder=embedder, compact_share=0.5)  # stays on the delta path
    incremental.remove(removed)
    incremental.add(SUCCESSORS)
    live = {node: text for node, text in docs.items() if node not in removed} | SUCCESSORS
    fresh = Retriever(live, embedder=embedder)
    for query in QUERIES:
        assert incremental.search(query, k=1)[0].iri == fresh.search(query, k=1)[0].iri, query
    incremental.rebuild()
    for query in QUERIES:
        assert incremental.search(query, k=len(live)) == fresh.search(query, k=len(live)), query


def test_removing_more_than_the_compaction_share_gives_a_fresh_index(docs, embedder, tiny_corpus):
    removed = set().union(*(_memory_of(tiny_corpus, f"patient/p00{i}") for i in range(3)))
    assert len(removed) > 0.1 * len(docs)
    incremental = Retriever(docs, embedder=embedder)
    incremental.remove(removed)
    fresh = Retriever({node: text for node, text in docs.items() if node not in removed}, embedder=embedder)
    for query in QUERIES:
        assert incremental.search(query, k=10) == fresh.search(query, k=10), query


def test_search_is_deterministic_whatever_the_order_of_the_documents(docs, embedder):
    forward = Retriever(docs, embedder=embedder)
    backward = Retriever(dict(reversed(list(docs.items()))), embedder=embedder)
    for query in QUERIES:
        assert forward.search(query, k=20) == backward.search(query, k=20) == forward.search(query, k=20)


@pytest.mark.parametrize("query", ["", "   ", None])
def test_an_empty_query_is_refused(retriever, query):
    with pytest.raises(ConfigError, match="non-empty string"):
        retriever.search(query)


@pytest.mark.parametrize("k", [0, -1, 2.0, True])
def test_k_must_be_a_positive_integer(retriever, k):
    with pytest.raises(ConfigError, match="k .* integer ≥ 1"):
        retriever.search("Kevi Kefe", k=k)


def test_bad_parameters_and_documents_are_refused(embedder):
    with pytest.raises(ConfigError, match="rrf_k"):
        Retriever({}, rrf_k=0, embedder=embedder)
    with pytest.raises(ConfigError, match="URIRef"):
        Retriever({"https://w3id.org/sbu/id/fact/x": "text"}, embedder=embedder)
    with pytest.raises(ConfigError, match="must be a string"):
        Retriever({iri("fact/x"): None}, embedder=embedder)


def test_an_empty_index_returns_nothing(embedder):
    empty = Retriever({}, embedder=embedder)
    assert len(empty) == 0 and empty.search("anything") == []
    one = Retriever({iri("fact/x"): "Ana Bel lives in Graz."}, embedder=embedder)
    one.remove([iri("fact/x")])
    assert one.search("Ana Bel") == []


def test_from_store_indexes_live_texts_and_skips_tombstones(store, tiny_corpus, embedder, docs):
    ingest(store, tiny_corpus)
    tombstoned = iri("summary/p000")
    request = iri("request/r1")
    store.update("PREFIX prov: <http://www.w3.org/ns/prov#> INSERT { GRAPH <https://w3id.org/sbu/graph/meta> { "
                 f"{tombstoned.n3()} prov:wasInvalidatedBy {request.n3()} }} }} WHERE {{}}")
    assert live_texts(store) == {node: text for node, text in docs.items() if node != tombstoned}
    retriever = Retriever.from_store(store, embedder=embedder)
    assert len(retriever) == len(docs) - 1 and tombstoned not in retriever
    assert tombstoned not in {hit.iri for hit in retriever.search(docs[tombstoned], k=len(docs))}


def test_the_embedding_cache_holds_vectors_only(monkeypatch, tmp_path, docs, tiny_corpus):
    monkeypatch.setenv("SBU_CACHE", str(tmp_path))
    mine = {node: docs[node] for node in sorted(_memory_of(tiny_corpus, "patient/p000"))}
    name = tiny_corpus.entity("patient/p000").name
    retriever = Retriever(mine, embedder=Embedder())
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert len(files) == len(mine)
    secrets = [text.encode() for text in mine.values()] + [name.encode(), name.split()[-1].encode()]
    for path in files:
        assert re.fullmatch(r"[0-9a-f]{64}\.npy", path.name)
        assert not any(secret in path.read_bytes() for secret in secrets), path
    retriever.search(f"What is the medical record number of {name}?")
    assert len([path for path in tmp_path.rglob("*") if path.is_file()]) == len(files)  # queries are not cached
    texts = list(mine.values())
    cached = Embedder().encode(texts)
    assert (cached == Embedder().encode(texts)).all()
    assert abs(cached - Embedder(cache=False).encode(texts)).max() < 1e-5
    retriever.remove(list(mine)[:2])  # a removed text leaves no vector behind
    assert len([path for path in tmp_path.rglob("*") if path.is_file()]) == len(files) - 2


class CountingEmbedder(Embedder):
    """The real model, recording the texts it runs."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.ran: list[str] = []

    def _embed(self, texts):
        self.ran += texts
        return super()._embed(texts)


def test_a_query_asked_again_is_embedded_once_and_gives_the_same_bits(tiny_corpus):
    from sbu.retrieval import dense as embedding

    question = f"What is the blood type of {tiny_corpus.entity('patient/p001').name}? (memo test)"
    embedder = CountingEmbedder(cache=False)
    first = embedder.encode([question], cache=False)
    again = embedder.encode([question], cache=False)
    assert embedder.ran == [question] and (first == again).all()
    assert (first[0] == embedder._embed([question])[0]).all(), "the vector it gets alone"
    assert not any(isinstance(key, str) and question in key for pair in embedding._QUERY_MEMO for key in pair)
    embedder.forget([question])  # what was forgotten is embedded afresh
    embedder.ran.clear()
    embedder.encode([question], cache=False)
    assert embedder.ran == [question]
