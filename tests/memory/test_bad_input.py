"""SPARQL injection and bad requests: user text never becomes query text, and a refused request changes nothing."""

from __future__ import annotations

import pytest

from sbu.data.schema import Artifact, Corpus, Entity, Fact
from sbu.errors import StoreError
from sbu.memory.barrier import Barrier
from sbu.memory.closure import seeds_of
from sbu.memory.forget import forget
from sbu.memory.ingest import ingest
from sbu.memory.plan import plan_forget
from sbu.memory.texts import live_texts
from sbu.memory.vocab import ID_BASE

INJECTIONS = [
    'x" } ; DROP ALL ; INSERT DATA { <a> <b> "c',
    '""" } } ; CLEAR ALL #',
    "<https://w3id.org/sbu/graph/meta> } DELETE WHERE { ?s ?p ?o",
    "Robert'); DROP TABLE patients;--",
    "line\nbreak \\ back\\slash \\u0022",
    "Zoë \u202e reversed ?s $o",
]
BAD_IDS = ["patient/p001> } ; DROP ALL ; #", 'patient/"; CLEAR ALL', "patient/p001\n} DELETE WHERE { ?s ?p ?o }"]


def _hostile_corpus() -> Corpus:
    """Two patients: one whose id, name, values and texts are injection strings, and a plain one."""
    evil, plain = BAD_IDS[0], "patient/p002"
    entities = [Entity(evil, INJECTIONS[0], "patient"), Entity(plain, "Ana Plain", "patient")]
    facts = [Fact(f"fact/evil/{n}", evil, "allergy", text, (f"Note: {text}",)) for n, text in enumerate(INJECTIONS)]
    facts += [Fact("fact/p002/city", plain, "city", "Bilbao", ("Ana Plain lives in Bilbao.",))]
    artifacts = [Artifact("summary/evil", "patient_summary", " ".join(INJECTIONS), (evil,),
                          tuple(f.id for f in facts[:-1])),
                 Artifact("cohort_summary/both", "condition_summary", INJECTIONS[1] + " and Ana Plain.", (evil, plain),
                          ("fact/evil/1", "fact/p002/city"))]
    return Corpus("hostile", entities, facts, [], artifacts, {})


def test_injection_strings_are_stored_as_data_and_forgotten_like_any_data(store):
    corpus = _hostile_corpus()
    ingest(store, corpus)
    texts = set(live_texts(store).values())
    assert {f"Note: {s}" for s in INJECTIONS} <= texts, "every hostile string comes back byte for byte"
    assert len(seeds_of(store, BAD_IDS[0])) == len(INJECTIONS) + 1  # its facts and its summary (about it alone)
    plan, result = forget(store, [BAD_IDS[0]], Barrier(bytes(32)))
    assert len(plan.seeds) == len(INJECTIONS) + 1 and len(result.tombstoned) == 1
    dump = store.nquads()
    assert "Ana Plain lives in Bilbao." in dump and seeds_of(store, "patient/p002")
    remaining = set(live_texts(store).values())
    assert not remaining & {f"Note: {s}" for s in INJECTIONS}
    assert INJECTIONS[1] not in " ".join(remaining), "the shared summary's text was redacted"


@pytest.mark.parametrize("target", BAD_IDS + INJECTIONS)
def test_hostile_ids_in_a_request_are_clear_errors_and_change_nothing(store, tiny_corpus, target):
    ingest(store, tiny_corpus)
    before = store.content_hash()
    with pytest.raises(StoreError, match="no assertion in memory is about"):
        plan_forget(store, [target])
    assert store.content_hash() == before


@pytest.mark.parametrize("targets, message", [
    ([], "empty forget request"), ([None], "id strings"), ([""], "id strings"), ([42], "id strings"),
    (["patient/p999"], "no assertion"), (["patient/p000", "patient/p999"], "'patient/p999'"),
    ([ID_BASE + "patient/p999"], "'patient/p999'"), (None, "list of entity ids"), (7, "list of entity ids")])
def test_bad_requests_name_the_value_and_change_nothing(store, tiny_corpus, targets, message):
    ingest(store, tiny_corpus)
    before = store.content_hash()
    with pytest.raises(StoreError, match=message):
        forget(store, targets, Barrier(bytes(32)))
    assert store.content_hash() == before


def test_a_request_may_name_an_entity_by_its_iri(store, tiny_corpus):
    ingest(store, tiny_corpus)
    patient = tiny_corpus.splits["forget10"][0]
    assert plan_forget(store, [ID_BASE + patient]) == plan_forget(store, patient)
