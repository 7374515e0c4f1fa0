"""Likelihood at answer positions: which logits predict an answer token, their float32 log-softmax, and the mean
negative log-likelihood per answer token — what training, consolidation and the unlearning losses share.

``labels`` are -100 everywhere but on the answer tokens and the closing eos (:func:`sbu.model.batches.encode_example`);
``logits[:, t]`` predicts ``labels[:, t + 1]``. Only answer positions enter the softmax, so prompt and padding
logits can hold anything (−inf, NaN) without reaching the value or the gradient.
"""

from __future__ import annotations

import torch
from torch import Tensor

IGNORE = -100  # the label of every position that is not an answer token (Hugging Face's ignore_index)


def answer_mask(labels: Tensor) -> Tensor:
    """Bool [B, T-1]: True where ``logits[:, t]`` predicts an answer token ``labels[:, t + 1]``."""
    if labels.dim() != 2 or labels.shape[1] < 2:
        raise ValueError(f"labels must be [batch, time] with time ≥ 2, got shape {tuple(labels.shape)}")
    return labels[:, 1:] != IGNORE


def answer_log_probs(logits: Tensor, labels: Tensor) -> Tensor:
    """Float32 log-softmax [N, V] of the logits that predict the N answer tokens, batch-major (row 0's answer
    positions first, in order). Prompt and padding logits are dropped before the softmax."""
    check_shapes(logits, labels)
    return log_probs(logits, labels)


def log_probs(logits: Tensor, labels: Tensor) -> Tensor:
    """:func:`answer_log_probs` for shapes already checked. Selecting before the softmax keeps whatever the prompt
    and padding logits hold (−inf, NaN) out of the value and the gradient, and saves the work."""
    return torch.log_softmax(logits[:, :-1][answer_mask(labels)].float(), dim=-1)


def answer_targets(labels: Tensor) -> Tensor:
    """The N answer token ids, in the row order of :func:`answer_log_probs`."""
    return labels[:, 1:][answer_mask(labels)]


def answer_rows(labels: Tensor) -> Tensor:
    """For each of the N answer positions, the batch row (sequence) it belongs to."""
    return answer_mask(labels).nonzero(as_tuple=True)[0]


def check_shapes(logits: Tensor, labels: Tensor, reference_logits: Tensor | None = None) -> None:
    if logits.dim() != 3:
        raise ValueError(f"logits must be [batch, time, vocab], got shape {tuple(logits.shape)}")
    if labels.dim() != 2 or tuple(labels.shape) != tuple(logits.shape[:2]):
        raise ValueError(f"labels {tuple(labels.shape)} must match logits' [batch, time] {tuple(logits.shape[:2])}")
    if labels.shape[1] < 2:
        raise ValueError(f"sequences need at least 2 positions for a next-token loss, got {labels.shape[1]}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer token ids, got dtype {labels.dtype}")
    if reference_logits is not None and tuple(reference_logits.shape) != tuple(logits.shape):
        raise ValueError(f"reference_logits {tuple(reference_logits.shape)} must match logits {tuple(logits.shape)}")
    targets = answer_targets(labels)
    if targets.numel() == 0:
        raise ValueError(f"labels hold no answer token (every position after the first is {IGNORE})")
    vocab = logits.shape[-1]
    if int(targets.min()) < 0 or int(targets.max()) >= vocab:
        raise ValueError(f"answer labels must be token ids in [0, {vocab}) or {IGNORE}, "
                         f"got values in [{int(targets.min())}, {int(targets.max())}]")


def token_logp(logits: Tensor, labels: Tensor) -> Tensor:
    """log p_θ(y_t) of each of the N answer tokens [N]."""
    return log_probs(logits, labels).gather(-1, answer_targets(labels).unsqueeze(-1)).squeeze(-1)


def kl(log_q: Tensor, log_p: Tensor) -> Tensor:
    """KL(q ‖ p) per row of [N, V] log-probabilities. Terms with q(v) = 0 count 0: the log-ratio is zeroed
    *before* the product, so that neither the value nor the gradient meets 0 · (−inf)."""
    q = log_q.exp()
    log_ratio = torch.where(q > 0, log_q - log_p, torch.zeros_like(q))
    return (q * log_ratio).sum(-1)


def nll(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean negative log-likelihood per answer token of the batch (retain NLL, IdkNLL, GradDiff's retain term)."""
    check_shapes(logits, labels)
    return -token_logp(logits, labels).mean()
