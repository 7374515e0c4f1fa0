"""A forget is atomic on every back end: its updates are sent in batches the back end accepts (rdflib's parser
fails at about 80 operations in one request), each batch idempotent, so that a back end failing part-way (a real
``InjectedFailure`` at the store's update boundary, ``SBU_FAIL``) leaves a memory that applying the same plan again
finishes into the memory an uninterrupted request leaves. Requests of many patients and a PubMedQA-L abstract
with a large closure give every back end the same memory."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from sbu import faults
from sbu.data import pubmedqa
from sbu.data.cohort import CohortConfig, generate
from sbu.memory import open_store
from sbu.memory.barrier import Barrier
from sbu.memory.forget import apply_forget, update_batches
from sbu.memory.ingest import ingest
from sbu.memory.plan import plan_forget
from sbu.memory.texts import live_texts
from sbu.sync import memory_content

KEY = bytes(range(32))
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
PUBMEDQA = Path("/work/shared/data/pubmedqa/ori_pqal.json")


@pytest.fixture(scope="module")
def smoke():
    return generate(CohortConfig(seed=0))


def _forgotten(url_or_store, corpus, targets):
    store = open_store(url_or_store) if isinstance(url_or_store, str) else url_or_store
    ingest(store, corpus)
    plan = plan_forget(store, targets)
    result = apply_forget(store, plan, Barrier(KEY), now=WHEN)
    return store, plan, result


def test_a_request_of_many_smoke_patients_gives_every_back_end_the_same_memory(smoke, oxigraph_server):
    targets = smoke.splits["forget10"]  # 6 patients: about 200 operations, 5 batches on rdflib's store
    endpoint = open_store(oxigraph_server + "/query")
    endpoint.update("CLEAR ALL")
    dumps = []
    for where in ("memory:", "oxigraph:", endpoint):
        store, plan, result = _forgotten(where, smoke, targets)
        assert len(result.pruned) > 60 and len(plan.targets) == 6
        dumps.append(memory_content(store))
        names = [e.name for e in smoke.entities if e.id in targets]
        assert not any(n in t for n in names for t in live_texts(store).values())
    assert dumps[0] == dumps[1] == dumps[2]


@pytest.mark.skipif(not PUBMEDQA.is_file(), reason="PubMedQA-L is not at its shared path")
def test_a_pubmedqa_abstract_with_a_large_closure_gives_every_back_end_the_same_memory():
    corpus = pubmedqa.load(PUBMEDQA, limit=300)
    sizes = {}
    for fact in corpus.facts:
        sizes[fact.about] = sizes.get(fact.about, 0) + 1
    doc = max(sorted(sizes), key=sizes.get)
    dumps = []
    for url in ("memory:", "oxigraph:"):
        store, plan, result = _forgotten(url, corpus, [doc])
        assert len(plan.closure) >= 20, len(plan.closure)
        dumps.append(memory_content(store))
    assert dumps[0] == dumps[1]


@pytest.mark.parametrize("fail_at", [2, 3, 5])
def test_a_back_end_failing_part_way_leaves_a_memory_that_applying_the_plan_again_finishes(smoke, monkeypatch,
                                                                                         fail_at):
    """Update 1 raises the barrier; from update ``fail_at`` on the store refuses. The barrier holds meanwhile; the
    same plan applied again ends in the uninterrupted memory."""
    targets = smoke.splits["forget10"]
    reference, _, _ = _forgotten("memory:", smoke, targets)
    store = open_store("memory:")
    ingest(store, smoke)
    plan = plan_forget(store, targets)
    faults._reached.clear()
    monkeypatch.setenv("SBU_FAIL", f"store-update@{fail_at}")
    with pytest.raises(faults.InjectedFailure):
        apply_forget(store, plan, Barrier(KEY), now=WHEN)
    monkeypatch.delenv("SBU_FAIL")
    barrier = Barrier.load(store, KEY)
    names = [e.name for e in smoke.entities if e.id in targets]
    assert not any(barrier.check(f"{n} is back", count=False) for n in names), "the barrier holds part-way"
    keys = store.key_store()
    assert keys.pending(), "the keys stay marked, not destroyed, while the graph is half-changed"
    result = apply_forget(store, plan, Barrier(KEY), now=WHEN)
    assert memory_content(store) == memory_content(reference)
    assert keys.pending() == [] and keys.get(str(n) for n in result.pruned | result.tombstoned) == {}


def test_batches_keep_each_group_whole_and_under_the_limit():
    groups = [([f"DROP SILENT GRAPH <urn:g{i}>"] * 3, []) for i in range(30)] + [([], [("s", "p", "o")] * 450)]
    groups[-1] = ([], [(URI, URI, URI)] * 450)
    batches = update_batches(groups, 40)
    assert all(b.count(" ;\n") + 1 <= 40 for b in batches[:-1])
    assert sum(b.count("DROP") for b in batches) == 90 and batches[-1].count("INSERT") == 3
    assert len(update_batches(groups, None)) == 1


URI = type("U", (), {"n3": lambda self: "<urn:x>"})()
