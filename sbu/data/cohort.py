"""The synthetic medical cohort: fictitious patients, their private facts, QA probes, splits and memory episodes.

In the spirit of TOFU's fictitious authors (Maini et al., 2024): nothing here describes a real person, so a model
trained on it has facts to forget whose ground truth we own. Everything follows from one seed; the same
:class:`CohortConfig` gives byte-identical JSONL (``Corpus.write``).

Splits (patient entity ids unless stated):

- ``holdout`` — patients that appear in **no** training text: the non-members of membership inference;
- ``forget01`` ⊂ ``forget05`` ⊂ ``forget10`` — trained patients, about 1 / 5 / 10 % of the cohort (at least one);
- ``retain`` — trained patients outside ``forget10``, the same retained set whichever forget split is used;
- ``test`` — QA ids of knowledge-base questions in held-out phrasings (general medical knowledge).

Holdout and forget patients are drawn from one random permutation, so they are exchangeable: a model that never
saw the forget patients (the *retrain* model) cannot tell them from holdout patients.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

import pandas as pd

from sbu import checks
from sbu.data import knowledge as kb
from sbu.data import templates as tpl
from sbu.data.schema import Artifact, Corpus, Entity, Fact, QAItem
from sbu.errors import ConfigError, UnknownSplitError

FORGET_SPLITS = {"forget01": 0.01, "forget05": 0.05, "forget10": 0.10}
PATIENT_SPLITS = ("holdout", "retain", *FORGET_SPLITS)
SPLITS = (*PATIENT_SPLITS, "test")
# what the splits divide: the cohort's patients, or a study corpus's abstracts (sbu.data.pubmed_study)
SUBJECT_TYPES = ("patient", "document")  # Entity.type
SUBJECT_KINDS = ("patient", "document")  # QAItem.kind of their probes

SYLLABLES = ("ka", "lo", "mi", "ra", "ven", "to", "su", "del", "ni", "bo", "ta", "ri", "zen", "ma", "lu", "fe",
             "go", "sa", "vi", "no", "par", "ke", "dru", "hal", "mo", "sin", "te", "vo", "bri", "ul")
CITIES = ("Lyon", "Porto", "Bergen", "Graz", "Tampere", "Utrecht", "Bilbao", "Gdansk", "Ghent", "Brno",
          "Malmo", "Turin", "Leeds", "Basel", "Aarhus", "Cork")
ALLERGIES = ("penicillin", "sulfa drugs", "latex", "aspirin", "ibuprofen", "codeine", "shellfish", "peanuts",
             "eggs", "iodine contrast", "cephalosporins", "bee stings")
MARKERS = ("CYP2C19*2", "HLA-B*57:01", "BRCA1 185delAG", "APOE e4", "Factor V Leiden", "SLCO1B1*5", "TPMT*3A",
           "DPYD*2A", "G6PD A-", "VKORC1 1639A", "CYP2D6*4", "HFE C282Y")
# Attributes whose values are unique to one patient: their distractors are fresh values nobody has, so that a
# holdout patient's correct option is no less familiar to the model than its distractors.
UNIQUE_ATTRIBUTES = ("mrn", "last_visit")
# What each visit note records: intake at the first visit, treatment at the second, the date at the last.
VISIT_RECORDS = {0: ("age", "city", "condition", "allergy", "mrn", "marker"), 1: ("dose", "comorbidity")}


@dataclass(frozen=True)
class CohortConfig:
    n_patients: int = 60  # smoke profile; the paper profile uses 400
    holdout_share: float = 0.2  # patients never trained on
    comorbidity_share: float = 0.3  # patients with a second condition
    patients_per_summary: int = 5  # patients cited by one per-condition cohort summary
    n_options: int = 4  # answer options per multiple-choice item
    seed: int = 0
    forget_shares: dict[str, float] = field(default_factory=lambda: dict(FORGET_SPLITS))

    def __post_init__(self):
        for name in ("n_patients", "patients_per_summary"):
            checks.integer(name, getattr(self, name), 1)
        checks.integer("n_options", self.n_options, 2, len(CITIES))
        for name in ("holdout_share", *(f"forget share {k}" for k in self.forget_shares)):
            value = self.holdout_share if name == "holdout_share" else self.forget_shares[name.split()[-1]]
            if not isinstance(value, (int, float)) or not 0 < value < 1:
                raise ConfigError(f"{name} must lie strictly between 0 and 1, got {value!r}")
        checks.share("comorbidity_share", self.comorbidity_share)
        n_holdout, n_forget = self.split_sizes()
        if n_holdout + n_forget >= self.n_patients:
            raise ConfigError(
                f"n_patients={self.n_patients} is too small: {n_holdout} holdout and {n_forget} forget10 patients "
                "leave no retained patient; use more patients or smaller shares")

    def split_sizes(self) -> tuple[int, int]:
        """(number of holdout patients, number of patients in the largest forget split)."""
        n_holdout = max(1, round(self.holdout_share * self.n_patients))
        n_forget = max(max(1, round(s * self.n_patients)) for s in self.forget_shares.values())
        return n_holdout, n_forget


def patient_name(rng: random.Random) -> str:
    first = "".join(rng.choice(SYLLABLES) for _ in range(2))
    last = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 3))))
    return f"{first.capitalize()} {last.capitalize()}"


def _date(rng: random.Random, start: dt.date, span_days: int) -> str:
    return (start + dt.timedelta(days=rng.randrange(span_days))).isoformat()


def _patient_values(rng: random.Random, used_mrns: set[str]) -> dict[str, object]:
    conditions = list(kb.CONDITIONS)
    condition = rng.choice(conditions)
    values: dict[str, object] = {
        "age": str(rng.randint(20, 89)),
        "city": rng.choice(CITIES),
        "condition": condition,
        "allergy": rng.choice(ALLERGIES),
        "dose": rng.choice(kb.doses_of(kb.condition_attribute(condition, "first_line_drug"))),
        "marker": rng.choice(MARKERS),
    }
    while (mrn := str(rng.randrange(100000, 1000000))) in used_mrns:
        pass
    used_mrns.add(mrn)
    values["mrn"] = mrn
    visits = sorted({_date(rng, dt.date(2023, 1, 1), 1000) for _ in range(rng.choice((2, 3)))})
    values["visits"] = visits
    values["last_visit"] = visits[-1]
    return values


def _options(rng: random.Random, correct: str, pool: list[str], n: int) -> tuple[tuple[str, ...], int]:
    distractors = rng.sample([v for v in dict.fromkeys(pool) if v != correct], n - 1)
    options = [correct, *distractors]
    rng.shuffle(options)
    return tuple(options), options.index(correct)


def _fresh_values(rng: random.Random, attribute: str, taken: set[str], n: int) -> list[str]:
    """Distractors for unique attributes: values that no patient has (so no text ever contains them)."""
    out: list[str] = []
    while len(out) < n:
        if attribute == "mrn":
            v = str(rng.randrange(100000, 1000000))
        else:
            v = _date(rng, dt.date(2023, 1, 1), 1000)
        if v not in taken and v not in out:
            out.append(v)
    return out


def _qa_items(subject_id, name, attribute, value, fact_id, options, answer, questions, kind):
    """One QA item per question template; the first N_TRAIN_QUESTIONS[kind] are train phrasings."""
    items = []
    for i, question in enumerate(questions):
        phrasing = "train" if i < tpl.N_TRAIN_QUESTIONS[kind] else "heldout"
        items.append(QAItem(
            id=f"qa/{subject_id.split('/', 1)[1]}/{attribute}/{i}", question=tpl.render(question, name, value),
            options=options, answer=answer, about=subject_id, attribute=attribute, fact_ids=(fact_id,),
            phrasing=phrasing, kind=kind))
    return items


def _fact(subject_id, name, attribute, value, sentences, entities=(), kind="patient") -> Fact:
    texts = [tpl.render(s, name, value) for s in sentences]
    n_train = tpl.N_TRAIN_SENTENCES[kind]
    return Fact(id=f"fact/{subject_id.split('/', 1)[1]}/{attribute}", about=subject_id, attribute=attribute,
                value=value, texts=tuple(texts[:n_train]),
                paraphrases=tuple(texts[n_train:]), entities=tuple(entities))


def _patient_records(rng, pid, name, values, taken, n_options) -> tuple[list[Fact], list[QAItem]]:
    """One patient's facts and multiple-choice QA items."""
    facts, qa = [], []
    for attribute in tpl.PATIENT:
        if attribute not in values:
            continue
        value = str(values[attribute])
        linked = ()
        if attribute in ("condition", "comorbidity"):
            linked = (f"condition/{value.lower().replace(' ', '_')}",)
        fact = _fact(pid, name, attribute, value, tpl.PATIENT[attribute]["sentences"], linked)
        facts.append(fact)
        if attribute in UNIQUE_ATTRIBUTES:
            pool = [value, *_fresh_values(rng, attribute, taken[attribute], n_options - 1)]
        elif attribute == "dose":
            pool = kb.doses_of(kb.condition_attribute(values["condition"], "first_line_drug"))
        elif attribute in ("condition", "comorbidity"):
            pool = [c for c in kb.CONDITIONS if c not in (values["condition"], values.get("comorbidity"))]
            pool.append(value)
        else:
            pool = {"age": [str(a) for a in range(20, 90)], "city": list(CITIES), "allergy": list(ALLERGIES),
                    "marker": list(MARKERS)}[attribute]
        options, answer = _options(rng, value, pool, n_options)
        qa += _qa_items(pid, name, attribute, value, fact.id, options, answer,
                        tpl.PATIENT[attribute]["questions"], "patient")
    return facts, qa


