"""The barrier follows the text, not the spelling: adversarial write-backs about a forgotten patient are refused
(counted by reason), and retained patients who share a given name, a surname prefix, a city, a condition or a
marker never are — measured on the smoke cohort and as a hypothesis property over generated name pairs."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rdflib import Literal

from sbu.data.cohort import CITIES, MARKERS, CohortConfig, generate
from sbu.memory import open_store
from sbu.memory.barrier import Barrier, Reason
from sbu.memory.forget import forget
from sbu.memory.ingest import ingest
from sbu.memory.normalise import name_forms, normalize, tokens, unique_forms
from sbu.memory.sealing import is_sealed
from sbu.memory.texts import live_texts
from sbu.memory.vocab import META, SBU, iri

KEY = bytes(range(32))
CYRILLIC = str.maketrans("aeopcxyAEOPCXKMHT", "аеорсхуАЕОРСХКМНТ")  # Latin → Cyrillic look-alikes


def adversarial_writes(name: str, record: str, mrn: str, last_visit: str) -> list[tuple[str, str]]:
    """(expected reason, text) write-backs that carry the forgotten patient in forms a plain match misses."""
    given_name, surname = name.split()
    day = dt.date.fromisoformat(last_visit)
    named = [f"{name}'s chart", f"{name}’s chart", f"**{name}** was seen", f"_{given_name}_ ~~{surname}~~",
             f"<em>{given_name}</em> <b>{surname}</b> called", f"seen today—{name}—again", f"{name}/GP referral",
             f"`{name}`", f"{given_name}\u200b{surname[:2]}\u200b{surname[2:]}".replace("\u200b", " ", 1),
             f"{given_name[:2]}\u00ad{given_name[2:]} {surname}", f"{given_name}\u200e {surname}",
             f"{given_name[0]}\u0301{given_name[1:]} {surname}", name.replace("a", "á").replace("o", "ö"),
             name.translate(CYRILLIC), f"{given_name}-{surname}", f"{given_name}{surname}", f"{surname}{given_name}",
             f"{given_name[0]}. {surname}", f"{given_name[0]} {surname} is better", f"{surname}, {given_name}",
             f"{surname} {given_name} came in", f"{surname}, {given_name[0]}.", name.upper(),
             f"{given_name}\t{surname}",
             f"{given_name}\u00a0{surname}", "".join(chr(ord(c) + 0xFEE0) if c.isalpha() else c for c in name),
             f"{given_name}\n{surname}", f"Paciente {name}, alta hoy"]
    unique = [f"MRN {mrn[:3]}-{mrn[3:]} for someone else", f"record {' '.join(mrn)}",
              f"#{mrn[:2]}.{mrn[2:4]}.{mrn[4:]}",
              f"last seen {day:%d/%m/%Y}", f"last seen {day:%m/%d/%Y}", f"visit {day:%B} {day.day}, {day.year}",
              f"visit {day.day} {day:%b} {day.year}", f"visit {day:%Y%m%d}", f"visit {day:%Y.%m.%d}",
              f"visit {day.year}-{day.month}-{day.day}"]
    ids = [f"see {record}", f"see {record.rsplit('/', 1)[1]}", f"<{iri(record)}> says", f"({iri(record)})"]
    return ([(Reason.NAME, t) for t in named] + [(Reason.UNIQUE_VALUE, t) for t in unique]
            + [(Reason.ID, t) for t in ids])


def _smoke_forgotten():
    corpus = generate(CohortConfig(seed=0))
    store = open_store("oxigraph:")
    ingest(store, corpus)
    forgotten = corpus.splits["forget10"]
    barrier = Barrier(KEY)
    plan, _ = forget(store, forgotten, barrier)
    return corpus, store, barrier, forgotten, plan


def test_adversarial_write_backs_are_refused_and_retained_writes_never_are():
    """The false-refusal rate on the smoke cohort's retained patients (every live text, every fact sentence in
    every phrasing, every correct cached answer) is 0; every adversarial write-back about each of the forget10
    patients is refused, with its reason counted."""
    corpus, store, barrier, forgotten, plan = _smoke_forgotten()
    kept = set(corpus.splits["retain"]) | set(corpus.splits["holdout"])
    retained = [t for t in live_texts(store).values()]
    retained += [(t, f.about) for f in corpus.facts if f.about in kept for t in (*f.texts, *f.paraphrases)]
    retained += [(f"Q: {q.question} A: {q.answer_text}", q.about) for q in corpus.qa if q.about in kept]
    refused = []
    for write in retained:
        text, about = write if isinstance(write, tuple) else (write, None)
        if not barrier.check(text, [about] if about else [], count=False):
            refused.append(text)
    print(f"\nfalse refusals on retained writes: {len(refused)} / {len(retained)}")
    assert refused == []

    values = {(f.about, f.attribute): f.value for f in corpus.facts}
    names = {e.id: e.name for e in corpus.entities}
    missed = []
    for patient in forgotten:
        for reason, text in adversarial_writes(names[patient], patient, values[(patient, "mrn")],
                                               values[(patient, "last_visit")]):
            verdict = barrier.check(text, ["patient/p999"])  # a note about someone else
            if reason not in verdict.reasons:
                missed.append((reason, text))
    print(f"refusals by reason on {barrier.refused} adversarial write-backs: {dict(barrier.refusals)}")
    assert missed == []
    assert set(barrier.refusals) >= {Reason.NAME, Reason.UNIQUE_VALUE, Reason.ID, Reason.IRI}


def test_a_date_a_retained_patient_shares_is_not_blocked_whoever_the_note_is_about():
    corpus = generate(CohortConfig(n_patients=12, seed=3))
    store = open_store("oxigraph:")
    ingest(store, corpus)
    patient, other = corpus.splits["forget10"][0], corpus.splits["retain"][0]
    date = next(f.value for f in corpus.facts if f.about == patient and f.attribute == "last_visit")
    store.add_quads([(iri(other), SBU.visit, Literal(date), iri("fact/x/visit"))])  # sealed and tagged as written
    barrier = Barrier(KEY)
    forget(store, [patient], barrier)
    assert barrier.check(f"Visit on {date}.", [other]), "a shared date stays bound to the forgotten patient"
    assert not barrier.check(f"Visit on {date}.", [patient])



@pytest.mark.parametrize("held_as", ["value", "text"])
def test_a_date_a_retained_patient_shares_in_a_sealed_literal_is_not_blocked(held_as):
    """The same, with the retained patient's date stored sealed (as every ingested value and text is): the
    store's content is ciphertext, so whether a value is shared is decided on the opened literals."""
    corpus = generate(CohortConfig(n_patients=12, seed=3))
    store = open_store("oxigraph:")
    ingest(store, corpus)
    patient, other = corpus.splits["forget10"][0], corpus.splits["retain"][0]
    date = next(f.value for f in corpus.facts if f.about == patient and f.attribute == "last_visit")
    quad = ((iri(other), SBU.visit, Literal(date), iri("fact/x/visit")) if held_as == "value" else
            (iri("episode/x"), SBU.text, Literal(f"Seen on {date} for a check-up."), META))
    store.add_quads([quad])
    s, p, _, g = quad
    [(o,)] = store.query(f"SELECT ?o WHERE {{ GRAPH {g.n3()} {{ {s.n3()} {p.n3()} ?o }} }}")
    assert is_sealed(o)
    barrier = Barrier(KEY)
    forget(store, [patient], barrier)
    assert barrier.check(f"Visit on {date}.", [other]), "a shared date stays bound to the forgotten patient"
    assert not barrier.check(f"Visit on {date}.", [patient])


