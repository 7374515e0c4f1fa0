"""The evaluation's probe sets: the collateral probes are exactly the retained patients who share a condition with a
forgotten one (SPEC §6 "collateral"), a part of the retain probes."""

from __future__ import annotations

from sbu.data.cohort import patients_in, trained_patients
from sbu.eval.unlearning import collateral_subjects, probe_sets
from sbu.model.forget_sets import unlearning_sets


def _conditions(corpus, patient):
    return {e for f in corpus.facts if f.about == patient for e in f.entities if e.startswith("condition/")}


def test_collateral_subjects_share_a_condition_with_a_forgotten_patient_and_the_rest_do_not(tiny_corpus):
    forgotten = set(patients_in(tiny_corpus, "forget10"))
    retained = [p for p in trained_patients(tiny_corpus) if p not in forgotten]
    touched = set().union(*(_conditions(tiny_corpus, p) for p in forgotten))
    found = collateral_subjects(tiny_corpus, forgotten, retained)
    assert found and set(found) < set(retained)  # some, not all: the tiny cohort has patients on other conditions
    for patient in retained:
        assert (patient in found) == bool(_conditions(tiny_corpus, patient) & touched), patient


def test_collateral_probes_are_retain_probes_about_collateral_patients(tiny_corpus):
    sets = unlearning_sets(tiny_corpus, "forget10")
    probes = probe_sets(tiny_corpus, sets)
    forgotten = {q.about for q in sets.forget_items}
    assert probes["collateral"] and {q.id for q in probes["collateral"]} <= {q.id for q in probes["retain"]}
    assert not {q.about for q in probes["collateral"]} & forgotten
    assert collateral_subjects(tiny_corpus, set(), list(trained_patients(tiny_corpus))) == []
