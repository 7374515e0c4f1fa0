"""LoRA on any causal LM: the layers an adapter goes on are read from the architecture, not named after GPT-2's.

By default an adapter goes on every linear layer but the output head — GPT-2's ``c_attn``, ``c_fc``, ``c_proj``
(transposed ``Conv1D`` layers, so ``fan_in_fan_out``), Llama's and Qwen2's ``q/k/v/o_proj`` and ``gate/up/down_proj``,
GPT-NeoX's ``query_key_value``, ``dense``, ``dense_h_to_4h``, ``dense_4h_to_h``, OPT's ``q/k/v/out_proj`` and
``fc1``/``fc2``. Unlearning, the agent's consolidation and the reinforced model all build theirs here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from peft import LoraConfig
from transformers.pytorch_utils import Conv1D

from sbu.errors import ConfigError


def linear_layers(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """Every layer LoRA can adapt in ``model`` — ``torch.nn.Linear`` or GPT-2's transposed ``Conv1D`` — but the
    output head (its weights are often the input embedding's), by module name."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return {name: module for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear | Conv1D) and module is not head}


def _matches(name: str, target: str) -> bool:
    return name == target or name.endswith("." + target)  # peft's own rule for a target module name


def lora_targets(model: torch.nn.Module, names: Sequence[str] = ()) -> tuple[str, ...]:
    """The module names LoRA adapts in ``model``: ``names`` when given (each must name linear layers, by their last
    name part or in full), else the last name part of every linear layer but the output head — in full where that
    part also names another module."""
    layers = linear_layers(model)
    kind = type(model).__name__
    if not layers:
        raise ConfigError(f"{kind} has no linear layer LoRA can adapt (torch.nn.Linear or transformers' Conv1D)")
    parts = {name.rsplit(".", 1)[-1] for name in layers}
    if names:
        unknown = [n for n in names if not any(_matches(layer, n) for layer in layers)]
        if unknown:
            raise ConfigError(f"LoRA targets {unknown} name no linear layer of {kind}; its linear layers end in "
                              f"{sorted(parts)}")
        return tuple(names)
    others = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules() if name and name not in layers}
    clash = parts & others
    return tuple(sorted(parts - clash)) + tuple(sorted(n for n in layers if n.rsplit(".", 1)[-1] in clash))


def lora_config(model: torch.nn.Module, rank: int, alpha: float, names: Sequence[str] = ()) -> LoraConfig:
    """A causal-LM LoRA config for ``model`` (no dropout, no bias): :func:`lora_targets`, and ``fan_in_fan_out``
    exactly when the adapted layers are transposed ``Conv1D`` layers (GPT-2)."""
    targets = lora_targets(model, names)
    adapted = [m for name, m in linear_layers(model).items() if any(_matches(name, t) for t in targets)]
    transposed = {isinstance(m, Conv1D) for m in adapted}
    if len(transposed) > 1:
        raise ConfigError(f"the LoRA targets {list(targets)} of {type(model).__name__} mix Conv1D and Linear layers; "
                          "name layers of one kind (lora_targets)")
    return LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(targets), lora_dropout=0.0, bias="none",
                      fan_in_fan_out=transposed.pop(), task_type="CAUSAL_LM")

