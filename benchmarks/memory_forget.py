"""Memory pathway benchmark: forget latency and retrieval latency at 10k, 100k and 1M triples, every back end side
by side in one process run (docs/backends.md).

What it measures, per memory size × back end (``oxigraph:`` in memory — the default —, ``oxigraph:PATH`` on disk,
``memory:`` — rdflib's own store —, and a real ``oxigraph serve`` reached as a SPARQL endpoint):

- load: ingesting the cohort (:func:`sbu.memory.ingest.ingest`), and the triple count the store then reports;
- ``live_texts``: reading every live text out of the store, one call (all the retriever needs from a back end);
- forget latency, p50 and p95 over ``--requests`` requests, each forgetting one patient (plan + apply, the two
  calls :func:`sbu.memory.forget.forget` makes), with plan and apply also reported separately; one untimed
  warm-up request first. Every request forgets a patient of the same shape (8 facts, 2 visit notes, a patient
  summary, cited by a condition summary), so every closure has the same size at every memory size;
- every cell twice, side by side: with texts sealed (the default: forget latency includes erasure, the
  destruction of the forgotten nodes' data keys) and in plaintext (``open_store(url, sealed=False)``, the
  baseline; ``--no-plain`` leaves it out), so that the cost of sealing on load, ``live_texts``, the index build
  and forget is a ratio measured in the same run;
- on disk, with ``--compact``: :meth:`MemoryStore.compact` once after the requests (optional housekeeping that
  reclaims the space of deleted ciphertext), reported apart from forget latency.

And per memory size, the hybrid retriever (:class:`sbu.retrieval.Retriever`, real all-MiniLM-L6-v2 vectors,
built once from the default back end: it depends on a back end only through ``live_texts``): index build time
(``from_store``), search p50/p95 over questions of the cohort, and ``retriever.apply(result)`` after each forget
(successor texts embedded fresh, in a throwaway cache). Embedding the ~185k texts of the 1M memory takes tens of
minutes on a few cores (vectors are cached on disk afterwards), so retrieval at 1M runs only with ``--embed-1m``;
without it the measured embedding speed and the time it would take are printed.

The memory is the real cohort (:func:`sbu.data.cohort.generate`), with as many patients as give the target triple
count (solved from two small cohorts). Peak RSS is this process's
peak so far (sizes run smallest first; an endpoint's server is another process). Machine load matters: the load
average at the start and the end is printed with the results.

Run it from the repository root (progress bars go to stderr; tables to stdout):

    .venv/bin/python benchmarks/memory_forget.py                      # everything: 10k, 100k, 1m × 4 back ends
    .venv/bin/python benchmarks/memory_forget.py --quick              # smoke check: 10k, a few requests
    .venv/bin/python benchmarks/memory_forget.py --sizes 10k,100k --backends oxigraph,memory
    .venv/bin/python benchmarks/memory_forget.py --skip memory@1m    # leave out a cell (rdflib's store is slow)
    .venv/bin/python benchmarks/memory_forget.py --embed-1m          # retrieval at 1m too (embeds ~185k texts once)
    .venv/bin/python benchmarks/memory_forget.py --torch-threads 1   # when other jobs hold cores (see --help)
    .venv/bin/python benchmarks/memory_forget.py --sizes 300k         # any size: <n>k or <n>m triples

A cell (a back end at a size) that runs past ``--budget`` seconds (default 600; the retriever's time does not
count) is cut short by an alarm and reported as "over budget" with the requests it finished.

Targets, at the largest size run (1M for the full run), texts sealed, forget latency including erasure:

- p50 forget latency ≤ 12 ms in memory (``oxigraph:``, the default), ≤ 20 ms on disk, ≤ 30 ms on an endpoint;
- latency follows the closure's size, not the graph's: p50 at the largest / p50 at the smallest size ≤ 2× at equal
  closure size (default back end);
- sealing costs at most 20 %: load, live texts and the retriever's index build, sealed / plaintext ≤ 1.2.

These are benchmark figures, not timed tests: nothing here fails on a slow number; each target is printed with
✔ or ✘. Results are written as a tidy CSV (one row per size × back end × metric) and a JSON with the machine, the
per-request timings and the targets, under ``--out`` (default ``results/benchmarks/memory_forget.{csv,json}``).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import random
import resource
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from sbu.data.cohort import CohortConfig, generate
from sbu.data.schema import Corpus
from sbu.errors import StoreUnavailableError
from sbu.memory import open_store
from sbu.memory.barrier import Barrier
from sbu.memory.forget import apply_forget
from sbu.memory.ingest import corpus_quads, ingest
from sbu.memory.plan import plan_forget
from sbu.memory.server import oxigraph_serve
from sbu.memory.texts import live_texts
from sbu.retrieval.dense import Embedder, default_embedder
from sbu.retrieval.hybrid import Retriever

BACKENDS = ("oxigraph", "oxigraph-disk", "memory", "endpoint")
DEFAULT_BACKEND = "oxigraph"
PLAIN = "+plain"  # the suffix of a plaintext cell's back end name
TARGET_P50_MS = {"oxigraph": 12.0, "oxigraph-disk": 20.0, "endpoint": 30.0}  # p50 forget incl. erasure, largest size
TARGET_RATIO = 2.0  # p50 at the largest / at the smallest size, default back end, equal closure size
TARGET_SEALING = 1.2  # sealed / plaintext: load, live texts, index build
SHAPE = (8, 2)  # forgotten patients: 8 facts (no comorbidity), 2 visit notes, cited by a condition summary
EMBED_PROBE = 128  # texts embedded (uncached) to measure the embedding speed
ROOT = Path(__file__).resolve().parent.parent


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def triples_of(size: str) -> int:
    """``10k`` → 10 000, ``1m`` → 1 000 000; None-like sizes are an error."""
    number, unit = size[:-1], size[-1:]
    if unit not in ("k", "m") or not number.isdigit() or int(number) < 1:
        raise ValueError(size)
    return int(number) * (1_000 if unit == "k" else 1_000_000)


def ms(seconds: float) -> float:
    return round(1000 * seconds, 3)


# -- the memory: a real cohort of the right size ------------------------------------------------------------------

def cohort_quads(n_patients: int, seed: int) -> int:
    return sum(1 for _ in corpus_quads(generate(CohortConfig(n_patients=n_patients, seed=seed))))


@functools.cache
def patients_for(triples: int, seed: int) -> int:
    """Patients whose cohort gives about ``triples`` quads: a line through two small cohorts (quads grow linearly
    in patients, plus the knowledge base)."""
    small, large = 200, 400
    q_small, q_large = cohort_quads(small, seed), cohort_quads(large, seed)
    per_patient = (q_large - q_small) / (large - small)
    return max(small // 4, round((triples - (q_small - per_patient * small)) / per_patient))


def build_cohort(n_patients: int, seed: int) -> tuple[Corpus, float, str]:
    """The cohort, the seconds generating it took, and how it was generated."""
    config = CohortConfig(n_patients=n_patients, seed=seed)
    started = time.perf_counter()
    corpus = generate(config)
    return corpus, round(time.perf_counter() - started, 3), "generate"


def patients_to_forget(corpus: Corpus, count: int, seed: int) -> list[str]:
    """``count`` patients of shape ``SHAPE`` cited by a condition summary, one condition after another (so that
    consecutive requests touch different summaries), in an order drawn from ``seed``."""
    n_facts = Counter(f.about for f in corpus.facts)
    n_visits = Counter(a.about[0] for a in corpus.artifacts if a.kind == "episode")
    condition_of = {f.about: f.value for f in corpus.facts if f.attribute == "condition"}
    cited = {p for a in corpus.artifacts if a.kind == "condition_summary" for p in a.about[1:]}
    by_condition: dict[str, list[str]] = {}
    for pid in sorted(cited):
        if (n_facts[pid], n_visits[pid]) == SHAPE:
            by_condition.setdefault(condition_of[pid], []).append(pid)
    rng = random.Random(seed)
    queues = [rng.sample(pids, len(pids)) for _, pids in sorted(by_condition.items())]
    order = [q[i] for i in range(max(map(len, queues), default=0)) for q in queues if i < len(q)]
    if len(order) < count:
        raise SystemExit(f"only {len(order)} patients of shape {SHAPE} are cited by a condition summary in this "
                         f"cohort; ask for at most {len(order) - 1} requests (--requests)")
    return order[:count]


def query_sample(corpus: Corpus, count: int, seed: int) -> list[str]:
    """Questions of the cohort's QA items, as retrieval queries."""
    return [q.question for q in random.Random(seed).sample(corpus.qa, min(count, len(corpus.qa)))]


