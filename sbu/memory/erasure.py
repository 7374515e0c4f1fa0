"""Erasure by key destruction, the hooks a forget calls around its graph update (:mod:`sbu.memory.keys`).

``schedule`` marks the data keys of every node a request prunes or tombstones, before the graph update; ``erase``
destroys them right after it; ``finish`` destroys what a crash between the two left marked, for each request whose
graph update is in memory (``applied``) — the next forget and ``sbu resume`` call it. A memory that is not sealed
(``open_store(..., sealed=False)``) has no keys: each hook does nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from rdflib import URIRef

from sbu.memory.store import MemoryStore


def schedule(store: MemoryStore, request: URIRef, nodes: Iterable[URIRef]) -> int:
    """Mark the data keys of ``nodes`` for destruction by ``request``; returns how many keys were marked."""
    keys = store.key_store()
    return keys.schedule(str(request), (str(n) for n in nodes)) if keys is not None else 0


def erase(store: MemoryStore, request: URIRef) -> int:
    """Destroy the data keys ``request`` marked; returns how many."""
    keys = store.key_store()
    return keys.destroy(str(request)) if keys is not None else 0


def finish(store: MemoryStore, applied: Callable[[URIRef], bool]) -> int:
    """Destroy the keys marked by every request whose graph update ``applied`` finds in memory (a crash came
    between the update and the destruction); returns how many keys were destroyed."""
    keys = store.key_store()
    if keys is None:
        return 0
    return sum(keys.destroy(r) for r in keys.pending() if applied(URIRef(r)))
