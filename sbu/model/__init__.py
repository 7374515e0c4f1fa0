"""The parameter pathway: tokenizer and base LM, the training recipe, scoring (later: losses, unlearning)."""

from sbu.model.base import CausalLM, ModelConfig, TrainConfig, load, trained_model
from sbu.model.recipe import Recipe

__all__ = ["CausalLM", "ModelConfig", "Recipe", "TrainConfig", "load", "trained_model"]
