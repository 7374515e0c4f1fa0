"""PubMedQA-L read from where it lies beside the project (skipped, with the reason, when it is absent)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from sbu.data import pubmedqa
from sbu.errors import ConfigError, DataFileError

PATH = pubmedqa.default_path()
needs_file = pytest.mark.skipif(not PATH.is_file(), reason=f"PubMedQA-L not found at {PATH} (set SBU_PUBMEDQA)")


@pytest.fixture(scope="module")
def corpus():
    return pubmedqa.load(PATH)


@needs_file
def test_every_question_becomes_a_three_option_item(corpus):
    raw = json.loads(PATH.read_text())
    assert len(corpus.qa) == len(raw) == 1000
    assert {q.options for q in corpus.qa} == {("yes", "no", "maybe")}
    assert Counter(q.answer_text for q in corpus.qa) == Counter(r["final_decision"] for r in raw.values())


@needs_file
def test_abstract_sentences_are_facts_about_their_document(corpus):
    facts = {f.id: f for f in corpus.facts}
    for item in corpus.qa[:50]:
        assert item.fact_ids and all(facts[i].about == item.about for i in item.fact_ids)
        assert all(facts[i].value.strip() and facts[i].text == facts[i].value for i in item.fact_ids)
    assert len(corpus.facts) > 5 * len(corpus.qa)


@needs_file
def test_mesh_terms_are_shared_concept_entities(corpus):
    concepts = {e.id for e in corpus.entities if e.type == "concept"}
    uses = Counter(c for f in corpus.facts if f.id.endswith("/0") for c in f.entities)
    assert set(uses) <= concepts
    assert uses.most_common(1)[0][1] > 100, "some concept (e.g. Humans) is carried by hundreds of abstracts"


@needs_file
def test_documents_keep_year_and_label(corpus):
    docs = [e for e in corpus.entities if e.type == "document"]
    assert len(docs) == 1000
    assert all(d.attrs["label"] in ("yes", "no", "maybe") for d in docs)
    years = [d.attrs["year"] for d in docs]
    assert all(y is None or 1950 < y < 2030 for y in years)  # a few records carry no year
    assert sum(y is not None for y in years) > 900


@needs_file
def test_official_test_split_is_kept(corpus):
    assert len(corpus.splits["test"]) == 500 and len(corpus.splits["train"]) == 500


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(DataFileError, match="ori_pqal.json"):
        pubmedqa.load(tmp_path / "nope.json")


def test_wrong_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "ori_pqal.json"
    bad.write_text("{not json")
    with pytest.raises(DataFileError, match="not PubMedQA-L JSON"):
        pubmedqa.load(bad)
    bad.write_text(json.dumps({"1": {"no_question": 1}}))
    with pytest.raises(DataFileError, match="does not look like"):
        pubmedqa.load(bad)


def test_sentence_splitting():
    assert pubmedqa.split_sentences("A b. C d (e.g. f). G h? I j.") == ["A b.", "C d (e.g. f).", "G h?", "I j."]


def test_a_limit_keeps_the_first_abstracts_and_their_concepts_only():
    small = pubmedqa.load(limit=20)
    assert small.meta["n_documents"] == 20 and len(small.qa) == 20
    concepts = {c for f in small.facts for c in f.entities}
    assert {a.about[0] for a in small.artifacts} == concepts


@pytest.mark.parametrize("limit", [0, -3, 2.5, True])
def test_a_bad_limit_is_a_clear_error(limit):
    with pytest.raises(ConfigError, match="positive number of abstracts"):
        pubmedqa.load(limit=limit)
