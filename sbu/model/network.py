"""The language model: the embedded GPT-2's shape, a loaded model with its tokenizer, and loading any Hugging Face
causal LM saved with ``save_pretrained`` from a local path (nothing is downloaded)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
from transformers.utils import logging as hf_logging

from sbu.errors import ConfigError, DataFileError
from sbu.model.devices import pick_device, pick_dtype

# transformers draws a bar for every load and save of a model (a few per notebook cell, each under a second): noise
# in an executed notebook; our own long steps have bars of their own
hf_logging.disable_progress_bar()

INFO_FILE = "sbu_model.json"  # what we know of how a model was made, beside its weights


ACTIVATIONS = ("gelu_new", "gelu_pytorch_tanh")  # GPT-2's tanh GELU: as separate ops (its default), or fused


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 1024  # BPE vocabulary (small: the corpus is small, and names split into syllables)
    n_layer: int = 3
    n_embd: int = 96  # the smoke model, sized for CI (docs/tuning.md)
    n_head: int = 4
    n_positions: int = 256  # longest sequence: an open-book prompt with three facts fits in ~100 tokens
    dropout: float = 0.0  # GPT-2's residual, embedding and attention dropout (none: memorizes and reads faster)
    activation: str = "gelu_pytorch_tanh"  # GPT-2's tanh GELU fused into one op ("gelu_new", its default: ~6 ops)

    def __post_init__(self):
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")


@dataclass
class CausalLM:
    """A loaded model with its tokenizer, where it lives, and what we know of how it was made."""

    model: torch.nn.Module
    tokenizer: object
    path: Path
    info: dict


def gpt2(model_config: ModelConfig, tokenizer) -> GPT2LMHeadModel:
    """A freshly initialised GPT-2 of ``model_config``'s shape for ``tokenizer``."""
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=model_config.n_positions,
                        n_embd=model_config.n_embd, n_layer=model_config.n_layer, n_head=model_config.n_head,
                        resid_pdrop=model_config.dropout, embd_pdrop=model_config.dropout,
                        attn_pdrop=model_config.dropout, activation_function=model_config.activation,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id)
    return GPT2LMHeadModel(config)


CAUSAL_LM_CLASSES = {name for names in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()
                     for name in ((names,) if isinstance(names, str) else names)}  # transformers' causal-LM classes

CONTEXT_FIELDS = ("n_positions", "max_position_embeddings", "n_ctx", "seq_length", "max_sequence_length")


def device_of(model: torch.nn.Module) -> torch.device:
    """The device a model's weights are on (where its batches must go)."""
    return next(model.parameters()).device


def context_length(model: torch.nn.Module, default: int = 1024) -> int:
    """The longest sequence ``model`` takes, from whichever config field its architecture keeps it in (GPT-2:
    ``n_positions``; Llama, Qwen2, GPT-NeoX, OPT: ``max_position_embeddings``); ``default`` when it has none."""
    for name in CONTEXT_FIELDS:
        value = getattr(model.config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return default


def check_context(model: torch.nn.Module, encoded: list[tuple[list[int], list[int]]], what: str = "an example") -> None:
    """A ConfigError, before any step, when an encoded example is longer than ``model``'s context (a rotary model
    would run past it silently, learned positions fail deep in torch)."""
    limit, longest = context_length(model), max((len(ids) for ids, _ in encoded), default=0)
    if longest > limit:
        raise ConfigError(f"{what} has {longest} tokens, more than the {limit} positions of {type(model).__name__}: "
                          "shorten it or use a model with a longer context")


def load(model_name_or_path: str | Path, device: str = "cpu", dtype: str = "float32") -> CausalLM:
    """Load any causal LM saved with ``save_pretrained`` (ours or a user's) from a local path, onto ``device``
    in ``dtype`` (:mod:`sbu.model.devices`: ``"auto"`` picks CUDA, then MPS, then the CPU, and bfloat16 where the
    GPU has it); a device or format this machine cannot run is a DeviceError before anything is read."""
    target = pick_device(device)
    number_format = pick_dtype(dtype, target)
    path = Path(model_name_or_path)
    if not path.is_dir():
        raise DataFileError(f"no model at {str(path)!r}: give a folder written by save_pretrained "
                            "(nothing is downloaded at run time)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        saved_as = getattr(AutoConfig.from_pretrained(path, local_files_only=True), "architectures", None) or []
        if saved_as and not set(saved_as) & CAUSAL_LM_CLASSES:  # a causal-LM head would be made up, untrained
            raise ValueError(f"its config names {', '.join(saved_as)}, not a causal language model")
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
        vocab = getattr(model.config, "vocab_size", None)
        if len(tokenizer) < 2 or (vocab and len(tokenizer) > vocab):  # transformers makes an empty one silently
            raise ValueError(f"no usable tokenizer: {len(tokenizer)} tokens for a model of {vocab}")
        info_file = path / INFO_FILE
        info = json.loads(info_file.read_text()) if info_file.is_file() else {"name": path.name}
    except Exception as err:  # missing, truncated or garbled files raise whatever their reader raises
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise DataFileError(f"the model folder {str(path)!r} cannot be loaded ({first}); it must hold a causal LM "
                            "and its tokenizer written by save_pretrained") from err
    model.to(target, number_format)
    model.eval()
    return CausalLM(model, tokenizer, path, info)
