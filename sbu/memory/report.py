"""Tables and figures of a memory for notebooks: what it holds, and what a forget plan does to it."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from rdflib import URIRef

from sbu.memory.barrier import record_id
from sbu.memory.plan import ForgetPlan
from sbu.memory.sparql import load_query, with_values
from sbu.memory.store import MemoryStore

COLOURS = {"prune": "#d62728", "tombstone": "#ff7f0e", "retained source": "#c7c7c7",
           "assertion": "#1f77b4", "artifact": "#2ca02c"}


def contents(store: MemoryStore) -> pd.DataFrame:
    """Nodes per type, live and tombstoned, and the number of triples (quads in named graphs)."""
    rows = [(str(t).rsplit("#", 1)[-1], bool(tomb.toPython()), int(n)) for t, tomb, n in
            store.query(load_query("counts"))]
    table = pd.DataFrame(rows, columns=["type", "tombstoned", "n"])
    table = table.pivot_table(index="type", columns="tombstoned", values="n", aggfunc="sum", fill_value=0)
    table = table.rename(columns={False: "live", True: "tombstoned"}).reindex(columns=["live", "tombstoned"],
                                                                              fill_value=0)
    table.loc["triples (all graphs)"] = [len(store), 0]
    return table.astype(int)


_PREFIXES = (("fact/pubmed/", ""), ("fact/", ""), ("concept_summary/", "concept: "), ("cohort_summary/", "cohort: "))


def short_label(node) -> str:
    """A record id, shortened for display: ``p007/allergy``, ``episode/p007/0``, ``cohort: copd``, ``21645374/3``."""
    text = record_id(node)
    for prefix, replacement in _PREFIXES:
        if text.startswith(prefix):
            return replacement + text[len(prefix):]
    return text


def plan_graph(store: MemoryStore, plan: ForgetPlan, max_outside: int = 3):
    """Nodes (IRI → decision) and derivation edges (source, derived) of a plan's closure, with up to
    ``max_outside`` retained sources per shared artifact (a concept summary can have hundreds)."""
    decision = {x: "prune" if x in plan.isolated else "tombstone" for x in plan.closure}
    edges, extra = [], {}
    for x, source in store.query(with_values(load_query("sources"), "x", sorted(plan.closure))):
        x, source = URIRef(str(x)), URIRef(str(source))
        if source in plan.closure:
            edges.append((source, x))
        elif len(extra.setdefault(x, [])) < max_outside:
            extra[x].append(source)
            decision.setdefault(source, "retained source")
            edges.append((source, x))
    return decision, sorted(edges)


def draw_plan(store: MemoryStore, plan: ForgetPlan, color_by: str = "decision", ax=None, title: str | None = None):
    """Draw a plan's closure as layers by derivation depth (assertions at the bottom), arrows from source to
    derived artifact, coloured by decision (prune / tombstone / retained source) or by kind (assertion /
    artifact)."""
    decision, edges = plan_graph(store, plan)
    parents: dict[URIRef, list[URIRef]] = {}
    for source, derived in edges:
        parents.setdefault(derived, []).append(source)
    depth: dict[URIRef, int] = {}

    def level(node, seen=()):
        if node not in depth:
            depth[node] = 1 + max((level(p, (*seen, node)) for p in parents.get(node, []) if p not in seen),
                                  default=-1)
        return depth[node]

    layers: dict[int, list[URIRef]] = {}
    for node in sorted(decision):
        layers.setdefault(level(node), []).append(node)
    width = max(len(nodes) for nodes in layers.values())
    stagger = 0.22 if width > 8 else 0.0  # wide layers alternate up and down so that labels do not overlap
    position = {node: ((i + 0.5) * width / len(nodes), d + (stagger if i % 2 else -stagger) * (len(nodes) > 8))
                for d, nodes in layers.items() for i, node in enumerate(nodes)}
    if ax is None:
        _, ax = plt.subplots(figsize=(min(2 + 1.1 * width, 16), 1.8 + 1.5 * len(layers)))
    for source, derived in edges:
        (x0, y0), (x1, y1) = position[source], position[derived]
        ax.annotate("", (x1, y1 - 0.1), (x0, y0 + 0.1), arrowprops={"arrowstyle": "->", "color": "#999999"})
    for node, (x, y) in position.items():
        kind = decision[node]
        if color_by == "kind" and kind != "retained source":
            kind = "assertion" if node in plan.seeds else "artifact"
        ax.text(x, y, short_label(node), ha="center", va="center", fontsize=7,
                bbox={"boxstyle": "round", "fc": COLOURS[kind], "alpha": 0.85, "ec": "none"})
    used = {decision[n] if color_by == "decision" or decision[n] == "retained source" else
            ("assertion" if n in plan.seeds else "artifact") for n in decision}
    for name in sorted(used):
        ax.scatter([], [], color=COLOURS[name], label=name, s=80)
    ax.legend(loc="upper left", bbox_to_anchor=(1, 1), frameon=False)
    ax.set_xlim(-0.2, width + 0.2)
    ax.set_ylim(-0.7, max(layers) + 0.7)
    ax.set_yticks(sorted(layers), [f"depth {d}" for d in sorted(layers)])
    ax.set_xticks([])
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    ax.set_title(title or f"forget {', '.join(plan.targets)}: closure of {len(plan.closure)} nodes")
    return ax


PLAN_LABELS = {"seeds": "seeds", "closure": "closure", "isolated": "isolated (prune)", "shared": "shared (tombstone)",
               "entities_pruned": "entities pruned", "entities_kept": "entities kept"}


def plan_counts(plan: ForgetPlan, name: str = "count") -> pd.DataFrame:
    """A plan's counts as a one-column table with readable labels."""
    counts = plan.counts()
    return pd.Series({PLAN_LABELS[k]: v for k, v in counts.items()}, name=name).to_frame()


