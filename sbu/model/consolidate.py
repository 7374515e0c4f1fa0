"""Consolidation: the agent re-encodes recent memory into its weights.

Every few interactions an agent fine-tunes on what it recently read and wrote — this is the memory → parameters
half of backflow: a forgotten fact that survives in memory, once retrieved, is trained back into the weights.
``consolidate(lm, examples)`` returns a new plain model (the input is never changed):

- ``mode="lora"`` (default): a fresh LoRA adapter trained on the examples, then merged into the weights, so that
  the next consolidation or unlearning starts from a plain model again;
- ``mode="full"``: every weight is fine-tuned.

A model that still carries an unmerged adapter (an :class:`~sbu.unlearn.loop.Unlearned` model) is merged first.
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
from sbu.model.batches import encode_all, random_batches
from sbu.model.network import CausalLM, context_length
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


def plain_model(lm: CausalLM) -> torch.nn.Module:
    """A copy of ``lm``'s network with any peft adapter merged into the weights."""
    model = copy.deepcopy(lm.model)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    return model


def consolidate(lm: CausalLM, examples: Sequence[Example], config: ConsolidationConfig | None = None) -> CausalLM:
    """Fine-tune a copy of ``lm`` on ``examples`` (NLL on the target tokens) and return it as a plain model."""
    config = config or ConsolidationConfig()
    model = plain_model(lm)
    if not examples:
        model.eval()
        return CausalLM(model, lm.tokenizer, lm.path, dict(lm.info))
    tokenizer = lm.tokenizer
    limit = context_length(model)
    encoded = encode_all(tokenizer, examples)
    encoded = [(ids[:limit], labels[:limit]) for ids, labels in encoded]  # a long summary: its beginning
    encoded = [(ids, labels) for ids, labels in encoded if any(t != likelihood.IGNORE for t in labels[1:])]
    if not encoded:
        model.eval()
        return CausalLM(model, lm.tokenizer, lm.path, dict(lm.info))
    if config.mode == "lora":
        model = get_peft_model(model, lora_config(model, config.lora_rank, 2 * config.lora_rank))
    generator = torch.Generator().manual_seed(config.seed)
    batches = random_batches(encoded, config.batch_size, tokenizer.pad_token_id, generator)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=0.0)
    steps = config.epochs * max(1, len(encoded) // min(config.batch_size, len(encoded)))
    model.train()
    for _ in range(steps):
        batch = next(batches)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss = likelihood.nll(logits, batch["labels"])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    if config.mode == "lora":
        model = model.merge_and_unload()
    model.eval()
    consolidations = lm.info.get("consolidations", 0) + 1
    return CausalLM(model, tokenizer, lm.path, {**lm.info, "consolidations": consolidations})
