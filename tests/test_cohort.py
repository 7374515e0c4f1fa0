"""The synthetic cohort: deterministic, well-split, and with holdout patients absent from every training text."""

from __future__ import annotations

import filecmp
from pathlib import Path

import pytest

from sbu.data import cohort
from sbu.data.cohort import CohortConfig, generate, patients_in, trained_patients
from sbu.data.schema import Corpus
from sbu.errors import ConfigError, SbuError, UnknownSplitError
from sbu.model.recipe import Recipe, tokenizer_texts, training_examples

SHIPPED = Path(__file__).resolve().parents[1] / "data" / "cohort-smoke"


def _write(corpus: Corpus, folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in corpus.write(folder)}


def test_same_seed_gives_identical_bytes(tmp_path):
    first, second = generate(CohortConfig(seed=7)), generate(CohortConfig(seed=7))
    assert _write(first, tmp_path / "a") == _write(second, tmp_path / "b")


def test_another_seed_gives_another_cohort(tmp_path):
    first, second = generate(CohortConfig(seed=1)), generate(CohortConfig(seed=2))
    assert _write(first, tmp_path / "a") != _write(second, tmp_path / "b")


def test_shipped_smoke_cohort_regenerates_bit_identically(tmp_path):
    written = generate(CohortConfig()).write(tmp_path)
    shipped = sorted(p.name for p in SHIPPED.iterdir() if p.suffix in (".jsonl", ".json"))
    assert shipped == sorted(p.name for p in written)
    match, mismatch, errors = filecmp.cmpfiles(SHIPPED, tmp_path, shipped, shallow=False)
    assert mismatch == [] and errors == []


def test_corpus_round_trips_through_jsonl(tmp_path, tiny_corpus):
    tiny_corpus.write(tmp_path)
    again = Corpus.read(tmp_path)
    assert again.facts == tiny_corpus.facts and again.qa == tiny_corpus.qa
    assert again.artifacts == tiny_corpus.artifacts and again.splits == tiny_corpus.splits


def test_splits_are_disjoint_nested_and_sized():
    corpus = generate(CohortConfig())
    holdout, retain = set(corpus.splits["holdout"]), set(corpus.splits["retain"])
    f01, f05, f10 = (set(corpus.splits[s]) for s in ("forget01", "forget05", "forget10"))
    assert (len(holdout), len(f01), len(f05), len(f10)) == (12, 1, 3, 6)
    assert f01 < f05 < f10
    assert not holdout & f10 and not holdout & retain and not retain & f10
    assert len(holdout | retain | f10) == 60
    assert {e.attrs["split"] for e in corpus.entities if e.id in f01} == {"forget01"}


def test_patient_names_are_unique_and_syllable_built(tiny_corpus):
    names = [e.name for e in tiny_corpus.entities if e.type == "patient"]
    assert len(set(names)) == len(names)
    for name in names:
        for part in name.lower().split():
            rest = part
            while rest:
                syllable = next((s for s in sorted(cohort.SYLLABLES, key=len, reverse=True)
                                 if rest.startswith(s)), None)
                assert syllable, f"{name} is not built from the syllable list"
                rest = rest[len(syllable):]


def test_every_qa_item_has_distinct_options_and_the_fact_as_answer(tiny_corpus):
    facts = {f.id: f for f in tiny_corpus.facts}
    for item in tiny_corpus.qa:
        assert len(item.options) == 4 and len(set(item.options)) == 4
        assert item.answer_text == facts[item.fact_ids[0]].value


def test_each_fact_is_asked_in_train_and_held_out_phrasings(tiny_corpus):
    for fact in tiny_corpus.facts:
        phrasings = {q.phrasing for q in tiny_corpus.qa if q.fact_ids == (fact.id,)}
        assert phrasings == {"train", "heldout"}
        if fact.about.startswith("patient/"):
            assert fact.paraphrases, "a patient fact keeps a held-out paraphrase"


def test_test_split_is_knowledge_questions_in_held_out_phrasing(tiny_corpus):
    test_items = [q for q in tiny_corpus.qa if q.id in set(tiny_corpus.splits["test"])]
    assert len(test_items) == 20 * 4 * 2
    assert {(q.kind, q.phrasing) for q in test_items} == {("knowledge", "heldout")}


def test_holdout_patients_appear_in_no_training_text(tiny_corpus):
    holdout = patients_in(tiny_corpus, "holdout")
    secrets = [tiny_corpus.entity(p).name for p in holdout]
    secrets += [f.value for f in tiny_corpus.facts_about(holdout) if f.attribute in cohort.UNIQUE_ATTRIBUTES]
    texts = list(tokenizer_texts(tiny_corpus))
    for epoch in range(3):
        for ex in training_examples(tiny_corpus, Recipe(reading_patients=5), epoch=epoch):
            texts.append(ex.prompt + ex.target)
    blob = "\n".join(texts)
    assert secrets and not [s for s in secrets if s in blob]


def test_retrain_examples_leave_out_the_forget_patients(tiny_corpus):
    forget = patients_in(tiny_corpus, "forget10")
    names = [tiny_corpus.entity(p).name for p in forget]
    blob = "\n".join(e.prompt + e.target
                     for e in training_examples(tiny_corpus, Recipe(), exclude="forget10"))
    assert not [n for n in names if n in blob]
    full = "\n".join(e.prompt + e.target for e in training_examples(tiny_corpus, Recipe()))
    assert all(n in full for n in names), "the base model does train on them"


def test_patient_summary_is_isolated_and_condition_summary_is_shared(tiny_corpus):
    facts = {f.id: f for f in tiny_corpus.facts}
    for art in tiny_corpus.artifacts:
        assert art.derived_from and all(src in facts for src in art.derived_from)
        owners = {facts[src].about for src in art.derived_from}
        if art.kind in ("patient_summary", "episode"):
            assert owners == set(art.about) and len(owners) == 1
        else:
            assert art.kind == "condition_summary"
            assert any(o.startswith("condition/") for o in owners) and any(o.startswith("patient/") for o in owners)


@pytest.mark.parametrize("bad", [
    {"n_patients": 0}, {"n_patients": -5}, {"n_patients": 2.5}, {"holdout_share": 0}, {"holdout_share": 1},
    {"holdout_share": 1.5}, {"forget_shares": {"forget05": 0.0}}, {"forget_shares": {"forget05": 1.0}},
    {"patients_per_summary": 0}, {"n_options": 1}, {"n_patients": 2},
])
def test_bad_parameters_raise_a_clear_error(bad):
    with pytest.raises(ConfigError) as err:
        CohortConfig(**bad)
    assert isinstance(err.value, SbuError) and str(err.value)


def test_unknown_split_names_the_choices(tiny_corpus):
    with pytest.raises(UnknownSplitError, match="forget05"):
        patients_in(tiny_corpus, "forget50")
    with pytest.raises(UnknownSplitError):
        trained_patients(tiny_corpus, exclude="holdout")


def test_summary_counts_every_patient(tiny_corpus):
    table = cohort.summary(tiny_corpus)
    per_split = table.set_index("split")["patients"]
    assert per_split["holdout"] + per_split["retain"] + per_split["forget10"] == 12
