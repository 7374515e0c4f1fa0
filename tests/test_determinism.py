"""The backflow loop of an arm that unlearns nothing ("none", "memory-only") gives the same numbers in every process:
each consolidation initialises a fresh LoRA adapter from torch's global generator, which torch seeds at random at
start-up and which only unlearning used to seed."""

from __future__ import annotations

import pytest
import torch

from sbu.data.cohort import patients_in
from sbu.eval.backflow import loop_secrets, prepare, queries, run_rounds


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SBU_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SBU_BARRIER_KEY", raising=False)


@pytest.mark.parametrize("arm", ["none", "memory-only"])
def test_the_loop_without_unlearning_does_not_depend_on_the_global_generator(arm, tiny_corpus, tiny_lm, tmp_path):
    patients = patients_in(tiny_corpus, "forget10")
    forget_items = [q for q in tiny_corpus.qa if q.about in set(patients) and q.phrasing == "train"]
    secrets = loop_secrets(tiny_corpus, patients, forget_items)
    loop_queries = queries(tiny_corpus, patients, seed=0)
    runs = []
    for state in (1, 2):  # what a process may have left in the global generator before the study
        torch.manual_seed(state)
        condition = prepare(arm, tiny_corpus, tiny_lm, patients, work=tmp_path / f"{arm}-{state}", k=2)
        rows = run_rounds(condition, tiny_corpus, forget_items, loop_queries, secrets, rounds=1)
        weights = [p.detach().clone() for p in condition.agent.lm.model.state_dict().values()]
        runs.append(([{k: v for k, v in row.items() if k != "unlearn_seconds"} for row in rows], weights))
    (rows_a, weights_a), (rows_b, weights_b) = runs
    assert rows_a == rows_b
    assert all(torch.equal(a, b) for a, b in zip(weights_a, weights_b))
