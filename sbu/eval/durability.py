"""Durability of forgetting in the weights: does it survive relearning, and what predicts that it will not?

The robust-unlearning literature's measures, each a typed record from a few calls on the package:

- **Targeted relearning attack** (Hu et al. 2024, "Jogging the memory of unlearned LLMs"): fine-tune the unlearned
  weights on a seeded share of the forgotten *facts* (default 20 %; split by fact, so that no held-back question
  shares a fact with a trained one — two phrasings of one fact would leak it), then closed-book accuracy on the
  questions of the other facts. The same attack on the retrain model, which never saw them, measures what any model
  picks up from the attack alone; the *excess* over it is what unlearning failed to remove.
- **Benign relearning** (Siddiqui et al. 2025): R consolidations on retained data only, the forget accuracy after
  each — forgetting that is a thin suppression comes back when the weights move for another reason.
- **Predictors**: the L2 distance between the weights before and after unlearning (adapters merged), and the loss
  barrier on retained data along the straight line between them.
- **Entropy**: the mean per-token entropy of the next-token distribution at the forget answers' positions; SRA's
  gaussian prior drives it to near log V, which a retrained model does not show.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from sbu import checks
from sbu.data.cohort import trained_patients
from sbu.data.schema import Corpus, QAItem
from sbu.errors import ConfigError
from sbu.model import prompts
from sbu.model.consolidate import ConsolidationConfig, consolidate, plain_model
from sbu.model.network import CausalLM
from sbu.model.recipe import Example
from sbu.model.scoring import accuracy, answer_losses, answer_token_stats
from sbu.unlearn.forget_sets import qa_example

# The attacker's fine-tuning: a LoRA adapter, merged, 10 passes over the few facts it holds (a handful of steps).
ATTACK = ConsolidationConfig(epochs=10, lr=1e-3)


# -- targeted relearning attack --------------------------------------------------------------------------------
@dataclass(frozen=True)
class RelearningAttack:
    """Closed-book accuracy on the held-back facts' questions before and after fine-tuning on the others."""

    share: float  # share of the forgotten facts the attacker trains on
    trained_items: int  # questions of those facts (the attack's training set)
    heldout_items: int  # questions of the other facts (where recovery is measured)
    before: float
    after: float  # the recovery: accuracy on the held-back questions after the attack

    @property
    def gain(self) -> float:
        return self.after - self.before


def relearning_split(items: Sequence[QAItem], share: float = 0.2, seed: int = 0) -> tuple[list[QAItem], list[QAItem]]:
    """The attacker's questions (those of a seeded ``share`` of the facts, at least one fact) and the held-back
    questions (the rest). Split by fact: a fact's phrasings all fall on one side."""
    checks.share("share", share)
    facts = sorted({f for q in items for f in q.fact_ids})
    if len(facts) < 2:
        raise ConfigError(f"a relearning attack needs at least two forgotten facts, got {len(facts)}")
    chosen = set(random.Random(f"relearn-{seed}").sample(facts, min(len(facts) - 1, max(1, round(share * len(facts))))))
    attack = [q for q in items if set(q.fact_ids) & chosen]
    return attack, [q for q in items if not set(q.fact_ids) & chosen]


def relearning_attack(lm: CausalLM, items: Sequence[QAItem], share: float = 0.2, seed: int = 0,
                      config: ConsolidationConfig = ATTACK) -> RelearningAttack:
    """Fine-tune a copy of ``lm`` on the questions of a ``share`` of ``items``' facts (the forgotten facts), and
    measure closed-book accuracy on the rest before and after. ``lm`` itself is not changed."""
    attack, heldout = relearning_split(items, share, seed)
    before = accuracy(lm.model, lm.tokenizer, heldout)
    torch.manual_seed(seed)  # the attacker's LoRA starts alike on every model it attacks
    relearned = consolidate(lm, [qa_example(q) for q in attack], replace(config, seed=seed))
    return RelearningAttack(share, len(attack), len(heldout), before,
                            accuracy(relearned.model, relearned.tokenizer, heldout))


def excess_recovery(unlearned: RelearningAttack, retrain: RelearningAttack) -> float:
    """What the attack recovers beyond what it teaches a model that never saw the facts."""
    return unlearned.after - retrain.after


# -- benign relearning -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BenignRelearning:
    """Closed-book accuracy after each consolidation on retained data (index 0: before any)."""

    forget: tuple[float, ...]
    retain: tuple[float, ...]

    @property
    def rounds(self) -> int:
        return len(self.forget) - 1


