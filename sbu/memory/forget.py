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
from sbu.memory.barrier import Barrier, Entries, keyed_hash, record_id
from sbu.memory.normalise import value_unique_forms
from sbu.memory.plan import ForgetPlan, plan_forget
from sbu.memory.sparql import load_query, with_literals, with_values
from sbu.memory.store import MemoryStore
from sbu.memory.tags import value_tags
from sbu.memory.vocab import META, PROV, RDF, RDFS, SBU, iri

TITLES = {SBU.ConditionSummary: "Cohort summary", SBU.ConceptSummary: "Concept summary",
          SBU.PatientSummary: "Summary", SBU.Episode: "Visit note", SBU.CachedAnswer: "Answer"}
NAMED_TYPES = (SBU.Condition, SBU.Concept)  # entities whose names a successor's title may carry
INSERT_BATCH = 200  # triples per INSERT operation: rdflib's SPARQL parser slows down with long ones (docs/backends.md)


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


def barrier_entries(store: MemoryStore, plan: ForgetPlan, barrier: Barrier, meta: dict | None = None) -> Entries:
    """The hashes a request blocks: ids and names of the targets, (entity, value) of every seed, the record
    numbers and dates of the seeds that nothing retained shares (:func:`unique_values`), every closure node.
    Computed from the store *before* anything is deleted."""
    targets = [iri(t) for t in plan.targets]
    meta = meta if meta is not None else _metadata(store, targets)
    asserted = [(s, p, o, URIRef(str(g))) for g, s, p, o in
                store.query(with_values(load_query("asserted"), "g", sorted(plan.seeds)))]
    pairs = [(str(s), str(o)) for (s, _, _, _), o in zip(asserted, store.reveal(asserted)) if o is not None]
    names = [str(n) for t in targets for n in meta[t].get(RDFS.label, [])]
    unique = unique_values(store, plan, [v for _, v in pairs])
    return barrier.entries(ids=plan.targets, names=names, pairs=pairs, nodes=plan.closure, unique=unique)


def unique_values(store: MemoryStore, plan: ForgetPlan, values: Iterable[str]) -> list[str]:
    """The forgotten values the barrier blocks whoever a note is about: record numbers and dates
    (:func:`~sbu.memory.normalise.value_unique_forms`) that no node outside the request's closure carries in any
    separator form — a value a retained patient shares (a visit date) stays bound to its entity, so that no
    retained write is refused for it. The holders are found through the value tags (:mod:`sbu.memory.tags`); a
    memory written before them is read in full (:func:`_unique_values_by_reading`)."""
    candidates = sorted({v for v in values if value_unique_forms(v)})
    if not candidates:
        return []
    if not store.tagged():
        return _unique_values_by_reading(store, plan, candidates)
    key = store.tag_key()
    wanted = {v: value_tags(key, v) for v in candidates}
    rows = store.query(with_literals(load_query("value_holders"), "tag", sorted(set().union(*wanted.values()))))
    held = {str(t) for holder, t in rows if URIRef(str(holder)) not in plan.closure}
    return [v for v in candidates if not wanted[v] & held]


def _unique_values_by_reading(store: MemoryStore, plan: ForgetPlan, candidates: list[str]) -> list[str]:
    """:func:`unique_values` for a memory without value tags: plaintext literals matched by
    ``queries/shared_values.rq``, sealed ones opened (:func:`_sealed_holders`)."""
    rows = store.query(with_literals(load_query("shared_values"), "v", candidates))
    shared = {str(v) for holder, v in rows if URIRef(str(holder)) not in plan.closure}
    for holder, text, whole in _sealed_holders(store):
        if holder not in plan.closure:
            shared.update(v for v in candidates if (v in text if whole else v == text))
    return [v for v in candidates if v not in shared]


