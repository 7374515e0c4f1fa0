"""Consolidation: the agent re-encodes recent memory into its weights.

Every few interactions an agent fine-tunes on what it recently read and wrote — this is the memory → parameters
half of backflow: a forgotten fact that survives in memory, once retrieved, is trained back into the weights.
``consolidate(lm, examples)`` returns a new plain model (the input is never changed):

- ``mode="lora"`` (default): a fresh LoRA adapter trained on the examples, then merged into the weights, so that
  the next consolidation or unlearning starts from a plain model again;
- ``mode="full"``: every weight is fine-tuned.

A model that still carries an unmerged adapter (an :class:`~sbu.unlearn.loop.Unlearned` model) is merged first.

**Anchors** make a consolidation a dual update: an :class:`Anchor` holds examples (a forgotten patient's
questions) whose answer distributions must stay where the model had them before this consolidation, and its term
``weight · KL(p_before ‖ p_θ)`` at their answer positions joins the loss. Learning what memory holds now cannot then
carry a forgotten answer back through weights the two share.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from peft import get_peft_model

from sbu import checks
from sbu.errors import ConfigError
from sbu.model import likelihood
from sbu.model.adapters import lora_config
from sbu.model.batches import collate, encode_all, random_batches
from sbu.model.network import CausalLM, context_length, device_of
from sbu.model.recipe import Example

MODES = ("lora", "full")


@dataclass(frozen=True)
class ConsolidationConfig:
    mode: str = "lora"  # "lora" (an adapter, merged after training) or "full" (every weight)
    epochs: int = 2  # passes over the recent examples
    batch_size: int = 16
    lr: float = 1e-3
    lora_rank: int = 8
    seed: int = 0

    def __post_init__(self):
        if self.mode not in MODES:
            raise ConfigError(f"consolidation mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        for name in ("epochs", "batch_size", "lora_rank"):
            checks.integer(f"consolidation {name}", getattr(self, name), 1)
        checks.number("consolidation lr", self.lr, positive=True)


@dataclass(frozen=True)
class Anchor:
    """Examples whose answers a consolidation keeps in place, and the weight of that term in its loss."""

    examples: tuple[Example, ...]
    weight: float = 1.0

    def __post_init__(self):
        if not isinstance(self.examples, tuple) or not all(isinstance(x, Example) for x in self.examples):
            raise ConfigError(f"an anchor's examples are a tuple of Example, got {type(self.examples).__name__}")
        checks.number("anchor weight", self.weight, 0)


def plain_model(lm: CausalLM) -> torch.nn.Module:
    """A copy of ``lm``'s network with any peft adapter merged into the weights."""
    model = copy.deepcopy(lm.model)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    return model


def _encoded(tokenizer, examples: Sequence[Example], limit: int) -> list:
    """Token ids and labels cut to the context (a long summary: its beginning), without those left no answer."""
    encoded = [(ids[:limit], labels[:limit]) for ids, labels in encode_all(tokenizer, examples)]
    return [(ids, labels) for ids, labels in encoded if any(t != likelihood.IGNORE for t in labels[1:])]


class _Kept:
    """One anchor in training: its examples' answer log-probabilities under the model before the update (computed
    once, no gradient), and its term on a random batch of them at each step."""

    def __init__(self, anchor: Anchor, model: torch.nn.Module, tokenizer, limit: int, seed: int):
        self.weight, pad, device = anchor.weight, tokenizer.pad_token_id, device_of(model)
        encoded = _encoded(tokenizer, anchor.examples, limit)
        self.before: list[torch.Tensor] = []  # per example, [its answer tokens, V]
        with torch.no_grad():
            for start in range(0, len(encoded), 16):
                batch = collate(encoded[start: start + 16], pad, device)
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                per_row = likelihood.answer_mask(batch["labels"]).sum(1).tolist()
                self.before += likelihood.log_probs(logits, batch["labels"]).split(per_row)
        self.batches = random_batches(encoded, 16, pad, torch.Generator().manual_seed(seed),
                                      device) if encoded else None

    def term(self, model: torch.nn.Module) -> torch.Tensor:
        batch = next(self.batches)
        log_p = likelihood.log_probs(model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
                                     batch["labels"])
        log_q = torch.cat([self.before[i] for i in batch["index"].tolist()])
        return self.weight * likelihood.kl(log_q, log_p).mean()


def _fit(model: torch.nn.Module, encoded: list, kept: Sequence[_Kept], config: ConsolidationConfig,
         pad: int) -> torch.nn.Module:
    if config.mode == "lora":
        model = get_peft_model(model, lora_config(model, config.lora_rank, 2 * config.lora_rank))
    batches = random_batches(encoded, config.batch_size, pad, torch.Generator().manual_seed(config.seed),
                             device_of(model))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=0.0)
    steps = config.epochs * max(1, len(encoded) // min(config.batch_size, len(encoded)))
    model.train()
    for _ in range(steps):
        batch = next(batches)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss = likelihood.nll(logits, batch["labels"])
        for anchor in kept:
            loss = loss + anchor.term(model)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    if config.mode == "lora":
        model = model.merge_and_unload()
    model.eval()
    return model


def consolidate(lm: CausalLM, examples: Sequence[Example], config: ConsolidationConfig | None = None,
                anchors: Sequence[Anchor] = ()) -> CausalLM:
    """Fine-tune a copy of ``lm`` on ``examples`` (NLL on the target tokens), keeping each anchor's answers where
    they were, and return it as a plain model."""
    config = config or ConsolidationConfig()
    model = plain_model(lm)
    if not examples:
        model.eval()
        return CausalLM(model, lm.tokenizer, lm.path, dict(lm.info))
    tokenizer = lm.tokenizer
    limit = context_length(model)
    encoded = _encoded(tokenizer, examples, limit)
    if not encoded:
        model.eval()
        return CausalLM(model, lm.tokenizer, lm.path, dict(lm.info))
    model.eval()
    kept = [_Kept(a, model, tokenizer, limit, config.seed + 1 + i) for i, a in enumerate(anchors) if a.weight > 0]
    kept = [k for k in kept if k.batches is not None]
    with torch.random.fork_rng():  # the adapter's initialisation and dropout from the config's seed alone
        torch.manual_seed(config.seed)
        model = _fit(model, encoded, kept, config, tokenizer.pad_token_id)
    consolidations = lm.info.get("consolidations", 0) + 1
    return CausalLM(model, tokenizer, lm.path, {**lm.info, "consolidations": consolidations})
