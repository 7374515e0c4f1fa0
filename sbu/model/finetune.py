"""The TOFU protocol for a user's pretrained causal LM: the base model is it fine-tuned on the cohort's training
mix, the retrain gold standard the same pretrained weights fine-tuned the same way without the forget split — one
model compared with itself, so that PrivLeak and every "within x of retrain" mean what they say. Fully (every
weight) or through a LoRA adapter merged afterwards (:mod:`sbu.model.adapters`). The cache entries are made by
:func:`sbu.model.cache.finetuned_model`."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from accelerate.utils import set_seed
from peft import get_peft_model

from sbu import checks
from sbu.errors import ConfigError
from sbu.model.adapters import lora_config
from sbu.model.network import CausalLM
from sbu.model.recipe import Example, Recipe
from sbu.model.training import fit

MODES = ("full", "lora")


@dataclass(frozen=True)
class FinetuneConfig:
    """How a pretrained model learns the cohort: the same for the base and the retrain model."""

    mode: str = "full"  # "full" (every weight) or "lora" (an adapter on every linear layer, merged afterwards)
    epochs: int = 3
    batch_size: int = 16
    lr: float = 5e-5  # full fine-tuning; an adapter wants more (e.g. 1e-3)
    weight_decay: float = 0.0
    warmup_share: float = 0.05
    lora_rank: int = 16
    seed: int = 0
    recipe: Recipe = field(default_factory=Recipe)

    def __post_init__(self):
        if self.mode not in MODES:
            raise ConfigError(f"fine-tuning mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        for name in ("epochs", "batch_size", "lora_rank"):
            checks.integer(f"fine-tuning {name}", getattr(self, name), 1)
        checks.number("fine-tuning lr", self.lr, positive=True)
        checks.number("fine-tuning weight_decay", self.weight_decay, 0)
        checks.share("fine-tuning warmup_share", self.warmup_share)


def finetune(pretrained: CausalLM, epochs: list[list[Example]], config: FinetuneConfig, progress: bool = True,
             desc: str = "fine-tune") -> tuple[torch.nn.Module, list[float]]:
    """``pretrained``'s network trained on ``epochs`` (one list of examples per epoch), as a plain model (an adapter
    merged), and the per-epoch mean loss. ``pretrained`` itself is not changed."""
    if pretrained.tokenizer.eos_token_id is None:
        raise ConfigError(f"the tokenizer of {str(pretrained.path)!r} has no end-of-sequence token: an answer's end "
                          "cannot be marked; set tokenizer.eos_token before saving it")
    set_seed(config.seed)
    model = copy.deepcopy(pretrained.model)  # the caller's model stays as it was loaded
    if config.mode == "lora":
        model = get_peft_model(model, lora_config(model, config.lora_rank, 2 * config.lora_rank))
    model, losses = fit(model, pretrained.tokenizer, epochs, batch_size=config.batch_size, lr=config.lr,
                        weight_decay=config.weight_decay, warmup_share=config.warmup_share, seed=config.seed,
                        progress=progress, desc=desc)
    if config.mode == "lora":
        model = model.merge_and_unload()
    return model, losses
