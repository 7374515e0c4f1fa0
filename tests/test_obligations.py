"""Standing obligations on the tiny cohort and model: a committed request leaves a sealed obligation; after a
consolidation that relearns the forgotten patient, re-verification sees the leak and a PARAMETER round brings the
closed-book forget accuracy back down; clean consolidations or a retrain discharge it (the file is gone); a bad
obligation (wrong or missing key, corrupted, another corpus) is a clear error that changes nothing; and an agent
process killed by SIGKILL between a consolidation's training and its re-verification resumes cleanly."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from dataclasses import replace

import pandas as pd
import pytest

from sbu import cli
from sbu.agent import Agent
from sbu.errors import ConfigError, ObligationError
from sbu.eval.exposure import forgotten_strings
from sbu.eval.leaks import scan
from sbu.journal import Sealer
from sbu.memory import open_store
from sbu.memory.ingest import ingest
from sbu.memory.texts import live_texts
from sbu.model import prompts
from sbu.model.consolidate import ConsolidationConfig, consolidate
from sbu.model.network import CausalLM
from sbu.model.recipe import Example
from sbu.model.scoring import accuracy
from sbu.obligations import SUFFIX, ObligationBook
from sbu.retrieval.hybrid import Retriever
from sbu.sync import BackUnder, ForgetProtocol, ProtocolConfig, closed_book_leakage

# a short, strong SRA (the tiny model's default budget would take minutes) and one PARAMETER round per check
FAST = ProtocolConfig(unlearn={"steps": 15, "batch_size": 8, "lr": 1e-2, "alpha": 1.0}, max_rounds=1,
                      retained_probes=10, discharge_after=2)
RELEARN = ConsolidationConfig(epochs=6, batch_size=8, lr=3e-3, seed=0)  # the loop trained on the patient's answers


pytestmark = pytest.mark.usefixtures("private_cache")


def _patient(corpus):
    return corpus.splits["forget10"][0]


def _secrets(corpus, patient) -> list[str]:
    """What no file may hold: the patient's id, name, values, fact sentences and probe ids (≥ 4 characters)."""
    found = forgotten_strings(corpus, [patient]) + [patient, patient.split("/")[-1]]
    found += [f.text for f in corpus.facts if f.about == patient] + [q.id for q in corpus.qa_about([patient])]
    return [s for s in found if len(s) >= 4]


def _committed(corpus, lm, work, config=FAST, store=None):
    store = open_store("oxigraph:") if store is None else store  # an empty store is falsy
    if not len(store):
        ingest(store, corpus)
    retriever = Retriever.from_store(store)
    protocol = ForgetProtocol(work, store, lm, corpus, config, retriever=retriever)
    certificate = protocol.submit([_patient(corpus)])
    return protocol, protocol.model_after(certificate.request), certificate.request


def _agent(protocol, lm, consolidation=RELEARN, barrier=True):
    """The agent with the request's obligation; ``barrier=False``: its consolidations take what they are given
    (relearning that comes by a route the barrier does not see, as benign relearning through shared weights does)."""
    return Agent(lm, protocol.store, protocol.retriever, protocol.barrier if barrier else None,
                 consolidation=consolidation, hooks=[protocol.standing()])


def _relearning(corpus, patient) -> list[Example]:
    """What backflow feeds a consolidation: the forgotten patient's questions with their right answers."""
    return [Example(prompts.closed_book(q.question), prompts.answer_continuation(q.answer_text))
            for q in corpus.qa if q.about == patient and q.phrasing == "train"]


def probes_of(corpus, obligation):
    return [q for q in corpus.qa if q.id in set(obligation.probes)]


def test_a_commit_leaves_a_sealed_obligation_that_names_no_one(tiny_corpus, tiny_lm, tmp_path):
    protocol, _, request = _committed(tiny_corpus, tiny_lm, tmp_path / "work")
    patient = _patient(tiny_corpus)
    path = protocol.obligations.path(request)
    assert path.is_file() and stat.S_IMODE(path.stat().st_mode) == 0o600
    obligation = protocol.obligations.read(request)
    assert obligation.targets == (patient,) and obligation.epsilon == FAST.epsilon
    assert set(obligation.probes) == {q.id for q in tiny_corpus.qa_about([patient])}
    assert obligation.discharge_after == FAST.discharge_after and obligation.clean == 0 and not obligation.pending
    written = path.read_text()
    assert request in written and [s for s in _secrets(tiny_corpus, patient) if s in written] == []
    assert scan([tmp_path / "work"], _secrets(tiny_corpus, patient)).empty  # the leak scan reads obligations too
    [row] = protocol.obligations.listing()
    assert (row.request, row.state) == (request, "standing")
    without = ForgetProtocol(tmp_path / "none", protocol.store, tiny_lm, tiny_corpus, replace(FAST, standing=False))
    assert without.obligations.requests() == []


