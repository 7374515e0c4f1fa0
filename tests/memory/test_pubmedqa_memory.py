"""PubMedQA-L in memory: abstracts' sentences as assertions, MeSH concepts as entities, concept summaries shared
by every abstract that carries the concept — forgetting one abstract repairs the summaries it shares."""

from __future__ import annotations

import pytest

from sbu.data import pubmedqa
from sbu.memory import open_store
from sbu.memory.barrier import Barrier
from sbu.memory.forget import forget
from sbu.memory.ingest import ingest
from sbu.memory.texts import live_texts
from sbu.memory.vocab import iri


@pytest.fixture(scope="module")
def pubmed():
    return pubmedqa.load()


def test_every_concept_has_a_summary_derived_from_each_abstract_that_carries_it(pubmed):
    carriers: dict[str, set[str]] = {}
    for fact in pubmed.facts:
        for concept in fact.entities:
            carriers.setdefault(concept, set()).add(fact.about)
    summaries = {a.about[0]: a for a in pubmed.artifacts}
    assert set(summaries) == set(carriers)
    facts = {f.id: f for f in pubmed.facts}
    for concept, docs in carriers.items():
        assert {facts[s].about for s in summaries[concept].derived_from} == docs


def test_forgetting_an_abstract_prunes_what_is_its_own_and_repairs_what_it_shares(pubmed):
    store = open_store("oxigraph:")
    ingest(store, pubmed)
    counts = {}
    for a in pubmed.artifacts:
        counts[a.about[0]] = len(a.derived_from)
    doc = next(e.id for e in pubmed.entities if e.type == "document"
               and any(counts.get(c) == 1 for f in pubmed.facts_about([e.id]) for c in f.entities))
    mine = pubmed.facts_about([doc])
    concepts = set(mine[0].entities)
    plan, result = forget(store, [doc], Barrier(bytes(32)))
    assert plan.seeds == {iri(f.id) for f in mine}
    own = {c for c in concepts if counts[c] == 1}
    assert own and {iri(c) for c in own} <= plan.entities_pruned
    assert {iri(f"concept_summary/{c.split('/', 1)[1]}") for c in concepts - own} == plan.shared
    assert set(result.successors) == plan.shared
    live = live_texts(store)
    texts = set(live.values())
    assert not {f.text for f in mine} & texts
    assert not any(f.text in t for f in mine for t in result.successor_texts.values())
    retained = [f for f in pubmed.facts if f.about != doc]
    assert {f.text for f in retained} <= texts
