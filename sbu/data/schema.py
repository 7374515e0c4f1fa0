"""Record types shared by the synthetic cohort and PubMedQA-L.

Every data set becomes a :class:`Corpus`: entities (patients, conditions, MeSH concepts), facts (one assertion
each, ``about`` an entity), multiple-choice QA items that probe facts, and derived memory artifacts (summaries
that cite their sources through ``derived_from``). The memory pathway ingests facts and artifacts into RDF; the
parameter pathway trains and scores on the QA items. JSONL files are written with sorted keys so that the same
corpus always gives the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from sbu.errors import DataFileError


@dataclass(frozen=True)
class Entity:
    id: str  # stable id, e.g. "patient/p007", "condition/asthma", "mesh/Apoptosis"
    name: str  # display name
    type: str  # "patient" | "condition" | "concept" | "document"
    attrs: dict[str, Any] = field(default_factory=dict)  # e.g. a patient's split, a paper's year


@dataclass(frozen=True)
class Fact:
    id: str  # "fact/p007/allergy"
    about: str  # entity id the assertion is about
    attribute: str  # "allergy", "first_line_drug", "sentence", …
    value: str  # the asserted value, the plaintext the barrier must never let back
    texts: tuple[str, ...]  # the fact as sentences in the train phrasings (the model reads these)
    paraphrases: tuple[str, ...] = ()  # held-out phrasings, for evaluation only
    entities: tuple[str, ...] = ()  # further entities the fact mentions (a condition, MeSH concepts)

    @property
    def text(self) -> str:
        """The canonical sentence (first train phrasing)."""
        return self.texts[0]


@dataclass(frozen=True)
class QAItem:
    id: str
    question: str
    options: tuple[str, ...]  # answer options; options[answer] is correct
    answer: int
    about: str  # entity id
    attribute: str
    fact_ids: tuple[str, ...]  # the facts that answer it (given as context in open-book QA)
    phrasing: str  # "train" (seen in training) or "heldout" (a paraphrase never trained on)
    kind: str  # "patient" | "knowledge" | "pubmedqa" (a yes/no/maybe question) | "document" (an abstract's cloze item)

    @property
    def answer_text(self) -> str:
        return self.options[self.answer]


@dataclass(frozen=True)
class Artifact:
    """A memory artifact: a visit note, a per-patient summary, a cross-patient summary, a cached answer."""

    id: str
    kind: str  # "episode" | "patient_summary" | "condition_summary" | "concept_summary"
    text: str
    about: tuple[str, ...]  # entities the artifact is about
    derived_from: tuple[str, ...]  # fact or artifact ids it was derived from (PROV-O wasDerivedFrom)


RECORD_TYPES = {"entities": Entity, "facts": Fact, "qa": QAItem, "artifacts": Artifact}


@dataclass
class Corpus:
    """A whole data set in the shared schema, with named splits of entity ids."""

    name: str
    entities: list[Entity]
    facts: list[Fact]
    qa: list[QAItem]
    artifacts: list[Artifact]
    splits: dict[str, list[str]]  # split name -> entity ids (patients) or QA ids, as documented per corpus
    meta: dict[str, Any] = field(default_factory=dict)

    # -- lookups -------------------------------------------------------------------------------------------
    def entity(self, entity_id: str) -> Entity:
        for e in self.entities:
            if e.id == entity_id:
                return e
        raise KeyError(entity_id)

    def facts_about(self, entity_ids) -> list[Fact]:
        ids = set(entity_ids)
        return [f for f in self.facts if f.about in ids]

    def qa_about(self, entity_ids, phrasing: str | None = None) -> list[QAItem]:
        ids = set(entity_ids)
        return [q for q in self.qa if q.about in ids and (phrasing is None or q.phrasing == phrasing)]

    # -- files ---------------------------------------------------------------------------------------------
    def write(self, directory: str | Path) -> list[Path]:
        """Write one JSONL file per record type plus ``splits.json`` and ``meta.json``; return the paths."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for name in RECORD_TYPES:
            path = out / f"{name}.jsonl"
            with path.open("w", encoding="utf-8", newline="\n") as fh:
                for rec in getattr(self, name):
                    fh.write(json.dumps(asdict(rec), sort_keys=True, ensure_ascii=False) + "\n")
            paths.append(path)
        for name, obj in (("splits", self.splits), ("meta", {"name": self.name, **self.meta})):
            path = out / f"{name}.json"
            path.write_text(json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            paths.append(path)
        return paths

    @classmethod
    def read(cls, directory: str | Path) -> Corpus:
        src = Path(directory)
        if not (src / "meta.json").is_file():
            raise DataFileError(f"no corpus at {str(src)!r}: expected meta.json there (write one with Corpus.write)")
        records = {}
        for name, typ in RECORD_TYPES.items():
            names = {f.name for f in fields(typ)}
            rows = []
            for line in (src / f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
                raw = json.loads(line)
                rows.append(typ(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in names}))
            records[name] = rows
        meta = json.loads((src / "meta.json").read_text(encoding="utf-8"))
        splits = json.loads((src / "splits.json").read_text(encoding="utf-8"))
        return cls(name=meta.pop("name"), splits=splits, meta=meta, **records)
