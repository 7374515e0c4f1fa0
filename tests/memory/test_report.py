"""Notebook helpers of the memory pathway: contents, the plan figure, exposure and recall with the real retriever."""

from __future__ import annotations

import matplotlib

from sbu.eval.exposure import forgotten_strings, memory_exposure, retained_recall
from sbu.memory import open_store, report
from sbu.memory.barrier import Barrier
from sbu.memory.forget import apply_forget
from sbu.memory.ingest import ingest
from sbu.memory.plan import plan_forget
from sbu.retrieval.hybrid import Retriever

matplotlib.use("Agg")


def test_a_request_told_in_tables_figures_and_numbers(tiny_corpus):
    store = open_store("oxigraph:")
    ingest(store, tiny_corpus)
    before = report.contents(store)
    assert before.loc["Patient", "live"] == 12 and before["tombstoned"].sum() == 0
    targets = tiny_corpus.splits["forget10"]
    plan = plan_forget(store, targets)
    decision, edges = report.plan_graph(store, plan)
    assert {x for x, d in decision.items() if d != "retained source"} == plan.closure
    assert all(target in decision for _, target in edges)
    ax = report.draw_plan(store, plan)
    assert len(ax.texts) == len(decision) + len(edges)  # a label per node, an arrow per derivation

    retriever = Retriever.from_store(store)
    probes = [q.question for q in tiny_corpus.qa_about(targets, phrasing="train")]
    kept = tiny_corpus.qa_about(tiny_corpus.splits["retain"], phrasing="train")[:30]
    forgotten = forgotten_strings(tiny_corpus, targets)
    exposure = [memory_exposure(retriever, probes, plan.closure, forgotten)]
    recall = [retained_recall(retriever, kept)]
    result = apply_forget(store, plan, Barrier(bytes(32)))
    retriever.apply(result)
    exposure.append(memory_exposure(retriever, probes, plan.closure, forgotten))
    recall.append(retained_recall(retriever, kept))
    assert exposure == [1.0, 0.0] and recall[0] > 0.8 and recall[1] >= recall[0] - 0.05

    after = report.contents(store)
    assert after.loc["Patient", "live"] == 12 - len(targets)
    assert after["tombstoned"].sum() == len(plan.shared)
    metrics = report.request_metrics(plan, result, exposure, recall)
    assert metrics["closure"] == len(plan.closure) and metrics["exposure_after"] == 0.0
    assert f"{len(plan.closure)} memory nodes" in report.describe("tiny", metrics, 5)
    table = report.hits_table(retriever.search(probes[0]), plan.closure)
    assert not table.forgotten.any()


def test_forgotten_strings_leave_out_values_that_retained_records_share(tiny_corpus):
    target = tiny_corpus.splits["forget10"][0]
    strings = forgotten_strings(tiny_corpus, [target])
    name = next(e.name for e in tiny_corpus.entities if e.id == target)
    assert strings[0] == name
    condition = next(f.value for f in tiny_corpus.facts_about([target]) if f.attribute == "condition")
    others = {f.value for f in tiny_corpus.facts if f.about != target and f.attribute == "condition"}
    assert (condition in strings) == (condition not in others)
