"""Many forget requests: one after another (MUSE's sustainability) and all at once (scalability).

``sequential_requests`` runs one synchronized request per patient on the same memory and model, each starting
from the model the previous one committed; after each, the retained patients' accuracy (closed-book, on a fixed
sample that no request touches), the knowledge base's held-out test accuracy, the accuracy on everyone forgotten so
far and on each earlier request's patient apart (``forget acc #j``: does a later request undo an earlier one?), and
what the request cost.
``batch_request`` forgets the same patients in one request.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from sbu.data.cohort import trained_patients
from sbu.data.schema import Corpus
from sbu.memory import open_store
from sbu.memory.ingest import ingest
from sbu.model.network import CausalLM
from sbu.model.scoring import accuracy
from sbu.retrieval.hybrid import Retriever
from sbu.sync import ForgetProtocol, ProtocolConfig


def request_patients(corpus: Corpus, n: int, exclude: Sequence[str] = ()) -> list[str]:
    """``n`` trained patients to forget one by one (the forget splits first, then others), none of ``exclude``."""
    forget_first = [p for s in ("forget10", "forget05", "forget01") for p in corpus.splits.get(s, [])]
    pool = list(dict.fromkeys(forget_first + trained_patients(corpus)))
    return [p for p in pool if p not in set(exclude)][:n]


def _probe_sample(corpus: Corpus, patients: Sequence[str], n: int, seed: int) -> list:
    items = [q for q in corpus.qa if q.about in set(patients) and q.phrasing == "train"]
    rng = np.random.default_rng(seed)
    return [items[i] for i in sorted(rng.choice(len(items), size=min(n, len(items)), replace=False))]


def _test_items(corpus: Corpus) -> list:
    test = set(corpus.splits.get("test", []))
    return [q for q in corpus.qa if q.id in test]


def _row(label: str, corpus: Corpus, lm: CausalLM, forgotten: Sequence[str], kept_items, certificate,
         seconds: float, each: bool = False) -> dict:
    forgotten_items = [q for q in corpus.qa if q.about in set(forgotten) and q.phrasing == "train"]
    row = {"request": label, "patients forgotten": len(forgotten),
           "retain acc (closed-book)": accuracy(lm.model, lm.tokenizer, kept_items),
           "test acc (closed-book)": accuracy(lm.model, lm.tokenizer, _test_items(corpus)),
           "forgotten acc (closed-book)": accuracy(lm.model, lm.tokenizer, forgotten_items),
           "rounds": certificate.rounds, "pruned": certificate.counts["pruned"],
           "seconds": seconds, "parameter seconds": certificate.seconds.get("PARAMETER", 0.0)}
    if each:  # one column per request so far: its patient's accuracy now
        for j, patient in enumerate(forgotten, 1):
            row[f"forget acc #{j}"] = accuracy(lm.model, lm.tokenizer, corpus.qa_about([patient], "train"))
    return row


def sequential_requests(corpus: Corpus, base: CausalLM, patients: Sequence[str], *, work: str | Path,
                        config: ProtocolConfig | None = None, kept_probes: int = 100, seed: int = 0,
                        progress: bool = True) -> pd.DataFrame:
    """One request per patient, in order, on one memory; one row per request (row 0: before any)."""
    config = config or ProtocolConfig(seed=seed)
    store = open_store("oxigraph:")
    ingest(store, corpus)
    kept = [p for p in trained_patients(corpus) if p not in set(patients)]
    kept_items = _probe_sample(corpus, kept, kept_probes, seed)
    retriever = Retriever.from_store(store)
    lm = base
    rows = [{"request": "before", "patients forgotten": 0,
             "retain acc (closed-book)": accuracy(lm.model, lm.tokenizer, kept_items),
             "test acc (closed-book)": accuracy(lm.model, lm.tokenizer, _test_items(corpus)),
             "forgotten acc (closed-book)": np.nan, "rounds": 0, "pruned": 0, "seconds": 0.0,
             "parameter seconds": 0.0}]
    for i, patient in enumerate(tqdm(list(patients), desc="sequential requests", disable=not progress), 1):
        protocol = ForgetProtocol(work, store, lm, corpus, config, retriever=retriever)
        started = time.perf_counter()
        certificate = protocol.submit([patient])
        seconds = time.perf_counter() - started
        lm = protocol.model_after(certificate.request)
        rows.append(_row(f"#{i}", corpus, lm, patients[:i], kept_items, certificate, seconds, each=True))
    return pd.DataFrame(rows)


def batch_request(corpus: Corpus, base: CausalLM, patients: Sequence[str], *, work: str | Path,
                  config: ProtocolConfig | None = None, kept_probes: int = 100, seed: int = 0) -> pd.DataFrame:
    """All ``patients`` in one request; one row."""
    config = config or ProtocolConfig(seed=seed)
    store = open_store("oxigraph:")
    ingest(store, corpus)
    kept = [p for p in trained_patients(corpus) if p not in set(patients)]
    kept_items = _probe_sample(corpus, kept, kept_probes, seed)
    protocol = ForgetProtocol(work, store, base, corpus, config, retriever=Retriever.from_store(store))
    started = time.perf_counter()
    certificate = protocol.submit(list(patients))
    seconds = time.perf_counter() - started
    lm = protocol.model_after(certificate.request)
    return pd.DataFrame([_row(f"one request for {len(patients)}", corpus, lm, patients, kept_items, certificate,
                              seconds)])


def describe_requests(sequential: pd.DataFrame, together: pd.DataFrame) -> str:
    """One sentence on the many-requests part: retained accuracy and time per request, one after another and all
    in one request (the tables of :func:`sequential_requests` and :func:`batch_request`)."""
    n = len(sequential) - 1  # the first row is the model before any request
    first, last, one = sequential.iloc[0], sequential.iloc[-1], together.iloc[0]
    return (f"{n} requests one after another: retained accuracy {first['retain acc (closed-book)']:.3f} → "
            f"{last['retain acc (closed-book)']:.3f}, {sequential['seconds'].iloc[1:].mean():.1f} s per request; one "
            f"request for all {n}: retained accuracy {one['retain acc (closed-book)']:.3f} in {one['seconds']:.1f} s.")
