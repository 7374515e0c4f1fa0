"""Membership inference: does the model treat an item as one it was trained on?

**AUC convention.** Every attack returns a *membership score* (higher = "more likely a member"); ROC-AUC is the
probability that a random member (e.g. a forget item) scores above a random non-member (a holdout item), ties
counting one half. 1.0: members are perfectly recognisable; 0.5: indistinguishable (the retrain ideal);
below 0.5: members look *less* familiar than unseen data (over-unlearning).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata

from sbu.data.schema import QAItem
from sbu.model.scoring import answer_losses


def roc_auc(member_scores: Sequence[float], nonmember_scores: Sequence[float]) -> float:
    """P(member score > non-member score) + ½·P(tie), by the rank-sum (Mann–Whitney U) identity."""
    m, n = np.asarray(member_scores, float), np.asarray(nonmember_scores, float)
    if len(m) == 0 or len(n) == 0:
        raise ValueError("roc_auc needs at least one member and one non-member score")
    ranks = rankdata(np.concatenate([m, n]))
    return float((ranks[: len(m)].sum() - len(m) * (len(m) + 1) / 2) / (len(m) * len(n)))


def loss_attack(model, tokenizer, items: Sequence[QAItem]) -> np.ndarray:
    """LOSS (Yeom et al., 2018): a low answer loss means "seen in training"; score = −loss."""
    return -answer_losses(model, tokenizer, items)


def loss_auc(model, tokenizer, members: Sequence[QAItem], nonmembers: Sequence[QAItem]) -> float:
    return roc_auc(loss_attack(model, tokenizer, members), loss_attack(model, tokenizer, nonmembers))
