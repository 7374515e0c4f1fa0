"""Properties of the forget plan and its application over random provenance DAGs and requests of one or several
entities (hypothesis, 70 each, on every back end), checked against an independent pure-Python reference built
from the corpus records."""

from __future__ import annotations

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from rdflib import URIRef

from sbu.data.schema import Artifact, Corpus, Entity, Fact
from sbu.memory import open_store
from sbu.memory.barrier import Barrier
from sbu.memory.forget import apply_forget
from sbu.memory.ingest import ingest
from sbu.memory.plan import plan_forget
from sbu.memory.texts import live_texts
from sbu.memory.vocab import iri

from .test_forget import LIVE_DERIVATIONS

KINDS = ("episode", "patient_summary", "condition_summary", "cached_answer")
PROPERTY = settings(max_examples=70, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

@st.composite
def requests(draw):
    """A random memory (entities, their assertions, a DAG of artifacts over them) and the entities one request
    forgets (one, several, or all of them)."""
    n = draw(st.integers(1, 6))
    entities = [Entity(f"patient/e{i}", f"Person{i} Example", "patient") for i in range(n)]
    facts, nodes = [], []
    for i in range(n):
        for j in range(draw(st.integers(1, 3))):
            mentions = tuple(draw(st.lists(st.sampled_from([e.id for e in entities if e.id != f"patient/e{i}"]),
                                           max_size=1))) if n > 1 else ()
            facts.append(Fact(f"fact/e{i}/{j}", f"patient/e{i}", "note", f"value{i}x{j}",
                              (f"Person{i} Example has value{i}x{j}.",), (), mentions))
            nodes.append(facts[-1].id)
    artifacts = []
    for k in range(draw(st.integers(0, 10))):
        sources = draw(st.lists(st.sampled_from(nodes), min_size=1, max_size=3, unique=True))
        about = draw(st.sampled_from([e.id for e in entities]))
        artifacts.append(Artifact(f"artifact/a{k}", draw(st.sampled_from(KINDS)), f"Artifact {k} of {about}.",
                                  (about,), tuple(sorted(sources))))
        nodes.append(artifacts[-1].id)
    targets = draw(st.lists(st.sampled_from([e.id for e in entities]), min_size=1, max_size=n, unique=True))
    return Corpus("random", entities, facts, [], artifacts, {}), targets


def reference(corpus: Corpus, targets: list[str]):
    """(closure, isolated, shared, pruned entities) by plain traversal of the records."""
    pinned = {a.id for a in corpus.artifacts if len(set(a.about)) == 1 and a.about[0] in targets}  # about one alone
    seeds = {f.id for f in corpus.facts if f.about in targets} | pinned
    arts = {a.id: a for a in corpus.artifacts}
    closed, changed = set(seeds), True
    while changed:
        grown = {a.id for a in corpus.artifacts if set(a.derived_from) & closed}
        changed = not grown <= closed
        closed |= grown

    def roots(x):
        return {x} if x not in arts or x in pinned else set().union(*(roots(s) for s in arts[x].derived_from))

    shared = {x for x in closed if x in arts and not roots(x) <= seeds}
    touched = {e for f in corpus.facts if f.id in seeds for e in (f.about, *f.entities)}
    pruned = {e for e in touched
              if all(f.id in closed for f in corpus.facts if e == f.about or e in f.entities)}
    return closed, closed - shared, shared, pruned


def _iris(ids):
    return {iri(x) for x in ids}


def _stores(endpoint):
    memories = [open_store("oxigraph:"), open_store("memory:"), open_store(endpoint + "/query")]
    memories[2].update("CLEAR ALL")
    return memories


@PROPERTY
@given(request_=requests())
def test_every_back_end_plans_the_reference_closure_and_split(oxigraph_server, request_):
    corpus, targets = request_
    closed, isolated, shared, pruned = reference(corpus, targets)
    event(f"shared artifacts: {'yes' if shared else 'no'}; a target kept: {'yes' if set(targets) - pruned else 'no'}"
          f"; targets: {'one' if len(targets) == 1 else 'several'}")
    for store in _stores(oxigraph_server):
        with store:
            ingest(store, corpus)
            before = store.content_hash()
            plan = plan_forget(store, targets)
            assert plan.closure == _iris(closed), store.backend
            assert plan.isolated | plan.shared == plan.closure and not plan.isolated & plan.shared
            assert (plan.isolated, plan.shared) == (_iris(isolated), _iris(shared)), store.backend
            assert plan.entities_pruned == _iris(pruned), store.backend
            assert store.content_hash() == before


@PROPERTY
@given(request_=requests())
def test_applying_changes_only_the_closure_and_keeps_every_retained_fact(oxigraph_server, request_):
    corpus, targets = request_
    closed, _, shared, pruned = reference(corpus, targets)
    touched = _iris(closed | pruned)
    dumps = []
    for store in _stores(oxigraph_server):
        with store:
            ingest(store, corpus)
            before = store.nquads().splitlines()
            plan = plan_forget(store, targets)
            result = apply_forget(store, plan, Barrier(bytes(32)))
            after = store.nquads()
            kept = [line for line in before if not any(f"<{x}>" in line for x in touched)]
            assert set(kept) <= set(after.splitlines()), "something outside the closure changed"
            live = set(live_texts(store).values())
            retained = [f for f in corpus.facts if f.id not in closed]
            assert {f.text for f in retained} <= live, "a retained fact is no longer readable"
            derived_from = {URIRef(str(r[1])) for r in store.query(LIVE_DERIVATIONS)}
            assert not derived_from & plan.closure, "a live artifact derives from a forgotten one"
            assert set(result.successors) | set(result.refused) == _iris(shared)
            dumps.append(sorted(line for line in after.splitlines() if "invalidatedAtTime" not in line
                                and "startedAtTime" not in line))
    assert dumps[0] == dumps[1] == dumps[2], "the back ends disagree after the same request"
