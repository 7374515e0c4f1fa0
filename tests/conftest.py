"""Shared fixtures: a tiny cohort and a tiny model trained on it once per test session; and the order of the
``smoke_model`` tests, which train the smoke profile's models and then run the notebooks on them.

The suite runs in one process on every core (``make test``). Spreading it over pytest-xdist workers was measured on
this 2-core machine and lost time: the tests that do not need the smoke models took 1010 s on two workers against
674 s in one process, and the smoke models and notebooks 02 and 04 each took 2.0–2.2× as long side by side on one
thread each as alone on two.
"""

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


# The smoke_model tests first, in this order: the two smoke models, each trained in its own test of its targets (so
# that its training time shows as that test's), then the notebooks that load them.
SMOKE_MODEL_ORDER = [
    "test_smoke_models.py::test_the_smoke_base_model_meets_the_foundation_targets",
    "test_smoke_models.py::test_the_smoke_retrain_model_knows_nothing_of_the_forget_patients",
    "test_notebook_runs_and_leaves_no_plaintext_of_what_it_forgot[03_synchronization]",
    "test_notebook_runs_and_leaves_no_plaintext_of_what_it_forgot[02_parameter_pathway]",
    "test_notebook_runs_and_leaves_no_plaintext_of_what_it_forgot[04_evaluation]",
    "test_notebook_runs_and_leaves_no_plaintext_of_what_it_forgot[01_memory_pathway]",
]


def pytest_collection_modifyitems(config, items):
    def rank(item):
        return next((i for i, name in enumerate(SMOKE_MODEL_ORDER) if item.nodeid.endswith(name)),
                    len(SMOKE_MODEL_ORDER))

    items.sort(key=rank)  # stable: the rest keep their order
