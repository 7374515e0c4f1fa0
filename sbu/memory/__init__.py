"""The memory pathway: agent memory as an RDF knowledge graph (SPEC §3). Knows RDF, nothing of torch.

So far: the store back ends behind one URL (``sbu.memory.open(url)``, :mod:`sbu.memory.store`), the vocabulary
(:mod:`sbu.memory.vocab`, documented in ``schema.ttl``), ingestion of a corpus (:mod:`sbu.memory.ingest`), SPARQL
files (``queries/*.rq`` via :mod:`sbu.memory.sparql`), the seeds and dependency closure of a forget request
(:mod:`sbu.memory.closure`) and its dry-run plan (:func:`sbu.memory.plan.plan_forget`: isolated, shared, entity
decisions). Applying it (prune, tombstones with redaction and repair), the write barrier and retrieval come next.
"""

from sbu.memory.store import MemoryStore, open_store

open = open_store  # noqa: A001 — ``sbu.memory.open(url)`` reads as what it does

__all__ = ["MemoryStore", "open", "open_store"]
