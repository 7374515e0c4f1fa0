"""PubMedQA-L as a study corpus: cloze probes, splits, reading abstracts kept apart from what is measured, and the
study's pipeline end to end on real abstracts (skipped, with the reason, when the file is absent)."""

from __future__ import annotations

import numpy as np
import pytest

from sbu.config import ExperimentConfig
from sbu.data import pubmedqa
from sbu.data.cohort import patients_in, trained_patients
from sbu.data.pubmed_study import PubMedStudyConfig, reading_documents, study_corpus
from sbu.errors import ConfigError, DataFileError
from sbu.model.cache import corpus_fingerprint, trained_model
from sbu.model.network import ModelConfig
from sbu.model.recipe import Recipe, training_examples
from sbu.model.training import TrainConfig

PATH = pubmedqa.default_path()
needs_file = pytest.mark.skipif(not PATH.is_file(), reason=f"PubMedQA-L not found at {PATH} (set SBU_PUBMEDQA)")
SMALL = PubMedStudyConfig(n_documents=40, items_per_document=4)


@pytest.fixture(scope="module")
def corpus():
    return study_corpus(PATH)


@needs_file
def test_splits_divide_the_abstracts_as_the_cohort_divides_patients(corpus):
    docs = {e.id for e in corpus.entities if e.type == "document"}
    holdout, retain = set(patients_in(corpus, "holdout")), set(patients_in(corpus, "retain"))
    f01, f05, f10 = (set(patients_in(corpus, s)) for s in ("forget01", "forget05", "forget10"))
    assert f01 <= f05 <= f10 and f01 and len(f05) == round(0.05 * len(docs))
    assert holdout | retain | f10 == docs and not holdout & (retain | f10) and not retain & f10
    assert set(trained_patients(corpus)) == retain | f10
    assert set(trained_patients(corpus, "forget05")) == (retain | f10) - f05
    test = {q.about for q in corpus.qa if q.id in set(corpus.splits["test"])}
    assert test == holdout, "test: the unseen abstracts' cloze items"
    assert corpus.meta["n_documents"] == len(docs) > 145, "abstracts too short to be probed are left out"


@needs_file
def test_a_cloze_item_is_its_sentence_cut_before_the_last_words(corpus):
    facts = {f.id: f for f in corpus.facts}
    for item in corpus.qa:
        fact = facts[item.fact_ids[0]]
        assert fact.about == item.about and item.kind == "document" and item.phrasing == "train"
        assert f"{item.question} {item.answer_text}" == fact.text.rstrip(" .")
        assert fact.value == item.answer_text, "the barrier blocks the answer as the abstract's value"
        assert len(item.options) == 4 and len(set(item.options)) == 4
        own = {" ".join(f.text.rstrip(" .").split()[-3:]) for f in corpus.facts if f.about == item.about}
        assert set(item.options) <= own, "distractors: the same abstract's other endings"
        assert len(item.answer_text.split()) == 3
    per_doc = {}
    for item in corpus.qa:
        per_doc[item.about] = per_doc.get(item.about, 0) + 1
    assert max(per_doc.values()) == 6 and len(per_doc) == corpus.meta["n_documents"]
    assert all(len(f.text.split()) <= 40 for f in corpus.facts), "long sentences are cut into parts"


@needs_file
def test_memory_closure_runs_through_shared_mesh_concepts(corpus):
    doc = patients_in(corpus, "forget05")[0]
    mine = {f.id for f in corpus.facts if f.about == doc}
    summaries = [a for a in corpus.artifacts if set(a.derived_from) & mine]
    assert summaries and any(len(a.derived_from) > 1 for a in summaries), "a concept other abstracts share"


@needs_file
def test_same_seed_same_corpus_other_seed_other_abstracts():
    a, b = study_corpus(PATH, SMALL), study_corpus(PATH, SMALL)
    assert corpus_fingerprint(a) == corpus_fingerprint(b)
    c = study_corpus(PATH, PubMedStudyConfig(n_documents=40, items_per_document=4, seed=1))
    assert {e.id for e in a.entities if e.type == "document"} != {e.id for e in c.entities if e.type == "document"}


@needs_file
def test_reading_and_calibration_abstracts_lie_outside_the_study(corpus):
    study = {e.id for e in corpus.entities}
    first, _ = reading_documents(corpus, 20, seed=0)
    second, _ = reading_documents(corpus, 20, seed=1)
    calibration, items = reading_documents(corpus, 12, seed=-1)
    read = {f.about for f in first + second}
    assert not read & study and not {f.about for f in calibration} & (study | read)
    assert {f.about for f in first} != {f.about for f in second}, "a fresh sample each epoch"
    assert items and {f.about for f in calibration} == {f.about for f in reading_documents(corpus, 12, -5)[0]}


@needs_file
def test_no_model_reads_a_holdout_or_calibration_abstract(corpus):
    unseen = set(patients_in(corpus, "holdout"))
    texts = [f.text for f in corpus.facts if f.about in unseen]
    texts += [f.text for f in reading_documents(corpus, 30, seed=-1)[0]]
    recipe = Recipe(reading_patients=60)
    for epoch in (0, 1):
        seen = " ".join(x.prompt + x.target for x in training_examples(corpus, recipe, None, 0, epoch))
        assert not [t for t in texts if t in seen]
    forgotten = [f.text for f in corpus.facts if f.about in set(patients_in(corpus, "forget05"))]
    retrain = " ".join(x.prompt + x.target for x in training_examples(corpus, recipe, "forget05", 0, 0))
    assert not [t for t in forgotten if t in retrain], "the retrain model never reads the forgotten abstracts"


