"""Membership inference: does the model treat an item as one it was trained on?

**AUC convention.** Every attack returns a *membership score* (higher = "more likely a member"); ROC-AUC is the
probability that a random member (e.g. a forget item) scores above a random non-member (a holdout item), ties
counting one half. 1.0: members are perfectly recognisable; 0.5: indistinguishable (the retrain ideal);
below 0.5: members look *less* familiar than unseen data (over-unlearning).

Every attack scores an item's correct answer closed-book (``Question: … Answer: <answer><eos>``), over the answer
tokens and the closing eos, exactly as :func:`sbu.model.scoring.answer_logprobs` does. Each is a model call (in
``ATTACKS``) and a pure function of arrays (``*_score``), so the maths is testable without a model.

Forget quality (TOFU, Maini et al., 2024) is not an AUC: it is the KS-test p-value between the unlearned and the
retrain model's truth ratios on the forget set — 1.0 when the two distributions cannot be told apart.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence

import numpy as np
from scipy.stats import ks_2samp
from sklearn.metrics import roc_auc_score

from sbu.data.schema import QAItem
from sbu.model import prompts
from sbu.model.scoring import answer_logprobs, answer_losses, answer_token_stats, option_scores

MIN_K = 0.4  # Min-K% and Min-K%++ average the lowest 40 % of the answer's token scores


def roc_auc(member_scores: Sequence[float], nonmember_scores: Sequence[float]) -> float:
    """P(member score > non-member score) + ½·P(tie): scikit-learn's ROC-AUC with members as the positive class."""
    m, n = np.asarray(member_scores, float), np.asarray(nonmember_scores, float)
    if len(m) == 0 or len(n) == 0:
        raise ValueError("roc_auc needs at least one member and one non-member score")
    return float(roc_auc_score(np.r_[np.ones(len(m)), np.zeros(len(n))], np.concatenate([m, n])))


# -- pure scores: one item's arrays -> one membership score (higher = member) -----------------------------------
def min_k_score(token_scores: np.ndarray, k: float = MIN_K) -> float:
    """Min-K% (Shi et al., 2024): the mean of the lowest ⌊k·n⌋ of an answer's n token scores (at least one).
    With k = 1 it is the mean of all of them — the LOSS score."""
    if not 0 < k <= 1:
        raise ValueError(f"k must be in (0, 1], got {k}")
    scores = np.sort(np.asarray(token_scores, float))
    return float(scores[: max(1, int(k * len(scores)))].mean())


def min_k_plus_plus_score(token_logprobs: np.ndarray, mu: np.ndarray, sigma: np.ndarray, k: float = MIN_K) -> float:
    """Min-K%++ (Zhang et al., 2024): each token's log p standardised by the model's own next-token
    distribution, (log p_t − μ_t) / σ_t, then Min-K% of those. σ_t = 0 (a one-hot distribution) counts as 1e-12."""
    z = (np.asarray(token_logprobs, float) - mu) / np.maximum(np.asarray(sigma, float), 1e-12)
    return min_k_score(z, k)


def zlib_score(token_logprobs: np.ndarray, text: str) -> float:
    """zlib (Carlini et al., 2021): the answer's log-likelihood Σ_t log p_t (= −summed NLL) over its zlib length,
    ``len(zlib.compress(text.encode("utf-8")))`` bytes at zlib's default level. Carlini et al. divide the
    per-token log-perplexity; the sum makes it a ratio of two code lengths, model over zlib."""
    return float(np.sum(token_logprobs)) / len(zlib.compress(text.encode("utf-8")))


def truth_ratio(option_mean_logprobs: np.ndarray, answer: int) -> float:
    """TOFU's truth ratio (Maini et al., 2024): the mean over wrong options w of P(w|q)^(1/|w|), divided by
    P(a|q)^(1/|a|) for the true answer a; from per-token mean log-likelihoods. Low: the model prefers the truth."""
    m = np.asarray(option_mean_logprobs, float)
    wrong = np.delete(m, answer)
    if len(wrong) == 0:
        raise ValueError("a truth ratio needs at least one wrong option")
    return float(np.mean(np.exp(wrong - m[answer])))


def privleak(auc_unlearned: float, auc_retrain: float) -> float:
    """PrivLeak (Shi et al., 2024, MUSE) = (AUC_unlearned − AUC_retrain) / AUC_retrain, both AUCs of
    forget (members) vs holdout under this module's convention. 0 is ideal; positive: the unlearned model still
    tells the forget set from unseen data (membership leaks); negative: it over-unlearned (the forget set looks
    less familiar than the retrain model finds it)."""
    if auc_retrain <= 0:
        raise ValueError(f"PrivLeak divides by the retrain AUC, which must be positive, got {auc_retrain}")
    return (auc_unlearned - auc_retrain) / auc_retrain


