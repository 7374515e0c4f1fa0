"""The language model: tokenizer (:mod:`~sbu.model.tokenizer`), network and loading (:mod:`~sbu.model.network`),
examples and batches (:mod:`~sbu.model.recipe`, :mod:`~sbu.model.batches`), training (:mod:`~sbu.model.training`),
the cross-process model cache (:mod:`~sbu.model.cache`), scoring (:mod:`~sbu.model.scoring`) and the agent's
consolidation (:mod:`~sbu.model.consolidate`). Knows torch, nothing of RDF."""

import warnings

# peft asks transformers a deprecated question on every get_peft_model; the FutureWarning is noise to our users
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)

from sbu.model.cache import trained_model  # noqa: E402
from sbu.model.network import CausalLM, ModelConfig, load  # noqa: E402
from sbu.model.recipe import Recipe  # noqa: E402
from sbu.model.training import TrainConfig  # noqa: E402

__all__ = ["CausalLM", "ModelConfig", "Recipe", "TrainConfig", "load", "trained_model"]
