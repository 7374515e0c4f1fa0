"""Hybrid retrieval over live memory: BM25 (``bm25s``) and dense all-MiniLM-L6-v2
embeddings, fused by reciprocal-rank fusion, score(d) = Σ_side 1 / (rrf_k + rank_side(d)) (Cormack et al., 2009).

Design: the index is incremental, because a forget request must drop artifacts from it in the same step and the
agent adds an artifact at every write-back, while embedding is the expensive part.

- Rows: every document ever added has a row; a live mask says which rows count. ``remove`` flips the mask,
  ``add`` appends rows and embeds the new texts only. A dead row is never ranked on either side.
- Dense side: a matrix of L2-normalised embeddings; a query's scores are one matrix-vector product.
- Lexical side: BM25 with an incremental delta (:mod:`sbu.retrieval.lexical`).
- Trade-off: until compaction those statistics are stale (removed documents still count in N and df, added ones do
  not) and the in-memory index keeps the removed rows' vectors and tokens (never on disk). When removed + added rows
  exceed ``compact_share`` (10 %) of the main index, the index compacts: dead rows go, the lexical side is re-indexed
  from scratch; no text is re-embedded. After :meth:`Retriever.rebuild` (the same compaction, on demand) results
  equal those of a fresh :class:`Retriever` over the live documents; before it, scores drift by at most that share.

Embeddings come from :mod:`sbu.retrieval.dense` (cached on disk as vectors only); :meth:`Retriever.remove` deletes
the cached vectors of what it removes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from rdflib import URIRef

from sbu import checks
from sbu.errors import ConfigError
from sbu.memory.store import MemoryStore
from sbu.memory.texts import live_texts
from sbu.retrieval.dense import Embedder, default_embedder
from sbu.retrieval.lexical import Lexical, tokens


@dataclass(frozen=True)
class Hit:
    """One retrieved document: its fused RRF score and its 1-based rank on each side (None: not ranked there,
    i.e. no query term occurs in it)."""

    iri: URIRef
    text: str
    score: float
    lexical_rank: int | None = None
    dense_rank: int | None = None


class Retriever:
    """Top-k live documents for a query, by RRF over BM25 and dense ranks.

    ``docs`` maps IRIs to texts; ``rrf_k`` is the RRF constant; ``embedder`` defaults to :func:`default_embedder`;
    ``compact_share`` is the share of stale rows (removed + added since the last compaction) that triggers one.
    """

    def __init__(self, docs: Mapping[URIRef, str], *, rrf_k: float = 60, embedder: Embedder | None = None,
                 compact_share: float = 0.1):
        checks.number("rrf_k (60 in the RRF paper)", rrf_k, positive=True)
        checks.number("compact_share (e.g. 0.1)", compact_share, positive=True)
        self.rrf_k = rrf_k
        self.compact_share = compact_share
        self.embedder = embedder or default_embedder()
        self._iris: list[URIRef] = []  # by row, dead rows included
        self._live = np.zeros(0, dtype=bool)
        self._vectors: np.ndarray | None = None
        self._texts: dict[URIRef, str] = {}  # live documents only
        self._row_of: dict[URIRef, int] = {}  # live documents only
        self._lexical = Lexical([])
        self._tie_order: np.ndarray | None = None
        self.add(docs)

    @classmethod
    def from_store(cls, store: MemoryStore, *, rrf_k: float = 60, embedder: Embedder | None = None,
                   compact_share: float = 0.1) -> Retriever:
        """Index every live text of ``store`` (``queries/live_texts.rq``). The retriever does not follow later
        changes of the store: whoever changes memory calls :meth:`remove` / :meth:`add`."""
        return cls(live_texts(store), rrf_k=rrf_k, embedder=embedder, compact_share=compact_share)

    def __len__(self) -> int:
        return len(self._texts)

    def __contains__(self, iri: object) -> bool:
        return iri in self._texts

    def documents(self) -> dict[URIRef, str]:
        """Every live document: IRI → text."""
        return dict(self._texts)

    def text(self, iri: URIRef) -> str:
        """The indexed text of a live document ("" when it is not indexed)."""
        return self._texts.get(iri, "")

    def search(self, query: str, k: int = 5) -> list[Hit]:
        """The ``k`` best live documents, best first; equal scores are ordered by IRI."""
        if not isinstance(query, str) or not query.strip():
            raise ConfigError(f"the query must be a non-empty string, got {query!r}")
        checks.integer("k (how many documents to return)", k, 1)
        live_rows = np.flatnonzero(self._live)
        if live_rows.size == 0:
            return []
        order = self._order()
        lexical = self._lexical.scores(list(dict.fromkeys(tokens(query))), self._live)
        lexical_rows = np.flatnonzero(self._live & (lexical > 0))
        dense = self._vectors @ self.embedder.encode([query], cache=False)[0]
        lexical_rank = _ranks(lexical, lexical_rows, order)
        dense_rank = _ranks(dense, live_rows, order)
        fused = np.zeros(len(self._iris), dtype=np.float64)
        fused[lexical_rows] += 1.0 / (self.rrf_k + lexical_rank[lexical_rows])
        fused[live_rows] += 1.0 / (self.rrf_k + dense_rank[live_rows])
        best = live_rows[np.lexsort((order[live_rows], -fused[live_rows]))][:k]
        return [Hit(self._iris[row], self._texts[self._iris[row]], float(fused[row]),
                    int(lexical_rank[row]) or None, int(dense_rank[row]) or None) for row in best]

    def remove(self, iris: Iterable[URIRef]) -> int:
        """Drop documents from both sides at once (and their cached vectors); return how many were indexed."""
        count = self._drop(iris)
        self._compact_if_stale()
        return count

    def add(self, docs: Mapping[URIRef, str]) -> int:
        """Index new documents, embedding their texts only; return how many were added. A document already
        indexed with the same text is skipped (so a resumed step can add again); with another text it is
        replaced."""
        new = {}
        for iri, text in docs.items():
            if not isinstance(iri, URIRef):
                raise ConfigError(f"documents are keyed by rdflib.URIRef, got {iri!r}")
            if not isinstance(text, str):
                raise ConfigError(f"the text of {iri} must be a string, got {type(text).__name__}")
            if self._texts.get(iri) != text:
                new[iri] = str(text)
        if not new:
            return 0
        self._drop(new)
        iris = sorted(new, key=str)  # a canonical row order, whatever the mapping's order
        vectors = self.embedder.encode([new[iri] for iri in iris])
        start = len(self._iris)
        self._vectors = vectors if self._vectors is None else np.vstack([self._vectors, vectors])
        self._live = np.concatenate([self._live, np.ones(len(iris), dtype=bool)])
        for row, iri in enumerate(iris, start):
            self._iris.append(iri)
            self._texts[iri] = new[iri]
            self._row_of[iri] = row
            self._lexical.append(row, tokens(new[iri]))
        self._tie_order = None
        self._compact_if_stale()
        return len(iris)

    def apply(self, result) -> tuple[int, int]:
        """Follow an applied forget request (:class:`sbu.memory.forget.ForgetResult`) in the same step:
        drop what it pruned or tombstoned, add its successors; return (removed, added)."""
        return self.remove(set(result.pruned) | set(result.tombstoned)), self.add(result.successor_texts)

    def rebuild(self) -> None:
        """Compact now: drop dead rows (their vectors and tokens leave memory), re-index BM25 over the live
        documents with fresh statistics. Live vectors are kept: an embedding does not depend on the other
        documents. Search then answers as a fresh :class:`Retriever` over the same documents does."""
        live_rows = np.flatnonzero(self._live)
        keep = sorted(live_rows, key=lambda row: str(self._iris[row]))
        self._iris = [self._iris[row] for row in keep]
        self._vectors = self._vectors[keep] if self._vectors is not None else None
        self._live = np.ones(len(keep), dtype=bool)
        self._row_of = {iri: row for row, iri in enumerate(self._iris)}
        self._lexical = Lexical([tokens(self._texts[iri]) for iri in self._iris])
        self._tie_order = None

    def _drop(self, iris: Iterable[URIRef]) -> int:
        gone = []
        for iri in set(iris):
            row = self._row_of.pop(iri, None)
            if row is not None:
                self._live[row] = False
                gone.append(self._texts.pop(iri))
        if gone and hasattr(self.embedder, "forget"):
            self.embedder.forget(gone)
        return len(gone)

    def _compact_if_stale(self) -> None:
        stale = len(self._iris) - self._lexical.n_main + int((~self._live[: self._lexical.n_main]).sum())
        if stale > self.compact_share * self._lexical.n_main:
            self.rebuild()

    def _order(self) -> np.ndarray:
        """Each row's position in IRI order, the tie-breaker that makes results independent of row order."""
        if self._tie_order is None:
            by_iri = sorted(range(len(self._iris)), key=lambda row: str(self._iris[row]))
            self._tie_order = np.empty(len(by_iri), dtype=np.int64)
            self._tie_order[by_iri] = np.arange(len(by_iri))
        return self._tie_order


def _ranks(scores: np.ndarray, rows: np.ndarray, order: np.ndarray) -> np.ndarray:
    """1-based rank of each of ``rows`` by descending score, ties by IRI; 0 for every other row."""
    ranks = np.zeros(len(scores), dtype=np.int64)
    ranks[rows[np.lexsort((order[rows], -scores[rows]))]] = np.arange(1, len(rows) + 1)
    return ranks
