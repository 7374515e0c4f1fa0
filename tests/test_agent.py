"""The closed-loop agent on the tiny cohort: it answers through memory, writes back with provenance through the
barrier, consolidates memory into its weights; and the backflow study shows the loop re-creating forgotten data
when only memory was cleaned, and not under SBU."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from rdflib import URIRef

import sbu
from sbu.agent import Agent, cached_answer_text
from sbu.errors import ConfigError, StoreError
from sbu.eval.backflow import backflow_study
from sbu.eval.exposure import forgotten_strings
from sbu.memory import open_store
from sbu.memory.barrier import Barrier
from sbu.memory.closure import seeds_of
from sbu.memory.forget import forget
from sbu.memory.ingest import ingest
from sbu.memory.texts import live_texts
from sbu.memory.vocab import META, PROV, SBU, iri
from sbu.model import prompts
from sbu.model.consolidate import Anchor, ConsolidationConfig, consolidate
from sbu.model.recipe import Example
from sbu.model.scoring import answer_logprobs
from sbu.retrieval.hybrid import Retriever


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SBU_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SBU_BARRIER_KEY", raising=False)


@pytest.fixture
def memory(tiny_corpus):
    store = open_store("oxigraph:")
    ingest(store, tiny_corpus)
    return store


def _objects(store, node, prop) -> set[str]:
    """The objects of (node, prop) in the metadata graph, opened (texts are stored sealed)."""
    rows = [(node, prop, row[0], META) for row in
            store.query(f"SELECT ?o WHERE {{ GRAPH {META.n3()} {{ {node.n3()} {prop.n3()} ?o }} }}")]
    return {str(o) for o in store.reveal(rows) if o is not None}


def _items(corpus, patient, n=6):
    return [q for q in corpus.qa if q.about == patient and q.phrasing == "train"][:n]


def test_answers_are_written_back_with_provenance_and_no_plaintext_in_their_iri(tiny_corpus, tiny_lm, memory):
    agent = Agent(tiny_lm, memory, Retriever.from_store(memory), k=2)
    patient = tiny_corpus.splits["retain"][0]
    items = _items(tiny_corpus, patient)
    size = len(memory)
    turns = agent.answer(items)
    assert all(t.written for t in turns) and len(memory) > size
    name = tiny_corpus.entity(patient).name
    for t in turns:
        node = URIRef(t.written)
        assert name.split()[0] not in t.written and patient.split("/")[1] not in t.written
        sources = _objects(memory, node, PROV.wasDerivedFrom)
        assert sources == set(t.retrieved) and len(sources) == 2
        assert node in agent.retriever  # indexed in the same step
    texts = {text for t in turns for text in _objects(memory, URIRef(t.written), SBU.text)}
    assert all(text.startswith("Q: ") for text in texts)
    again = len(memory)
    first = turns[0]
    text = cached_answer_text(items[0].question, "an answer not written before")
    written = [agent.write(text, [patient], [URIRef(s) for s in first.retrieved]) for _ in range(2)]
    assert written[0] == written[1] and len(memory) == again + 5  # type, text, about, two sources: once


def test_the_barrier_refuses_write_backs_about_a_forgotten_patient_and_keeps_the_others(tiny_corpus, tiny_lm,
                                                                                         memory):
    gone, kept = tiny_corpus.splits["forget10"][0], tiny_corpus.splits["retain"][0]
    forget(memory, [gone])
    barrier = Barrier.load(memory)
    agent = Agent(tiny_lm, memory, Retriever.from_store(memory), barrier, k=2)
    before = memory.content_hash()
    refused = agent.answer(_items(tiny_corpus, gone))
    assert all(t.written is None and "about" in t.refused for t in refused)
    assert memory.content_hash() == before and barrier.refused == len(refused)
    allowed = agent.answer(_items(tiny_corpus, kept))
    assert all(t.written for t in allowed)
    secrets = forgotten_strings(tiny_corpus, [gone])
    assert not any(s in text for s in secrets for text in agent.retriever.documents().values())
    assert all(Example(prompts.closed_book(i.question), "") not in agent.recent for i in _items(tiny_corpus, gone))


def test_consolidation_re_encodes_what_it_reads_and_leaves_the_input_model_alone(tiny_corpus, tiny_lm):
    item = _items(tiny_corpus, tiny_corpus.splits["retain"][0], 1)[0]
    wrong = next(o for i, o in enumerate(item.options) if i != item.answer)
    prompt, target = prompts.closed_book(item.question), prompts.answer_continuation(wrong)
    before = {k: v.clone() for k, v in tiny_lm.model.state_dict().items()}
    logp = float(answer_logprobs(tiny_lm.model, tiny_lm.tokenizer, [prompt], [target])[0].sum())
    for mode in ("lora", "full"):
        taught = consolidate(tiny_lm, [Example(prompt, target)] * 16, ConsolidationConfig(mode=mode, epochs=3))
        assert not hasattr(taught.model, "peft_config")  # a plain model again
        after = float(answer_logprobs(taught.model, taught.tokenizer, [prompt], [target])[0].sum())
        assert after > logp + 0.5, f"{mode}: consolidation did not raise the trained answer ({logp:.2f} → {after:.2f})"
    assert all(torch.equal(before[k], v) for k, v in tiny_lm.model.state_dict().items())
    with pytest.raises(ConfigError, match="mode"):
        ConsolidationConfig(mode="half")


def test_an_anchored_consolidation_keeps_the_anchors_answers_and_learns_the_rest(tiny_corpus, tiny_lm):
    """The dual update: the anchor's answers stay where the model had them while the other examples are learnt as
    without an anchor; weight 0 is no anchor at all, bit for bit."""
    one, two = _items(tiny_corpus, tiny_corpus.splits["retain"][0], 2)[:2]
    taught = [Example(prompts.closed_book(q.question), prompts.answer_continuation(
        next(o for i, o in enumerate(q.options) if i != q.answer))) for q in (one, two)]

    def logp(lm, example):
        return float(answer_logprobs(lm.model, lm.tokenizer, [example.prompt], [example.target])[0].sum())

    config = ConsolidationConfig(epochs=3, batch_size=8)
    plain = consolidate(tiny_lm, taught * 8, config)
    kept = consolidate(tiny_lm, taught * 8, config, [Anchor((taught[0],), weight=20.0)])
    before = [logp(tiny_lm, x) for x in taught]
    assert logp(plain, taught[0]) > before[0] + 0.5, "without the anchor the answer is learnt"
    assert abs(logp(kept, taught[0]) - before[0]) < 0.5 * (logp(plain, taught[0]) - before[0])
    assert logp(kept, taught[1]) > before[1] + 0.5, "what is not anchored is still learnt"
    unweighted = consolidate(tiny_lm, taught * 8, config, [Anchor((taught[0],), weight=0.0)])
    assert all(torch.equal(a, b) for a, b in zip(plain.model.state_dict().values(),
                                                 unweighted.model.state_dict().values()))
    for bad in ([taught[0]], ("text",)):
        with pytest.raises(ConfigError, match="tuple of Example"):
            Anchor(bad)
    with pytest.raises(ConfigError, match="anchor weight"):
        Anchor((taught[0],), weight=-1.0)


def test_a_context_longer_than_the_model_is_cut_to_fit(tiny_corpus, tiny_lm, memory):
    agent = Agent(tiny_lm, memory, Retriever.from_store(memory), k=3)
    item = _items(tiny_corpus, tiny_corpus.splits["retain"][0], 1)[0]
    long_texts = [" ".join(["asthma"] * 400), "short fact."]
    context = agent.fit_context(item, long_texts)
    prompt = prompts.with_context(item.question, context) + prompts.answer_continuation(max(item.options, key=len))
    assert len(tiny_lm.tokenizer.encode(prompt)) <= tiny_lm.model.config.n_positions
    assert agent.answer([item], write_back=False)  # answering with the cut context works
    with pytest.raises(ConfigError, match="k"):
        Agent(tiny_lm, memory, agent.retriever, k=0)


@pytest.mark.slow
def test_backflow_memory_only_recreates_forgotten_data_and_sbu_does_not(tiny_corpus, tiny_lm, tmp_path):
    table, conditions = backflow_study(tiny_corpus, tiny_lm, "forget10", work=tmp_path, rounds=2, k=2,
                                       unlearn={"steps": 5, "batch_size": 4}, progress=False,
                                       conditions=("memory-only", "sbu"))
    last = table[table["round"] == 2].set_index("condition")
    assert last.loc["memory-only", "recreated_artifacts"] > 0 and last.loc["memory-only", "refused"] == 0
    assert last.loc["sbu", "recreated_artifacts"] == 0 and last.loc["sbu", "refused"] > 0
    assert (table[table.condition == "sbu"]["memory_exposure"] == 0).all()
    assert conditions["sbu"].certificate is not None
    # the sbu arm keeps its standing obligation: re-verified after every consolidation, re-suppressed when it leaks
    sbu, only = table[table.condition == "sbu"].set_index("round"), table[table.condition == "memory-only"]
    assert sbu.loc[[1, 2], "obligation_leakage"].notna().all() and only["obligation_leakage"].isna().all()
    leaking = sbu.loc[[1, 2], "obligation_leakage"] > 0.15
    assert (sbu.loc[[1, 2], "resuppression_rounds"] == leaking.astype(int)).all()
    assert sbu.loc[0, "resuppression_rounds"] == 0
    assert len(conditions["sbu"].standing.history) == 2


def test_cached_answers_about_a_patient_are_forgotten_with_it_whatever_they_were_derived_from(tiny_corpus,
                                                                                               tiny_lm, memory):
    gone = tiny_corpus.splits["forget10"][0]
    other = next(f for f in tiny_corpus.facts if f.about != gone)  # a source that is not the patient's
    agent = Agent(tiny_lm, memory, Retriever.from_store(memory))
    question = _items(tiny_corpus, gone, 1)[0].question
    node, _ = agent.write(cached_answer_text(question, "something"), [gone], [URIRef(str(iri(other.id)))])
    plan, result = forget(memory, [gone])
    assert URIRef(node) in plan.seeds and URIRef(node) in result.pruned
    assert not _objects(memory, URIRef(node), SBU.text)


# -- every write path goes through the barrier -----------------------------------------------------------------
MUTATORS = {"update", "add_quads", "addN", "compact"}  # MemoryStore's methods that change memory (and rdflib's)


def store_writers() -> set[tuple[str, str]]:
    """(module file, function) of every function in ``sbu`` that calls a mutating method on a store or dataset
    (found in the source, so that a new write path shows up here)."""
    found = set()
    for path in sorted(Path(sbu.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef):
                for call in ast.walk(node):
                    if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                            and call.func.attr in MUTATORS):
                        receiver = ast.unparse(call.func.value).split(".")[-1]
                        if "store" in receiver or receiver == "dataset":
                            found.add((path.relative_to(Path(sbu.__file__).parent.parent).as_posix(), node.name))
    return found


def test_every_function_that_writes_to_memory_checks_the_barrier(tiny_corpus, tiny_lm, memory):
    """The writers found in the source are exactly these; each is shown to refuse what was forgotten (or to write
    nothing that a check could refuse: the blocklist itself, a compaction of live content)."""
    gone, kept = tiny_corpus.splits["forget10"][0], tiny_corpus.splits["retain"][0]
    name = next(e.name for e in tiny_corpus.entities if e.id == gone)
    plan, result = forget(memory, [gone])
    barrier = Barrier.load(memory)
    agent = Agent(tiny_lm, memory, Retriever.from_store(memory), barrier, k=2)
    source = next(iter(live_texts(memory)))

    def agent_write():  # Agent.write → Barrier.write (check, then insert only if memory's blocklist agrees)
        before = memory.content_hash()
        assert agent.write(f"{name}'s note", about=[kept], derived_from=[source])[0] is None
        assert agent.write("A note.", about=[kept], derived_from=[sorted(plan.closure)[0]])[0] is None
        assert memory.content_hash() == before
        assert agent.write("A note.", about=[kept], derived_from=[source])[0] is not None

    def ingest_again():  # ingest → the store's barrier: re-ingesting the source revives nothing forgotten
        report = ingest(memory, tiny_corpus)
        assert report.skipped > 0 and report.reasons
        texts = list(live_texts(memory).values())
        assert not any(name in t for t in texts) and not seeds_of(memory, gone)

    def repair():  # apply_forget's successors pass Barrier.check; the blocklist is raised before anything else
        assert all(barrier.check(t, count=False) for t in result.successor_texts.values())

    def consolidation_reads():  # what was read before the forget is checked again when it is consolidated
        assert agent.readable([Example("", f"Summary of {name}."), Example("", "Asthma.")]) == [Example("", "Asthma.")]

    checks = {("sbu/agent.py", "write"): agent_write, ("sbu/memory/barrier.py", "write"): agent_write,
              ("sbu/memory/ingest.py", "ingest"): ingest_again, ("sbu/memory/forget.py", "apply_forget"): repair,
              ("sbu/memory/barrier.py", "raise_for"): lambda: None,  # writes the blocklist: keyed hashes only
              ("sbu/memory/forget.py", "forget"): lambda: None,  # compaction: rewrites live content, adds nothing
              ("sbu/sync.py", "_memory"): lambda: None,  # the same compaction, in the protocol's MEMORY step
              ("sbu/memory/store.py", "add_quads"): lambda: None, ("sbu/memory/store.py", "update"): lambda: None}
    assert store_writers() == set(checks), "a new function writes to memory: show here that it checks the barrier"
    for check in dict.fromkeys(checks.values()):
        check()
    consolidation_reads()


@pytest.mark.parametrize("source", ["https://x/a> ; DROP ALL ; <https://x/b", "https://x/a b", 'https://x/"q"',
                                    "not an iri", "", None, 7])
def test_an_injection_looking_source_is_a_typed_error_and_changes_nothing(tiny_corpus, tiny_lm, memory, source):
    agent = Agent(tiny_lm, memory, Retriever.from_store(memory), Barrier.load(memory), k=2)
    before = memory.content_hash()
    with pytest.raises(StoreError, match="not a valid IRI"):
        agent.write("A note.", about=[tiny_corpus.splits["retain"][0]], derived_from=[source])
    with pytest.raises(StoreError, match="id strings"):
        agent.write("A note.", about=[None], derived_from=[])
    assert memory.content_hash() == before
