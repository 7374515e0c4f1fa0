"""The memory pathway: agent memory as an RDF knowledge graph. Knows RDF, nothing of torch.

Read in this order: the store back ends behind one URL (``sbu.memory.open(url)``, :mod:`~sbu.memory.store`); the
vocabulary (:mod:`~sbu.memory.vocab`, documented in ``schema.ttl``); ingestion of a corpus
(:mod:`~sbu.memory.ingest`); SPARQL files (``queries/*.rq`` via :mod:`~sbu.memory.sparql`); the seeds and dependency
closure of a forget request (:mod:`~sbu.memory.closure`); its dry-run plan (:func:`~sbu.memory.plan.plan_forget`:
isolated, shared, entity decisions); the keyed write barrier (:mod:`~sbu.memory.barrier`); applying a plan — prune,
tombstone with redaction, repair (:func:`~sbu.memory.forget.forget`); the live texts retrieval indexes
(:mod:`~sbu.memory.texts`; the indexes themselves are :mod:`sbu.retrieval`).
"""

from sbu.memory.store import MemoryStore, open_store

open = open_store  # noqa: A001 — ``sbu.memory.open(url)`` reads as what it does

__all__ = ["MemoryStore", "open", "open_store"]