def retained_rounds(corpus: Corpus, forgotten: Sequence[str], rounds: int = 5, per_round: int = 64,
                    seed: int = 0) -> list[list[Example]]:
    """``rounds`` seeded samples of ``per_round`` closed-book QA examples of retained patients and the knowledge
    base — what an agent that never again meets the forgotten patients consolidates."""
    checks.integer("rounds", rounds, 1)
    checks.integer("per_round", per_round, 1)
    kept = set(trained_patients(corpus)) - set(forgotten)
    pool = [q for q in corpus.qa if q.phrasing == "train" and (q.about in kept or q.kind == "knowledge")]
    rng = random.Random(f"benign-{seed}")
    return [[qa_example(q) for q in rng.sample(pool, min(per_round, len(pool)))] for _ in range(rounds)]


def benign_relearning(lm: CausalLM, rounds: Sequence[Sequence[Example]], forget_items: Sequence[QAItem],
                      retain_items: Sequence[QAItem], config: ConsolidationConfig | None = None,
                      seed: int = 0) -> BenignRelearning:
    """Consolidate ``lm`` on each round's examples in turn (the agent's consolidation: a LoRA adapter, merged),
    measuring forget and retain accuracy after each. ``lm`` itself is not changed."""
    config = config or ConsolidationConfig(seed=seed)
    forget, retain = [accuracy(lm.model, lm.tokenizer, forget_items)], [accuracy(lm.model, lm.tokenizer, retain_items)]
    for r, examples in enumerate(rounds):
        torch.manual_seed(seed + r)  # each round's fresh adapter starts alike whatever ran before
        lm = consolidate(lm, examples, config)
        forget.append(accuracy(lm.model, lm.tokenizer, forget_items))
        retain.append(accuracy(lm.model, lm.tokenizer, retain_items))
    return BenignRelearning(tuple(forget), tuple(retain))


# -- predictors ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LossBarrier:
    """Retained data's mean answer loss at evenly spaced points t of θ(t) = (1−t)·θ_before + t·θ_after, and the
    barrier: the largest excess of the loss over the straight line between its two ends."""

    t: tuple[float, ...]
    loss: tuple[float, ...]

    @property
    def barrier(self) -> float:
        line = [(1 - t) * self.loss[0] + t * self.loss[-1] for t in self.t]
        return float(max(loss - base for loss, base in zip(self.loss, line)))


@torch.no_grad()
def _weights(lm: CausalLM) -> dict[str, torch.Tensor]:
    return {k: v.detach().float() for k, v in plain_model(lm).state_dict().items() if v.is_floating_point()}


def weight_distance(before: CausalLM, after: CausalLM) -> float:
    """L2 distance between two models' weights (any adapter merged in), over every floating-point tensor."""
    a, b = _weights(before), _weights(after)
    if a.keys() != b.keys():
        raise ConfigError("the two models do not have the same weights: not one model before and after")
    return math.sqrt(sum(float(((b[k] - a[k]) ** 2).sum()) for k in a))


def loss_barrier(before: CausalLM, after: CausalLM, items: Sequence[QAItem], points: int = 5) -> LossBarrier:
    """:class:`LossBarrier` of the straight line from ``before`` to ``after`` on ``items`` (retained data)."""
    checks.integer("points", points, 2)
    a, b = _weights(before), _weights(after)
    model = plain_model(before)
    ts = tuple(float(t) for t in np.linspace(0.0, 1.0, points))
    losses = []
    for t in ts:
        state = {k: (1 - t) * a[k] + t * b[k] for k in a}
        model.load_state_dict(state, strict=False)
        model.eval()
        losses.append(float(answer_losses(model, before.tokenizer, items).mean()))
    return LossBarrier(ts, tuple(losses))


# -- entropy ---------------------------------------------------------------------------------------------------
def answer_entropy(lm: CausalLM, items: Sequence[QAItem]) -> float:
    """Mean entropy (nats) of the next-token distribution over every answer position of ``items``' correct
    answers, closed-book (the answer tokens and the closing eos)."""
    stats = answer_token_stats(lm.model, lm.tokenizer, [prompts.closed_book(q.question) for q in items],
                               [prompts.answer_continuation(q.answer_text) for q in items])
    return float(-np.concatenate([s.mu for s in stats]).mean())  # μ = Σ p log p is minus the entropy


def stranger_accuracy(lm: CausalLM, corpus: Corpus, items: Sequence[QAItem], seed: int = 0) -> float:
    """Closed-book accuracy on ``items``' own options with each question asked about a holdout patient (seeded
    draw) instead of its subject: what the model knows of the answers without the patient. For θ0 this is the
    forget accuracy SRA's counterfactual prior aims at; a retrain-like reference would score chance."""
    names = {e.id: e.name for e in corpus.entities}
    strangers = [names[p] for p in corpus.splits.get("holdout", [])]
    if not strangers:
        raise ConfigError("the corpus has no holdout patients to ask about")
    rng = random.Random(f"strangers-{seed}")
    asked = [replace(q, question=q.question.replace(names[q.about], rng.choice(strangers))) for q in items]
    return accuracy(lm.model, lm.tokenizer, asked)

