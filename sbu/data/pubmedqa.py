"""PubMedQA-L (Jin et al., 2019; MIT licence) in the shared record schema.

``ori_pqal.json`` holds 1,000 expert-labelled questions, each with an abstract (context paragraphs with section
labels), MeSH terms, a year and a yes/no/maybe decision. Here every abstract becomes a *document* entity, each of
its sentences a *fact* about that document (``entities`` = its MeSH concepts), each MeSH term a *concept* entity,
and the question a 3-option QA item. Each MeSH concept gets a *concept summary* derived from every abstract that
carries it (through the last sentence of the abstract's context). MeSH concepts are what make this a real graph
with real sharing: forgetting one abstract touches the summaries of concepts that hundreds of other abstracts carry.

The file is read where it lies (by default ``../shared/data/pubmedqa/`` beside the project, or
``$SBU_PUBMEDQA``); it is never copied into the project.
"""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path

from sbu.data.schema import Artifact, Corpus, Entity, Fact, QAItem
from sbu.data.summaries import summary_text
from sbu.errors import ConfigError, DataFileError

OPTIONS = ("yes", "no", "maybe")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\[])")


def default_path() -> Path:
    """``$SBU_PUBMEDQA`` if set, else ``ori_pqal.json`` in ``shared/data/pubmedqa`` beside the project."""
    if os.environ.get("SBU_PUBMEDQA"):
        return Path(os.environ["SBU_PUBMEDQA"])
    return Path(__file__).resolve().parents[3] / "shared" / "data" / "pubmedqa" / "ori_pqal.json"


def concept_id(term: str) -> str:
    return "mesh/" + re.sub(r"[^A-Za-z0-9]+", "_", term).strip("_")


def section_name(label: str | None) -> str:
    """An abstract's section label as an attribute name: ``"PATIENTS AND METHODS"`` → ``"patients_and_methods"``."""
    return re.sub(r"[^a-z0-9]+", "_", (label or "sentence").lower()).strip("_") or "sentence"


def split_sentences(paragraph: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(paragraph) if s.strip()]


def resolve(path: str | Path | None = None) -> Path:
    """The path of ``ori_pqal.json``: ``path`` (the file or its folder), else :func:`default_path`."""
    path = Path(path) if path else default_path()
    return path / "ori_pqal.json" if path.is_dir() else path


@lru_cache(maxsize=4)
def _read(path: str, mtime: float) -> dict:
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataFileError(f"{path!r} is not PubMedQA-L JSON ({err}); expected ori_pqal.json") from err
    if not isinstance(raw, dict) or not all(isinstance(v, dict) and "QUESTION" in v for v in raw.values()):
        raise DataFileError(f"{path!r} does not look like ori_pqal.json: expected {{pmid: {{QUESTION, …}}}}")
    return raw


def read_raw(path: str | Path | None = None) -> dict:
    """``ori_pqal.json`` as read (pmid → record), checked; read once per process and file version."""
    path = resolve(path)
    if not path.is_file():
        raise DataFileError(f"PubMedQA-L not found at {str(path)!r}: pass the path of ori_pqal.json "
                            "(it lies in shared/data/pubmedqa beside the project) or set SBU_PUBMEDQA")
    return dict(_read(str(path), path.stat().st_mtime))


def document_records(pmid: str, rec: dict, entities: dict[str, Entity]) -> tuple[str, list[Fact]]:
    """One abstract as a document entity and one fact per context sentence (``entities`` gains the document and
    its MeSH concepts); returns the document id and its facts in sentence order."""
    doc = f"pubmed/{pmid}"
    concepts = tuple(concept_id(t) for t in rec.get("MESHES", []))
    for term, cid in zip(rec.get("MESHES", []), concepts):
        entities.setdefault(cid, Entity(cid, term, "concept"))
    entities[doc] = Entity(doc, rec["QUESTION"], "document",
                           {"year": int(rec["YEAR"]) if str(rec.get("YEAR", "")).isdigit() else None,
                            "label": rec["final_decision"]})
    facts = []
    labels = rec.get("LABELS") or [""] * len(rec["CONTEXTS"])
    for paragraph, section in zip(rec["CONTEXTS"], labels):
        for sentence in split_sentences(paragraph):
            facts.append(Fact(f"fact/pubmed/{pmid}/{len(facts)}", doc, section_name(section), sentence,
                              (sentence,), (), concepts))
    return doc, facts


def load(path: str | Path | None = None, limit: int | None = None) -> Corpus:
    """Read ``ori_pqal.json`` into a :class:`Corpus`.

    ``limit``: keep the first ``limit`` abstracts of the file (a smaller memory for quick runs); None keeps all.
    Splits: ``test`` — QA ids of the 500 questions in ``test_ground_truth.json`` when that file lies beside
    ``path`` (PubMedQA's official test set), ``train`` — the rest.
    """
    path = resolve(path)
    raw = read_raw(path)

    entities: dict[str, Entity] = {}
    facts, qa = [], []
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ConfigError(f"limit must be a positive number of abstracts (or None for all), got {limit!r}")
        raw = dict(list(raw.items())[:limit])
    for pmid, rec in raw.items():
        doc, doc_facts = document_records(pmid, rec, entities)
        facts += doc_facts
        qa.append(QAItem(f"qa/pubmed/{pmid}", rec["QUESTION"], OPTIONS, OPTIONS.index(rec["final_decision"]),
                         doc, "final_decision", tuple(f.id for f in doc_facts), "train", "pubmedqa"))
    test_file = path.with_name("test_ground_truth.json")
    test_ids = set(json.loads(test_file.read_text())) if test_file.is_file() else set()
    splits = {"test": [q.id for q in qa if q.about.split("/")[1] in test_ids],
              "train": [q.id for q in qa if q.about.split("/")[1] not in test_ids]}
    n_concepts = sum(e.type == "concept" for e in entities.values())
    artifacts = concept_summaries(list(entities.values()), facts)
    meta = {"source": str(path), "n_documents": len(raw), "n_concepts": n_concepts, "n_facts": len(facts),
            "n_artifacts": len(artifacts)}
    return Corpus("pubmedqa", list(entities.values()), facts, qa, artifacts, splits, meta)


def concept_summaries(entities: list[Entity], facts: list[Fact]) -> list[Artifact]:
    """One summary per MeSH concept, derived from the last context sentence of every abstract that
    carries the concept, in PMID order."""
    conclusion: dict[str, Fact] = {}
    for fact in facts:  # facts come in sentence order, so the last one seen per abstract is its last sentence
        conclusion[fact.about] = fact
    by_concept: dict[str, list[Fact]] = {}
    for fact in sorted(conclusion.values(), key=lambda f: f.about):
        for concept in fact.entities:
            by_concept.setdefault(concept, []).append(fact)
    names = {e.id: e.name for e in entities}
    return [Artifact(f"concept_summary/{cid.split('/', 1)[1]}", "concept_summary",
                     summary_text(f"Concept summary for {names[cid]}", [f.text for f in sources]),
                     (cid,), tuple(f.id for f in sources))
            for cid, sources in sorted(by_concept.items())]
