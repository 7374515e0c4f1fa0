"""Seeds and dependency closure of a forget request, by the SPARQL in ``queries/``."""

from __future__ import annotations

from collections.abc import Iterable

from rdflib import URIRef

from sbu.memory.sparql import load_query, with_values
from sbu.memory.store import MemoryStore
from sbu.memory.vocab import iri


def seeds_of(store: MemoryStore, entity_id: str) -> list[URIRef]:
    """The seeds of forgetting an entity: its assertions and the artifacts about it alone, sorted."""
    rows = store.query(with_values(load_query("seeds"), "entity", [iri(entity_id)]))
    return sorted(URIRef(str(row[0])) for row in rows)


def closure(store: MemoryStore, seeds: Iterable[URIRef]) -> set[URIRef]:
    """The seeds and everything derived from them, transitively (``prov:wasDerivedFrom+``)."""
    seeds = set(seeds)
    if not seeds:
        return set()
    rows = store.query(with_values(load_query("closure"), "seed", sorted(seeds)))
    return seeds | {URIRef(str(row[0])) for row in rows}
