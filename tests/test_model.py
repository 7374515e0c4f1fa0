"""The embedded base model: tokenizer, training with caching, loading, and answer scoring."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from sbu.errors import ConfigError, DataFileError
from sbu.model import prompts
from sbu.model.batches import encode_example
from sbu.model.cache import _store, trained_model
from sbu.model.network import INFO_FILE, load
from sbu.model.recipe import Example
from sbu.model.scoring import accuracy, answer_logprobs, choose, option_scores
from sbu.model.tokenizer import train_tokenizer
from sbu.model.training import TrainConfig

from .conftest import TINY_MODEL, TINY_TRAIN


def test_tokenizer_saves_and_loads_with_autotokenizer(tmp_path):
    tok = train_tokenizer(["Kalo Parta has MRN 163083.", "Lyon is a city."] * 10, vocab_size=300)
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    text = "Kalo Parta has MRN 163083."
    assert again.encode(text, add_special_tokens=False) == tok.encode(text, add_special_tokens=False)
    assert again.decode(again.encode(text, add_special_tokens=False)) == text
    assert again.convert_ids_to_tokens(again.encode(" 163083", add_special_tokens=False)) == ["Ġ16", "30", "83"]


def test_encoding_learns_only_the_target(tiny_lm):
    tok = tiny_lm.tokenizer
    ids, labels = encode_example(tok, "Question: Who?\nAnswer:", " Lyon")
    target = tok.encode(" Lyon", add_special_tokens=False) + [tok.eos_token_id]
    assert ids[-len(target):] == target and labels[-len(target):] == target
    assert set(labels[: -len(target)]) == {-100}


def test_encoding_many_at_once_gives_what_one_at_a_time_gives(tiny_corpus, tiny_lm):
    from sbu.model.batches import encode_examples
    from sbu.model.recipe import training_examples

    examples = training_examples(tiny_corpus, TINY_TRAIN.recipe, seed=0)
    examples += [Example("", ""), Example("Question: Who?\nAnswer:", " Lyon")]
    assert any(not x.prompt for x in examples) and any(x.prompt for x in examples)
    one_by_one = [encode_example(tiny_lm.tokenizer, x.prompt, x.target) for x in examples]
    assert encode_examples(tiny_lm.tokenizer, [x.prompt for x in examples], [x.target for x in examples]) == one_by_one
    assert encode_examples(tiny_lm.tokenizer, [], []) == []
    with pytest.raises(ValueError, match="1 prompts but 0 targets"):
        encode_examples(tiny_lm.tokenizer, ["a"], [])


def test_trained_model_is_cached_by_config(tiny_corpus, tiny_lm, model_cache):
    again = trained_model(tiny_corpus, TINY_MODEL, TINY_TRAIN, progress=False, cache=model_cache)
    assert again.path == tiny_lm.path and again.info == tiny_lm.info
    assert tiny_lm.info["torch_threads"] == torch.get_num_threads()  # the weights' last bits depend on it
    other = TrainConfig(epochs=1, batch_size=16, recipe=TINY_TRAIN.recipe)
    assert tiny_lm.info["name"] != trained_model(tiny_corpus, TINY_MODEL, other, progress=False,
                                                 cache=model_cache).info["name"]


def test_same_seed_trains_the_same_weights(tiny_corpus, tmp_path):
    quick = TrainConfig(epochs=2, batch_size=16, recipe=TINY_TRAIN.recipe)
    a = trained_model(tiny_corpus, TINY_MODEL, quick, progress=False, cache=tmp_path / "a")
    b = trained_model(tiny_corpus, TINY_MODEL, quick, progress=False, cache=tmp_path / "b")
    for (name, pa), (_, pb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(pa, pb), name


def test_a_cache_entry_is_kept_by_the_first_run_that_finishes_it(tiny_lm, tmp_path):
    """Two runs side by side train the same model: the second to finish leaves the first one's entry as it is and
    no temporary folder behind; an entry torn by a killed run (no info file) is replaced whole."""
    path = tmp_path / "base-0123"
    _store(tiny_lm.model, tiny_lm.tokenizer, {"by": "first"}, path)
    files = {f.name: f.stat().st_mtime_ns for f in path.iterdir()}
    _store(tiny_lm.model, tiny_lm.tokenizer, {"by": "second"}, path)
    assert json.loads((path / INFO_FILE).read_text()) == {"by": "first"}
    assert {f.name: f.stat().st_mtime_ns for f in path.iterdir()} == files
    assert [p.name for p in tmp_path.iterdir()] == ["base-0123"]
    torn = tmp_path / "base-4567"
    torn.mkdir()
    (torn / "model.safetensors").write_bytes(b"half a model")
    _store(tiny_lm.model, tiny_lm.tokenizer, {"by": "resumed"}, torn)
    assert json.loads((torn / INFO_FILE).read_text()) == {"by": "resumed"}
    assert load(torn).info == {"by": "resumed"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base-0123", "base-4567"]


def _train_at_once(corpus, cache, start, out):
    start.wait()
    quick = TrainConfig(epochs=1, batch_size=16, recipe=TINY_TRAIN.recipe)
    lm = trained_model(corpus, TINY_MODEL, quick, progress=False, cache=cache)
    out.put((str(lm.path), lm.info["train_seconds"]))


def test_runs_that_need_the_same_model_at_once_train_it_once(tiny_corpus, tmp_path):
    """Two processes ask a cold cache for the same model together: one trains it, the other waits and loads that
    model (the same entry, the same recorded training), instead of training it a second time."""
    ctx = multiprocessing.get_context("spawn")  # a fork after torch's thread pool started may hang
    start, out = ctx.Barrier(2), ctx.Queue()
    runs = [ctx.Process(target=_train_at_once, args=(tiny_corpus, tmp_path, start, out)) for _ in range(2)]
    for run in runs:
        run.start()
    got = [out.get(timeout=300) for _ in runs]
    for run in runs:
        run.join(60)
    assert got[0] == got[1], "the second run loaded the first one's model instead of training its own"
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == [Path(got[0][0]).name]


def test_storing_an_entry_sweeps_the_temporary_folders_of_killed_runs(tiny_lm, tmp_path):
    """A run killed while it wrote its entry leaves ``NAME.partial-PID``; the next store of that entry removes it,
    and leaves alone the folder of a run that is still writing (its process is alive)."""
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    path = tmp_path / "base-0123"
    killed, writing = (tmp_path / f"base-0123.partial-{pid}" for pid in (finished.pid, os.getppid()))
    for folder in (killed, writing):
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"half a model")
    _store(tiny_lm.model, tiny_lm.tokenizer, {"by": "next"}, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, writing.name])


def test_saved_model_loads_through_automodel(tiny_lm):
    model = AutoModelForCausalLM.from_pretrained(tiny_lm.path)
    ids = torch.tensor([[tiny_lm.tokenizer.bos_token_id, 5, 6]])
    assert torch.allclose(model(ids).logits, tiny_lm.model(ids).logits)


def test_load_refuses_a_missing_path(tmp_path):
    with pytest.raises(DataFileError, match="save_pretrained"):
        load(tmp_path / "nowhere")


def test_bad_training_config_is_refused():
    with pytest.raises(ConfigError):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError):
        TrainConfig(lr=-1.0)


def test_answer_logprobs_ignore_batching_and_padding(tiny_lm):
    pairs = [("Question: What is the age of Kalo?\nAnswer:", " 64"),
             ("Context: a long context sentence that makes this prompt much longer than the others.\n"
              "Question: Where?\nAnswer:", " Lyon"),
             ("", "Lyon is a city.")]
    one_by_one = [answer_logprobs(tiny_lm.model, tiny_lm.tokenizer, [p], [a])[0] for p, a in pairs]
    batched = answer_logprobs(tiny_lm.model, tiny_lm.tokenizer, *zip(*pairs), batch_size=8)
    for x, y in zip(one_by_one, batched):
        np.testing.assert_allclose(x, y, atol=1e-5)


def test_answer_logprobs_match_a_manual_forward_pass(tiny_lm):
    tok, model = tiny_lm.tokenizer, tiny_lm.model
    prompt, answer = "Question: Where does Kalo live?\nAnswer:", " Lyon"
    p = tok.encode(prompt, add_special_tokens=False)
    a = tok.encode(answer, add_special_tokens=False) + [tok.eos_token_id]
    ids = torch.tensor([[tok.bos_token_id, *p, *a]])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0], -1)
    manual = [logp[1 + len(p) + i - 1, t].item() for i, t in enumerate(a)]
    np.testing.assert_allclose(answer_logprobs(model, tok, [prompt], [answer])[0], manual, atol=1e-5)


def test_choice_is_the_option_with_the_highest_likelihood(tiny_corpus, tiny_lm):
    items = tiny_corpus.qa[:12]
    scores = option_scores(tiny_lm.model, tiny_lm.tokenizer, items)
    assert list(choose(tiny_lm.model, tiny_lm.tokenizer, items)) == [int(np.argmax(s)) for s in scores]
    normalized = option_scores(tiny_lm.model, tiny_lm.tokenizer, items, normalize=True)
    for item, raw, norm in zip(items, scores, normalized):
        lengths = [len(tiny_lm.tokenizer.encode(prompts.answer_continuation(o), add_special_tokens=False)) + 1
                   for o in item.options]
        np.testing.assert_allclose(norm, raw / np.array(lengths), rtol=1e-5)


def test_tiny_model_memorizes_trained_patients_better_than_holdout(tiny_corpus, tiny_lm):
    trained = tiny_corpus.qa_about(tiny_corpus.splits["retain"], "train")
    holdout = tiny_corpus.qa_about(tiny_corpus.splits["holdout"], "train")
    assert accuracy(tiny_lm.model, tiny_lm.tokenizer, trained) > accuracy(tiny_lm.model, tiny_lm.tokenizer, holdout)