def test_after_a_consolidation_that_relearns_the_leak_is_seen_and_suppressed_again(tiny_corpus, tiny_lm, tmp_path):
    # without the dual update, so that the consolidation relearns as much as it can
    protocol, lm, request = _committed(tiny_corpus, tiny_lm, tmp_path / "work", config=replace(FAST, dual_update=0.0))
    patient = _patient(tiny_corpus)
    probes = [q for q in tiny_corpus.qa if q.about == patient and q.phrasing == "train"]
    relearning = _relearning(tiny_corpus, patient)
    relearned = consolidate(lm, relearning, RELEARN)  # the same update, without the obligation
    # re-verification takes the larger of the agent's leakage through memory and the weights' own closed-book one
    obligation = protocol.obligations.read(request)
    closed, right = closed_book_leakage(relearned, probes_of(tiny_corpus, obligation))
    chance = sum(1 / len(q.options) for q in probes_of(tiny_corpus, obligation)) / len(obligation.probes)
    assert closed == pytest.approx(max(0.0, accuracy(relearned.model, relearned.tokenizer,
                                                     probes_of(tiny_corpus, obligation)) - chance))
    assert closed > FAST.epsilon and right and set(right) <= set(obligation.probes)
    both, leaked = protocol.standing().leakage(obligation, relearned)
    agent_only = ForgetProtocol(tmp_path / "work", protocol.store, tiny_lm, tiny_corpus,
                                replace(FAST, closed_book_check=False), retriever=protocol.retriever)
    through_memory, _ = agent_only.standing().leakage(obligation, relearned)
    assert both == pytest.approx(max(through_memory, closed)) and set(right) <= set(leaked)
    with pytest.raises(ConfigError, match="closed_book_check must be true or false"):
        replace(FAST, closed_book_check="yes")
    # a re-suppression round stops once the closed-book leakage is back to resuppress_to · ε, checked every 10 steps
    stop, record = BackUnder(probes_of(tiny_corpus, obligation), level=closed), {}
    assert not stop.on_step_end(5, relearned.model, relearned.tokenizer, record) and record == {}
    assert stop.on_step_end(10, relearned.model, relearned.tokenizer, record)
    assert record["closed_book_leakage"] == pytest.approx(closed) and not relearned.model.training
    assert not BackUnder(stop.probes, level=closed - 0.01).on_step_end(20, relearned.model, relearned.tokenizer, {})
    for bad in (1.5, -0.1, "half"):
        with pytest.raises(ConfigError, match="resuppress_to"):
            replace(FAST, resuppress_to=bad)
    agent = _agent(protocol, lm, barrier=False)
    agent.recent = list(relearning)
    kept = agent.consolidate()
    [upkeep] = agent.hooks[0].history
    assert upkeep.request == request and upkeep.leakage > FAST.epsilon, "the relearning went unseen"
    assert upkeep.rounds == FAST.resuppress_rounds  # re-suppressed on the current weights
    unkept, after = accuracy(relearned.model, relearned.tokenizer, probes), accuracy(kept.model, kept.tokenizer,
                                                                                       probes)
    assert after < unkept - 0.2, f"closed-book forget accuracy {unkept:.2f} relearned, {after:.2f} kept"
    obligation = protocol.obligations.read(request)
    assert (obligation.clean, obligation.checks, obligation.resuppressions) == (0, 1, upkeep.rounds)
    assert not obligation.pending and agent.recent == [] and agent.lm is kept


