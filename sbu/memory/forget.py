"""Applying a forget plan: raise the barrier, prune, tombstone with redaction, repair.

Read it as two updates, each one request to the store (all-or-nothing where the back end has transactions —
Oxigraph, embedded or served; rdflib's own store applies the operations one by one, docs/backends.md, trap 5):

1. **barrier** — the request node and the keyed hashes of what it forgets go into the metadata graph first, so a
   write-back racing the request is already refused;
2. **forget** — isolated assertions lose their named graph and every metadata triple (in or out); pruned
   entities too; each shared artifact becomes a *tombstone* — its type, ``prov:wasInvalidatedBy`` the request,
   ``prov:invalidatedAtTime`` and a keyed hash of its text (``sbu:textHash``), nothing else — and a *successor*
   re-derived from its retained sources alone takes its place (``prov:wasRevisionOf``). A successor passes the
   barrier like any write; one the barrier refuses is not written and is counted.

Updates are built from fixed IRIs and rdflib-serialized literals, never from pasted text, and split in Python
first (docs/backends.md, trap 7: one SPARQL request that does the whole forget by itself is slow).

3. **erasure** — the data keys of every pruned and tombstoned node are marked before the forget update and
   destroyed right after it (:mod:`sbu.memory.erasure`): whatever copy of their ciphertext is left — RocksDB's
   files, an endpoint's, a backup — no longer opens. Texts read here (names, values, the texts successors are
   made of) are opened from their sealed form; successors' texts are sealed under keys of their own.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from rdflib import Literal, URIRef

from sbu import faults
from sbu.data.summaries import summary_text
from sbu.memory import erasure
from sbu.memory.barrier import Barrier, keyed_hash, record_id
from sbu.memory.plan import ForgetPlan, plan_forget
from sbu.memory.sparql import load_query, with_values
from sbu.memory.store import MemoryStore
from sbu.memory.vocab import META, PROV, RDF, RDFS, SBU, iri

TITLES = {SBU.ConditionSummary: "Cohort summary", SBU.ConceptSummary: "Concept summary",
          SBU.PatientSummary: "Summary", SBU.Episode: "Visit note", SBU.CachedAnswer: "Answer"}
NAMED_TYPES = (SBU.Condition, SBU.Concept)  # entities whose names a successor's title may carry


@dataclass(frozen=True)
class ForgetResult:
    """What one applied request did. ``successors`` maps each tombstone to the artifact that replaces it."""

    request: URIRef
    pruned: frozenset[URIRef]  # assertions, artifacts and entities physically deleted
    tombstoned: frozenset[URIRef]
    successors: dict[URIRef, URIRef] = field(default_factory=dict)
    successor_texts: dict[URIRef, str] = field(default_factory=dict)  # successor IRI → its text
    refused: tuple[URIRef, ...] = ()  # tombstones whose successor the barrier refused
    blocked: int = 0  # hashes the request added to the barrier
    seconds: float = 0.0  # how long applying took (barrier and forget updates)
    compact_seconds: float | None = None  # how long rewriting an on-disk store took (None: not rewritten)
    keys_destroyed: int = 0  # data keys of pruned and tombstoned nodes destroyed (erasure)

    def counts(self) -> dict[str, int]:
        return {"pruned": len(self.pruned), "tombstoned": len(self.tombstoned), "successors": len(self.successors),
                "successors_refused": len(self.refused), "blocked_hashes": self.blocked}


def request_iri(key: bytes, targets: Iterable[str]) -> URIRef:
    """A request's IRI: a keyed hash of its sorted targets, so it names no one and repeats for the same request."""
    return iri("request/" + keyed_hash(key, "request", *sorted(record_id(t) for t in targets))[:20])


def barrier_entries(store: MemoryStore, plan: ForgetPlan, barrier: Barrier, meta: dict | None = None) -> set[str]:
    """The hashes a request blocks: ids and names of the targets, (entity, value) of every seed, every
    closure node. Computed from the store *before* anything is deleted."""
    targets = [iri(t) for t in plan.targets]
    meta = meta if meta is not None else _metadata(store, targets)
    asserted = [(s, p, o, URIRef(str(g))) for g, s, p, o in
                store.query(with_values(load_query("asserted"), "g", sorted(plan.seeds)))]
    pairs = [(str(s), str(o)) for (s, _, _, _), o in zip(asserted, store.reveal(asserted)) if o is not None]
    names = [str(n) for t in targets for n in meta[t].get(RDFS.label, [])]
    return barrier.entries(ids=plan.targets, names=names, pairs=pairs, nodes=plan.closure)