# -- attacks: (model, tokenizer, items, **kw) -> one membership score per item ----------------------------------
def _closed_book(items: Sequence[QAItem]) -> tuple[list[str], list[str]]:
    return ([prompts.closed_book(q.question) for q in items],
            [prompts.answer_continuation(q.answer_text) for q in items])


def loss_attack(model, tokenizer, items: Sequence[QAItem]) -> np.ndarray:
    """LOSS (Yeom et al., 2018): a low answer loss means "seen in training"; score = −loss."""
    return -answer_losses(model, tokenizer, items)


def zlib_attack(model, tokenizer, items: Sequence[QAItem]) -> np.ndarray:
    """zlib (Carlini et al., 2021): Σ_t log p_t / zlib bytes of the answer text — see :func:`zlib_score`."""
    logps = answer_logprobs(model, tokenizer, *_closed_book(items))
    return np.array([zlib_score(lp, q.answer_text) for lp, q in zip(logps, items)])


def min_k_attack(model, tokenizer, items: Sequence[QAItem], k: float = MIN_K) -> np.ndarray:
    """Min-K% (Shi et al., 2024) on the answer tokens' log-probabilities."""
    return np.array([min_k_score(lp, k) for lp in answer_logprobs(model, tokenizer, *_closed_book(items))])


def min_k_plus_plus_attack(model, tokenizer, items: Sequence[QAItem], k: float = MIN_K) -> np.ndarray:
    """Min-K%++ (Zhang et al., 2024) on the answer tokens' standardised log-probabilities."""
    stats = answer_token_stats(model, tokenizer, *_closed_book(items))
    return np.array([min_k_plus_plus_score(s.logprob, s.mu, s.sigma, k) for s in stats])


def reference_attack(model, tokenizer, items: Sequence[QAItem], reference: tuple) -> np.ndarray:
    """Reference (Carlini et al., 2021; Mireshghallah et al., 2022): loss_reference − loss_target, with
    ``reference=(model, tokenizer)`` a model that never saw the members (here: the retrain model). Positive: the
    target finds the answer easier than a model that never saw it."""
    ref_model, ref_tokenizer = reference
    return answer_losses(ref_model, ref_tokenizer, items) - answer_losses(model, tokenizer, items)


ATTACKS: dict[str, Callable[..., np.ndarray]] = {
    "loss": loss_attack,
    "zlib": zlib_attack,
    "min_k": min_k_attack,
    "min_k_plus_plus": min_k_plus_plus_attack,
    "reference": reference_attack,
}


def attack_aucs(model, tokenizer, members: Sequence[QAItem], nonmembers: Sequence[QAItem],
                reference: tuple | None = None) -> dict[str, float]:
    """ROC-AUC (members vs non-members, module convention) of every attack in ``ATTACKS``. Without a
    ``reference=(model, tokenizer)`` the reference attack is skipped: its key is absent from the result."""
    aucs = {}
    for name, attack in ATTACKS.items():
        if name == "reference" and reference is None:
            continue
        kw = {"reference": reference} if name == "reference" else {}
        aucs[name] = roc_auc(attack(model, tokenizer, members, **kw), attack(model, tokenizer, nonmembers, **kw))
    return aucs


def loss_auc(model, tokenizer, members: Sequence[QAItem], nonmembers: Sequence[QAItem]) -> float:
    return roc_auc(loss_attack(model, tokenizer, members), loss_attack(model, tokenizer, nonmembers))


# -- TOFU forget quality ---------------------------------------------------------------------------------------
def truth_ratios(model, tokenizer, items: Sequence[QAItem]) -> np.ndarray:
    """:func:`truth_ratio` of every item, closed-book; the wrong options play TOFU's perturbed answers and the
    per-token normalisation counts the closing eos as one of the answer's tokens."""
    scores = option_scores(model, tokenizer, items, normalize=True)
    return np.array([truth_ratio(s, q.answer) for s, q in zip(scores, items)])


def forget_quality(model_u, tokenizer_u, model_r, tokenizer_r, items: Sequence[QAItem]) -> float:
    """TOFU forget quality (Maini et al., 2024): the p-value of the two-sample KS test between the unlearned (u)
    and retrain (r) models' truth ratios on the forget set's held-out-phrasing (paraphrased) items; other items
    in ``items`` are left out. High (→ 1): the unlearned model answers the forget set as the retrain model does.
    The KS test depends only on ranks, so the ratio's direction (TOFU's code puts the truth on top) is moot."""
    paraphrased = [q for q in items if q.phrasing == "heldout"]
    if not paraphrased:
        raise ValueError("forget_quality needs held-out-phrasing items (QAItem.phrasing == 'heldout')")
    return float(ks_2samp(truth_ratios(model_u, tokenizer_u, paraphrased),
                          truth_ratios(model_r, tokenizer_r, paraphrased)).pvalue)