@pytest.mark.slow
def test_with_the_dual_update_a_consolidation_keeps_the_forgotten_answers_where_they_were(tiny_corpus, tiny_lm,
                                                                                         tmp_path):
    """dual_update: every consolidation's loss also keeps the obligation's forget set in place, so the same
    relearning consolidation leaks far less than without it; off, the agent's update has no anchor at all."""
    config = replace(FAST, dual_update=50.0, commit_to=1.0, unlearn={**FAST.unlearn, "steps": 30})
    protocol, lm, request = _committed(tiny_corpus, tiny_lm, tmp_path / "work", config=config)
    patient = _patient(tiny_corpus)
    relearning = _relearning(tiny_corpus, patient)
    probes = probes_of(tiny_corpus, protocol.obligations.read(request))
    unanchored, _ = closed_book_leakage(consolidate(lm, relearning, RELEARN), probes)
    agent = _agent(protocol, lm, barrier=False)
    [anchor] = agent.hooks[0].anchors()
    asked = {q.question for q in tiny_corpus.qa if q.about == patient}
    assert anchor.weight == 50.0 and anchor.examples and all(
        any(question in x.prompt for question in asked) for x in anchor.examples)
    anchored, _ = closed_book_leakage(consolidate(lm, relearning, RELEARN, [anchor]), probes)
    assert anchored < unanchored - 0.15, f"closed-book leakage {unanchored:.2f} without the anchor, {anchored:.2f} with"
    agent.recent = list(relearning)
    agent.consolidate()  # the agent's own update takes the anchor, then the obligation re-verifies as always
    [upkeep] = agent.hooks[0].history
    assert upkeep.request == request and not protocol.obligations.read(request).pending
    off = replace(FAST, dual_update=0.0)
    assert ForgetProtocol(tmp_path / "work", protocol.store, tiny_lm, tiny_corpus, off).standing().anchors() == []
    with pytest.raises(ConfigError, match="dual_update"):
        replace(FAST, dual_update=-1.0)
    # commit_to: the request's PARAMETER round checked the closed-book leakage every 10 steps, stopping at ≤ ε
    log = pd.read_csv(tmp_path / "work" / request / "adapter-r1" / "unlearning_log.csv")
    checked = log.dropna(subset=["closed_book_leakage"])
    assert list(checked.step) == [s for s in (10, 20, 30) if s <= len(log)]
    assert (checked.closed_book_leakage.iloc[:-1] > FAST.epsilon).all()
    assert len(log) == 30 or checked.closed_book_leakage.iloc[-1] <= FAST.epsilon
    for bad in (2.0, -0.5, "half"):
        with pytest.raises(ConfigError, match="commit_to"):
            replace(FAST, commit_to=bad)


def test_clean_consolidations_or_a_retrain_discharge_the_obligation_and_remove_its_file(tiny_corpus, tiny_lm,
                                                                                         tmp_path):
    protocol, lm, request = _committed(tiny_corpus, tiny_lm, tmp_path / "work", replace(FAST, epsilon=0.95))
    agent = _agent(protocol, lm)
    agent.consolidate()  # nothing read since: the weights stay, the check is clean
    assert protocol.obligations.read(request).clean == 1
    agent.consolidate()
    assert protocol.obligations.requests() == [] and not protocol.obligations.path(request).exists()
    assert [u.discharged for u in agent.hooks[0].history] == [False, True]
    agent.consolidate()  # nothing left to keep
    assert len(agent.hooks[0].history) == 2

    protocol, lm, request = _committed(tiny_corpus, tiny_lm, tmp_path / "again")
    standing = protocol.standing()
    assert standing.retrained(lm) == [] and protocol.obligations.requests() == [request]  # the base saw them
    retrain = CausalLM(lm.model, lm.tokenizer, lm.path, {**lm.info, "exclude": "forget10"})
    assert standing.retrained(retrain) == [request] and protocol.obligations.requests() == []


