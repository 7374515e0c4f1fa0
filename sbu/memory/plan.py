"""The forget plan: a dry run that says what a request would prune, tombstone and keep.

Read it as a straight path: seeds (assertions about the target, and artifacts about the target alone, such as an
agent's cached answers about that patient [choice]) → closure (everything derived from them) → split:
*isolated* artifacts, every source of which lies in the closure, are pruned; *shared* artifacts, which also derive
from something outside it, are tombstoned and repaired; an entity all of whose assertions are in the closure is
pruned, the others stay. Nothing is changed here.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd
from rdflib import URIRef

from sbu.data.forget_set import ForgetSet
from sbu.errors import StoreError
from sbu.memory.barrier import record_id
from sbu.memory.closure import closure, seeds_of
from sbu.memory.sparql import load_query, with_not_in, with_values
from sbu.memory.store import MemoryStore


@dataclass(frozen=True)
class ForgetPlan:
    targets: tuple[str, ...]  # entity ids named by the request
    seeds: frozenset[URIRef]
    closure: frozenset[URIRef]
    isolated: frozenset[URIRef]  # prune: seeds and artifacts derived only from the closure
    shared: frozenset[URIRef]  # tombstone, redact, re-derive from retained sources
    entities_pruned: frozenset[URIRef]
    entities_kept: frozenset[URIRef]  # entities the closure touches that retained assertions still reference
    seconds: float = field(default=0.0, compare=False)  # how long planning took

    def counts(self) -> dict[str, int]:
        return {"seeds": len(self.seeds), "closure": len(self.closure), "isolated": len(self.isolated),
                "shared": len(self.shared), "entities_pruned": len(self.entities_pruned),
                "entities_kept": len(self.entities_kept)}

    def forget_set(self) -> ForgetSet:
        """What the parameter pathway forgets: the record ids of the seeds and of the closure."""
        return ForgetSet(frozenset(record_id(s) for s in self.seeds), frozenset(record_id(x) for x in self.closure))

    def as_record(self) -> dict[str, list[str]]:
        """The plan as lists of IRIs (for a sealed journal entry: a resume applies the very plan the barrier was
        raised for, not one re-planned from a memory that a failed update left half-changed)."""
        return {"targets": list(self.targets), **{name: sorted(str(x) for x in getattr(self, name)) for name in (
            "seeds", "closure", "isolated", "shared", "entities_pruned", "entities_kept")}}

    @classmethod
    def from_record(cls, record: dict) -> ForgetPlan:
        sets = {name: frozenset(URIRef(x) for x in record[name]) for name in (
            "seeds", "closure", "isolated", "shared", "entities_pruned", "entities_kept")}
        return cls(tuple(record["targets"]), **sets)

    def table(self) -> pd.DataFrame:
        """One row per IRI with its decision, for display."""
        rows = [(str(x), "prune" if x in self.isolated else "tombstone") for x in sorted(self.closure)]
        rows += [(str(e), "prune entity") for e in sorted(self.entities_pruned)]
        rows += [(str(e), "keep entity") for e in sorted(self.entities_kept)]
        return pd.DataFrame(rows, columns=["iri", "decision"])


def split(store: MemoryStore, closed: set[URIRef], seeds: Iterable[URIRef] = ()) -> tuple[set[URIRef], set[URIRef]]:
    """(isolated, shared) of a closure. An artifact is shared when one of its direct sources lies outside the
    closure or is itself shared; the rule is applied in derivation order, so depth does not matter. ``seeds`` are
    never shared: an artifact about the target alone is forgotten whole, whatever it was derived from."""
    if not closed:
        return set(), set()
    sources: dict[URIRef, set[URIRef]] = {}
    for row in store.query(with_values(load_query("sources"), "x", sorted(closed))):
        sources.setdefault(URIRef(str(row[0])), set()).add(URIRef(str(row[1])))
    shared: set[URIRef] = set()
    pinned = set(seeds)
    changed = True
    while changed:  # a fixed point over the closure's sub-DAG (small: it follows the closure, not the graph)
        changed = False
        for x, srcs in sources.items():
            if x not in shared and x not in pinned and any(s not in closed or s in shared for s in srcs):
                shared.add(x)
                changed = True
    return closed - shared, shared


def plan_forget(store: MemoryStore, targets: Iterable[str]) -> ForgetPlan:
    """The dry run of forgetting every assertion about ``targets`` (entity ids such as ``patient/p007``)."""
    started = time.perf_counter()
    if isinstance(targets, str):
        targets = [targets]
    if not isinstance(targets, Iterable):
        raise StoreError(f"a forget request is a list of entity ids such as ['patient/p007'], got {targets!r:.80}")
    targets = tuple(targets)
    if not targets:
        raise StoreError("an empty forget request: name at least one entity id, e.g. 'patient/p007'")
    bad = [t for t in targets if not isinstance(t, str) or not t.strip()]
    if bad:
        raise StoreError(f"a forget request names entities by id strings such as 'patient/p007'; got {bad[0]!r}")
    targets = tuple(dict.fromkeys(record_id(t) for t in targets))  # an entity's full IRI names it too
    seeds: set[URIRef] = set()
    for target in targets:
        found = seeds_of(store, target)
        if not found:
            raise StoreError(f"no assertion in memory is about {target!r}; check the id (e.g. 'patient/p007')")
        seeds |= set(found)
    closed = closure(store, seeds)
    isolated, shared = split(store, closed, seeds)
    touched = sorted(URIRef(str(row[0])) for row in store.query(with_values(load_query("entities"), "seed",
                                                                              sorted(seeds))))
    ask = with_not_in(load_query("entity_kept"), "other", sorted(closed))
    kept_of = {e: bool(store.query(with_values(ask, "entity", [e])).askAnswer) for e in touched}
    pruned = {e for e, kept in kept_of.items() if not kept}
    return ForgetPlan(targets, frozenset(seeds), frozenset(closed), frozenset(isolated), frozenset(shared),
                      frozenset(pruned), frozenset(set(kept_of) - pruned), time.perf_counter() - started)
