"""Unlearning losses: values worked out by hand, answer-only masking, SRA's stochastic reference."""

from __future__ import annotations

import math

import pytest
import torch

from sbu.errors import ConfigError
from sbu.unlearn import losses
from sbu.unlearn.losses import (
    answer_log_probs,
    answer_mask,
    grad_ascent,
    kl_to_reference,
    max_entropy,
    nll,
    npo,
    simnpo,
    sra,
    token_entropy,
)

LN2, LN3 = math.log(2), math.log(3)


# -- plain-Python arithmetic, independent of the torch code under test --------------------------------------------
def softmax(row):
    exps = [math.exp(x) for x in row]
    return [e / sum(exps) for e in exps]


def kl(q, p):
    return sum(qi * (math.log(qi) - math.log(pi)) for qi, pi in zip(q, p) if qi > 0)


def entropy(p):
    return -sum(pi * math.log(pi) for pi in p if pi > 0)


def softplus(x):
    return math.log1p(math.exp(x))


# One sequence, T = 3, V = 3: a prompt token, then two answer tokens (2, then 0).
# logits[0] predicts token 2 from a uniform row; logits[1] predicts token 0 from p = (1/2, 1/4, 1/4);
# logits[2] predicts nothing (no label after it) and must be ignored.
ONE_LOGITS = torch.tensor([[[0.0, 0.0, 0.0], [LN2, 0.0, 0.0], [9.0, -9.0, 3.0]]])
ONE_LABELS = torch.tensor([[-100, 2, 0]])
ONE_P = [[1 / 3, 1 / 3, 1 / 3], [1 / 2, 1 / 4, 1 / 4]]
ONE_TARGET_P = [1 / 3, 1 / 2]


