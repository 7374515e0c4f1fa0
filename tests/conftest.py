"""Shared fixtures: a tiny cohort and a tiny model trained on it once per test session."""

from __future__ import annotations

import pytest

from sbu.data.cohort import CohortConfig, generate
from sbu.model.base import ModelConfig, TrainConfig, trained_model
from sbu.model.recipe import Recipe

TINY_COHORT = CohortConfig(n_patients=12, holdout_share=0.25, seed=3)
TINY_MODEL = ModelConfig(vocab_size=400, n_layer=2, n_embd=48, n_head=2, n_positions=192, dropout=0.0)
TINY_TRAIN = TrainConfig(epochs=20, batch_size=16, lr=3e-3, recipe=Recipe(reading_patients=4, knowledge_repeats=0))


@pytest.fixture(scope="session")
def tiny_corpus():
    return generate(TINY_COHORT)


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_lm(tiny_corpus, model_cache):
    return trained_model(tiny_corpus, TINY_MODEL, TINY_TRAIN, progress=False, cache=model_cache)
