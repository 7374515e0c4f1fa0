"""Scoring answers: batched, masked per-token log-probabilities of an answer given a prompt.

Everything the evaluation needs reduces to this: multiple-choice answers (the option with the highest
log-likelihood, optionally per token), membership-inference signals (LOSS, Min-K%, …), and entropy shifts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from sbu.data.schema import QAItem
from sbu.model import prompts
from sbu.model.base import collate, encode_example


@torch.no_grad()
def answer_logprobs(model, tokenizer, prompt_texts: Sequence[str], answers: Sequence[str],
                    batch_size: int = 64) -> list[np.ndarray]:
    """For each (prompt, answer): the log-probability of every answer token (and the closing eos) given all
    tokens before it. Prompt and padding positions never enter the result."""
    if len(prompt_texts) != len(answers):
        raise ValueError(f"{len(prompt_texts)} prompts but {len(answers)} answers")
    encoded = [encode_example(tokenizer, p, a) for p, a in zip(prompt_texts, answers)]  # same split as training
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    out: list[np.ndarray] = [None] * len(encoded)  # type: ignore[list-item]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))  # similar lengths share a batch
    for start in range(0, len(order), batch_size):
        idx = order[start: start + batch_size]
        batch = {k: v.to(device) for k, v in collate([encoded[i] for i in idx], pad).items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        targets = batch["labels"][:, 1:]
        mask = targets != -100
        token_logp = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        for row, i in enumerate(idx):
            out[i] = token_logp[row][mask[row]].cpu().numpy()
    return out


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


def accuracy(model, tokenizer, items: Sequence[QAItem], contexts=None, normalize: bool = False) -> float:
    if not items:
        return float("nan")
    chosen = choose(model, tokenizer, items, contexts, normalize)
    return float(np.mean(chosen == np.array([item.answer for item in items])))


def answer_losses(model, tokenizer, items: Sequence[QAItem]) -> np.ndarray:
    """Mean negative log-likelihood of each item's correct answer, closed-book (the LOSS attack's signal)."""
    lps = answer_logprobs(model, tokenizer, [prompts.closed_book(q.question) for q in items],
                          [prompts.answer_continuation(q.answer_text) for q in items])
    return np.array([-float(lp.mean()) for lp in lps])