# -- back ends ------------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def oxigraph_server(folder: Path):
    """A real ``oxigraph serve`` on a free port of 127.0.0.1, stopped by its PID on exit; yields the query URL."""
    try:
        with oxigraph_serve(folder) as url:
            yield url
    except StoreUnavailableError as err:
        hint = "or leave out the endpoint back end (--backends oxigraph,oxigraph-disk,memory)"
        raise SystemExit(f"{err}; {hint}") from err


def store_url(backend: str, workdir: Path, endpoint: str | None) -> str:
    return {"oxigraph": "oxigraph:", "oxigraph-disk": f"oxigraph:{workdir / 'store'}", "memory": "memory:",
            "endpoint": endpoint}[backend.removesuffix(PLAIN)]


# -- one cell: a back end at a size ---------------------------------------------------------------------------------

class OverBudget(Exception):
    """The cell used up its time budget (raised by an alarm, so a hanging call cannot stall the run)."""


@contextlib.contextmanager
def time_budget(seconds: float):
    def expire(signum, frame):
        raise OverBudget

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def budget_paused():
    """Stop the clock of the enclosing :func:`time_budget` (for work that is not the cell's own)."""
    remaining, _ = signal.setitimer(signal.ITIMER_REAL, 0)
    try:
        yield
    finally:
        if remaining:
            signal.setitimer(signal.ITIMER_REAL, remaining)