SYLLABLES = st.sampled_from(["ka", "lo", "mi", "ra", "ven", "to", "su", "del", "ni", "bo", "ta", "ri", "an", "el"])
WORD = st.lists(SYLLABLES, min_size=2, max_size=3).map(lambda s: "".join(s).capitalize())


@settings(max_examples=150, deadline=None, derandomize=True)
@given(given_name=WORD, surname=WORD, other_given=WORD, other_surname=WORD, suffix=SYLLABLES,
       share=st.sampled_from(["given", "surname prefix", "city", "condition", "marker"]),
       city=st.sampled_from(CITIES), marker=st.sampled_from(MARKERS))
def test_a_retained_patient_who_shares_a_name_part_or_a_value_is_never_refused(
        given_name, surname, other_given, other_surname, suffix, share, city, marker):
    """Forget one patient; a retained patient sharing the given name, a surname prefix (the forgotten surname
    plus letters), the city, the condition or the marker: every note about them is allowed."""
    if share == "given":
        other_given = given_name
    if share == "surname prefix":
        other_surname = surname + suffix
    forgotten, retained = f"{given_name} {surname}", f"{other_given} {other_surname}"
    if normalize(retained) in name_forms(forgotten) or {other_given.lower(), other_surname.lower()} == {
            given_name.lower(), surname.lower()} or other_surname.lower() == surname.lower():
        return  # the same person's name (or their surname with the same initial): not a distinct patient
    barrier = Barrier(KEY)
    barrier.block(barrier.entries(ids=["patient/p001"], names=[forgotten],
                                  pairs=[("patient/p001", city), ("patient/p001", "asthma"),
                                         ("patient/p001", marker), ("patient/p001", "482913")],
                                  unique=["482913", "2024-03-05"]))
    notes = [f"{retained} lives in {city}.", f"{retained} has asthma.", f"{retained} carries {marker}.",
             f"Summary of {retained}: {city}, asthma, {marker}.", f"{other_surname}, {other_given} was seen.",
             f"{other_given[0]}. {other_surname} is on the list.", f"Q: Where does {retained} live? A: {city}",
             f"{retained}'s visit was on 2024-03-06; MRN 482914."]
    for note in notes:
        assert barrier.check(note, ["patient/p002"], count=False), (forgotten, note)


