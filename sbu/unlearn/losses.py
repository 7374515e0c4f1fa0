"""Unlearning losses as pure functions of tensors: SRA and the baselines it is compared with.

Every loss takes ``logits`` [B, T, V], the model's output for ``input_ids``, and ``labels`` [B, T], -100
everywhere but on the answer tokens and the closing eos (:func:`sbu.model.batches.encode_example`). The causal shift
happens inside, as in :mod:`sbu.model.scoring`: ``logits[:, t]`` predicts ``labels[:, t + 1]``. Only the N answer
positions of the batch ever enter a loss — prompt and padding logits are dropped before the softmax, so they can
hold anything, even ``-inf`` or NaN, without reaching the value or the gradient. Log-softmax runs in float32
whatever the model's dtype. A vocabulary entry held at −inf *at an answer position* is another matter: a reference
q that puts mass on it (uniform, gaussian) makes KL(q ‖ p) infinite, as it should. Below, p_t = p_θ(· | x, y_<t)
is the model's next-token distribution at answer position t, and V the vocabulary size.

Per-token losses (mean over the N answer tokens of the batch, so a long answer weighs more than a short one, as
in Hugging Face's cross-entropy):

- NLL:             −(1/N) Σ_t log p_t(y_t)                         retain NLL, IdkNLL, GradDiff's retain term
- GradAscent:      −NLL
- SRA:             (1/N) Σ_t KL(q_t ‖ p_t),  q_t = softmax(g_t / τ),  g_t ~ N(0, I_V) drawn afresh at every call;
                   ``prior="uniform"``: q_t = 1/V (τ → ∞);  ``prior="random_model"``: q_t = softmax of a randomly
                   initialised copy of the network on the same batch;  ``prior="counterfactual"``: q_t = θ0's
                   next-token distribution for the same answer prefix after the same question asked about a patient
                   no model ever saw (drawn afresh at every call), so a forgotten answer is pushed toward how
                   likely it is for a stranger rather than toward maximal entropy;  ``prior="generic"``: the
                   counterfactual reference with what θ0 holds of the forget set itself taken out, as in Eldan &
                   Russinovich 2023 ("Who's Harry Potter?", arXiv 2310.02238): q_t = softmax(z0_t − a·ReLU(zr_t −
                   z0_t)), z0 θ0's and zr a *reinforced* model's (θ0 fine-tuned further on the forget set) logits on
                   the stranger's question — tokens that more training on the forget set makes likelier (the
                   forgotten values' own strings) are pushed down to what a model that never saw them would give.
- ME:              (1/N) Σ_t KL(U ‖ p_t) = −log V − (1/N) Σ_t mean_v log p_t(v)
                   (Yuan et al. 2024, "A Closer Look at Machine Unlearning for LLMs", arXiv 2410.08109)
- KL retain:       (1/N) Σ_t KL(p_θ0,t ‖ p_t),  θ0 the model before unlearning (the method's L_retain)

KL(q ‖ p) = Σ_v q(v) (log q(v) − log p(v)): the reference q comes first, so p_θ is pushed to cover all of q —
a forget answer's mass is spread over the vocabulary rather than moved onto one other token.

Per-sequence losses (one value per answer, then the mean over the answers of the batch):

- NPO:     (2/β) mean_i softplus(β · Σ_t [log p_θ(y_t) − log p_ref(y_t)])
           (Zhang et al. 2024, "Negative Preference Optimization", arXiv 2404.05868, Eq. 3; softplus(z) =
           −log σ(−z), as open-unlearning's ``compute_dpo_loss`` with no winning answer). At θ = ref it is
           (2/β) log 2, and its gradient is GradAscent's weighted by 2 σ(β · log-ratio) ≤ 2.
- SimNPO:  (2/β) mean_i softplus(β · (1/|y_i|) Σ_t log p_θ(y_t) + γ)
           (Fan et al. 2024, "Simplicity Prevails: Rethinking NPO for LLM Unlearning", arXiv 2410.07163, Eq. 4:
           −(2/β) log σ(−(β/|y|) log π_θ(y|x) − γ)). No reference model; the length normalisation keeps short
           answers from being over-unlearned. γ ≥ 0 is the paper's reward margin, added *outside* β;
           open-unlearning's ``delta`` enters as β · (avg NLL − δ), i.e. γ = β · δ.

A sequence with no answer token is left out of the per-sequence means; a batch with none at all is an error.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from sbu.errors import ConfigError
from sbu.model.likelihood import (
    answer_log_probs,
    answer_mask,
    answer_rows,
    check_shapes,
    kl,
    log_probs,
    nll,
    token_logp,
)

SRA_PRIORS = ("gaussian", "uniform", "random_model", "counterfactual", "generic")
REFERENCE_PRIORS = ("random_model", "counterfactual", "generic")  # the priors whose q comes from a network's logits


def _positive(name: str, value: float) -> None:
    if not value > 0:  # also refuses NaN
        raise ConfigError(f"{name} must be positive, got {value!r}")


# -- likelihood losses -----------------------------------------------------------------------------------------
def grad_ascent(logits: Tensor, labels: Tensor) -> Tensor:
    """GradAscent's forget loss: −NLL, so that minimising it makes the answers less likely."""
    return -nll(logits, labels)