def reading_patients(corpus: Corpus, n: int, seed: int = 0) -> tuple[list[Fact], list[QAItem]]:
    """Facts and QA of ``n`` extra fictitious patients, disjoint from the cohort in names and unique values.

    They exist only to teach reading: the training recipe shows their facts in a context, never alone, so the
    only way to answer is to read the context (see :mod:`sbu.model.recipe`).
    """
    rng = random.Random(f"reading-{seed}")
    names = {e.name for e in corpus.entities}
    taken = {a: {f.value for f in corpus.facts if f.attribute == a} for a in UNIQUE_ATTRIBUTES}
    taken = {a: v | {o for q in corpus.qa if q.attribute == a for o in q.options} for a, v in taken.items()}
    used_mrns = set(taken["mrn"])
    facts, qa = [], []
    for i in range(n):
        while (name := patient_name(rng)) in names:
            pass
        names.add(name)
        values = _patient_values(rng, used_mrns)
        taken["last_visit"].add(str(values["last_visit"]))
        f, q = _patient_records(rng, f"reader/r{i:04d}", name, values, taken, 4)
        facts += f
        qa += q
    return facts, qa


def generate(config: CohortConfig | None = None) -> Corpus:
    """Generate the cohort as a :class:`Corpus` (deterministic in ``config``)."""
    config = config or CohortConfig()
    rng = random.Random(config.seed)
    entities: list[Entity] = []
    facts: list[Fact] = []
    qa: list[QAItem] = []

    # -- knowledge base -----------------------------------------------------------------------------------
    for condition, attrs in kb.CONDITIONS.items():
        cid = f"condition/{condition.lower().replace(' ', '_')}"
        entities.append(Entity(cid, condition, "condition"))
        for attribute, value in zip(kb.KB_ATTRIBUTES, attrs):
            fact = _fact(cid, condition, attribute, value, tpl.KNOWLEDGE[attribute]["sentences"], kind="knowledge")
            facts.append(fact)
            pool = [kb.condition_attribute(c, attribute) for c in kb.CONDITIONS]
            options, answer = _options(rng, value, pool, config.n_options)
            qa += _qa_items(cid, condition, attribute, value, fact.id, options, answer,
                            tpl.KNOWLEDGE[attribute]["questions"], "knowledge")

    # -- patients ------------------------------------------------------------------------------------------
    names: set[str] = set()
    used_mrns: set[str] = set()
    patients = []
    for i in range(config.n_patients):
        while (name := patient_name(rng)) in names:
            pass
        names.add(name)
        pid = f"patient/p{i:03d}"
        values = _patient_values(rng, used_mrns)
        if rng.random() < config.comorbidity_share:
            values["comorbidity"] = rng.choice([c for c in kb.CONDITIONS if c != values["condition"]])
        patients.append((pid, name, values))

    order = list(range(config.n_patients))
    rng.shuffle(order)
    n_holdout, _ = config.split_sizes()
    holdout = sorted(patients[i][0] for i in order[:n_holdout])
    trained = order[n_holdout:]
    splits: dict[str, list[str]] = {"holdout": holdout}
    for split, share in config.forget_shares.items():
        splits[split] = sorted(patients[i][0] for i in trained[: max(1, round(share * config.n_patients))])
    largest = max(config.forget_shares, key=lambda s: len(splits[s]))
    splits["retain"] = sorted(patients[i][0] for i in trained if patients[i][0] not in set(splits[largest]))
    split_of = {pid: "retain" for pid in splits["retain"]}
    split_of.update({pid: "holdout" for pid in holdout})
    for split in sorted(config.forget_shares, key=lambda s: -len(splits[s])):
        split_of.update({pid: split for pid in splits[split]})  # the smallest forget split wins

    taken = {a: {str(v[a]) for _, _, v in patients} for a in UNIQUE_ATTRIBUTES}
    for pid, name, values in patients:
        entities.append(Entity(pid, name, "patient", {
            "split": split_of[pid], "sex": rng.choice(("female", "male")), "visits": list(values["visits"])}))
        new_facts, new_qa = _patient_records(rng, pid, name, values, taken, config.n_options)
        facts += new_facts
        qa += new_qa

    splits["test"] = [q.id for q in qa if q.kind == "knowledge" and q.phrasing == "heldout"]
    artifacts = memory_artifacts(patients, facts, config, rng)
    meta = {"generator": "sbu.data.cohort", "config": {**config.__dict__}, "n_entities": len(entities),
            "n_facts": len(facts), "n_qa": len(qa), "n_artifacts": len(artifacts)}
    return Corpus("cohort", entities, facts, qa, artifacts, splits, meta)


