"""Membership inference: the AUC convention, every attack's formula by hand, and the sanity checks on the
smoke cohort — two holdout samples are indistinguishable, the base model's forget set is not."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from transformers import AutoModelForCausalLM

from sbu.data.cohort import patients_in
from sbu.eval.mia import (
    ATTACKS,
    attack_aucs,
    forget_quality,
    loss_attack,
    min_k_attack,
    min_k_plus_plus_score,
    min_k_score,
    privleak,
    reference_attack,
    roc_auc,
    truth_ratio,
    zlib_score,
)
from sbu.experiment import Experiment
from sbu.model import prompts
from sbu.model.scoring import answer_logprobs, answer_token_stats, logprob_moments

WITHOUT_REFERENCE = [name for name in ATTACKS if name != "reference"]


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


# -- the pure scores, by hand ----------------------------------------------------------------------------------
def test_min_k_averages_the_lowest_share_of_tokens():
    assert min_k_score([-1.0, -2.0, -3.0, -4.0, -5.0], k=0.4) == -4.5  # ⌊0.4·5⌋ = 2 lowest
    assert min_k_score([-1.0, -2.0], k=0.4) == -2.0  # ⌊0.8⌋ = 0: still the lowest one
    assert min_k_score([-1.0, -2.0, -6.0], k=1.0) == -3.0  # k = 1: the mean, as LOSS


def test_min_k_plus_plus_by_hand():
    # Bernoulli(p) next-token distributions: the likely token standardises to √((1−p)/p), the other to −√(p/(1−p))
    logp = torch.tensor([[0.75, 0.25], [0.75, 0.25], [0.9, 0.1], [0.9, 0.1]]).log()
    mu, sigma = logprob_moments(logp)
    assert mu[0].item() == pytest.approx(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert sigma[0].item() == pytest.approx(math.sqrt(0.75 * 0.25) * math.log(3))
    token_logp = logp[torch.arange(4), torch.tensor([0, 1, 0, 1])].numpy()  # z = √⅓, −√3, ⅓, −3
    score = min_k_plus_plus_score(token_logp, mu.numpy(), sigma.numpy(), k=0.5)
    assert score == pytest.approx(-(3 + math.sqrt(3)) / 2, rel=1e-5)  # the lowest two: −3 and −√3


def test_moments_ignore_impossible_tokens():
    mu, sigma = logprob_moments(torch.tensor([[0.0, -torch.inf]]))  # a one-hot distribution
    assert mu.item() == 0.0 and sigma.item() == 0.0
    assert min_k_plus_plus_score(np.array([0.0]), mu.numpy(), sigma.numpy()) == 0.0  # finite, not 0/0


def test_zlib_divides_the_log_likelihood_by_the_compressed_length():
    assert len(zlib.compress(b"Brno")) == 12  # 2-byte header, 6 bytes of deflate, 4-byte Adler-32
    assert zlib_score(np.array([-1.0, -2.0]), "Brno") == -3.0 / 12


def test_truth_ratio_by_hand():
    per_token = np.log([0.5, 0.25, 0.125])  # true answer first: wrong over true = ½ and ¼
    assert truth_ratio(per_token, answer=0) == pytest.approx(0.375)
    assert truth_ratio(per_token, answer=2) == pytest.approx(3.0)  # (4 + 2) / 2: the wrong ones are likelier


def test_privleak_by_hand():
    assert privleak(0.5, 0.5) == 0.0
    assert privleak(0.75, 0.5) == 0.5  # still leaks membership
    assert privleak(0.4, 0.5) == pytest.approx(-0.2)  # over-unlearned
    with pytest.raises(ValueError):
        privleak(0.5, 0.0)


# -- the attacks on the tiny model -----------------------------------------------------------------------------
def test_token_stats_carry_exactly_the_answer_logprobs(tiny_corpus, tiny_lm):
    items = tiny_corpus.qa[:40]
    prompt_texts = [prompts.closed_book(q.question) for q in items]
    answers = [prompts.answer_continuation(q.answer_text) for q in items]
    stats = answer_token_stats(tiny_lm.model, tiny_lm.tokenizer, prompt_texts, answers, batch_size=16)
    logps = answer_logprobs(tiny_lm.model, tiny_lm.tokenizer, prompt_texts, answers, batch_size=16)
    for lp, s in zip(logps, stats):  # same batches, same tokens: the same floats
        assert np.array_equal(lp, s.logprob)
        assert s.mu.shape == s.sigma.shape == lp.shape and (s.mu <= 0).all() and (s.sigma >= 0).all()


def test_every_attack_gives_one_finite_score_per_item(tiny_corpus, tiny_lm):
    items = tiny_corpus.qa_about(tiny_corpus.splits["holdout"], "train")[:12]
    for name, attack in ATTACKS.items():
        kw = {"reference": (tiny_lm.model, tiny_lm.tokenizer)} if name == "reference" else {}
        scores = attack(tiny_lm.model, tiny_lm.tokenizer, items, **kw)
        assert scores.shape == (len(items),) and np.isfinite(scores).all(), name


def test_attacks_score_trained_answers_higher(tiny_corpus, tiny_lm):
    trained = tiny_corpus.qa_about(tiny_corpus.splits["retain"], "train")
    holdout = tiny_corpus.qa_about(tiny_corpus.splits["holdout"], "train")
    aucs = attack_aucs(tiny_lm.model, tiny_lm.tokenizer, trained, holdout)
    assert list(aucs) == WITHOUT_REFERENCE  # no reference model given: that attack is skipped
    assert all(auc > 0.6 for auc in aucs.values()), aucs


def test_min_k_of_every_token_is_the_loss_score(tiny_corpus, tiny_lm):
    items = tiny_corpus.qa[:30]
    everything = min_k_attack(tiny_lm.model, tiny_lm.tokenizer, items, k=1.0)
    np.testing.assert_allclose(everything, loss_attack(tiny_lm.model, tiny_lm.tokenizer, items), rtol=1e-6)


def test_reference_attack_compares_the_target_with_a_model_that_never_saw_the_data(tiny_corpus, tiny_lm):
    model, tok = tiny_lm.model, tiny_lm.tokenizer
    trained = tiny_corpus.qa_about(tiny_corpus.splits["retain"], "train")
    holdout = tiny_corpus.qa_about(tiny_corpus.splits["holdout"], "train")
    assert (reference_attack(model, tok, holdout, reference=(model, tok)) == 0).all()  # its own reference: 0
    torch.manual_seed(0)
    untrained = AutoModelForCausalLM.from_config(model.config).eval()
    aucs = attack_aucs(model, tok, trained, holdout, reference=(untrained, tok))
    assert aucs["reference"] > 0.6


def test_forget_quality_of_a_model_against_itself_is_one(tiny_corpus, tiny_lm):
    forget = tiny_corpus.qa_about(patients_in(tiny_corpus, "forget05"))
    assert forget_quality(tiny_lm.model, tiny_lm.tokenizer, tiny_lm.model, tiny_lm.tokenizer, forget) == 1.0
    with pytest.raises(ValueError, match="held-out-phrasing"):  # TOFU scores paraphrases only
        forget_quality(tiny_lm.model, tiny_lm.tokenizer, tiny_lm.model, tiny_lm.tokenizer,
                       [q for q in forget if q.phrasing == "train"])


# -- sanity on the smoke cohort's base model (cached under ~/.cache/sbu/models; a fresh checkout trains it once) --
@pytest.fixture(scope="module")
def smoke_scores(tmp_path_factory):
    """Every attack but reference, on the smoke base model: the forget05 items and the holdout patients' items cut
    by patient into two halves (sorted ids, first six and last six)."""
    exp = Experiment.from_params(out_dir=str(tmp_path_factory.mktemp("mia")))
    lm, corpus = exp.base_model(), exp.corpus
    holdout = sorted(patients_in(corpus, "holdout"))
    groups = {"forget": corpus.qa_about(patients_in(corpus, "forget05"), "train"),
              "holdout a": corpus.qa_about(holdout[: len(holdout) // 2], "train"),
              "holdout b": corpus.qa_about(holdout[len(holdout) // 2:], "train")}
    items = [q for group in groups.values() for q in group]
    cut = np.cumsum([len(group) for group in groups.values()])[:-1]
    return {name: dict(zip(groups, np.split(ATTACKS[name](lm.model, lm.tokenizer, items), cut)))
            for name in WITHOUT_REFERENCE}


@pytest.mark.smoke_model
def test_smoke_holdout_halves_are_indistinguishable(smoke_scores):
    aucs = {name: roc_auc(s["holdout a"], s["holdout b"]) for name, s in smoke_scores.items()}
    assert all(abs(auc - 0.5) <= 0.1 for auc in aucs.values()), aucs


@pytest.mark.smoke_model
def test_smoke_base_model_recognises_its_forget_set(smoke_scores):
    aucs = {name: roc_auc(s["forget"], np.r_[s["holdout a"], s["holdout b"]]) for name, s in smoke_scores.items()}
    assert all(auc >= 0.9 for auc in aucs.values()), aucs
