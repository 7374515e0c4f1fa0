"""LoRA on causal LMs other than GPT-2: tiny random-initialised models of six architectures, each written to a
folder with ``save_pretrained`` (with the tiny cohort's tokenizer) and loaded back as a user's model would be;
unlearning with every registered method and the agent's consolidation put adapters on the architecture's own
linear layers and leave the loaded weights alone."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from transformers import (
    BertConfig,
    BertModel,
    GPT2Config,
    GPT2LMHeadModel,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    OPTConfig,
    OPTForCausalLM,
    PhiConfig,
    PhiForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from sbu.data.forget_set import ForgetSet
from sbu.errors import ConfigError, DataFileError
from sbu.model.adapters import lora_config, lora_targets
from sbu.model.cache import finetuned_model, folder_fingerprint
from sbu.model.consolidate import ConsolidationConfig, consolidate
from sbu.model.finetune import FinetuneConfig
from sbu.model.network import context_length, load
from sbu.unlearn import METHODS
from sbu.unlearn.forget_sets import unlearning_sets
from sbu.unlearn.loop import unlearn

SIZES = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
         "max_position_embeddings": 256}
ARCHITECTURES = {  # name → (model class, its config, the layer names LoRA must adapt)
    "gpt2": (GPT2LMHeadModel, lambda v: GPT2Config(vocab_size=v, n_positions=256, n_embd=32, n_layer=2, n_head=2),
             ("c_attn", "c_fc", "c_proj")),
    "llama": (LlamaForCausalLM, lambda v: LlamaConfig(vocab_size=v, num_key_value_heads=1, **SIZES),
              ("down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj")),
    "qwen2": (Qwen2ForCausalLM, lambda v: Qwen2Config(vocab_size=v, num_key_value_heads=1, **SIZES),
              ("down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj")),
    "gpt_neox": (GPTNeoXForCausalLM, lambda v: GPTNeoXConfig(vocab_size=v, **SIZES),
                 ("dense", "dense_4h_to_h", "dense_h_to_4h", "query_key_value")),
    "opt": (OPTForCausalLM, lambda v: OPTConfig(vocab_size=v, hidden_size=32, ffn_dim=64, num_hidden_layers=2,
                                                num_attention_heads=2, max_position_embeddings=256,
                                                word_embed_proj_dim=32),
            ("fc1", "fc2", "k_proj", "out_proj", "q_proj", "v_proj")),
    "phi": (PhiForCausalLM, lambda v: PhiConfig(vocab_size=v, **SIZES),
            ("dense", "fc1", "fc2", "k_proj", "q_proj", "v_proj")),
}


@pytest.fixture(scope="module")
def saved(tiny_lm, tmp_path_factory):
    """Each architecture, random-initialised (seeded) and saved with the tiny cohort's tokenizer: a folder a user
    could hand over."""
    folders = {}
    for name, (model_class, make_config, _) in ARCHITECTURES.items():
        torch.manual_seed(0)
        folder = tmp_path_factory.mktemp(name)
        model_class(make_config(len(tiny_lm.tokenizer))).save_pretrained(folder)
        tiny_lm.tokenizer.save_pretrained(folder)
        folders[name] = folder
    return folders


@pytest.fixture(scope="module")
def small_sets(tiny_corpus):
    sets = unlearning_sets(tiny_corpus, ForgetSet.of_split(tiny_corpus, "forget10"), seed=0)
    return sets.forget[:8], sets.retain[:8]


def _adapted(model: torch.nn.Module) -> set[str]:
    return {name.rsplit(".", 1)[-1] for name, module in model.named_modules()
            if hasattr(module, "lora_A") and len(module.lora_A)}


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_lora_goes_on_the_architectures_own_linear_layers_and_never_on_the_head(saved, name):
    lm = load(saved[name])
    expected = ARCHITECTURES[name][2]
    assert lora_targets(lm.model) == expected
    assert lora_config(lm.model, 4, 8).fan_in_fan_out == (name == "gpt2"), "transposed weights only in Conv1D"
    assert context_length(lm.model) == 256


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_every_method_unlearns_a_loaded_model_of_each_architecture(saved, small_sets, name):
    """Every registered method, 2 steps: finite losses, an adapter on exactly the architecture's linear layers,
    only adapter weights trained, the loaded model untouched; then the agent's consolidation (LoRA, merged)."""
    lm = load(saved[name])
    forget, retain = small_sets
    before = _weights(lm.model)
    for method in sorted(METHODS):
        run = unlearn(lm, forget, retain, method, steps=2, batch_size=4, progress=False)
        assert torch.isfinite(torch.tensor(list(run.log.loss))).all(), method
        assert _adapted(run.lm.model) == set(ARCHITECTURES[name][2]), method
        trainable = [n for n, p in run.lm.model.named_parameters() if p.requires_grad]
        assert trainable and all("lora_" in n for n in trainable), method
    consolidated = consolidate(lm, retain, ConsolidationConfig(epochs=1, batch_size=4))
    after = _weights(lm.model)
    assert all(torch.equal(before[k], after[k]) for k in before), "the loaded model changed"
    changed = _weights(consolidated.model)
    assert not _adapted(consolidated.model) and set(changed) == set(before), "consolidation merges its adapter"
    assert any(not torch.equal(before[k], changed[k]) for k in before), "consolidation trained nothing"


