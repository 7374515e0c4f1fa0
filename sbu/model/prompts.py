"""The two prompt formats the model is trained and scored with.

Closed-book: the question alone (answers come from the weights). Open-book: the question, then retrieved or given
facts (answers can come from the context — the memory pathway). Answers are scored as the continuation
``" " + answer`` of the prompt.
"""

from __future__ import annotations

from collections.abc import Sequence


def closed_book(question: str) -> str:
    return f"Question: {question}\nAnswer:"


def with_context(question: str, context: Sequence[str]) -> str:
    """The question comes *before* the context, so that while the model reads the context it already knows
    whose fact it is looking for; at "Answer:" it only has to copy what it marked."""
    return f"Question: {question}\nContext: " + " ".join(context) + "\nAnswer:"


def answer_continuation(answer: str) -> str:
    return " " + answer