def test_bad_configs_are_refused():
    for bad in ({"n_documents": 0}, {"answer_words": 10, "min_words": 10}, {"holdout_share": 0.95},
                {"n_options": 1}, {"forget_shares": {"forget05": 0.05}}):
        with pytest.raises(ConfigError):
            PubMedStudyConfig(**bad)
    for dataset in ("mimic", ["pubmedqa"]):
        with pytest.raises(ConfigError, match="dataset"):
            ExperimentConfig.from_profile("smoke", dataset=dataset)
    for bad in ({}, "forget05", {"forget01": 0.01, "forget05": 0.05}):
        with pytest.raises(ConfigError, match="forget_shares"):
            PubMedStudyConfig(forget_shares=bad)


def test_data_path_without_pubmedqa_is_refused(tmp_path):
    from sbu.experiment import Experiment

    with pytest.raises(ConfigError, match="dataset='pubmedqa'"):
        Experiment.from_params(out_dir=str(tmp_path / "out"), data_path=str(PATH))
    assert not (tmp_path / "out").exists(), "a refused experiment writes nothing"


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(DataFileError, match="PubMedQA-L not found"):
        study_corpus(tmp_path / "nowhere.json")


@needs_file
def test_too_few_abstracts_for_the_study_is_a_clear_error():
    with pytest.raises(ConfigError, match="needs at least"):
        study_corpus(PATH, PubMedStudyConfig(n_documents=990))
    with pytest.raises(ConfigError, match="no retained"):
        study_corpus(PATH, PubMedStudyConfig(n_documents=2))


def test_the_pubmedqa_dataset_sizes_the_model_for_abstracts():
    config = ExperimentConfig.from_profile("smoke", dataset="pubmedqa", seed=3)
    assert config.dataset == "pubmedqa" and config.pubmedqa.seed == 3
    assert config.model.n_positions > ExperimentConfig().model.n_positions
    assert config.train.recipe.reading_patients < ExperimentConfig().train.recipe.reading_patients


@needs_file
@pytest.mark.slow
def test_the_study_runs_on_real_abstracts(tmp_path, monkeypatch):
    from sbu.eval import study

    monkeypatch.setenv("SBU_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SBU_BARRIER_KEY", raising=False)
    corpus = study_corpus(PATH, SMALL)
    model = ModelConfig(vocab_size=1024, n_layer=1, n_embd=64, n_head=2, n_positions=1024)
    train = TrainConfig(epochs=2, recipe=Recipe(reading_patients=10))
    base = trained_model(corpus, model, train, progress=False)
    retrain = trained_model(corpus, model, train, exclude="forget10", progress=False)
    arms = [a for a in study.arms(["sra"]) if a.name != "parameter-only (sra)"]
    results, per_round = study.run_study(corpus, base, {"forget10": retrain}, work=tmp_path / "work",
                                         splits=["forget10"], seeds=[0], conditions=arms, rounds=1,
                                         unlearn={"steps": 5, "batch_size": 4}, dataset="pubmedqa", progress=False)
    values = results.set_index(["condition", "metric"])["value"]
    assert set(results.dataset) == {"pubmedqa"} and set(results.n_forgotten) == {4}
    assert values[("none", "exposure r0")] >= 0.9, "nothing forgotten: each sentence's start finds the sentence"
    assert values[("memory-only", "exposure r0")] == 0, "the closure took the abstracts and their summaries"
    assert values[("memory-only", "recreated rR")] > 0, "without a barrier, the loop writes the abstracts back"
    assert values[("sbu", "exposure rR")] == 0 and values[("sbu", "recreated rR")] == 0
    assert values[("sbu", "facts back rR")] == 0 and values[("sbu", "refused")] > 0
    assert np.isnan(values[("sbu", "forget quality")]), "cloze items have no paraphrases: no forget quality"
    assert set(per_round["round"]) == {0, 1}


@needs_file
def test_collateral_abstracts_share_a_specific_concept_not_a_check_tag(corpus):
    """Humans, Female, Male … sit on most abstracts: sharing one says nothing, so the collateral abstracts are those
    that share a less common concept with a forgotten one — some of the retained abstracts, not all."""
    from sbu.eval.unlearning import COMMON_SHARE, collateral_subjects

    concepts = {}
    for fact in corpus.facts:
        concepts.setdefault(fact.about, set()).update(e for e in fact.entities if e.startswith("mesh/"))
    carriers = {c: sum(c in held for held in concepts.values()) for c in set().union(*concepts.values())}
    common = {c for c, n in carriers.items() if n > COMMON_SHARE * len(concepts)}
    assert "mesh/Humans" in common, "the check tag is on most abstracts"
    forgotten = set(patients_in(corpus, "forget05"))
    retained = [d for d in trained_patients(corpus) if d not in forgotten]
    near = set().union(*(concepts[f] for f in forgotten)) - common
    found = collateral_subjects(corpus, forgotten, retained)
    assert found == [d for d in retained if concepts[d] & near]
    sharing_any = [d for d in retained if concepts[d] & set().union(*(concepts[f] for f in forgotten))]
    assert 0 < len(found) < len(sharing_any), "the check tags alone would make nearly every abstract collateral"