def _sealed_holders(store: MemoryStore) -> list[tuple[URIRef, str, bool]]:
    """Every sealed literal opened, as shared_values.rq would see it in plaintext: (the node of a text, the text,
    True) for an ``sbu:text`` of the metadata graph, else (the graph, the value, False); forgotten ones left out."""
    quads = [(s, p, o, URIRef(str(g))) for g, s, p, o in store.query(load_query("sealed_literals"))]
    out = []
    for (s, p, _, g), o in zip(quads, store.reveal(quads)):
        if o is None:
            continue
        out.append((g, str(o), False))
        if str.__eq__(g, META) and str.__eq__(p, SBU.text):
            out.append((URIRef(str(s)), str(o), True))
    return out


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
    done = _tombstoned_by(store, request, shared)  # by an earlier try of this plan that failed part-way
    groups: list[tuple[list[str], list[tuple]]] = []  # (operations, inserts) that land in the same request
    for x in _derivation_order(shared, meta) if repair else []:
        if x in done:  # its successor (if any) is in memory already: later successors derive from it
            new = URIRef(f"{x}/rev/{token}")
            text = _one(_metadata(store, [new]), new, SBU.text)
            if text is not None:
                successors[x], texts[new] = new, str(text)
            else:
                refused.append(x)
            continue
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

    # 3. tombstones: type, invalidation, keyed hash of the text — nothing else — each with its successor
    when = Literal(now)
    g = META.n3()
    for x in sorted(shared - done):
        inserts = [(x, RDF.type, t) for t in meta[x].get(RDF.type, [])]
        inserts += [(x, PROV.wasInvalidatedBy, request), (x, PROV.invalidatedAtTime, when)]
        old_text = _one(meta, x, SBU.text)
        if old_text is not None:
            inserts.append((x, SBU.textHash, Literal(keyed_hash(barrier.key, "text", str(old_text)))))
        if x in successors:
            new, kind = successors[x], _one(meta, x, RDF.type)
            inserts += [(new, RDF.type, kind), (new, SBU.text, Literal(texts[new])), (new, PROV.wasRevisionOf, x)]
            inserts += [(new, SBU.about, e) for e in meta[x].get(SBU.about, []) if URIRef(str(e)) not in pruned]
            inserts += [(new, PROV.wasDerivedFrom, s) for s in _successor_sources(x, meta, plan, successors)]
        groups.append(([f"DELETE WHERE {{ GRAPH {g} {{ {x.n3()} ?p ?o }} }}"], inserts))
    # 4. pruning: assertions lose their graph, every node its metadata (in and out)
    for x in sorted(pruned):
        ops = [f"DROP SILENT GRAPH {x.n3()}"] if SBU.Assertion in meta.get(x, {}).get(RDF.type, []) else []
        ops += [f"DELETE WHERE {{ GRAPH {g} {{ {x.n3()} ?p ?o }} }}",
                f"DELETE WHERE {{ GRAPH {g} {{ ?s ?p {x.n3()} }} }}"]
        groups.append((ops, []))
    groups.append(([], [(request, PROV.startedAtTime, when)]))  # last: marks the request applied (:func:`applied`)

    groups = [(ops, [(s, p, o) for s, p, o, _ in store.seal((s, p, o, META) for s, p, o in inserts)])
              for ops, inserts in groups]  # successors' texts sealed under keys of their own
    erasure.schedule(store, request, pruned | shared)
    for update in update_batches(groups, store.max_update_ops):
        store.update(update)
    faults.point("erase-keys")  # between the graph updates and the keys' destruction: resume destroys them
    destroyed = erasure.erase(store, request)
    return ForgetResult(request, frozenset(pruned), frozenset(shared), successors, texts, tuple(refused),
                        len(hashes), time.perf_counter() - started, keys_destroyed=destroyed)


def _successor_sources(x: URIRef, meta: dict, plan: ForgetPlan, successors: dict) -> list[URIRef]:
    direct = sorted(URIRef(str(s)) for s in meta[x].get(PROV.wasDerivedFrom, []))
    return [s for s in direct if s not in plan.closure] + [successors[s] for s in direct if s in successors]


def _tombstoned_by(store: MemoryStore, request: URIRef, shared: set[URIRef]) -> set[URIRef]:
    """The shared artifacts ``request`` has tombstoned already (an earlier try that failed after some batches)."""
    if not shared:
        return set()
    query = f"SELECT ?x WHERE {{\n#VALUES ?x\nGRAPH {META.n3()} {{ ?x {PROV.wasInvalidatedBy.n3()} {request.n3()} }} }}"
    rows = store.query(with_values(query, "x", sorted(shared)))
    return {URIRef(str(row[0])) for row in rows}


def update_batches(groups: list[tuple[list[str], list[tuple]]], max_ops: int | None,
                   max_triples: int = INSERT_BATCH) -> list[str]:
    """The forget's updates: each group's operations and inserts (an ``INSERT {…} WHERE {}`` of at most
    ``max_triples`` triples per operation) stay in one request; groups are packed into requests of at most
    ``max_ops`` operations (``None``: one request — all or nothing on a transactional back end). Every operation
    deletes or inserts fixed IRIs, so sending a batch again changes nothing: a plan whose batches failed part-way
    is finished by applying it again (:func:`apply_forget`; ``sbu resume``)."""
    g = META.n3()
    requests: list[list[str]] = [[]]
    for ops, inserts in groups:
        group = list(ops)
        for start in range(0, len(inserts), max_triples):
            body = " ".join(f"{s.n3()} {p.n3()} {o.n3()} ." for s, p, o in inserts[start: start + max_triples])
            group.append(f"INSERT {{ GRAPH {g} {{ {body} }} }} WHERE {{}}")
        if max_ops is not None and requests[-1] and len(requests[-1]) + len(group) > max_ops:
            requests.append([])
        requests[-1] += group
    return [" ;\n".join(ops) for ops in requests if ops]