def hits_table(hits, forgotten: set[URIRef] = frozenset()) -> pd.DataFrame:
    """Retrieved hits as a table, marking those the forget request removed."""
    return pd.DataFrame([{"rank": i + 1, "node": short_label(h.iri), "forgotten": h.iri in forgotten,
                          "text": h.text[:160], "score": round(h.score, 4)} for i, h in enumerate(hits)])


def request_metrics(plan: ForgetPlan, result, exposure: tuple[float, float], recall: tuple[float, float]) -> dict:
    """One forget request as a flat record for ``metrics.json``: sizes, timings, exposure and recall before and
    after."""
    return {"targets": len(plan.targets), **plan.counts(),
            "successors": len(result.successors), "successors_refused": len(result.refused),
            "blocked_hashes": result.blocked, "plan_ms": 1000 * plan.seconds, "apply_ms": 1000 * result.seconds,
            "compact_ms": None if result.compact_seconds is None else 1000 * result.compact_seconds,
            "exposure_before": exposure[0], "exposure_after": exposure[1],
            "retained_recall_before": recall[0], "retained_recall_after": recall[1]}


def describe(name: str, m: dict, k: int) -> str:
    """A few sentences on one request, every number read from its metrics."""
    def n(count: int, word: str) -> str:
        return f"{count} {word}{'' if count == 1 else 's'}"

    return (f"{name}: forgetting {n(m['targets'], 'entity').replace('entitys', 'entities')} reached "
            f"{n(m['closure'], 'memory node')} from {n(m['seeds'], 'assertion')}: {m['isolated']} pruned, "
            f"{m['shared']} shared (tombstoned, redacted, and replaced by "
            f"{n(m['successors'], 'successor')} re-derived from retained sources). Planning took "
            f"{m['plan_ms']:.1f} ms and applying {m['apply_ms']:.1f} ms. Exposure (top-{k} retrieval holding "
            f"forgotten data) went from {m['exposure_before']:.2f} to {m['exposure_after']:.2f}; retained facts were "
            f"in the top-{k} for {m['retained_recall_before']:.2f} → {m['retained_recall_after']:.2f} of the "
            "questions about them.")


def barrier_table(barrier, candidates: dict[str, tuple]) -> pd.DataFrame:
    """The barrier's verdict on named candidate write-backs, each given as ``(text, about, derived_from)``."""
    rows = []
    for case, args in candidates.items():
        verdict = barrier.check(*args)
        rows.append((case, verdict.allowed, ", ".join(verdict.reasons)))
    return pd.DataFrame(rows, columns=["candidate write-back", "allowed", "refused because"])
