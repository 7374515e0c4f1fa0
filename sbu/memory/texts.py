"""The live texts of memory, what the retrieval indexes are built from (tombstoned and pruned nodes have none),
opened from their sealed form (a text whose data key was destroyed is forgotten: it is left out)."""

from __future__ import annotations

from rdflib import URIRef

from sbu.memory.sparql import load_query
from sbu.memory.store import MemoryStore, bulk
from sbu.memory.vocab import META, SBU


def live_texts(store: MemoryStore) -> dict[URIRef, str]:
    """Every live text of memory by node IRI (a node with several texts gets them joined, in sorted order)."""
    found: dict[URIRef, list[str]] = {}
    with bulk():
        text_p = SBU.text
        rows = [(URIRef(str(node)), text_p, text, META) for node, text in store.query(load_query("live_texts"))
                if isinstance(node, URIRef)]
        for (node, _, _, _), text in zip(rows, store.reveal(rows)):
            if text is not None:
                found.setdefault(node, []).append(str(text))
        return {node: "\n".join(sorted(texts)) for node, texts in sorted(found.items())}
