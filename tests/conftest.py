"""Shared fixtures (a tiny cohort and a tiny model trained on it once per test session), and how the suite shares
the machine. ``make test`` runs the tests in two parts: everything but the ``smoke_model`` tests on pytest-xdist
workers, one per core, each (with every command it starts) at the cores divided by the workers as its thread count;
then the ``smoke_model`` tests (the smoke models and the notebooks) one at a time on every core, because torch
work on models this small gains nothing from two processes on two cores (measured here: the two smoke models, and
notebooks 02 and 04, took 2.0–2.2× as long side by side on one thread each as alone on two threads)."""

from __future__ import annotations

import os

import pytest
import torch

from sbu.batch import THREAD_VARIABLES, threads_per_run
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


# The smoke_model tests in the order they run (``make test`` runs them one at a time, after the rest): the two smoke
# models first, each trained in its own test, then the notebooks that load them.
SMOKE_MODEL_ORDER = [
    "test_smoke_models.py::test_the_smoke_base_model_meets_the_foundation_targets",
    "test_smoke_models.py::test_the_smoke_retrain_model_knows_nothing_of_the_forget_patients",
    "test_notebook_runs_and_leaves_no_plaintext_of_what_it_forgot[03_synchronization]",
    "test_notebook_runs_and_leaves_no_plaintext_of_what_it_forgot[02_parameter_pathway]",
    "test_notebook_runs_and_leaves_no_plaintext_of_what_it_forgot[04_evaluation]",
    "test_notebook_runs_and_leaves_no_plaintext_of_what_it_forgot[01_memory_pathway]",
]


def pytest_configure(config):
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    threads = threads_per_run(workers)
    if threads:  # a worker: its own torch, and the kernels and commands it starts, which read the environment
        os.environ.update({name: str(threads) for name in THREAD_VARIABLES})
        torch.set_num_threads(threads)


def pytest_collection_modifyitems(config, items):
    def rank(item):
        return next((i for i, name in enumerate(SMOKE_MODEL_ORDER) if item.nodeid.endswith(name)),
                    len(SMOKE_MODEL_ORDER))

    items.sort(key=rank)  # stable: the rest keep their order
