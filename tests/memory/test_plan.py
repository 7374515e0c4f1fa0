"""The forget plan (dry run): isolated artifacts pruned, shared ones tombstoned, entities decided — and nothing
in memory changes."""

from __future__ import annotations

import pytest

from sbu.errors import StoreError
from sbu.memory.ingest import ingest
from sbu.memory.plan import plan_forget
from sbu.memory.vocab import iri

from .test_closure import _downstream


def _expected_split(corpus, patient):
    seeds = {f.id for f in corpus.facts_about([patient])}
    closed = _downstream(corpus, seeds)
    arts = {a.id: a for a in corpus.artifacts}

    def roots(x):
        return {x} if x not in arts else set().union(*(roots(s) for s in arts[x].derived_from))

    shared = {x for x in closed if x in arts and not roots(x) <= seeds}
    return closed - shared, shared


def test_plan_splits_isolated_and_shared_like_a_python_reference(store, tiny_corpus):
    ingest(store, tiny_corpus)
    patient = tiny_corpus.splits["forget10"][0]
    before = store.content_hash()
    plan = plan_forget(store, [patient])
    isolated, shared = _expected_split(tiny_corpus, patient)
    assert {str(x) for x in plan.isolated} == {str(iri(x)) for x in isolated}
    assert {str(x) for x in plan.shared} == {str(iri(x)) for x in shared}
    assert plan.isolated | plan.shared == plan.closure and not plan.isolated & plan.shared
    assert any("cohort_summary" in str(x) for x in plan.shared), "the condition summary cites other patients"
    assert iri(f"summary/{patient.split('/')[1]}") in plan.isolated
    assert store.content_hash() == before, "a plan is a dry run"


def test_the_patient_entity_is_pruned_and_its_condition_kept(store, tiny_corpus):
    ingest(store, tiny_corpus)
    patient = tiny_corpus.splits["forget10"][0]
    plan = plan_forget(store, [patient])
    condition = next(f.entities[0] for f in tiny_corpus.facts_about([patient]) if f.attribute == "condition")
    assert plan.entities_pruned == {iri(patient)}
    assert iri(condition) in plan.entities_kept
    assert plan.counts()["closure"] == len(plan.table()[plan.table().decision.isin(["prune", "tombstone"])])


@pytest.mark.parametrize("targets, message", [([], "empty forget request"), (["patient/p999"], "no assertion"),
                                              (["patient/p001> } DROP ALL { <x"], "no assertion")])
def test_bad_requests_are_clear_errors_and_change_nothing(store, tiny_corpus, targets, message):
    ingest(store, tiny_corpus)
    before = store.content_hash()
    with pytest.raises(StoreError, match=message):
        plan_forget(store, targets)
    assert store.content_hash() == before
