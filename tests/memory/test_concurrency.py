"""A writer keeps writing agent interactions into a real ``oxigraph serve`` while a forget request runs against
the same endpoint: nothing about the forgotten patient lands once the barrier is up (every write checks memory's
blocklist in the same update that inserts it), whatever landed before is forgotten by the request, and no write
about a retained patient is lost."""

from __future__ import annotations

import itertools
import re
import threading
import time

from rdflib import URIRef

from sbu.agent import Agent, cached_answer_text
from sbu.eval.exposure import forgotten_strings
from sbu.memory import open_store
from sbu.memory.barrier import Barrier
from sbu.memory.ingest import ingest
from sbu.memory.texts import live_texts
from sbu.memory.vocab import iri
from sbu.retrieval.hybrid import Retriever
from sbu.sync import ForgetProtocol, ProtocolConfig


def test_a_writer_during_a_forget_request_lands_nothing_forgotten_and_loses_nothing_retained(
        oxigraph_server, tiny_corpus, tiny_lm, tmp_path):
    url = oxigraph_server + "/query"
    main = open_store(url)
    main.update("CLEAR ALL")
    ingest(main, tiny_corpus)
    gone = tiny_corpus.splits["forget10"][0]
    kept = [p for p in tiny_corpus.splits["retain"]][:3]
    own_fact = {p: next(iri(f.id) for f in tiny_corpus.facts if f.about == p) for p in [gone, *kept]}
    questions = {p: [q.question for q in tiny_corpus.qa if q.about == p][:5] for p in [gone, *kept]}
    stop, log, started = threading.Event(), [], threading.Event()

    def writer():
        store = open_store(url)  # its own connection, its own (soon stale) copy of the barrier
        agent = Agent(tiny_lm, store, Retriever({}), Barrier.load(store))
        for n in itertools.count():
            if stop.is_set():
                break
            patient = [gone, *kept][n % 4]
            text = cached_answer_text(questions[patient][n % 5], f"answer {chr(97 + n % 26)}{chr(97 + n // 26 % 26)}")
            node, reasons = agent.write(text, [patient], [own_fact[patient]])
            log.append((patient, node, reasons))
            started.set()
            time.sleep(0.02)  # an agent's pace, not a busy loop starving the request of the GIL

    thread = threading.Thread(target=writer)
    thread.start()
    started.wait(60)
    fast = ProtocolConfig(unlearn={"steps": 4, "batch_size": 4}, max_rounds=1, retained_probes=5)
    certificate = ForgetProtocol(tmp_path / "work", main, tiny_lm, tiny_corpus, fast).submit([gone])
    after_commit = len(log)
    while len(log) < after_commit + 8:  # the writer goes on after the commit too
        time.sleep(0.05)
    stop.set()
    thread.join(60)

    texts = live_texts(main)
    secrets = forgotten_strings(tiny_corpus, [gone])
    landed = [(s, t) for s in secrets for t in texts.values() if re.search(rf"(?<!\w){re.escape(s)}(?!\w)", t)]
    assert landed == [], f"something about the forgotten patient landed: {landed[:3]}"
    about_gone = [(node, reasons) for patient, node, reasons in log if patient == gone]
    assert any(reasons for _, reasons in about_gone), "the barrier never refused the writer"
    assert all(URIRef(node) not in texts for node, _ in about_gone if node), "a forgotten write is still live"
    retained = [node for patient, node, reasons in log if patient != gone]
    assert retained and all(retained), "a write about a retained patient was refused"
    assert all(URIRef(node) in texts for node in retained), "a write about a retained patient was lost"
    assert certificate.leakage[-1]["memory"] == 0.0
    main.update("CLEAR ALL")
