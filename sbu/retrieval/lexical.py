"""The lexical side of retrieval: BM25 (``bm25s``, Lucene variant) over word tokens, with an incremental delta.

``bm25s`` cannot add documents, so rows indexed at the last compaction sit in a bm25s index (removals go through its
``weight_mask``) and later rows in a small *delta* scored by the same BM25 formula with the main index's statistics
(N, document frequencies, mean length), so both parts share one scale.
"""

from __future__ import annotations

import math
import re
from collections import Counter

import bm25s
import numpy as np

K1, B = 1.5, 0.75  # BM25 parameters (bm25s's defaults, Lucene variant)

# A word is a run of letters or digits; words joined by - * : . / + form one identifier ("hla-b*57:01",
# "2025-08-25", "cyp2d6*4"), indexed whole and by its parts, so both "HLA-B*57:01" and "57" match it.
_WORD = re.compile(r"[^\W_]+(?:[-*:./+][^\W_]+)*")
_PART = re.compile(r"[^\W_]+")
_STOPWORDS = frozenset(("a an and are as at be but by for if in into is it no not of on or such that the their then "
                        "there these they this to was will with").split())


def tokens(text: str) -> list[str]:
    """BM25 tokens: lower-cased words and digits, identifiers kept whole and split, no stemming, English function
    words dropped."""
    out = []
    for match in _WORD.finditer(text.lower()):
        parts = _PART.findall(match.group())
        if len(parts) > 1:
            out.append(match.group())
        out.extend(part for part in parts if part not in _STOPWORDS)
    return out


class Lexical:
    """BM25 over rows 0…n-1: rows below ``n_main`` in a bm25s index, later rows in a delta of postings scored
    with the main index's statistics (see the module docstring)."""

    def __init__(self, token_lists: list[list[str]]):
        self.n_main = len(token_lists)
        self.df = Counter(token for doc in token_lists for token in set(doc))
        self.avgdl = (sum(map(len, token_lists)) / self.n_main) if self.n_main else 0.0
        self.vocab = {token: i for i, token in enumerate(sorted(self.df))}
        self.bm25 = None
        if self.vocab:  # bm25s needs at least one token
            self.bm25 = bm25s.BM25(k1=K1, b=B, method="lucene")
            ids = [[self.vocab[token] for token in doc] for doc in token_lists]
            self.bm25.index((ids, self.vocab), create_empty_token=False, show_progress=False)
        self.postings: dict[str, list[tuple[int, int]]] = {}  # delta: token -> [(row, term frequency)]
        self.lengths: dict[int, int] = {}  # delta: row -> number of tokens
        self.n_delta = 0

    def append(self, row: int, doc: list[str]) -> None:
        """Add a row to the delta."""
        for token, tf in Counter(doc).items():
            self.postings.setdefault(token, []).append((row, tf))
        self.lengths[row] = len(doc)
        self.n_delta += 1

    def scores(self, query: list[str], live: np.ndarray) -> np.ndarray:
        """BM25 score of every row (0 for dead rows and rows without a query term)."""
        scores = np.zeros(len(live), dtype=np.float64)
        ids = [self.vocab[token] for token in query if token in self.vocab]
        if self.bm25 is not None and ids:
            mask = live[: self.n_main].astype(np.float32)
            scores[: self.n_main] = self.bm25.get_scores_from_ids(ids, weight_mask=mask)
        avgdl = self.avgdl or 1.0
        for token in query:
            df = self.df.get(token, 0)
            idf = math.log(1 + (self.n_main - df + 0.5) / (df + 0.5))
            for row, tf in self.postings.get(token, ()):
                if live[row]:
                    scores[row] += idf * tf / (K1 * (1 - B + B * self.lengths[row] / avgdl) + tf)
        return scores
