"""The live texts of memory, what the retrieval indexes are built from (tombstoned and pruned nodes have none)."""

from __future__ import annotations

from rdflib import URIRef

from sbu.memory.sparql import load_query
from sbu.memory.store import MemoryStore


def live_texts(store: MemoryStore) -> dict[URIRef, str]:
    """Every live text of memory by node IRI (a node with several texts gets them joined, in sorted order)."""
    found: dict[URIRef, list[str]] = {}
    for node, text in store.query(load_query("live_texts")):
        if isinstance(node, URIRef):
            found.setdefault(URIRef(str(node)), []).append(str(text))
    return {node: "\n".join(sorted(texts)) for node, texts in sorted(found.items())}