def test_a_bad_obligation_is_a_clear_error_and_the_agent_keeps_its_model_and_examples(tiny_corpus, tiny_lm,
                                                                                     tmp_path, monkeypatch, capsys):
    protocol, lm, request = _committed(tiny_corpus, tiny_lm, tmp_path / "work")
    path = protocol.obligations.path(request)
    good = path.read_bytes()
    agent = _agent(protocol, lm)
    agent.recent = _relearning(tiny_corpus, _patient(tiny_corpus))
    recent = list(agent.recent)

    def refused(match):
        with pytest.raises(ObligationError, match=match):
            agent.consolidate()
        assert agent.lm is lm and agent.recent == recent  # nothing changed: no training was kept

    with pytest.raises(ObligationError, match="does not open with this barrier key"):
        ObligationBook(path.parent, Sealer(b"x" * 32)).read(request)  # a wrong key
    path.write_bytes(good[: len(good) // 2])  # torn or truncated
    refused("not an obligation file")
    path.write_text(json.dumps({"format": 1, "request": request, "sealed": "gAAAAABnot-a-seal"}))  # altered
    refused("does not open")
    wrong = protocol.obligations.read  # a seal that opens, for probes this corpus does not hold (another corpus)
    path.write_bytes(good)
    protocol.obligations.write(replace(wrong(request), probes=("qa/nobody-0",)))
    refused("probe")
    assert protocol.obligations.read(request).pending is False  # refused before anything was marked
    path.write_bytes(good)
    assert cli.main(["obligations", "--work", str(tmp_path / "work")]) == 0
    shown = capsys.readouterr().out
    assert request in shown and "standing" in shown
    assert [s for s in _secrets(tiny_corpus, _patient(tiny_corpus)) if s in shown] == []
    monkeypatch.setenv("SBU_CACHE", str(tmp_path / "elsewhere"))  # the key file is missing
    assert cli.main(["obligations", "--work", str(tmp_path / "work")]) == 2
    assert "key file" in capsys.readouterr().err and path.read_bytes() == good


AGENT = """
import sys
from sbu.agent import Agent
from sbu.data.schema import Corpus
from sbu.memory import open_store
from sbu.model.consolidate import ConsolidationConfig
from sbu.model.network import load
from sbu.retrieval.hybrid import Retriever
from sbu.sync import ForgetProtocol, ProtocolConfig

store_dir, model_dir, corpus_dir, work, patient = sys.argv[1:]
corpus = Corpus.read(corpus_dir)
with open_store("oxigraph:" + store_dir, create=False) as store:
    retriever = Retriever.from_store(store)
    config = ProtocolConfig(unlearn={"steps": 15, "batch_size": 8, "lr": 1e-2, "alpha": 1.0}, max_rounds=1,
                            retained_probes=10)
    protocol = ForgetProtocol(work, store, load(model_dir), corpus, config, retriever=retriever)
    agent = Agent(protocol.lm, store, retriever, protocol.barrier, hooks=[protocol.standing()],
                  consolidation=ConsolidationConfig(epochs=6, batch_size=8, lr=3e-3))
    kept = [q for q in corpus.qa if q.about in corpus.splits["retain"] and q.phrasing == "train"][:12]
    agent.answer(kept + [q for q in corpus.qa if q.about == patient and q.phrasing == "train"])
    agent.consolidate()
print("consolidated")
"""


@pytest.mark.slow
def test_sigkill_between_training_and_reverification_resumes_cleanly(tiny_corpus, tiny_lm, tmp_path):
    """A real agent process, killed by SIGKILL after its consolidation trained and before the re-verification: the
    obligation stays whole and marked pending, memory keeps every retained fact, no file holds a forgotten value;
    settling the model the agent goes on with re-verifies it, and the same process unkilled consolidates."""
    patient = _patient(tiny_corpus)
    with open_store(f"oxigraph:{tmp_path / 'store'}") as store:
        protocol, lm, request = _committed(tiny_corpus, tiny_lm, tmp_path / "work", store=store)
    model_dir = tmp_path / "work" / request / "model"
    tiny_corpus.write(tmp_path / "corpus")
    args = [sys.executable, "-c", AGENT, str(tmp_path / "store"), str(model_dir), str(tmp_path / "corpus"),
            str(tmp_path / "work"), patient]
    env = {**os.environ, "SBU_FAULT": "consolidation-trained"}
    killed = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -9, killed.stderr[-2000:]
    with open_store(f"oxigraph:{tmp_path / 'store'}", create=False) as store:
        texts = list(live_texts(store).values())
        lost = [f.id for f in tiny_corpus.facts if f.about != patient and f.text not in texts]
        assert lost == [], f"{len(lost)} retained facts lost of {len(texts)} live texts"
        protocol = ForgetProtocol(tmp_path / "work", store, lm, tiny_corpus, FAST,
                                  retriever=Retriever.from_store(store))
        assert protocol.obligations.read(request).pending
        [row] = protocol.obligations.listing()
        assert row.state == "unverified update"
        standing = protocol.standing()
        standing.settle(lm)
        [upkeep] = standing.history
        obligation = protocol.obligations.read(request)
        assert upkeep.request == request and not obligation.pending and obligation.checks == 1
    assert scan([tmp_path / "work", tmp_path / "store"], _secrets(tiny_corpus, patient)).empty
    env.pop("SBU_FAULT")
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "consolidated" in done.stdout, done.stderr[-2000:]
    assert protocol.obligations.read(request).checks == 2 or not protocol.obligations.requests()
    assert not list((tmp_path / "work" / "obligations").glob(f".*{SUFFIX}*")), "a half-written obligation was left"
