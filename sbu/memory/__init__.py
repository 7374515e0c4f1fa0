"""The memory pathway: agent memory as an RDF knowledge graph (SPEC §3). Knows RDF, nothing of torch.

So far: the store back ends behind one URL (``sbu.memory.open(url)``). Closure, tombstones, the write barrier and
retrieval come with the memory-pathway issue.
"""

from sbu.memory.store import MemoryStore, open_store

open = open_store  # noqa: A001 — ``sbu.memory.open(url)`` reads as what it does

__all__ = ["MemoryStore", "open", "open_store"]