def _sequence_logp(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Per sequence: the summed log-probability of its answer tokens [B] and how many there are [B]."""
    per_token = token_logp(logits, labels)
    rows = answer_rows(labels)
    total = torch.zeros(labels.shape[0], dtype=per_token.dtype, device=per_token.device)
    return total.index_add(0, rows, per_token), answer_mask(labels).sum(1)


def npo(logits: Tensor, labels: Tensor, reference_logits: Tensor, beta: float = 0.1) -> Tensor:
    """Negative Preference Optimization (Zhang et al. 2024): (2/β) · mean over sequences of
    softplus(β · Σ_answer [log p_θ − log p_ref]). ``reference_logits`` come from the model before unlearning and
    are treated as constants."""
    _positive("beta", beta)
    check_shapes(logits, labels, reference_logits)
    logp, count = _sequence_logp(logits, labels)
    ref_logp, _ = _sequence_logp(reference_logits.detach(), labels)  # same labels: shapes match, checked above
    has_answer = count > 0
    log_ratio = (logp - ref_logp)[has_answer]
    return (2.0 / beta) * F.softplus(beta * log_ratio).mean()


def simnpo(logits: Tensor, labels: Tensor, beta: float = 2.5, gamma: float = 0.0) -> Tensor:
    """SimNPO (Fan et al. 2024): (2/β) · mean over sequences of softplus(β · mean_answer log p_θ + γ) —
    NPO without a reference model, the log-likelihood normalised by the answer's length."""
    _positive("beta", beta)
    if not math.isfinite(gamma):
        raise ConfigError(f"gamma must be a finite number, got {gamma!r}")
    check_shapes(logits, labels)
    logp, count = _sequence_logp(logits, labels)
    has_answer = count > 0
    mean_logp = logp[has_answer] / count[has_answer]
    return (2.0 / beta) * F.softplus(beta * mean_logp + gamma).mean()


# -- distribution-matching losses ------------------------------------------------------------------------------
def max_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """ME (Yuan et al. 2024): mean over answer tokens of KL(uniform ‖ p_θ) = −log V − mean_v log p_θ(v)."""
    log_p = answer_log_probs(logits, labels)
    return (-math.log(log_p.shape[-1]) - log_p.mean(-1)).mean()


def generic_logits(base_logits: Tensor, reinforced_logits: Tensor, strength: float = 1.0) -> Tensor:
    """The generic prediction of Eldan & Russinovich 2023: ``base − strength · ReLU(reinforced − base)``, so a token
    that further training on the forget set makes likelier loses that gain ``strength`` times over, and every other
    token keeps its logit. Both inputs are treated as constants."""
    if not strength >= 0 or not math.isfinite(strength):
        raise ConfigError(f"the generic prior's strength must be a finite number ≥ 0, got {strength!r}")
    base = base_logits.detach()
    return base - strength * torch.relu(reinforced_logits.detach() - base)


def sra(logits: Tensor, labels: Tensor, *, tau: float = 1.0, prior: str = "gaussian",
        generator: torch.Generator | None = None, reference_logits: Tensor | None = None) -> Tensor:
    """Stochastic Reference Alignment: mean over answer tokens of KL(q_t ‖ p_θ).

    ``prior="gaussian"``: q_t = softmax(g_t / τ) with g_t ~ N(0, I) over the vocabulary, drawn afresh at every
    call from ``generator`` (drawn on the generator's device, so a seed gives the same references on CPU and GPU).
    ``prior="uniform"``: q_t = 1/V, the τ → ∞ limit (equals :func:`max_entropy`). ``prior="random_model"``:
    q_t = softmax(``reference_logits``), the logits of a randomly initialised copy of the network on the same
    batch. ``prior="counterfactual"``: q_t = softmax(``reference_logits``), θ0's logits for the same answer after
    the question about a never-seen patient, laid out at the batch's answer positions; ``prior="generic"``: the same
    with :func:`generic_logits` of θ0's and the reinforced model's (computed by the caller). ``tau`` only shapes the
    gaussian prior; the references are constants (no gradient flows into q).
    """
    if prior not in SRA_PRIORS:
        raise ConfigError(f"unknown SRA prior {prior!r}; choose one of {', '.join(SRA_PRIORS)}")
    _positive("tau", tau)
    if prior in REFERENCE_PRIORS and reference_logits is None:
        raise ConfigError(f"prior={prior!r} needs reference_logits: the logits of a randomly initialised copy "
                          "of the network (random_model) or of θ0 on a never-seen patient's question "
                          "(counterfactual, generic) at the batch's answer positions")
    if prior not in REFERENCE_PRIORS and reference_logits is not None:
        raise ConfigError(f"reference_logits are only used by prior='random_model', 'counterfactual' or 'generic', "
                          f"not prior={prior!r}")
    check_shapes(logits, labels, reference_logits)
    if prior == "uniform":
        return max_entropy(logits, labels)
    log_p = log_probs(logits, labels)
    if prior in REFERENCE_PRIORS:
        log_q = log_probs(reference_logits.detach(), labels)
    else:
        device = generator.device if generator is not None else log_p.device
        noise = torch.randn(log_p.shape, generator=generator, device=device, dtype=torch.float32)
        log_q = torch.log_softmax(noise.to(log_p.device) / tau, dim=-1)
    return kl(log_q, log_p).mean()


def kl_to_reference(logits: Tensor, labels: Tensor, reference_logits: Tensor) -> Tensor:
    """The retain term: mean over answer tokens of KL(p_θ0 ‖ p_θ), ``reference_logits`` from the model
    before unlearning (θ0), treated as constants."""
    check_shapes(logits, labels, reference_logits)
    return kl(log_probs(reference_logits.detach(), labels), log_probs(logits, labels)).mean()


def token_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Entropy H(p_θ) in nats at every answer position: a 1-D tensor [N], in the row order of
    :func:`answer_log_probs` (for the entropy-shift plot: unlearning by SRA should raise it on the forget set)."""
    log_p = answer_log_probs(logits, labels)
    p = log_p.exp()
    return -(p * torch.where(p > 0, log_p, torch.zeros_like(p))).sum(-1)  # 0 · log 0 = 0, in the gradient too