def test_lora_targets_that_name_no_layer_or_a_model_without_linear_layers_are_clear_errors(saved, small_sets):
    lm = load(saved["llama"])
    forget, retain = small_sets
    with pytest.raises(ConfigError, match=r"LoRA targets \['c_attn'\] name no linear layer of LlamaForCausalLM"):
        unlearn(lm, forget, retain, "sra", steps=1, lora_targets=("c_attn",), progress=False)
    assert lora_targets(lm.model, ("q_proj", "model.layers.0.mlp.up_proj")) == (
        "q_proj", "model.layers.0.mlp.up_proj"), "a last name part or a full module name"
    with pytest.raises(ConfigError, match="has no linear layer LoRA can adapt"):
        lora_targets(torch.nn.Sequential(torch.nn.Embedding(4, 2), torch.nn.LayerNorm(2)))


def test_an_example_longer_than_the_models_context_is_a_clear_error_before_any_training(saved, small_sets):
    """Rotary models (Llama) would run past their context silently, learned positions (GPT-2) fail deep in torch:
    both are stopped with one line naming the lengths, before an adapter is made."""
    forget, retain = small_sets
    long = [replace(forget[0], target=forget[0].target + " and more" * 200), *forget[1:]]
    for name in ("gpt2", "llama"):
        with pytest.raises(ConfigError, match=r"a forget example has \d+ tokens, more than the 256 positions of"):
            unlearn(load(saved[name]), long, retain, "sra", steps=1, progress=False)


def test_a_users_model_is_fine_tuned_on_the_cohort_and_its_retrain_is_the_same_model_without_the_split(
        saved, tiny_corpus, tmp_path):
    """The TOFU protocol on a pretrained model: base = it fine-tuned on the training mix, retrain = the same
    weights fine-tuned the same way without the forget split; each cached under a key of the model's files, the
    recipe and the cohort; the user's folder untouched."""
    folder, cache = saved["llama"], tmp_path / "models"
    files = folder_fingerprint(folder)
    config = FinetuneConfig(epochs=2, lr=2e-3)
    base = finetuned_model(folder, tiny_corpus, config, cache=cache, progress=False)
    retrain = finetuned_model(folder, tiny_corpus, config, exclude="forget10", cache=cache, progress=False)
    assert base.path.name.startswith("base-ft-") and retrain.path.name.startswith("retrain-forget10-ft-")
    assert base.info["pretrained"] == retrain.info["pretrained"] == files == folder_fingerprint(folder)
    assert retrain.info["n_examples_per_epoch"] < base.info["n_examples_per_epoch"], "the split is left out"
    losses = base.info["epoch_loss"]
    assert len(losses) == 2 and losses[1] < losses[0]
    pretrained = load(folder).model.state_dict()
    assert any(not torch.equal(pretrained[k], v) for k, v in base.model.state_dict().items())
    again = finetuned_model(folder, tiny_corpus, config, cache=cache, progress=False)
    assert again.path == base.path and again.info["train_seconds"] == base.info["train_seconds"], "from the cache"
    adapter = finetuned_model(folder, tiny_corpus, FinetuneConfig(mode="lora", epochs=1, lr=1e-2), cache=cache,
                              progress=False)
    assert adapter.path != base.path and not _adapted(adapter.model), "a LoRA fine-tune is merged into the weights"
    assert set(adapter.model.state_dict()) == set(pretrained)


def test_a_folder_without_a_tokenizer_is_a_clear_error_and_nothing_is_cached(saved, tiny_corpus, tmp_path):
    bare = tmp_path / "bare"
    load(saved["qwen2"]).model.save_pretrained(bare)
    with pytest.raises(DataFileError, match="cannot be loaded"):
        finetuned_model(bare, tiny_corpus, cache=tmp_path / "models", progress=False)
    assert not (tmp_path / "models").exists()


def test_a_folder_holding_a_model_that_is_not_a_causal_lm_is_a_one_line_error(tiny_lm, tmp_path):
    folder = tmp_path / "bert"
    BertModel(BertConfig(vocab_size=len(tiny_lm.tokenizer), hidden_size=32, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=64)).save_pretrained(folder)
    tiny_lm.tokenizer.save_pretrained(folder)
    with pytest.raises(DataFileError, match="it must hold a causal LM") as error:
        load(folder)
    assert "\n" not in str(error.value)
