"""The evaluation's probe sets: the collateral probes are exactly the retained patients who share a condition with a
forgotten one, a part of the retain probes."""

from __future__ import annotations

from collections import Counter

from sbu.data.cohort import patients_in, trained_patients
from sbu.data.forget_set import ForgetSet
from sbu.eval.unlearning import COMMON_SHARE, collateral_subjects, probe_sets
from sbu.unlearn.forget_sets import unlearning_sets


def _conditions(corpus, patient):
    return {e for f in corpus.facts if f.about == patient for e in f.entities if e.startswith("condition/")}


def test_collateral_subjects_share_a_condition_with_a_forgotten_patient_and_the_rest_do_not(tiny_corpus):
    """On a cohort, a patient is collateral when they share a condition with a forgotten patient — unless more than
    a quarter of the patients have that condition (then it says nothing about who is near whom)."""
    patients = {f.about for f in tiny_corpus.facts if f.about.startswith("patient/")}
    carriers = Counter(c for p in patients for c in _conditions(tiny_corpus, p))
    common = {c for c, n in carriers.items() if n > COMMON_SHARE * len(patients)}
    forgotten = set(patients_in(tiny_corpus, "forget10"))
    retained = [p for p in trained_patients(tiny_corpus) if p not in forgotten]
    touched = set().union(*(_conditions(tiny_corpus, p) for p in forgotten))
    found = collateral_subjects(tiny_corpus, forgotten, retained)
    assert found and set(found) < set(retained)  # some, not all: the tiny cohort has patients on other conditions
    for patient in retained:
        assert (patient in found) == bool(_conditions(tiny_corpus, patient) & (touched - common)), patient
    assert common & touched, "this cohort has a common condition a forgotten patient shares: the rule is exercised"


def test_collateral_probes_are_retain_probes_about_collateral_patients(tiny_corpus):
    sets = unlearning_sets(tiny_corpus, ForgetSet.of_split(tiny_corpus, "forget10"))
    probes = probe_sets(tiny_corpus, sets)
    forgotten = {q.about for q in sets.forget_items}
    assert probes["collateral"] and {q.id for q in probes["collateral"]} <= {q.id for q in probes["retain"]}
    assert not {q.about for q in probes["collateral"]} & forgotten
    assert collateral_subjects(tiny_corpus, set(), list(trained_patients(tiny_corpus))) == []
