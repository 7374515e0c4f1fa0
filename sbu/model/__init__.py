"""The parameter pathway: tokenizer and base LM, the training recipe, scoring, the losses, LoRA unlearning
(:mod:`sbu.model.unlearn`) and consolidation (:mod:`sbu.model.consolidate`)."""

import warnings

# peft asks transformers a deprecated question on every get_peft_model; the FutureWarning is noise to our users
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)

from sbu.model.base import CausalLM, ModelConfig, TrainConfig, load, trained_model  # noqa: E402
from sbu.model.recipe import Recipe  # noqa: E402

__all__ = ["CausalLM", "ModelConfig", "Recipe", "TrainConfig", "load", "trained_model"]