@dataclass
class Cell:
    size: str
    backend: str
    status: str = "ok"
    metrics: dict[str, float] = field(default_factory=dict)
    requests: list[dict] = field(default_factory=list)
    results: list = field(default_factory=list)  # ForgetResults, warm-up first, for the retriever


def timed(fn, *args):
    """``fn(*args)`` and the seconds it took (rounded to the microsecond)."""
    started = time.perf_counter()
    value = fn(*args)
    return value, round(time.perf_counter() - started, 6)


def forget_requests(store, patients: list[str], cell: Cell) -> None:
    """Warm up with the last patient, then time plan and apply for each of the others."""
    barrier = Barrier(bytes(32))
    warm_up, *timed_patients = [patients[-1], *patients[:-1]]
    plan = plan_forget(store, [warm_up])
    cell.results.append(apply_forget(store, plan, barrier))
    for patient in tqdm(timed_patients, desc=f"{cell.size} {cell.backend}", unit="request", leave=False):
        plan, plan_s = timed(plan_forget, store, [patient])
        result, apply_s = timed(apply_forget, store, plan, barrier)
        cell.results.append(result)
        cell.requests.append({"size": cell.size, "backend": cell.backend, "patient": patient,
                              "closure": len(plan.closure), "seeds": len(plan.seeds), "shared": len(plan.shared),
                              "plan_ms": ms(plan_s), "apply_ms": ms(apply_s), "forget_ms": ms(plan_s + apply_s)})