def test_the_normaliser_reduces_markup_invisible_characters_diacritics_and_look_alikes():
    assert normalize("<em>Kälo</em> Pa\u00adrta’s **chart** — x/y") == "kalo parta chart x y"
    assert normalize("Каlo") == "kalo" and normalize("ＫＡＬＯ") == "kalo" and normalize("Ka\u0308lo") == "kalo"
    assert tokens("75mg") == ["75", "mg"] and normalize(normalize("Ä b")) == normalize("Ä b")
    assert {"20240305"} <= unique_forms("on 5th of March, 2024") and "482913" in unique_forms("MRN 48-29-13")
    assert not unique_forms("age 69, dose 75 mg")  # short numbers are never blocked whoever a note is about


def test_refusals_are_counted_by_reason():
    barrier = Barrier(KEY)
    barrier.block(barrier.entries(ids=["patient/p001"], names=["Kalo Parta"], unique=["482913"]))
    for text in ("K. Parta", "Parta Kalo", "MRN 482 913", "https://w3id.org/sbu/id/patient/p001"):
        assert not barrier.check(text)
    assert barrier.refused == 4
    assert barrier.refusals == Counter({"name": 2, "unique_value": 1, "id": 1, "iri": 1})


def test_a_value_a_retained_note_writes_in_another_form_is_shared_and_a_forgotten_nodes_tags_go_with_it():
    """The value tags find a retained holder whatever the separators (an index lookup, never a scan), and a forget
    deletes the tags of every node it prunes or tombstones."""
    corpus = generate(CohortConfig(n_patients=12, seed=3))
    store = open_store("oxigraph:")
    ingest(store, corpus)
    patient, other = corpus.splits["forget10"][0], corpus.splits["retain"][0]
    mrn = next(f.value for f in corpus.facts if f.about == patient and f.attribute == "mrn")
    digits = "".join(c for c in mrn if c.isdigit())
    spaced = " ".join(digits[i:i + 2] for i in range(0, len(digits), 2))
    store.add_quads([(iri("note/x"), SBU.text, Literal(f"Record {spaced} was misfiled."), META),
                     (iri("note/x"), SBU.about, iri(other), META)])
    assert store.tagged()
    barrier = Barrier(KEY)
    plan, _ = forget(store, [patient], barrier)
    assert barrier.check(f"Record {mrn} was misfiled.", [other]), "a value a retained note carries is shared"
    query = f"SELECT ?n WHERE {{ GRAPH {META.n3()} {{ ?n {SBU.carries.n3()} ?t }} }}"
    carriers = {str(r[0]) for r in store.query(query)}
    assert carriers and not carriers & {str(n) for n in plan.closure}


def test_a_memory_written_without_value_tags_is_read_in_full():
    """A memory begun by an older sbu (no tags, not flagged) still finds a shared value, by reading its texts."""
    corpus = generate(CohortConfig(n_patients=12, seed=3))
    store = open_store("oxigraph:", sealed=False)
    store.update(f'INSERT {{ GRAPH {META.n3()} {{ {iri("note/old").n3()} {SBU.text.n3()} "old" }} }} WHERE {{}}')
    ingest(store, corpus)  # into a memory that was not empty: its literals are tagged from now on, it is not
    assert not store.tagged()
    patient, other = corpus.splits["forget10"][0], corpus.splits["retain"][0]
    date = next(f.value for f in corpus.facts if f.about == patient and f.attribute == "last_visit")
    store.update(f'INSERT {{ GRAPH {iri("fact/x/visit").n3()} {{ {iri(other).n3()} '
                 f'<https://w3id.org/sbu/ns#visit> "{date}" }} }} WHERE {{}}')  # written without tags
    barrier = Barrier(KEY)
    forget(store, [patient], barrier)
    assert barrier.check(f"Visit on {date}.", [other])
