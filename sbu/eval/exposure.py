"""Memory exposure and retained recall: what a retriever still shows of forgotten data, and whether it
still finds what was kept."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from rdflib import URIRef

from sbu.data.schema import Corpus, QAItem
from sbu.memory.vocab import iri


def forgotten_strings(corpus: Corpus, entity_ids: Iterable[str]) -> list[str]:
    """The names of the forgotten entities and every value of their facts that no retained fact or artifact also
    holds (a city that other patients share is not a leak; a record number is)."""
    ids = set(entity_ids)
    retained = retained_text(corpus, ids)
    names = [e.name for e in corpus.entities if e.id in ids]
    values = {f.value for f in corpus.facts if f.about in ids}
    return names + sorted(v for v in values if not _occurs(v, retained))


def retained_text(corpus: Corpus, entity_ids: Iterable[str]) -> str:
    """Every fact and artifact text that is not about the given entities, joined: what stays in memory."""
    ids = set(entity_ids)
    return " ".join([f.text for f in corpus.facts if f.about not in ids]
                    + [a.text for a in corpus.artifacts if not ids & set(a.about)])


def _occurs(needle: str, text: str) -> bool:
    """``needle`` in ``text`` as whole words (an age of 89 is not found inside 1989)."""
    return re.search(rf"(?<![0-9A-Za-z]){re.escape(needle)}(?![0-9A-Za-z])", text) is not None


def memory_exposure(retriever, probes: Sequence[str], forgotten_nodes: Iterable[URIRef],
                    forgotten: Sequence[str], k: int = 5) -> float:
    """Share of probes whose top-``k`` holds a forgotten node or a forgotten string."""
    nodes = set(forgotten_nodes)
    exposed = 0
    for probe in probes:
        hits = retriever.search(probe, k)
        exposed += any(h.iri in nodes or any(_occurs(s, h.text) for s in forgotten) for h in hits)
    return exposed / len(probes) if probes else float("nan")


def retained_recall(retriever, items: Sequence[QAItem], k: int = 5) -> float:
    """Share of QA items about retained entities whose top-``k`` holds one of the facts that answer them."""
    found = 0
    for item in items:
        wanted = {iri(f) for f in item.fact_ids}
        found += any(h.iri in wanted for h in retriever.search(item.question, k))
    return found / len(items) if items else float("nan")
