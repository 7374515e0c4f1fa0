"""The hand-off from what a request forgets to the parameter pathway: plain record ids, no RDF and no tensors.

Memory produces a :class:`ForgetSet` from a forget plan (:meth:`sbu.memory.plan.ForgetPlan.forget_set`); the data
produces the same from a forget split or a list of patients, when there is no memory to plan on. Unlearning takes
only this (:func:`sbu.unlearn.forget_sets.unlearning_sets`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sbu.data.cohort import patients_in
from sbu.data.schema import Corpus
from sbu.errors import ConfigError


@dataclass(frozen=True)
class ForgetSet:
    seeds: frozenset[str]  # ids of the records the request names: the targets' facts (their QA probes make D_f)
    closure: frozenset[str]  # ids of every record the request reaches: the seeds and what was derived from them

    def __post_init__(self):
        if not self.seeds:
            raise ConfigError("a forget set names at least one seed record")
        if not self.seeds <= self.closure:
            raise ConfigError("a forget set's closure must hold its seeds")

    def as_record(self) -> dict[str, list[str]]:
        """The forget set as plain sorted lists (what the protocol seals in its journal)."""
        return {"seeds": sorted(self.seeds), "closure": sorted(self.closure)}

    @classmethod
    def from_record(cls, record: dict) -> ForgetSet:
        """The forget set :meth:`as_record` wrote."""
        return cls(frozenset(record["seeds"]), frozenset(record["closure"]))

    @classmethod
    def of_patients(cls, corpus: Corpus, patients: Iterable[str]) -> ForgetSet:
        """Every fact about ``patients`` and every artifact derived from one of them."""
        wanted = set(patients)
        facts = frozenset(f.id for f in corpus.facts if f.about in wanted)
        if not facts:
            raise ConfigError(f"no fact of this corpus is about {sorted(wanted)[:3]}…: nothing to forget")
        derived = frozenset(a.id for a in corpus.artifacts if set(a.derived_from) & facts)
        return cls(facts, facts | derived)

    @classmethod
    def of_split(cls, corpus: Corpus, split: str) -> ForgetSet:
        """The forget set of a forget split's patients (``forget01``, ``forget05``, ``forget10``)."""
        return cls.of_patients(corpus, patients_in(corpus, split))
