"""Ingest a :class:`~sbu.data.schema.Corpus` into a memory store, through the write barrier.

Each fact becomes an assertion in its own named graph (``<entity> sbu:<attribute> "value"``) with its metadata in
the metadata graph; each derived artifact becomes a node of the metadata graph with its text, what it is about and
``prov:wasDerivedFrom`` links to its sources.

Ingesting into a memory that has forgotten something (its blocklist is not empty) passes every record through the
barrier [choice: skip and report, not fail]: a record the barrier refuses — an entity, fact or artifact that is,
names, is about or derives from what was forgotten — is left out, and :class:`IngestResult` counts the records
left out by reason (never which ones: their ids name the forgotten). So re-ingesting the same source after a
forget makes nothing forgotten live again, and everything else is loaded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from rdflib import Literal

from sbu.data.schema import Corpus
from sbu.memory.barrier import Barrier
from sbu.memory.store import MemoryStore, bulk
from sbu.memory.vocab import ARTIFACT_CLASS, ENTITY_CLASS, META, PROV, RDF, RDFS, SBU, iri, predicate


@dataclass(frozen=True)
class IngestResult:
    """What an ingest added: quads, and the records the barrier left out (by reason; a record may have several)."""

    quads: int
    skipped: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


def entity_quads(entity) -> list[tuple]:
    node = iri(entity.id)
    return [(node, RDF.type, ENTITY_CLASS[entity.type], META), (node, RDFS.label, Literal(entity.name), META)]


def fact_quads(fact) -> list[tuple]:
    graph = iri(fact.id)
    quads = [(iri(fact.about), predicate(fact.attribute), Literal(fact.value), graph),
             (graph, RDF.type, SBU.Assertion, META), (graph, SBU.about, iri(fact.about), META),
             (graph, SBU.text, Literal(fact.text), META)]
    return quads + [(graph, SBU.mentions, iri(entity), META) for entity in fact.entities]


def artifact_quads(artifact) -> list[tuple]:
    node = iri(artifact.id)
    quads = [(node, RDF.type, ARTIFACT_CLASS[artifact.kind], META), (node, SBU.text, Literal(artifact.text), META)]
    quads += [(node, SBU.about, iri(entity), META) for entity in artifact.about]
    return quads + [(node, PROV.wasDerivedFrom, iri(source), META) for source in artifact.derived_from]


def corpus_quads(corpus: Corpus, barrier: Barrier | None = None) -> Iterator[tuple]:
    """Every quad the corpus contributes to memory, as (subject, predicate, object, graph IRI): with a barrier,
    only those of the records it lets through (each record checked as what it says, what it is about, and what it
    is or derives from)."""

    def allowed(text: str, about, node: str, sources=()) -> bool:
        return barrier is None or bool(barrier.check(text, about, [iri(node), *map(iri, sources)]))

    for entity in corpus.entities:
        if allowed(entity.name, [entity.id], entity.id):
            yield from entity_quads(entity)
    for fact in corpus.facts:
        if allowed(" ".join([fact.text, fact.value]), [fact.about, *fact.entities], fact.id):
            yield from fact_quads(fact)
    for artifact in corpus.artifacts:
        if allowed(artifact.text, artifact.about, artifact.id, artifact.derived_from):
            yield from artifact_quads(artifact)


def has_blocklist(store: MemoryStore) -> bool:
    """Whether any forget request has raised the barrier of ``store``."""
    return bool(store.query(f"ASK {{ GRAPH {META.n3()} {{ ?r a {SBU.ForgetRequest.n3()} }} }}").askAnswer)


def ingest(store: MemoryStore, corpus: Corpus, barrier: Barrier | None = None) -> IngestResult:
    """Add the corpus to ``store`` through its barrier (``barrier``, else the store's own when it has forgotten
    anything); return the quads added and the records left out."""
    if barrier is None and has_blocklist(store):
        barrier = Barrier.load(store)
    before = (barrier.refused, Counter(barrier.refusals)) if barrier is not None else (0, Counter())
    with bulk():
        quads = list(corpus_quads(corpus, barrier))
        store.add_quads(quads)
    if barrier is None:
        return IngestResult(len(quads))
    return IngestResult(len(quads), barrier.refused - before[0], dict(Counter(barrier.refusals) - before[1]))