def memory_artifacts(patients, facts, config: CohortConfig, rng: random.Random) -> list[Artifact]:
    """Visit notes (episodes), per-patient summaries (isolated) and per-condition summaries (shared).

    Each artifact names the facts it was derived from: a patient summary derives only from that patient's facts,
    so forgetting the patient makes it *isolated*; a condition summary cites several patients and the knowledge
    base, so forgetting one patient makes it *shared*.
    """
    fact_of = {(f.about, f.attribute): f for f in facts}
    facts_of: dict[str, list] = {}
    for fact in facts:
        facts_of.setdefault(fact.about, []).append(fact)
    out: list[Artifact] = []
    by_condition: dict[str, list[tuple[str, str]]] = {}
    for pid, name, values in patients:
        key = pid.split("/")[1]
        visits = values["visits"]
        for n, date in enumerate(visits):
            attrs = VISIT_RECORDS.get(n, ()) + (("last_visit",) if n == len(visits) - 1 else ())
            recorded = [fact_of[(pid, a)] for a in attrs if (pid, a) in fact_of]
            text = f"Visit note {date}: {name}. " + " ".join(f.text for f in recorded)
            out.append(Artifact(f"episode/{key}/{n}", "episode", text, (pid,), tuple(f.id for f in recorded)))
        own = facts_of.get(pid, [])
        summary = f"Summary of {name}: " + " ".join(f.text for f in own)
        out.append(Artifact(f"summary/{key}", "patient_summary", summary, (pid,), tuple(f.id for f in own)))
        by_condition.setdefault(values["condition"], []).append((pid, name))

    for condition in kb.CONDITIONS:
        members = by_condition.get(condition, [])
        if not members:
            continue
        cited = rng.sample(members, min(config.patients_per_summary, len(members)))
        cited.sort()
        cid = f"condition/{condition.lower().replace(' ', '_')}"
        sources = [fact_of[(cid, a)] for a in kb.KB_ATTRIBUTES] + [fact_of[(pid, "condition")] for pid, _ in cited]
        text = (f"Cohort summary for {condition}: first-line {kb.condition_attribute(condition, 'first_line_drug')}, "
                f"checked with the {kb.condition_attribute(condition, 'key_test')}. Patients treated: "
                + ", ".join(name for _, name in cited) + ".")
        out.append(Artifact(f"cohort_summary/{cid.split('/')[1]}", "condition_summary", text,
                            (cid, *(pid for pid, _ in cited)), tuple(f.id for f in sources)))
    return out