@pytest.fixture
def two():
    """Two sequences, T = 4, V = 3: row 0 answers (1, 2, 0) — three answer tokens; row 1 answers (1) — one token,
    then padding. The hand values below read softmax(...) of the rows that predict answers."""
    logits = torch.tensor([[[1.0, 0.0, -1.0], [0.0, 2.0, 0.0], [0.5, 0.5, -0.5], [5.0, 5.0, 5.0]],
                           [[3.0, 1.0, 0.0], [0.0, -1.0, 1.0], [7.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    labels = torch.tensor([[-100, 1, 2, 0], [-100, -100, 1, -100]])
    answer_rows = [([1.0, 0.0, -1.0], 1), ([0.0, 2.0, 0.0], 2), ([0.5, 0.5, -0.5], 0)], [([0.0, -1.0, 1.0], 1)]
    return logits, labels, answer_rows


def random_batch(seed: int, batch: int = 3, time: int = 7, vocab: int = 5):
    """Random logits and labels: a prompt of 1–3 tokens, an answer of ≥ 1 token, then padding."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, time, vocab, generator=g) * 2
    labels = torch.full((batch, time), -100)
    for row in range(batch):
        start = int(torch.randint(1, 4, (1,), generator=g))
        end = int(torch.randint(start + 1, time + 1, (1,), generator=g))
        labels[row, start:end] = torch.randint(0, vocab, (end - start,), generator=g)
    return logits, labels


# -- masks and log-probs -----------------------------------------------------------------------------------------
def test_answer_mask_is_shifted_by_one():
    assert answer_mask(ONE_LABELS).tolist() == [[True, True]]
    assert answer_log_probs(ONE_LOGITS, ONE_LABELS).exp().tolist() == pytest.approx(
        [pytest.approx(row) for row in ONE_P])


# -- each loss against arithmetic done by hand -------------------------------------------------------------------
def test_nll_by_hand():
    expected = -(math.log(1 / 3) + math.log(1 / 2)) / 2  # mean over the two answer tokens
    assert nll(ONE_LOGITS, ONE_LABELS).item() == pytest.approx(expected)


def test_nll_averages_over_tokens_not_sequences(two):
    logits, labels, rows = two
    token_nll = [-math.log(softmax(row)[target]) for seq in rows for row, target in seq]
    assert nll(logits, labels).item() == pytest.approx(sum(token_nll) / 4)


def test_grad_ascent_is_minus_nll(two):
    logits, labels, _ = two
    assert grad_ascent(logits, labels).item() == pytest.approx(-nll(logits, labels).item())


def test_max_entropy_by_hand():
    # KL(U ‖ p) = 0 on the uniform row; on (1/2, 1/4, 1/4): (1/3) Σ_v ln((1/3) / p_v)
    second = sum(math.log((1 / 3) / p) for p in ONE_P[1]) / 3
    assert max_entropy(ONE_LOGITS, ONE_LABELS).item() == pytest.approx((0 + second) / 2)
    assert second == pytest.approx(-LN3 - (math.log(1 / 2) + 2 * math.log(1 / 4)) / 3)


def test_token_entropy_by_hand():
    assert token_entropy(ONE_LOGITS, ONE_LABELS).tolist() == pytest.approx([LN3, 1.5 * LN2])


def test_kl_to_reference_by_hand():
    reference = torch.tensor([[[LN2, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])  # the rows of ONE, swapped
    first = kl([1 / 2, 1 / 4, 1 / 4], ONE_P[0])  # KL(p_θ0 ‖ p_θ): the reference comes first
    second = kl([1 / 3] * 3, ONE_P[1])
    assert first == pytest.approx(LN3 - 1.5 * LN2)
    assert kl_to_reference(ONE_LOGITS, ONE_LABELS, reference).item() == pytest.approx((first + second) / 2)


def test_npo_by_hand():
    beta = 0.1
    reference = torch.zeros_like(ONE_LOGITS)  # uniform reference: log p_ref = ln(1/3) at both answer tokens
    log_ratio = (math.log(1 / 3) + math.log(1 / 2)) - 2 * math.log(1 / 3)  # = ln 1.5, summed over the answer
    expected = (2 / beta) * math.log(1 + math.exp(beta * log_ratio))
    assert npo(ONE_LOGITS, ONE_LABELS, reference, beta=beta).item() == pytest.approx(expected)


def test_npo_averages_per_sequence(two):
    logits, labels, rows = two
    beta = 0.5
    reference = torch.zeros_like(logits)
    per_sequence = [sum(math.log(softmax(row)[t]) - math.log(1 / 3) for row, t in seq) for seq in rows]
    expected = (2 / beta) * sum(softplus(beta * r) for r in per_sequence) / 2
    assert npo(logits, labels, reference, beta=beta).item() == pytest.approx(expected)


def test_npo_at_the_reference_is_two_over_beta_log_two(two):
    logits, labels, _ = two
    for beta in (0.1, 1.0, 3.0):
        assert npo(logits, labels, logits.clone(), beta=beta).item() == pytest.approx(2 / beta * LN2)


def test_simnpo_by_hand():
    beta, gamma = 2.5, 0.5
    mean_logp = (math.log(1 / 3) + math.log(1 / 2)) / 2  # length-normalised
    expected = (2 / beta) * softplus(beta * mean_logp + gamma)  # the margin γ sits outside β (Fan et al., Eq. 4)
    assert simnpo(ONE_LOGITS, ONE_LABELS, beta=beta, gamma=gamma).item() == pytest.approx(expected)


def test_simnpo_normalises_each_sequence_by_its_own_length(two):
    logits, labels, rows = two
    beta = 2.5
    mean_logps = [sum(math.log(softmax(row)[t]) for row, t in seq) / len(seq) for seq in rows]
    expected = (2 / beta) * sum(softplus(beta * m) for m in mean_logps) / 2
    assert simnpo(logits, labels, beta=beta).item() == pytest.approx(expected)


def test_sra_gaussian_by_hand():
    tau = 0.7
    noise = torch.randn(2, 3, generator=torch.Generator().manual_seed(5))  # one g_t per answer position
    qs = [softmax([g / tau for g in row]) for row in noise.tolist()]
    expected = (kl(qs[0], ONE_P[0]) + kl(qs[1], ONE_P[1])) / 2
    value = sra(ONE_LOGITS, ONE_LABELS, tau=tau, generator=torch.Generator().manual_seed(5))
    assert value.item() == pytest.approx(expected, rel=1e-5)


# -- only answer positions count ---------------------------------------------------------------------------------
def every_loss(logits, labels, reference, seed=0):
    return {
        "nll": nll(logits, labels),
        "grad_ascent": grad_ascent(logits, labels),
        "max_entropy": max_entropy(logits, labels),
        "kl_to_reference": kl_to_reference(logits, labels, reference),
        "npo": npo(logits, labels, reference),
        "simnpo": simnpo(logits, labels),
        "sra_gaussian": sra(logits, labels, tau=2.0, generator=torch.Generator().manual_seed(seed)),
        "sra_uniform": sra(logits, labels, prior="uniform"),
        "sra_random_model": sra(logits, labels, prior="random_model", reference_logits=reference),
        "token_entropy_sum": token_entropy(logits, labels).sum(),
    }


@pytest.mark.parametrize("seed", range(4))
def test_prompt_and_padding_logits_never_change_a_loss(seed):
    logits, labels = random_batch(seed)
    reference = random_batch(seed + 100)[0]
    before = every_loss(logits, labels, reference)
    unused = ~torch.cat([answer_mask(labels), torch.zeros(labels.shape[0], 1, dtype=torch.bool)], dim=1)
    scrambled = logits.clone()
    scrambled[unused] = torch.randn(int(unused.sum()), logits.shape[-1]) * 50
    with_inf = logits.clone()
    with_inf[unused] = float("-inf")  # a whole row at −inf has a NaN softmax: it must never be computed on
    for changed in (scrambled, with_inf):
        changed.requires_grad_(True)
        after = every_loss(changed, labels, reference)
        for name in before:
            assert after[name].item() == pytest.approx(before[name].item(), abs=1e-6), name
        sum(after.values()).backward()
        assert torch.isfinite(changed.grad).all()
        assert (changed.grad[unused] == 0).all()


def test_a_sequence_without_answer_tokens_is_left_out_of_per_sequence_means(two):
    logits, labels, _ = two
    padded_logits = torch.cat([logits, torch.randn(1, 4, 3)])
    padded_labels = torch.cat([labels, torch.full((1, 4), -100)])
    reference = torch.zeros_like(padded_logits)
    assert simnpo(padded_logits, padded_labels).item() == pytest.approx(simnpo(logits, labels).item())
    assert npo(padded_logits, padded_labels, reference).item() == pytest.approx(
        npo(logits, labels, reference[:2]).item())


def test_masked_vocabulary_entries_give_no_nan():
    logits = ONE_LOGITS.clone()
    logits[0, :2, 1] = float("-inf")  # token 1 banned at both answer positions (the targets are 2 and 0)
    logits.requires_grad_(True)
    values = [nll(logits, ONE_LABELS), kl_to_reference(logits, ONE_LABELS, logits.detach().clone()),
              token_entropy(logits, ONE_LABELS).sum(), npo(logits, ONE_LABELS, logits.detach().clone())]
    assert all(torch.isfinite(v) for v in values)
    sum(values).backward()
    assert torch.isfinite(logits.grad).all()


def test_half_precision_logits_are_scored_in_float32(two):
    logits, labels, _ = two
    value = nll(logits.bfloat16(), labels)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(nll(logits.bfloat16().float(), labels).item(), abs=1e-6)


# -- SRA's stochastic reference ----------------------------------------------------------------------------------
def test_sra_uniform_prior_is_max_entropy(two):
    logits, labels, _ = two
    assert sra(logits, labels, prior="uniform").item() == pytest.approx(max_entropy(logits, labels).item())


def test_sra_with_large_tau_approaches_the_uniform_prior_on_average():
    logits, labels = random_batch(1)
    uniform = sra(logits, labels, prior="uniform").item()
    g = torch.Generator().manual_seed(0)

    def average_gap(tau):
        draws = [sra(logits, labels, tau=tau, generator=g).item() for _ in range(200)]
        return abs(sum(draws) / len(draws) - uniform)

    assert average_gap(100.0) < 0.01 * uniform
    assert average_gap(100.0) < average_gap(1.0) / 10


def test_sra_same_seed_same_value_and_fresh_draws_differ(two):
    logits, labels, _ = two
    first = sra(logits, labels, generator=torch.Generator().manual_seed(3))
    again = sra(logits, labels, generator=torch.Generator().manual_seed(3))
    assert first.item() == again.item()
    g = torch.Generator().manual_seed(3)
    assert sra(logits, labels, generator=g).item() != sra(logits, labels, generator=g).item()


@pytest.mark.parametrize("seed", range(3))
def test_every_kl_is_non_negative(seed):
    logits, labels = random_batch(seed)
    reference = random_batch(seed + 50)[0]
    for tau in (0.1, 1.0, 10.0):
        assert sra(logits, labels, tau=tau, generator=torch.Generator().manual_seed(seed)).item() >= 0
    assert sra(logits, labels, prior="random_model", reference_logits=reference).item() >= 0
    assert max_entropy(logits, labels).item() >= 0
    assert kl_to_reference(logits, labels, reference).item() >= 0
    assert kl_to_reference(logits, labels, logits.clone()).item() == pytest.approx(0, abs=1e-6)


def test_sra_random_model_prior_is_kl_from_the_random_network(two):
    logits, labels, _ = two
    random_net = torch.randn(logits.shape, generator=torch.Generator().manual_seed(9))
    assert sra(logits, labels, prior="random_model", reference_logits=random_net).item() == pytest.approx(
        kl_to_reference(logits, labels, random_net).item())


def test_sra_gradient_reaches_answer_logits_only(two):
    logits, labels, _ = two
    logits = logits.clone().requires_grad_(True)
    sra(logits, labels, generator=torch.Generator().manual_seed(0)).backward()
    used = torch.cat([answer_mask(labels), torch.zeros(2, 1, dtype=torch.bool)], dim=1)
    assert (logits.grad[used].abs().sum(-1) > 0).all()
    assert (logits.grad[~used] == 0).all()


def test_sra_steps_raise_the_entropy_of_answer_positions(two):
    logits, labels, _ = two
    logits = logits.clone().requires_grad_(True)
    start = token_entropy(logits, labels).mean().item()
    g = torch.Generator().manual_seed(0)
    optimizer = torch.optim.SGD([logits], lr=1.0)
    for _ in range(20):
        optimizer.zero_grad()
        sra(logits, labels, tau=5.0, generator=g).backward()
        optimizer.step()
    assert token_entropy(logits, labels).mean().item() > start + 0.05


def test_kl_to_reference_is_zero_at_the_reference(two):
    logits, labels, _ = two
    assert kl_to_reference(logits, labels, logits.clone()).item() == pytest.approx(0, abs=1e-7)


# -- clear errors ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("prior", ["random_model", "counterfactual", "generic"])
def test_a_network_prior_without_reference_is_a_clear_error(two, prior):
    logits, labels, _ = two
    with pytest.raises(ConfigError, match="reference_logits"):
        sra(logits, labels, prior=prior)


def test_sra_counterfactual_prior_is_kl_from_the_given_reference_and_zero_at_it(two):
    """The counterfactual prior is KL(softmax(reference) ‖ p_θ) at answer positions: zero when the model already
    predicts what θ0 predicts for a stranger, positive otherwise, and blind to prompt positions."""
    logits, labels, _ = two
    assert sra(logits, labels, prior="counterfactual", reference_logits=logits.clone()).item() == pytest.approx(
        0, abs=1e-6)
    other = torch.randn(logits.shape, generator=torch.Generator().manual_seed(5))
    expected = kl_to_reference(logits, labels, other)
    assert sra(logits, labels, prior="counterfactual", reference_logits=other).item() == pytest.approx(
        expected.item(), rel=1e-6)
    prompt_only = other.clone()
    prompt_only[~torch.nn.functional.pad(answer_mask(labels), (0, 1))] = 1e4  # prompt positions: never read
    assert sra(logits, labels, prior="counterfactual", reference_logits=prompt_only).item() == pytest.approx(
        expected.item(), rel=1e-6)


def test_generic_logits_take_out_the_reinforced_gain_strength_times_and_keep_every_other_logit():
    """Eldan & Russinovich's generic prediction: a token the reinforced model makes likelier loses strength × that
    gain; a token it makes less likely, or leaves alone, keeps θ0's logit; no gradient reaches either input."""
    base = torch.tensor([[2.0, 1.0, 0.0, -1.0]], requires_grad=True)
    reinforced = torch.tensor([[3.0, 0.5, 0.0, 1.0]], requires_grad=True)
    out = losses.generic_logits(base, reinforced, strength=2.0)
    assert out.tolist() == [[0.0, 1.0, 0.0, -5.0]]
    assert not out.requires_grad
    assert torch.equal(losses.generic_logits(base, reinforced, 0.0), base.detach())
    assert torch.equal(losses.generic_logits(base, base, 7.0), base.detach())  # nothing gained: θ0's own reference
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="strength"):
            losses.generic_logits(base, reinforced, bad)


def test_sra_generic_prior_is_kl_from_the_reference_it_is_given(two):
    logits, labels, _ = two
    other = torch.randn(logits.shape, generator=torch.Generator().manual_seed(6))
    assert sra(logits, labels, prior="generic", reference_logits=other).item() == pytest.approx(
        kl_to_reference(logits, labels, other).item(), rel=1e-6)


def test_unknown_prior_names_the_allowed_ones(two):
    logits, labels, _ = two
    with pytest.raises(ConfigError, match="gaussian, uniform, random_model"):
        sra(logits, labels, prior="laplace")


@pytest.mark.parametrize("call", [
    lambda x, y: sra(x, y, tau=0.0),
    lambda x, y: sra(x, y, tau=-1.0),
    lambda x, y: sra(x, y, tau=float("nan")),
    lambda x, y: npo(x, y, x.clone(), beta=0.0),
    lambda x, y: simnpo(x, y, beta=-2.5),
    lambda x, y: simnpo(x, y, gamma=float("inf")),
    lambda x, y: sra(x, y, prior="uniform", reference_logits=x.clone()),
], ids=["tau0", "tau<0", "tau_nan", "npo_beta0", "simnpo_beta<0", "simnpo_gamma_inf", "unused_reference"])
def test_bad_hyper_parameters_are_config_errors(two, call):
    logits, labels, _ = two
    with pytest.raises(ConfigError):
        call(logits, labels)


@pytest.mark.parametrize("logits_shape, labels_shape", [((2, 4, 3), (2, 5)), ((2, 4), (2, 4)), ((2, 1, 3), (2, 1))])
def test_shape_mismatch_is_a_value_error(logits_shape, labels_shape):
    with pytest.raises(ValueError):
        nll(torch.zeros(logits_shape), torch.zeros(labels_shape, dtype=torch.long))


def test_reference_of_another_shape_is_a_value_error(two):
    logits, labels, _ = two
    with pytest.raises(ValueError, match="reference_logits"):
        kl_to_reference(logits, labels, logits[:, :3])


def test_labels_without_answers_or_out_of_vocabulary_are_value_errors(two):
    logits, labels, _ = two
    with pytest.raises(ValueError, match="no answer token"):
        nll(logits, torch.full_like(labels, -100))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        nll(logits, torch.tensor([[-100, 1, 3, 0], [-100, -100, 1, -100]]))


def test_sra_priors_are_listed():
    assert losses.SRA_PRIORS == ("gaussian", "uniform", "random_model", "counterfactual", "generic")