def successor_count(store: MemoryStore, request: URIRef) -> int:
    """How many successors ``request`` wrote (``queries/successors.rq``)."""
    rows = list(store.query(with_values(load_query("successors"), "request", [request])))
    return int(rows[0][0])  # read to the end: an open result keeps the store (and its lock) alive


def applied(store: MemoryStore, request: URIRef) -> bool:
    """Whether the forget update of ``request`` is in ``store`` (it writes the request's start time in the same
    update that prunes and tombstones, so this is all or nothing)."""
    return bool(store.query(f"ASK {{ GRAPH {META.n3()} {{ {request.n3()} {PROV.startedAtTime.n3()} ?t }} }}").askAnswer)


def forget(store: MemoryStore, targets: Iterable[str], barrier: Barrier | None = None,
           now: datetime | None = None, compact: bool = True) -> tuple[ForgetPlan, ForgetResult]:
    """Plan and apply a request in one call; returns the plan and the result. Texts and values are erased by
    destroying the forgotten nodes' keys (in :func:`apply_forget`); ``compact`` then rewrites an on-disk store
    (:meth:`MemoryStore.compact`) so that no file keeps the deleted nodes' IRIs, which name record ids — not needed
    for the texts any more, and skipped where ids are not secret."""
    plan = plan_forget(store, targets)
    result = apply_forget(store, plan, barrier, now)
    if compact and store.path is not None:
        started = time.perf_counter()
        store.compact()
        result = replace(result, compact_seconds=time.perf_counter() - started)
    return plan, result


def _metadata(store: MemoryStore, nodes: Iterable[URIRef]) -> dict[URIRef, dict[URIRef, list]]:
    nodes = sorted(set(nodes))
    out: dict[URIRef, dict[URIRef, list]] = {n: {} for n in nodes}
    if nodes:
        rows = [(URIRef(str(x)), URIRef(str(p)), o, META)
                for x, p, o in store.query(with_values(load_query("metadata"), "x", nodes))]
        for (x, p, _, _), o in zip(rows, store.reveal(rows)):
            if o is not None:  # None: a text whose key is destroyed
                out[x].setdefault(p, []).append(o)
    for props in out.values():
        for values in props.values():
            values.sort()
    return out


def _one(meta: dict, node: URIRef, prop: URIRef, default=None):
    values = meta.get(node, {}).get(prop, [])
    return values[0] if values else default


def _derivation_order(shared: set[URIRef], meta: dict) -> list[URIRef]:
    """The shared artifacts, each after every shared artifact it derives from (Kahn's order, ties by IRI)."""
    deps = {x: {URIRef(str(s)) for s in meta[x].get(PROV.wasDerivedFrom, [])} & shared for x in shared}
    order: list[URIRef] = []
    ready = sorted(x for x, d in deps.items() if not d)
    while ready:
        x = ready.pop(0)
        order.append(x)
        for y in sorted(deps):
            if x in deps[y]:
                deps[y].discard(x)
                if not deps[y] and y not in order and y not in ready:
                    ready.append(y)
        ready.sort()
    return order


