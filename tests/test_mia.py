"""ROC-AUC as the membership-inference convention states it."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from sbu.eval.mia import loss_attack, roc_auc


def test_auc_by_hand():
    assert roc_auc([3, 4], [1, 2]) == 1.0
    assert roc_auc([1, 2], [3, 4]) == 0.0
    assert roc_auc([1, 1], [1, 1]) == 0.5
    assert roc_auc([2, 4], [1, 3]) == 0.75  # 3 of 4 member/non-member pairs ordered right


def test_auc_agrees_with_sklearn():
    rng = np.random.default_rng(0)
    m, n = rng.normal(0.5, 1, 40).round(1), rng.normal(0, 1, 70).round(1)  # rounded: ties included
    expected = roc_auc_score(np.r_[np.ones(40), np.zeros(70)], np.r_[m, n])
    assert roc_auc(m, n) == pytest.approx(expected)


def test_auc_needs_both_groups():
    with pytest.raises(ValueError):
        roc_auc([], [1.0])


def test_loss_attack_scores_trained_answers_higher(tiny_corpus, tiny_lm):
    trained = tiny_corpus.qa_about(tiny_corpus.splits["retain"], "train")
    holdout = tiny_corpus.qa_about(tiny_corpus.splits["holdout"], "train")
    members = loss_attack(tiny_lm.model, tiny_lm.tokenizer, trained)
    nonmembers = loss_attack(tiny_lm.model, tiny_lm.tokenizer, holdout)
    assert roc_auc(members, nonmembers) > 0.6
