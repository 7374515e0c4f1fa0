"""Retrieval over memory's live texts: BM25 (:mod:`~sbu.retrieval.lexical`), all-MiniLM-L6-v2 embeddings
(:mod:`~sbu.retrieval.dense`) and their reciprocal-rank fusion (:mod:`~sbu.retrieval.hybrid`). The torch side of
memory: :mod:`sbu.memory` knows RDF only and hands over its live texts."""

from sbu.retrieval.hybrid import Hit, Retriever

__all__ = ["Hit", "Retriever"]
