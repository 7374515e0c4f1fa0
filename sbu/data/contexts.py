"""Open-book contexts: the fact that answers a question among distractor facts, shuffled — what a perfect
retriever would hand the model. Training, unlearning's retain set and evaluation all build them here."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from sbu.data.schema import Corpus, Fact, QAItem


def fact_among_distractors(rng: random.Random, answer: Sequence[Fact], pool: Sequence[Fact], distractors: int,
                           phrase: Callable[[Fact], str] | None = None, spare: int = 0) -> list[str]:
    """The sentences of ``answer`` and of ``distractors`` other facts drawn from ``pool``, shuffled. ``phrase``
    picks a fact's sentence (default: its first); ``spare`` extra facts are drawn so that enough remain when one of
    the draws is an answer fact."""
    phrase = phrase or (lambda fact: fact.text)
    answer_ids = {f.id for f in answer}
    others = [f for f in rng.sample(pool, distractors + spare) if f.id not in answer_ids][:distractors]
    context = [phrase(f) for f in answer] + [phrase(f) for f in others]
    rng.shuffle(context)
    return context


def open_book_contexts(corpus: Corpus, items: list[QAItem], distractors: int = 2, seed: int = 0,
                       pool: list | None = None) -> list[list[str]]:
    """For each item: the fact that answers it, among ``distractors`` facts of retained patients (or of ``pool``),
    shuffled."""
    rng = random.Random(seed)
    facts = {f.id: f for f in corpus.facts}
    pool = pool if pool is not None else corpus.facts_about(corpus.splits["retain"])
    return [fact_among_distractors(rng, [facts[i] for i in item.fact_ids], pool, distractors) for item in items]
