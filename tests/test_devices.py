"""Devices and number formats: a device or format this machine cannot run is a one-line DeviceError before anything
is read; a model loaded in bfloat16 unlearns, consolidates and is scored in it (losses in float32)."""

from __future__ import annotations

import math

import pytest
import torch

from sbu.errors import ConfigError, DeviceError
from sbu.model import prompts
from sbu.model.consolidate import ConsolidationConfig, consolidate
from sbu.model.devices import pick_device, pick_dtype
from sbu.model.network import device_of, load
from sbu.model.recipe import Example
from sbu.model.scoring import accuracy
from sbu.unlearn import unlearn


def test_auto_picks_what_this_machine_has_and_names_it_cannot_run_are_clear_errors(tiny_lm, tmp_path):
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert pick_device("auto").type == expected
    assert pick_dtype("auto", torch.device("cpu")) == torch.float32
    assert issubclass(DeviceError, ConfigError)
    bad = [dict(device="tpu"), dict(device=None), dict(device="cpu:1"), dict(dtype="half"), dict(dtype="float16")]
    if not torch.cuda.is_available():
        bad += [dict(device="cuda"), dict(device="cuda:0")]
    if not torch.backends.mps.is_available():
        bad.append(dict(device="mps"))
    for settings in bad:
        with pytest.raises(DeviceError) as err:
            load(tmp_path / "missing", **settings)  # refused before the (missing) folder is read
        assert "\n" not in str(err.value) and len(str(err.value)) < 200, settings


def test_a_model_loaded_in_bfloat16_unlearns_consolidates_and_is_scored(tiny_corpus, tiny_lm):
    lm = load(tiny_lm.path, device="cpu", dtype="bfloat16")
    assert {p.dtype for p in lm.model.parameters()} == {torch.bfloat16} and device_of(lm.model).type == "cpu"
    items = [q for q in tiny_corpus.qa if q.phrasing == "train"]
    forget = [Example(prompts.closed_book(q.question), prompts.answer_continuation(q.answer_text))
              for q in items if q.about == tiny_corpus.splits["forget10"][0]]
    retain = [Example(prompts.closed_book(q.question), prompts.answer_continuation(q.answer_text))
              for q in items if q.about in tiny_corpus.splits["retain"][:2]]
    for method in ("sra", "npo"):
        run = unlearn(lm, forget, retain, method, steps=4, batch_size=4, progress=False)
        assert len(run.log) == 4 and all(math.isfinite(v) for v in run.log.loss)
    merged = run.merged()
    assert next(merged.model.parameters()).dtype == torch.bfloat16
    kept = consolidate(merged, retain, ConsolidationConfig(epochs=1, batch_size=4))
    assert next(kept.model.parameters()).dtype == torch.bfloat16
    assert 0.0 <= accuracy(kept.model, kept.tokenizer, items[:8]) <= 1.0
    assert {p.dtype for p in tiny_lm.model.parameters()} == {torch.float32}  # the float32 model is untouched