def apply_forget(store: MemoryStore, plan: ForgetPlan, barrier: Barrier | None = None,
                 now: datetime | None = None, repair: bool = True) -> ForgetResult:
    """Apply ``plan`` to ``store`` (which it was planned on): barrier first, then prune, tombstone and repair.
    ``repair=False`` (an ablation) tombstones shared artifacts without successors: what they said about retained
    entities is lost with them."""
    started = time.perf_counter()
    erasure.finish(store, lambda r: applied(store, r))  # keys a crash left marked by an applied request
    barrier = barrier if barrier is not None else Barrier.load(store)
    now = now or datetime.now(UTC)
    request = request_iri(barrier.key, plan.targets)
    targets = [iri(t) for t in plan.targets]
    pruned = set(plan.isolated) | set(plan.entities_pruned)
    meta = _metadata(store, set(plan.closure) | pruned | set(targets))

    # 1. the barrier: ids and names of the targets, (entity, value) of every seed, every closure node
    hashes = barrier_entries(store, plan, barrier, meta)
    barrier.raise_for(store, request, hashes)
    faults.point("memory-apply")  # between the barrier's update and the forget's: the crash tests kill here

    # 2. successors of shared artifacts, from retained sources (and the successors of shared sources) only
    shared = set(plan.shared)
    outside = {URIRef(str(s)) for x in shared for s in meta[x].get(PROV.wasDerivedFrom, [])} - set(plan.closure)
    about = {URIRef(str(e)) for x in shared for e in meta[x].get(SBU.about, [])} - pruned
    meta.update(_metadata(store, outside | about))
    token = request.rsplit("/", 1)[1][:12]
    successors: dict[URIRef, URIRef] = {}
    texts: dict[URIRef, str] = {}
    refused: list[URIRef] = []
    inserts: list[tuple] = []
    for x in _derivation_order(shared, meta) if repair else []:
        direct = sorted(URIRef(str(s)) for s in meta[x].get(PROV.wasDerivedFrom, []))
        sources = [s for s in direct if s not in plan.closure] + [successors[s] for s in direct if s in successors]
        if not sources:
            refused.append(x)
            continue
        kind = _one(meta, x, RDF.type)
        kept_about = [URIRef(str(e)) for e in meta[x].get(SBU.about, []) if URIRef(str(e)) not in pruned]
        named = [str(_one(meta, e, RDFS.label)) for e in kept_about
                 if _one(meta, e, RDF.type) in NAMED_TYPES and _one(meta, e, RDFS.label) is not None]
        title = TITLES.get(kind, "Summary") + (" for " + ", ".join(named) if named else "") + " (revised)"
        text = summary_text(title, [texts[s] if s in texts else str(_one(meta, s, SBU.text, "")) for s in sources])
        if not barrier.check(text, kept_about, sources):
            refused.append(x)
            continue
        new = URIRef(f"{x}/rev/{token}")
        successors[x], texts[new] = new, text
        inserts += [(new, RDF.type, kind), (new, SBU.text, Literal(text)), (new, PROV.wasRevisionOf, x)]
        inserts += [(new, SBU.about, e) for e in kept_about] + [(new, PROV.wasDerivedFrom, s) for s in sources]

    # 3. tombstones: type, invalidation, keyed hash of the text — nothing else
    when = Literal(now)
    for x in sorted(shared):
        inserts += [(x, RDF.type, t) for t in meta[x].get(RDF.type, [])]
        inserts += [(x, PROV.wasInvalidatedBy, request), (x, PROV.invalidatedAtTime, when)]
        old_text = _one(meta, x, SBU.text)
        if old_text is not None:
            inserts.append((x, SBU.textHash, Literal(keyed_hash(barrier.key, "text", str(old_text)))))
    inserts.append((request, PROV.startedAtTime, when))

    inserts = [(s, p, o) for s, p, o, _ in store.seal((s, p, o, META) for s, p, o in inserts)]
    erasure.schedule(store, request, pruned | shared)
    store.update(_forget_update(pruned, shared, meta, inserts))
    faults.point("erase-keys")  # between the graph update and the keys' destruction: resume destroys them
    destroyed = erasure.erase(store, request)
    return ForgetResult(request, frozenset(pruned), frozenset(shared), successors, texts, tuple(refused),
                        len(hashes), time.perf_counter() - started, keys_destroyed=destroyed)


def _forget_update(pruned: set[URIRef], shared: set[URIRef], meta: dict, inserts: list[tuple]) -> str:
    """One SPARQL update request: drops, deletes, then the inserts."""
    g = META.n3()
    ops = [f"DROP SILENT GRAPH {x.n3()}" for x in sorted(pruned) if SBU.Assertion in meta.get(x, {}).get(RDF.type, [])]
    for x in sorted(pruned):
        ops.append(f"DELETE WHERE {{ GRAPH {g} {{ {x.n3()} ?p ?o }} }}")
        ops.append(f"DELETE WHERE {{ GRAPH {g} {{ ?s ?p {x.n3()} }} }}")
    ops += [f"DELETE WHERE {{ GRAPH {g} {{ {x.n3()} ?p ?o }} }}" for x in sorted(shared)]
    if inserts:
        body = " ".join(f"{s.n3()} {p.n3()} {o.n3()} ." for s, p, o in inserts)
        ops.append(f"INSERT {{ GRAPH {g} {{ {body} }} }} WHERE {{}}")
    return " ;\n".join(ops)
