"""Shared fixtures (a tiny cohort and a tiny model trained on it once per test session), and how the suite shares
the machine when ``make test`` runs it on several pytest-xdist workers: each worker (and every notebook kernel or
command it starts) gets the cores divided by the workers as its thread count, and the longest tests go first."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from sbu.batch.runner import THREAD_VARIABLES, threads_per_run
from sbu.data.cohort import CohortConfig, generate
from sbu.model.cache import trained_model
from sbu.model.network import ModelConfig
from sbu.model.recipe import Recipe
from sbu.model.training import TrainConfig

TINY_COHORT = CohortConfig(n_patients=12, holdout_share=0.25, seed=3)
TINY_MODEL = ModelConfig(vocab_size=400, n_layer=2, n_embd=48, n_head=2, n_positions=192, dropout=0.0)
TINY_TRAIN = TrainConfig(epochs=20, batch_size=16, lr=3e-3, recipe=Recipe(reading_patients=4, knowledge_repeats=0))


@pytest.fixture(scope="session")
def tiny_corpus():
    return generate(TINY_COHORT)


def run_root(tmp_path_factory) -> Path:
    """The temporary folder of the whole run: pytest-xdist workers' folders have it as their parent."""
    root = tmp_path_factory.getbasetemp()
    return root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root


@pytest.fixture(scope="session")
def built_once(tmp_path_factory) -> Callable[[str, Callable[[Path], None]], Path]:
    """``built_once(name, build)``: the folder ``name`` of the run, filled by ``build(folder)`` once — the first
    worker to ask builds it under a lock, the others wait and reuse it (a failed build is tried again, from an empty
    folder)."""
    root = run_root(tmp_path_factory)

    def get(name: str, build: Callable[[Path], None]) -> Path:
        folder = root / name
        with open(root / f"{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (root / f"{name}.built").exists():
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir()
                build(folder)
                (root / f"{name}.built").touch()
        return folder

    return get


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory):
    """One model cache for the whole run: pytest-xdist workers share it, so the tiny model trains once, under the
    cache's training lock, instead of once per worker."""
    folder = run_root(tmp_path_factory) / "models"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def tiny_lm(tiny_corpus, model_cache):
    return trained_model(tiny_corpus, TINY_MODEL, TINY_TRAIN, progress=False, cache=model_cache)


# The longest tests first, in the order pytest-xdist hands them out with --maxschedchunk=1 (``make test``): two to
# each worker to start with, then one at a time to whichever is free. The notebooks load the shipped smoke models,
# so none of them waits for the from-scratch training of the base model, which starts first.
LONGEST_FIRST = [
    "test_smoke_models.py::test_training_from_scratch_makes_the_shipped_base_model",
    "test_notebook_runs_and_leaves_no_plaintext_of_what_it_forgot[03_synchronization]",
    "test_notebook_runs_and_leaves_no_plaintext_of_what_it_forgot[04_evaluation]",
    "test_notebook_runs_and_leaves_no_plaintext_of_what_it_forgot[02_parameter_pathway]",
    "test_sync.py::test_sigkill_at_every_boundary_in_turn_then_resume_gives_the_uninterrupted_memory",
    "test_notebook_runs_and_leaves_no_plaintext_of_what_it_forgot[01_memory_pathway]",
    "test_pubmed_study.py::test_the_study_runs_on_real_abstracts",
    "test_study.py::test_study_runs_every_arm_and_reads_privleak_against_retrain",
]


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """A cache of the test's own (its barrier key, master key and key stores) and no fault or key from outside."""
    monkeypatch.setenv("SBU_CACHE", str(tmp_path / "cache"))
    for variable in ("SBU_BARRIER_KEY", "SBU_MASTER_KEY", "SBU_FAULT"):
        monkeypatch.delenv(variable, raising=False)


def pytest_configure(config):
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    threads = threads_per_run(workers)
    if threads:  # a worker: its own torch, and the kernels and commands it starts, which read the environment
        os.environ.update({name: str(threads) for name in THREAD_VARIABLES})
        torch.set_num_threads(threads)


def pytest_collection_modifyitems(config, items):
    def rank(item):
        return next((i for i, name in enumerate(LONGEST_FIRST) if item.nodeid.endswith(name)), len(LONGEST_FIRST))

    items.sort(key=rank)  # stable: the rest keep their order
