"""Scoring answers: batched, masked per-token log-probabilities of an answer given a prompt.

Everything the evaluation needs reduces to this: multiple-choice answers (the option with the highest
log-likelihood, optionally per token), membership-inference signals (LOSS, Min-K%, …), and entropy shifts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from sbu.data.schema import QAItem
from sbu.model import prompts
from sbu.model.batches import collate, encode_examples


class TokenStats(NamedTuple):
    """One example's answer positions: the answer token's log-probability, and the mean μ_t = Σ_v p_v log p_v and
    standard deviation σ_t = (Σ_v p_v (log p_v − μ_t)²)^½ of log p over the vocabulary under p (Min-K%++)."""

    logprob: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray


def _answer_batches(model, tokenizer, prompt_texts: Sequence[str], answers: Sequence[str], batch_size: int):
    """Yield ``(example index, log-probs over the vocabulary, target ids)`` at each example's answer positions
    (answer tokens and the closing eos), batched by similar length; prompt and padding positions are dropped."""
    if len(prompt_texts) != len(answers):
        raise ValueError(f"{len(prompt_texts)} prompts but {len(answers)} answers")
    encoded = encode_examples(tokenizer, prompt_texts, answers)  # the same split of prompt and answer as training
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))  # similar lengths share a batch
    for start in range(0, len(order), batch_size):
        idx = order[start: start + batch_size]
        batch = {k: v.to(device) for k, v in collate([encoded[i] for i in idx], pad).items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        targets = batch["labels"][:, 1:]
        mask = targets != -100
        logp = torch.log_softmax(logits[:, :-1][mask].float(), dim=-1)  # answer positions only: row by row alike
        ends = mask.sum(dim=1).cumsum(0).tolist()
        for row, i in enumerate(idx):
            start = ends[row - 1] if row else 0
            yield i, logp[start:ends[row]], targets[row][mask[row]]


@torch.no_grad()
def answer_logprobs(model, tokenizer, prompt_texts: Sequence[str], answers: Sequence[str],
                    batch_size: int = 64) -> list[np.ndarray]:
    """For each (prompt, answer): the log-probability of every answer token (and the closing eos) given all
    tokens before it. Prompt and padding positions never enter the result."""
    out: list[np.ndarray] = [None] * len(answers)  # type: ignore[list-item]
    for i, logp, targets in _answer_batches(model, tokenizer, prompt_texts, answers, batch_size):
        out[i] = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1).cpu().numpy()
    return out


@torch.no_grad()
def answer_token_stats(model, tokenizer, prompt_texts: Sequence[str], answers: Sequence[str],
                       batch_size: int = 64) -> list[TokenStats]:
    """:func:`answer_logprobs` plus, at every answer position, the mean and standard deviation of log p over the
    vocabulary under p — the normalisers of Min-K%++ (Zhang et al., 2024). Same tokens, batches and masks."""
    out: list[TokenStats] = [None] * len(answers)  # type: ignore[list-item]
    for i, logp, targets in _answer_batches(model, tokenizer, prompt_texts, answers, batch_size):
        mu, sigma = logprob_moments(logp)
        token_logp = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        out[i] = TokenStats(token_logp.cpu().numpy(), mu.cpu().numpy(), sigma.cpu().numpy())
    return out


def logprob_moments(logp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean μ = Σ_v p_v log p_v and standard deviation σ = (Σ_v p_v (log p_v − μ)²)^½ of log p under p, over the
    last axis of log-probabilities ``logp`` (Zhang et al., 2024, Min-K%++). μ is the negative entropy."""
    p, seen = logp.exp(), logp > -torch.inf  # a token with p = 0 adds 0 to both sums, not 0·(−inf) = nan
    mu = torch.where(seen, p * logp, 0.0).sum(-1)
    var = torch.where(seen, p * (logp - mu.unsqueeze(-1)) ** 2, 0.0).sum(-1)
    return mu, var.sqrt()


def option_scores(model, tokenizer, items: Sequence[QAItem], contexts: Sequence[Sequence[str]] | None = None,
                  normalize: bool = False, batch_size: int = 64) -> list[np.ndarray]:
    """Log-likelihood of every option of every item (closed-book, or with ``contexts[i]`` before item i).
    ``normalize=True`` divides by the option's token count."""
    prompt_texts, answers, owner = [], [], []
    for i, item in enumerate(items):
        prompt = (prompts.closed_book(item.question) if contexts is None
                  else prompts.with_context(item.question, contexts[i]))
        for option in item.options:
            prompt_texts.append(prompt)
            answers.append(prompts.answer_continuation(option))
            owner.append(i)
    logps = answer_logprobs(model, tokenizer, prompt_texts, answers, batch_size)
    scores: list[list[float]] = [[] for _ in items]
    for i, lp in zip(owner, logps):
        scores[i].append(float(lp.mean() if normalize else lp.sum()))
    return [np.array(s) for s in scores]


def choose(model, tokenizer, items: Sequence[QAItem], contexts=None, normalize: bool = False,
           batch_size: int = 64) -> np.ndarray:
    """The index of the chosen option for every item."""
    return np.array([int(np.argmax(s)) for s in option_scores(model, tokenizer, items, contexts, normalize,
                                                              batch_size)])


def correct(model, tokenizer, items: Sequence[QAItem], contexts=None, normalize: bool = False) -> np.ndarray:
    """Whether the model chose each item's answer (booleans, in the items' order)."""
    if not items:
        return np.zeros(0, dtype=bool)
    chosen = choose(model, tokenizer, items, contexts, normalize)
    return chosen == np.array([item.answer for item in items])


def accuracy(model, tokenizer, items: Sequence[QAItem], contexts=None, normalize: bool = False) -> float:
    if not items:
        return float("nan")
    return float(np.mean(correct(model, tokenizer, items, contexts, normalize)))


def answer_losses(model, tokenizer, items: Sequence[QAItem]) -> np.ndarray:
    """Mean negative log-likelihood of each item's correct answer, closed-book (the LOSS attack's signal)."""
    lps = answer_logprobs(model, tokenizer, [prompts.closed_book(q.question) for q in items],
                          [prompts.answer_continuation(q.answer_text) for q in items])
    return np.array([-float(lp.mean()) for lp in lps])