def summarize_requests(cell: Cell) -> None:
    if not cell.requests:
        return
    table = pd.DataFrame(cell.requests)
    for column in ("forget", "plan", "apply"):
        values = table[f"{column}_ms"]
        cell.metrics[f"{column}_p50_ms"] = round(float(np.percentile(values, 50)), 3)
        cell.metrics[f"{column}_p95_ms"] = round(float(np.percentile(values, 95)), 3)
    cell.metrics["closure_min"] = int(table["closure"].min())
    cell.metrics["closure_max"] = int(table["closure"].max())
    cell.metrics["requests"] = len(table)


def run_cell(cell: Cell, url: str, corpus: Corpus, patients: list[str], budget_s: float, on_loaded=None,
             compact: bool = False) -> Cell:
    """Load, count, read live texts, forget; compact when on disk and ``compact``. A back end named with
    ``PLAIN`` keeps texts in plaintext. ``on_loaded(store, texts)`` runs before the forget requests (the retriever's
    index is built there). Stops with status "over budget" after ``budget_s``."""
    store = None
    try:
        with time_budget(budget_s):
            store = open_store(url, sealed=not cell.backend.endswith(PLAIN))
            ingested, load_s = timed(ingest, store, corpus)
            cell.metrics["quads_sent"] = ingested.quads
            cell.metrics["load_s"] = load_s
            cell.metrics["triples"], cell.metrics["count_s"] = timed(len, store)
            texts, texts_s = timed(live_texts, store)
            cell.metrics["live_texts"], cell.metrics["live_texts_ms"] = len(texts), ms(texts_s)
            if on_loaded is not None:
                with budget_paused():  # the retriever's own time is not this cell's
                    on_loaded(store, texts)
            forget_requests(store, patients, cell)
            if compact and store.path is not None:
                _, cell.metrics["compact_s"] = timed(store.compact)
    except OverBudget:
        cell.status = f"over budget ({budget_s:.0f} s) after {len(cell.requests)} of {len(patients) - 1} requests"
    finally:
        if store is not None:
            keys = store.keys.path if store.keys is not None else None
            with contextlib.suppress(Exception):
                store.close()
            for leftover in [keys.parent.glob(keys.name + "*")] if keys is not None else []:
                for file in leftover:  # the key store of a throwaway memory, out of the cache
                    file.unlink(missing_ok=True)
    summarize_requests(cell)
    return cell


# -- retrieval ------------------------------------------------------------------------------------------------------

def cached_share(embedder: Embedder, texts) -> int | None:
    """How many of ``texts`` already have a cached vector (reads the embedder's private cache layout; None if that
    changed)."""
    try:
        folder = embedder._folder()
        return sum(embedder._path(folder, t).exists() for t in texts) if folder else 0
    except AttributeError:
        return None


def embed_speed(corpus: Corpus, seed: int) -> float:
    """Texts per second embedding uncached live texts of the cohort (the model is loaded first, untimed)."""
    texts = [f.text for f in corpus.facts] + [a.text for a in corpus.artifacts]
    sample = random.Random(seed).sample(texts, min(EMBED_PROBE, len(texts)))
    embedder = Embedder(cache=False)
    embedder.encode(sample[:4])
    _, seconds = timed(embedder.encode, sample)
    return len(sample) / seconds


