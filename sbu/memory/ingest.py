"""Ingest a :class:`~sbu.data.schema.Corpus` into a memory store.

Each fact becomes an assertion in its own named graph (``<entity> sbu:<attribute> "value"``) with its metadata in
the metadata graph; each derived artifact becomes a node of the metadata graph with its text, what it is about and
``prov:wasDerivedFrom`` links to its sources.
"""

from __future__ import annotations

from collections.abc import Iterator

from rdflib import Literal

from sbu.data.schema import Corpus
from sbu.memory.store import MemoryStore
from sbu.memory.vocab import ARTIFACT_CLASS, ENTITY_CLASS, META, PROV, RDF, RDFS, SBU, iri, predicate


def corpus_quads(corpus: Corpus) -> Iterator[tuple]:
    """Every quad the corpus contributes to memory, as (subject, predicate, object, graph IRI)."""
    for entity in corpus.entities:
        node = iri(entity.id)
        yield node, RDF.type, ENTITY_CLASS[entity.type], META
        yield node, RDFS.label, Literal(entity.name), META
    for fact in corpus.facts:
        graph = iri(fact.id)
        yield iri(fact.about), predicate(fact.attribute), Literal(fact.value), graph
        yield graph, RDF.type, SBU.Assertion, META
        yield graph, SBU.about, iri(fact.about), META
        yield graph, SBU.text, Literal(fact.text), META
        for entity in fact.entities:
            yield graph, SBU.mentions, iri(entity), META
    for artifact in corpus.artifacts:
        node = iri(artifact.id)
        yield node, RDF.type, ARTIFACT_CLASS[artifact.kind], META
        yield node, SBU.text, Literal(artifact.text), META
        for entity in artifact.about:
            yield node, SBU.about, iri(entity), META
        for source in artifact.derived_from:
            yield node, PROV.wasDerivedFrom, iri(source), META


def ingest(store: MemoryStore, corpus: Corpus) -> int:
    """Add the corpus to ``store``; return the number of quads added."""
    quads = list(corpus_quads(corpus))
    store.add_quads(quads)
    return len(quads)