def patients_in(corpus: Corpus, split: str) -> list[str]:
    """Patient ids of a patient split; a clear error for an unknown split name."""
    if split not in PATIENT_SPLITS or split not in corpus.splits:
        raise UnknownSplitError(f"unknown patient split {split!r}; choose one of {', '.join(PATIENT_SPLITS)}")
    return list(corpus.splits[split])


def trained_patients(corpus: Corpus, exclude: str | None = None) -> list[str]:
    """Patients a model is trained on: everyone but the holdout, and also without split ``exclude`` (retrain)."""
    skip = set(patients_in(corpus, "holdout"))
    if exclude is not None:
        if exclude not in FORGET_SPLITS:
            raise UnknownSplitError(f"can only exclude a forget split ({', '.join(FORGET_SPLITS)}), got {exclude!r}")
        skip |= set(patients_in(corpus, exclude))
    return [e.id for e in corpus.entities if e.type in SUBJECT_TYPES and e.id not in skip]


def summary(corpus: Corpus):
    """A table of the cohort: per patient split, how many patients, facts and QA items (train / held-out)."""
    rows = []
    for split in PATIENT_SPLITS:
        ids = patients_in(corpus, split)
        rows.append({"split": split, "patients": len(ids), "facts": len(corpus.facts_about(ids)),
                     "QA (train phrasing)": len(corpus.qa_about(ids, "train")),
                     "QA (held-out phrasing)": len(corpus.qa_about(ids, "heldout"))})
    conditions = [e.id for e in corpus.entities if e.type == "condition"]
    rows.append({"split": "knowledge base", "patients": 0, "facts": len(corpus.facts_about(conditions)),
                 "QA (train phrasing)": len(corpus.qa_about(conditions, "train")),
                 "QA (held-out phrasing)": len(corpus.qa_about(conditions, "heldout"))})
    return pd.DataFrame(rows)