@dataclass
class Retrieval:
    size: str
    queries: list[str]
    apply_cache: Path
    speed: float  # texts per second, measured once
    enabled: bool = True
    retriever: Retriever | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    note: str = ""

    def build(self, store, texts) -> None:
        """Time ``from_store`` and the searches; when disabled, say what embedding would take."""
        embedder = default_embedder()
        cached = cached_share(embedder, texts.values())
        self.metrics["texts"] = len(texts)
        if cached is not None:
            self.metrics["vectors_cached_before"] = cached
        if not self.enabled:
            todo = len(texts) - (cached or 0)
            self.metrics["embed_estimate_min"] = round(todo / self.speed / 60, 1)
            self.note = (f"skipped: {todo} texts to embed at {self.speed:.0f} texts/s ≈ "
                         f"{todo / self.speed / 60:.0f} min (once; cached afterwards); pass --embed-1m")
            return
        log(f"[{self.size}] retrieval: indexing {len(texts)} live texts ({cached} vectors cached)")
        self.retriever, build_s = timed(Retriever.from_store, store)
        self.metrics["index_build_s"] = build_s
        self.retriever.search(self.queries[-1])  # warm-up
        latencies = [timed(self.retriever.search, q)[1] for q in self.queries[:-1]]
        self.metrics["search_p50_ms"] = ms(float(np.percentile(latencies, 50)))
        self.metrics["search_p95_ms"] = ms(float(np.percentile(latencies, 95)))
        self.metrics["index_build_cached_s"] = timed(Retriever.from_store, store)[1]  # vectors cached now

    def build_plain(self, store, texts) -> None:
        """Time ``from_store`` on the plaintext store, vectors cached (after :meth:`build`): the baseline."""
        if self.retriever is not None:
            self.metrics["index_build_plain_s"] = timed(Retriever.from_store, store)[1]

    def follow(self, results) -> None:
        """Time ``retriever.apply`` for each forget (the warm-up's untimed); successors are embedded fresh."""
        if self.retriever is None or not results:
            return
        self.retriever.embedder = Embedder(cache=self.apply_cache)
        self.retriever.apply(results[0])
        latencies = [timed(self.retriever.apply, r)[1] for r in results[1:]]
        if latencies:
            self.metrics["apply_p50_ms"] = ms(float(np.percentile(latencies, 50)))
            self.metrics["apply_p95_ms"] = ms(float(np.percentile(latencies, 95)))


# -- one size: every back end ---------------------------------------------------------------------------------------

@dataclass
class SizeRun:
    size: str
    metrics: dict[str, float | str] = field(default_factory=dict)
    cells: list[Cell] = field(default_factory=list)
    retrieval: Retrieval | None = None


def run_size(size: str, args, workdir: Path, speed: float | None) -> SizeRun:
    run = SizeRun(size)
    n_patients = patients_for(triples_of(size), args.seed)
    log(f"[{size}] generating a cohort of {n_patients} patients")
    corpus, gen_s, how = build_cohort(n_patients, args.seed)
    patients = patients_to_forget(corpus, args.requests + 1, args.seed)
    queries = query_sample(corpus, args.queries + 1, args.seed)
    corpus.qa.clear()  # memory holds entities, facts and artifacts only
    run.metrics.update(patients=n_patients, generate_s=gen_s, generated_by=how)
    if speed is not None:
        run.retrieval = Retrieval(size, queries, workdir / f"apply-cache-{size}", speed,
                                  enabled=triples_of(size) < 1_000_000 or args.embed_1m)
    for backend in [b + mode for b in args.backends for mode in ("", *(() if args.no_plain else (PLAIN,)))]:
        cell = Cell(size, backend)
        run.cells.append(cell)
        if f"{backend.removesuffix(PLAIN)}@{size}" in args.skip:
            cell.status = "skipped (--skip)"
            continue
        log(f"[{size}] {backend}: load, count, live texts, {args.requests} forget requests")
        on_loaded = None
        if run.retrieval is not None and backend.removesuffix(PLAIN) == args.backends[0]:
            on_loaded = run.retrieval.build_plain if backend.endswith(PLAIN) else run.retrieval.build
        folder = workdir / f"{size}-{backend}"
        folder.mkdir()
        with contextlib.ExitStack() as stack:
            served = backend.removesuffix(PLAIN) == "endpoint"
            endpoint = stack.enter_context(oxigraph_server(folder / "server")) if served else None
            run_cell(cell, store_url(backend, folder, endpoint), corpus, patients, args.budget, on_loaded,
                     args.compact)
        shutil.rmtree(folder, ignore_errors=True)
        if on_loaded is not None and not backend.endswith(PLAIN):
            run.retrieval.follow(cell.results)
        cell.results.clear()
    run.metrics["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return run


# -- report -------------------------------------------------------------------------------------------------------

def machine() -> dict[str, str | int | float]:
    info: dict[str, str | int | float] = {
        "cpus": os.cpu_count() or 0, "cpus_usable": len(os.sched_getaffinity(0)), "python": platform.python_version(),
        "platform": platform.platform(), "load_average_start": " ".join(f"{x:.2f}" for x in os.getloadavg())}
    with contextlib.suppress(OSError):
        models = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")]
        info["cpu"] = models[0] if models else "?"
    for package in ("pyoxigraph", "oxrdflib", "rdflib", "oxigraph", "bm25s", "torch"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            info[package] = metadata.version(package)
    return info


def tidy(runs: list[SizeRun]) -> pd.DataFrame:
    """One row per size × back end (or "cohort", "retriever") × metric."""
    rows = []
    for run in runs:
        rows += [(run.size, "cohort", k, v, "") for k, v in run.metrics.items()]
        for cell in run.cells:
            rows += [(run.size, cell.backend, k, v, cell.status) for k, v in cell.metrics.items()]
            if not cell.metrics:
                rows.append((run.size, cell.backend, "status", None, cell.status))
        if run.retrieval is not None:
            note = run.retrieval.note or "ok"
            rows += [(run.size, "retriever", k, v, note) for k, v in run.retrieval.metrics.items()]
    return pd.DataFrame(rows, columns=["size", "backend", "metric", "value", "status"])


FORGET_COLUMNS = {"triples": "triples", "load_s": "load s", "live_texts_ms": "live texts ms",
                  "closure_max": "closure", "forget_p50_ms": "forget p50 ms", "forget_p95_ms": "forget p95 ms",
                  "plan_p50_ms": "plan p50 ms", "apply_p50_ms": "apply p50 ms", "compact_s": "compact s"}
RETRIEVAL_COLUMNS = {"texts": "texts", "vectors_cached_before": "cached", "index_build_s": "index build s",
                     "index_build_cached_s": "rebuild s (sealed)", "index_build_plain_s": "rebuild s (plain)",
                     "search_p50_ms": "search p50 ms", "search_p95_ms": "search p95 ms",
                     "apply_p50_ms": "apply p50 ms", "apply_p95_ms": "apply p95 ms"}


def forget_table(runs: list[SizeRun]) -> pd.DataFrame:
    rows = []
    for run in runs:
        for cell in run.cells:
            row = {"size": run.size, "back end": cell.backend}
            row.update({label: cell.metrics.get(key) for key, label in FORGET_COLUMNS.items()})
            if cell.metrics.get("closure_min") not in (None, cell.metrics.get("closure_max")):
                row["closure"] = f"{cell.metrics['closure_min']}–{cell.metrics['closure_max']}"
            row["status"] = cell.status
            rows.append(row)
    return pd.DataFrame(rows)


def retrieval_table(runs: list[SizeRun]) -> pd.DataFrame:
    rows = []
    for run in runs:
        if run.retrieval is not None:
            row = {"size": run.size}
            row.update({label: run.retrieval.metrics.get(key) for key, label in RETRIEVAL_COLUMNS.items()})
            row["note"] = run.retrieval.note or ("ok" if run.retrieval.retriever else
                                                 "not measured: the default back end's cell did not load")
            rows.append(row)
    return pd.DataFrame(rows)


def cohort_table(runs: list[SizeRun]) -> pd.DataFrame:
    return pd.DataFrame([{"size": run.size, **run.metrics} for run in runs])


def find_cell(runs: list[SizeRun], size: str, backend: str) -> Cell | None:
    for run in runs:
        for cell in run.cells:
            if run.size == size and cell.backend == backend and cell.requests:
                return cell
    return None


def ratio(top, bottom) -> float | None:
    return round(top / bottom, 3) if top and bottom else None


def targets(runs: list[SizeRun]) -> list[dict]:
    """The targets, with what was measured (None: not measured in this run), at the largest size run."""
    if not runs:
        return []
    smallest, largest = runs[0].size, runs[-1].size
    out = []
    for backend, limit in TARGET_P50_MS.items():
        cell = find_cell(runs, largest, backend)
        measured = cell.metrics["forget_p50_ms"] if cell else None
        plain = find_cell(runs, largest, backend + PLAIN)
        extra = f" (plaintext, no erasure: {plain.metrics['forget_p50_ms']} ms)" if plain else ""
        out.append({"target": f"p50 forget incl. erasure at {largest} ≤ {limit:g} ms ({backend}){extra}",
                    "measured": measured, "met": None if measured is None else bool(measured <= limit)})
    small, large = find_cell(runs, smallest, DEFAULT_BACKEND), find_cell(runs, largest, DEFAULT_BACKEND)
    if smallest != largest:
        closures = sorted({r["closure"] for c in (small, large) if c for r in c.requests})
        grow = ratio(large.metrics["forget_p50_ms"], small.metrics["forget_p50_ms"]) if small and large else None
        out.append({"target": f"p50 at {largest} / p50 at {smallest} ≤ {TARGET_RATIO:g}× at equal closure size "
                              f"({DEFAULT_BACKEND})", "measured": grow, "closure sizes": closures,
                    "met": bool(grow <= TARGET_RATIO and len(closures) == 1) if grow else None})
    for run in runs:
        if run.size != largest:
            continue
        for cell in run.cells:
            plain = find_cell(runs, largest, cell.backend + PLAIN)
            for key, what in (("load_s", "load"), ("live_texts_ms", "live texts")):
                r = ratio(cell.metrics.get(key), plain.metrics.get(key)) if plain else None
                if r is not None:
                    out.append({"target": f"{what}, sealed / plaintext ≤ {TARGET_SEALING:g} at {largest} "
                                          f"({cell.backend})", "measured": r, "met": bool(r <= TARGET_SEALING)})
        if run.retrieval is not None:
            got = run.retrieval.metrics
            r = ratio(got.get("index_build_cached_s"), got.get("index_build_plain_s"))
            out.append({"target": f"retriever index build (vectors cached), sealed / plaintext ≤ {TARGET_SEALING:g} "
                                  f"at {largest}", "measured": r,
                        "met": None if r is None else bool(r <= TARGET_SEALING)})
    return out


def print_report(runs, info, checks, elapsed) -> None:
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.4g}".format):
        print("Machine:", ", ".join(f"{k} {v}" for k, v in info.items()))
        print("\nCohorts (memory = entities, facts and artifacts of sbu.data.cohort.generate):")
        print(cohort_table(runs).to_string(index=False))
        print("\nForget latency (plan + apply, one patient per request; closure = nodes in the plan's closure):")
        print(forget_table(runs).to_string(index=False))
        retrieval = retrieval_table(runs)
        if not retrieval.empty:
            print("\nRetrieval (hybrid BM25 + MiniLM, index built once per size from the default back end):")
            print(retrieval.to_string(index=False))
    print("\nTargets:")
    for check in checks:
        mark = {True: "✔", False: "✘", None: "–"}[check["met"]]
        measured = "not measured in this run" if check["measured"] is None else check["measured"]
        extra = f" (closure sizes {check['closure sizes']})" if check.get("closure sizes") else ""
        print(f"  {mark} {check['target']}: {measured}{extra}")
    print(f"\nWall time {elapsed / 60:.1f} min; load average at the end {os.getloadavg()[0]:.2f}")


def write_outputs(out: Path, runs, info, checks, args) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tidy(runs).to_csv(out.with_suffix(".csv"), index=False)
    payload = {"machine": info, "args": {k: v for k, v in vars(args).items() if k != "out"},
               "targets": checks, "rows": tidy(runs).to_dict(orient="records"),
               "requests": [r for run in runs for c in run.cells for r in c.requests]}
    out.with_suffix(".json").write_text(json.dumps(payload, indent=1, default=str, ensure_ascii=False) + "\n")
    log(f"wrote {out.with_suffix('.csv')} and {out.with_suffix('.json')}")


# -- command line ---------------------------------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10k,100k,1m", help="memory sizes in triples: <n>k or <n>m, e.g. 300k")
    parser.add_argument("--backends", default=",".join(BACKENDS), help=f"from {', '.join(BACKENDS)}")
    parser.add_argument("--requests", type=int, default=20, help="timed forget requests per cell (+1 warm-up)")
    parser.add_argument("--queries", type=int, default=50, help="timed retrieval queries per size (+1 warm-up)")
    parser.add_argument("--seed", type=int, default=0, help="cohort seed; also picks patients and queries")
    parser.add_argument("--embed-1m", action="store_true", help="also measure retrieval at 1m (embeds ~185k texts)")
    parser.add_argument("--no-retrieval", action="store_true", help="measure forget only")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch.set_num_threads for embedding (default: torch's own, one per core; on a "
                             "machine where other jobs hold cores, 1 avoids the threads waiting for each other)")
    parser.add_argument("--skip", default="", help="cells to leave out, e.g. memory@1m,endpoint@1m")
    parser.add_argument("--budget", type=float, default=600, help="seconds per cell before it is cut short")
    parser.add_argument("--no-plain", action="store_true", help="leave out the plaintext baseline cells")
    parser.add_argument("--compact", action="store_true", help="compact the on-disk store after its requests")
    parser.add_argument("--quick", action="store_true", help="smoke check: 10k only, 5 requests, 10 queries")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks" / "memory_forget",
                        help="output path without suffix: writes .csv and .json")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.requests, args.queries = "10k", 5, 10
    args.sizes = [s.strip().lower() for s in args.sizes.split(",") if s.strip()]
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    args.skip = {s.strip().lower() for s in args.skip.split(",") if s.strip()}
    unknown = [b for b in args.backends if b not in BACKENDS]
    if unknown or not args.backends:
        parser.error(f"--backends: unknown {unknown or 'empty'}; choose from {', '.join(BACKENDS)}")
    for size in args.sizes or ["(none)"]:
        try:
            triples_of(size)
        except ValueError:
            parser.error(f"--sizes: {size!r} is not a size such as 10k, 300k or 1m")
    if args.requests < 1 or args.queries < 1 or args.budget <= 0 or (args.torch_threads or 1) < 1:
        parser.error("--requests, --queries and --torch-threads must be ≥ 1, --budget > 0")
    args.sizes = sorted(args.sizes, key=triples_of)
    args.backends = sorted(args.backends, key=lambda b: b != DEFAULT_BACKEND)  # the default first: it feeds retrieval
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    info = machine()
    speed = None
    if not args.no_retrieval:
        import torch

        if args.torch_threads:
            torch.set_num_threads(args.torch_threads)
        info["torch_threads"] = torch.get_num_threads()
        log("measuring the embedding speed (and loading the model)")
        speed = embed_speed(build_cohort(200, args.seed)[0], args.seed)
        info["embed_texts_per_s"] = round(speed, 1)
    runs = []
    with tempfile.TemporaryDirectory(prefix="sbu-bench-") as tmp:
        for size in args.sizes:
            runs.append(run_size(size, args, Path(tmp), speed))
    checks = targets(runs)
    print_report(runs, info, checks, time.perf_counter() - started)
    write_outputs(args.out, runs, info, checks, args)


if __name__ == "__main__":
    main()
