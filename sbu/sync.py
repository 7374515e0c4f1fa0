"""The synchronized dual-update protocol: one forget request as a journaled state machine (docs/method.md).

    RECEIVED → BARRIER → MEMORY → PARAMETER → VERIFY ─(leakage > ε and round < K)→ MEMORY …
                                                     └────────────────────────────→ COMMITTED

- **RECEIVED**: the request is checked against memory and the journal (:func:`check_targets`: an unknown id, or
  one a request already forgot, is a clear error and nothing is written), then journaled; its targets are sealed
  (:class:`sbu.journal.Sealer`), never written in clear.
- **BARRIER**: the plan is computed and the blocklist raised — from here on nothing about the targets can be
  written back, whatever else is still running.
- **MEMORY**: closure, prune, tombstone + redact, repair; the retrieval index follows in the same step; the data
  keys of every pruned and tombstoned node are destroyed, so no copy of their ciphertext opens again; an on-disk
  store is then rewritten (``ProtocolConfig(compact=True)``, the default) so that no file keeps the deleted nodes'
  IRIs, which name record ids. In later rounds: whatever memory still holds about the targets.
- **PARAMETER**: the configured unlearning method (SRA by default) on a LoRA adapter, D_f built from the plan's
  forget set (plus, in later rounds, the probes that leaked); the adapter is saved under the request's folder.
- **VERIFY**: the agent (new weights, new memory, the barrier) answers direct and paraphrased probes about the
  targets. *Memory leakage*: share of probes whose retrieved context still mentions a target's name or forgotten
  value. *Parameter leakage* [choice]: share of probes whose answer is a forgotten value (the barrier recognises it
  from its keyed hashes and refuses the write-back), minus the share a guess would get (1 / options) — a model that
  never saw the patient still guesses right sometimes (the retrain model: ~0.1 above chance on forget05).
- **COMMITTED**: the merged model and a certificate (JSON) are written under ``<work>/<request>/``.

Each state is journaled when it is done (:class:`sbu.journal.Journal`: append-only, fsync), and every step can run
again after a crash: raising the barrier again adds the same hashes; the memory step forgets whatever is still
about the targets (nothing, if the crash came after its update); an adapter is retrained from the same seed; verify
only reads. ``resume()`` continues from the last journaled state.

**Standing obligations**: a committed request leaves an obligation (:mod:`sbu.obligations`, sealed) and
:class:`StandingObligations` is the agent's :class:`~sbu.agent.UpdateHook` that keeps it: after every later
consolidation — which trains with the obligation's forget set held in place (``dual_update``: an
:class:`~sbu.model.consolidate.Anchor` in its loss) — the obligation's probes are re-verified with VERIFY's
parameter-leakage measure, and while leakage
exceeds ε a PARAMETER round (the configured method, D_f from the obligation plus the probes that leaked) runs on
the current merged weights (optionally only until the closed-book leakage is back to ``resuppress_to`` · ε) — at
most ``resuppress_rounds`` per update. ``discharge_after`` clean consolidations in a
row, or a retrain that never saw the targets, discharge it (its file is removed).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from rdflib import URIRef

from sbu import checks, faults
from sbu.agent import Agent, Turn
from sbu.data.cohort import SUBJECT_KINDS, trained_patients
from sbu.data.forget_set import ForgetSet
from sbu.data.schema import Corpus
from sbu.errors import ConfigError, JournalError, ObligationError, StoreError
from sbu.files import write_atomic
from sbu.journal import Journal, Sealer
from sbu.memory import erasure
from sbu.memory.barrier import Barrier, Reason, keyed_hash, record_id
from sbu.memory.closure import seeds_of
from sbu.memory.forget import applied, apply_forget, barrier_entries, request_iri, successor_count
from sbu.memory.plan import ForgetPlan, plan_forget
from sbu.memory.store import MemoryStore
from sbu.memory.vocab import iri
from sbu.model.consolidate import Anchor
from sbu.model.network import CausalLM, load
from sbu.model.scoring import accuracy, correct
from sbu.obligations import Obligation, ObligationBook
from sbu.retrieval.hybrid import Retriever
from sbu.unlearn.forget_sets import forget_probes, qa_example, unlearning_sets
from sbu.unlearn.loop import Callback, load_adapter, unlearn
from sbu.unlearn.methods import METHODS

JOURNAL_FORMAT = 2  # how a request's plan is journaled (2: a ForgetSet of record ids, snake_case counts)
STATES = ("RECEIVED", "BARRIER", "MEMORY", "PARAMETER", "VERIFY", "COMMITTED")
ROUND_STATES = ("MEMORY", "PARAMETER", "VERIFY")  # the states a round repeats
VALUE_REASONS = {Reason.VALUE, Reason.UNIQUE_VALUE}  # a refused answer that states a forgotten value
AFTER = {"RECEIVED": "BARRIER", "BARRIER": "MEMORY", "MEMORY": "PARAMETER", "PARAMETER": "VERIFY"}  # VERIFY decides


@dataclass(frozen=True)
class ProtocolConfig:
    epsilon: float = 0.15  # leakage allowed at commit (parameter leakage is measured above chance)
    max_rounds: int = 3  # K: MEMORY → PARAMETER → VERIFY at most this many times
    k: int = 3  # documents the agent retrieves per question
    method: str = "sra"  # the unlearning method of the PARAMETER step (a name in sbu.unlearn.METHODS)
    unlearn: dict = field(default_factory=dict)  # its hyper-parameters (sbu.unlearn.methods: the method's config)
    retained_probes: int = 50  # retained questions the agent answers in VERIFY (utility kept?)
    seed: int = 0
    repair: bool = True  # re-derive shared artifacts from retained sources (False: an ablation)
    compact: bool = True  # rewrite an on-disk store after MEMORY: texts are erased by key destruction, but the
    # deleted nodes' IRIs (record ids) stay in RocksDB's files until a rewrite (docs/backends.md)
    standing: bool = True  # a committed request leaves a standing obligation (sbu.obligations)
    discharge_after: int = 5  # clean consolidations in a row that discharge a standing obligation
    resuppress_rounds: int = 1  # PARAMETER rounds at most after one consolidation, while leakage > ε
    closed_book_check: bool = True  # an obligation also re-verifies the weights alone (closed book), not only the
    # agent through memory: a consolidation changes the weights, and retrieved context can hide what they relearnt
    resuppress_to: float | None = None  # a share of ε: a re-suppression round stops once the weights' closed-book
    # leakage is that low (checked every 10 steps); None: the full budget, which never ended above the gold standard
    # where stopping at 0.5 · ε did once (docs/results.md, "Standing obligations")
    dual_update: float = 10.0  # weight of each obligation's term in every later consolidation's loss: its forget
    # set's answers stay where the verified model had them (sbu.model.consolidate.Anchor); 0: no such term. 10 held
    # the weights where the commit left them with 0.3 re-suppressions per seed instead of 1.7 (docs/results.md)
    commit_to: float | None = None  # a share of ε: the request's PARAMETER rounds stop once the weights' closed-book
    # leakage on its probes is that low (checked every 10 steps); None: the full budget

    def __post_init__(self):
        checks.number("epsilon (the leakage allowed at commit)", self.epsilon, 0, below=1)
        checks.integer("max_rounds", self.max_rounds, 1, 100)
        checks.integer("k", self.k, 1, 100)
        checks.integer("retained_probes", self.retained_probes, 0, 100_000)
        checks.integer("seed", self.seed, 0, 2**31 - 1)
        checks.flag("repair", self.repair)
        checks.flag("compact", self.compact)
        checks.flag("standing", self.standing)
        checks.flag("closed_book_check", self.closed_book_check)
        checks.number("dual_update (the weight of an obligation's term in a consolidation's loss)", self.dual_update, 0,
                      most=1_000)
        if self.resuppress_to is not None:
            checks.share("resuppress_to (the share of ε a re-suppression round stops at)", self.resuppress_to)
        if self.commit_to is not None:
            checks.share("commit_to (the share of ε a request's PARAMETER round stops at)", self.commit_to)
        checks.integer("discharge_after (clean consolidations that discharge an obligation)", self.discharge_after,
                       1, 10_000)
        checks.integer("resuppress_rounds (PARAMETER rounds after one consolidation)", self.resuppress_rounds, 1, 100)
        checks.choice("method", self.method, METHODS)
        if not isinstance(self.unlearn, dict):
            raise ConfigError(f"unlearn must be a dict of unlearning hyper-parameters, got {self.unlearn!r}")
        METHODS[self.method].configure(**self.unlearn)  # unknown or bad hyper-parameters fail now, not in PARAMETER


@dataclass
class Certificate:
    """What a committed request did, with no plaintext: the request id, keyed hashes of the targets, counts,
    leakage per round, metrics, times, the adapters' hash and where the model is."""

    request: str
    targets: list[str]
    counts: dict
    rounds: int
    leakage: list[dict]
    metrics: dict
    seconds: dict
    adapter_sha256: str
    model: str
    committed_at: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)


def _sha256_of(paths: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        for file in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".safetensors", ".bin")):
            digest.update(file.read_bytes())
    return digest.hexdigest()


class ForgetProtocol:
    """Run and resume forget requests on one memory and one model, journaled under ``work``.

    ``corpus`` supplies the probes (D_f from the plan's forget set, the verify questions); ``corpus_ref`` is how the
    CLI finds it again on resume (``{"profile": "smoke", "seed": 0}`` or ``{"dir": PATH}``). ``lm`` must be the
    model saved at ``lm.path`` (resume reloads it from there). ``retriever``: the agent's index, which follows every
    forget; without one the protocol builds its own from the store when it first needs it."""

    def __init__(self, work: str | Path, store: MemoryStore, lm: CausalLM, corpus: Corpus,
                 config: ProtocolConfig | None = None, *, key: bytes | None = None,
                 retriever: Retriever | None = None, corpus_ref: dict | None = None,
                 log: Callable[[str], None] | None = None):
        self.work = Path(work)
        self.store, self.lm, self.corpus = store, lm, corpus
        self.config = config or ProtocolConfig()
        self.barrier = Barrier.load(store, key)
        self.key = self.barrier.key
        self.retriever = retriever
        self.corpus_ref = corpus_ref or {}
        self.journal = Journal(self.work / "journal.jsonl")
        self.sealer = Sealer(self.key, *self.barrier.retired)
        self.obligations = ObligationBook(self.work / "obligations", self.sealer)
        self.log = log or (lambda message: None)
        self.steps: dict[str, Callable[[str, list[str], list[dict], int], None]] = {
            "BARRIER": self._barrier, "MEMORY": self._memory, "PARAMETER": self._parameter, "VERIFY": self._verify,
            "COMMITTED": self._committed}

    # -- entry points ----------------------------------------------------------------------------------------
    def submit(self, targets: Sequence[str] | str) -> Certificate:
        """Receive a request for ``targets`` (entity ids) and run it to COMMITTED."""
        ids = tuple(dict.fromkeys(record_id(t) for t in _checked_targets(targets)))
        token = str(request_iri(self.key, ids)).rsplit("/", 1)[1]
        records = self.journal.records(token)
        if records and records[-1]["state"] != "COMMITTED":
            return self.resume(token)  # the same request again, interrupted: finish it
        check_targets(self.store, self.journal, ids, (self.key, *self.barrier.retired))
        plan = plan_forget(self.store, ids)
        self._record(token, "RECEIVED", sealed=self.sealer.seal({"targets": list(plan.targets)}),
                     targets=[keyed_hash(self.key, "id", t) for t in plan.targets],
                     store=self.store.url, model=str(self.lm.path), corpus=self.corpus_ref,
                     config=asdict(self.config), format=JOURNAL_FORMAT)
        return self.resume(token)

    def resume(self, request: str) -> Certificate:
        """Continue ``request`` (its id) from its last journaled state to COMMITTED."""
        records = self.journal.records(request)
        if not records:
            raise JournalError(f"no request {request!r} in {self.journal.path}")
        if records[0].get("format") != JOURNAL_FORMAT:
            raise JournalError(f"request {request!r} was journaled by an older sbu (its plan is recorded in another "
                               "form): finish it with that version, or start the request again in a new --work")
        targets = self.sealer.open(records[0]["sealed"])["targets"]
        while True:
            records = self.journal.records(request)
            if records[-1]["state"] == "COMMITTED":
                return Certificate(**json.loads((self.work / request / "certificate.json").read_text()))
            state, round_no = self._next(records)
            self.log(state + (f" (round {round_no})" if state in ROUND_STATES else ""))
            self.steps[state](request, targets, records, round_no)

    def model_after(self, request: str) -> CausalLM:
        """θ after ``request``'s PARAMETER rounds so far (the committed model once it is committed)."""
        records = self.journal.records(request)
        if not records:
            raise JournalError(f"no request {request!r} in {self.journal.path}")
        if records[-1]["state"] == "COMMITTED":  # from disk, so that its path is where it lives
            return load(self.work / request / "model")
        return self._current_model(request, records, max(r.get("round", 0) for r in records) + 1)

    def _next(self, records: list[dict]) -> tuple[str, int]:
        """The state after the last journaled one, and its round: the diagram at the top of this module."""
        last = records[-1]
        state, round_no = last["state"], last.get("round", 0)
        if state == "VERIFY":
            if last["leakage"] > self.config.epsilon and round_no < self.config.max_rounds:
                return "MEMORY", round_no + 1
            return "COMMITTED", round_no
        if state not in AFTER:
            raise JournalError(f"unknown state {state!r} in the journal")
        return AFTER[state], 1 if state == "BARRIER" else round_no

    def _record(self, request: str, state: str, **data) -> dict:
        record = self.journal.append({"request": request, "state": state, **data})
        faults.point(f"after-{state}")  # the crash tests kill the process at every state boundary
        return record

    def _index(self) -> Retriever:
        """The agent's retrieval index: the one given (it follows every forget), else a fresh one over the store."""
        return self.retriever if self.retriever is not None else Retriever.from_store(self.store)

    # -- the states ------------------------------------------------------------------------------------------
    def _barrier(self, request: str, targets: list[str], records: list[dict], round_no: int) -> None:
        started = time.perf_counter()
        plan = plan_forget(self.store, targets)
        hashes = barrier_entries(self.store, plan, self.barrier)
        self.barrier.raise_for(self.store, iri(f"request/{request}"), hashes)
        self._record(request, "BARRIER", seconds=time.perf_counter() - started, blocked=len(hashes),
                     plan=plan.counts(), sealed=self.sealer.seal(plan.forget_set().as_record()),
                     sealed_plan=self.sealer.seal(plan.as_record()))

    def _memory(self, request: str, targets: list[str], records: list[dict], round_no: int) -> None:
        started = time.perf_counter()
        request_node = iri(f"request/{request}")
        erasure.finish(self.store, lambda r: applied(self.store, r))  # a crash after the update, before the keys
        remaining = [t for t in targets if seeds_of(self.store, record_id(t))]
        counts = {"pruned": 0, "tombstoned": 0, "successors": 0}
        barrier_record = next(r for r in records if r["state"] == "BARRIER")
        first = round_no == 1 and not applied(self.store, request_node)
        if (first and "sealed_plan" in barrier_record) or (remaining and not (round_no == 1 and not first)):
            # round 1 applies the very plan the barrier was raised for: a try that failed after some of its
            # batches left a memory that planning again would read wrong; applying the plan again finishes it
            plan = (ForgetPlan.from_record(self.sealer.open(barrier_record["sealed_plan"]))
                    if first and "sealed_plan" in barrier_record else plan_forget(self.store, remaining))
            index = self._index()
            # drop the closure's documents and cached vectors first: after a crash between the forget and the
            # index, nothing could name those vectors again (a cached vector is keyed by its text)
            index.remove(plan.closure)
            result = apply_forget(self.store, plan, self.barrier, repair=self.config.repair)
            index.apply(result)
            counts = {"pruned": len(result.pruned), "tombstoned": len(result.tombstoned),
                      "successors": len(result.successors)}
        elif round_no == 1:  # applied before a crash: the counts are the plan's, the successors are in memory
            planned = next(r for r in records if r["state"] == "BARRIER")["plan"]
            counts = {"pruned": planned["isolated"] + planned["entities_pruned"], "tombstoned": planned["shared"],
                      "successors": successor_count(self.store, request_node)}
        if self.config.compact and self.store.path is not None:
            self.store.compact()
        self._record(request, "MEMORY", round=round_no, seconds=time.perf_counter() - started, **counts)

    def _current_model(self, request: str, records: list[dict], upto: int) -> CausalLM:
        """θ after the PARAMETER steps of rounds < ``upto``: the starting model with each round's adapter merged."""
        lm = self.lm
        for r in range(1, upto):
            adapted = load_adapter(lm, self.work / request / f"adapter-r{r}")
            merged = adapted.model.merge_and_unload()
            merged.eval()
            lm = CausalLM(merged, lm.tokenizer, lm.path, {**lm.info, "rounds": r})
        return lm

    def _parameter(self, request: str, targets: list[str], records: list[dict], round_no: int) -> None:
        started = time.perf_counter()
        sealed = self.sealer.open(next(r for r in records if r["state"] == "BARRIER")["sealed"])
        sets = unlearning_sets(self.corpus, ForgetSet.from_record(sealed), seed=self.config.seed)
        forget = list(sets.forget)
        leaked_ids = {i for r in records if r["state"] == "VERIFY" for i in self.sealer.open(r["sealed"])["leaked"]}
        forget += [qa_example(q) for q in self.corpus.qa if q.id in leaked_ids]  # the probes that leaked
        current = self._current_model(request, records, round_no)
        stop = [] if self.config.commit_to is None else [
            BackUnder(self.corpus.qa_about(targets), self.config.commit_to * self.config.epsilon)]
        run = unlearn(current, forget, sets.retain, self.config.method, progress=False, callbacks=stop,
                      **{"seed": self.config.seed + round_no - 1, **self.config.unlearn})
        run.save(self.work / request / f"adapter-r{round_no}")
        self._record(request, "PARAMETER", round=round_no, seconds=time.perf_counter() - started,
                     forget_examples=len(forget), steps=len(run.log))

    def _verify(self, request: str, targets: list[str], records: list[dict], round_no: int) -> None:
        started = time.perf_counter()
        lm = self._current_model(request, records, round_no + 1)
        retriever = self._index()
        agent = Agent(lm, self.store, retriever, self.barrier, k=self.config.k, key=self.key)
        probes = self.corpus.qa_about(targets)  # direct (train phrasing) and paraphrased (held-out phrasing)
        refused_before = self.barrier.refused
        turns = agent.answer(probes, round_no=round_no)
        parameter_leakage, leaked = parameter_leakage_of(probes, turns)
        exposed = sum(any(_leaks(self.barrier, URIRef(h), retriever.text(URIRef(h))) for h in t.retrieved)
                      for t in turns)
        memory_leakage = exposed / len(probes)
        retained = _retained_probes(self.corpus, targets, self.config.retained_probes, self.config.seed)
        retained_turns = agent.answer(retained, round_no=round_no, write_back=False)
        direct = [p for p in probes if p.phrasing == "train"]
        metrics = {"agent_forget_accuracy": float(np.mean([t.correct for t in turns])),
                   "closed_book_forget_accuracy": accuracy(lm.model, lm.tokenizer, direct),
                   "agent_retained_accuracy": float(np.mean([t.correct for t in retained_turns]))
                   if retained_turns else None,
                   "refused": self.barrier.refused - refused_before, "probes": len(probes)}
        self._record(request, "VERIFY", round=round_no, seconds=time.perf_counter() - started,
                     leakage=max(parameter_leakage, memory_leakage), parameter_leakage=parameter_leakage,
                     memory_leakage=memory_leakage, metrics=metrics, sealed=self.sealer.seal({"leaked": leaked}))

    def _committed(self, request: str, targets: list[str], records: list[dict], round_no: int) -> None:
        folder = self.work / request
        rounds = max(r.get("round", 0) for r in records)
        lm = self._current_model(request, records, rounds + 1)
        model_dir = folder / "model"
        if not (model_dir / "config.json").is_file():
            tmp = folder / "model.partial"
            lm.model.save_pretrained(tmp)
            lm.tokenizer.save_pretrained(tmp)
            (tmp / "info.json").write_text(json.dumps({k: v for k, v in lm.info.items() if _plain(v)}, indent=1))
            tmp.rename(model_dir)
        verifies = [r for r in records if r["state"] == "VERIFY"]
        memories = [r for r in records if r["state"] == "MEMORY"]
        barrier = next(r for r in records if r["state"] == "BARRIER")
        seconds: dict[str, float] = {}
        for r in records:
            if "seconds" in r:
                seconds[r["state"]] = seconds.get(r["state"], 0.0) + r["seconds"]
        counts = {"blocked_hashes": barrier["blocked"], **{f"plan_{k}": v for k, v in barrier["plan"].items()},
                  "pruned": sum(m["pruned"] for m in memories),
                  "tombstoned": sum(m["tombstoned"] for m in memories),
                  "repaired": sum(m["successors"] for m in memories)}
        certificate = Certificate(
            request=request, targets=records[0]["targets"], counts=counts, rounds=len(verifies),
            leakage=[{"round": v["round"], "leakage": v["leakage"], "memory": v["memory_leakage"],
                      "parameter": v["parameter_leakage"]} for v in verifies],
            metrics=verifies[-1]["metrics"], seconds=seconds,
            adapter_sha256=_sha256_of([folder / f"adapter-r{r}" for r in range(1, rounds + 1)]),
            model=str(model_dir), committed_at=records[-1]["at"])
        write_atomic(folder / "certificate.json", certificate.to_json())
        if self.config.standing:  # before COMMITTED is journaled: a crash here writes the same obligation again
            self.obligations.write(Obligation(
                request, tuple(targets), self.sealer.open(barrier["sealed"]),
                tuple(q.id for q in self.corpus.qa_about(targets)), self.config.epsilon,
                self.config.discharge_after))
        self._record(request, "COMMITTED", round=rounds, certificate=str(folder / "certificate.json"))


    # -- standing obligations ---------------------------------------------------------------------------------
    def standing(self) -> StandingObligations:
        """The hook that keeps this work folder's obligations: give it to the agent (``Agent(hooks=[...])``)."""
        return StandingObligations(self)


def parameter_leakage_of(probes: Sequence, turns: Sequence[Turn]) -> tuple[float, list[str]]:
    """VERIFY's parameter leakage: the share of ``probes`` the agent answered with the forgotten value (recognised
    by the barrier, which refused the write-back) minus what guessing gets (1 / options), and the ids that leaked.
    A leak is the forgotten value *answered*: a wrong option can be another blocked value of the same subject (a
    PubMedQA-L abstract's other endings), and counting it made a model at chance look like it leaked."""
    leaked = [p.id for p, t in zip(probes, turns) if t.correct and VALUE_REASONS & set(t.refused)]
    chance = float(np.mean([1 / len(p.options) for p in probes]))
    return max(0.0, len(leaked) / len(probes) - chance), leaked


def closed_book_leakage(lm: CausalLM, probes: Sequence) -> tuple[float, list[str]]:
    """The weights' own parameter leakage: the share of ``probes`` ``lm`` answers right with no context at all, minus
    what guessing gets (1 / options), and the ids it answered right. This is what a parameter update can bring back,
    and the agent's answers through memory can hide it (other patients' retrieved notes pull answers elsewhere)."""
    was_training = lm.model.training
    lm.model.eval()
    right = correct(lm.model, lm.tokenizer, probes)
    lm.model.train(was_training)
    chance = float(np.mean([1 / len(p.options) for p in probes]))
    return max(0.0, float(np.mean(right)) - chance), [p.id for p, hit in zip(probes, right) if hit]


@dataclass
class BackUnder(Callback):
    """Stops a re-suppression round once the weights' closed-book leakage on ``probes`` is at most ``level`` (checked
    every ``every`` steps and logged as ``closed_book_leakage``): the round brings the weights back under ε without
    driving the answers below what a model that never saw the patients gives."""

    probes: Sequence
    level: float
    every: int = 10

    def on_step_end(self, step: int, model, tokenizer, record: dict) -> bool:
        if step % self.every:
            return False
        record["closed_book_leakage"], _ = closed_book_leakage(CausalLM(model, tokenizer, None, {}), self.probes)
        return record["closed_book_leakage"] <= self.level


@dataclass(frozen=True)
class Upkeep:
    """One obligation's check after one parameter update: leakage re-verified before and after the PARAMETER
    rounds it needed (``rounds``; 0 when it was clean), and whether the check discharged it."""

    request: str
    update: int  # the agent's parameter updates so far (consolidations)
    leakage: float  # parameter leakage re-verified right after the update
    rounds: int  # PARAMETER rounds run to bring it back under ε
    leakage_after: float  # after those rounds (= leakage when none ran)
    discharged: bool
    seconds: float


class StandingObligations:
    """The agent's :class:`~sbu.agent.UpdateHook` for the obligations of ``protocol``'s work folder: before an
    update every obligation is opened and marked pending, and its forget set is handed to the update as an anchor;
    after it each is re-verified and, while its leakage
    exceeds ε, re-suppressed (at most ``resuppress_rounds`` PARAMETER rounds), then saved (pending cleared) or
    discharged. ``history`` holds one :class:`Upkeep` per obligation and update."""

    def __init__(self, protocol: ForgetProtocol):
        self.protocol = protocol
        self.book = protocol.obligations
        self.history: list[Upkeep] = []
        self.updates = 0

    def before_update(self) -> None:
        for obligation in self.book.all():
            self._probes(obligation)  # an obligation that could not be checked fails now, before training
        self.book.mark_pending()

    def anchors(self) -> list[Anchor]:
        """With ``dual_update`` on, one :class:`~sbu.model.consolidate.Anchor` per obligation: its forget set's
        questions, whose answers the consolidation keeps where the verified model had them."""
        weight = self.protocol.config.dual_update
        if not weight:
            return []
        corpus = self.protocol.corpus
        return [Anchor(tuple(qa_example(q) for q in forget_probes(corpus, ForgetSet.from_record(o.forget_set))),
                       weight) for o in self.book.all()]

    def after_update(self, lm: CausalLM) -> CausalLM:
        self.updates += 1
        for obligation in self.book.all():
            lm = self._keep(obligation, lm)
        return lm

    def settle(self, lm: CausalLM) -> CausalLM:
        """After a crash between an update's training and its re-verification: check ``lm`` (the model the agent
        goes on with) against every obligation still marked pending, as :meth:`after_update` would have."""
        for obligation in self.book.all():
            if obligation.pending:
                lm = self._keep(obligation, lm)
        return lm

    def retrained(self, lm: CausalLM) -> list[str]:
        """The agent's model is now ``lm``: discharge every obligation whose targets ``lm``'s training data left out
        (a retrain model's ``exclude`` split); return their request ids."""
        excluded = set(self.protocol.corpus.splits.get(lm.info.get("exclude") or "", []))
        gone = [o.request for o in self.book.all() if {record_id(t) for t in o.targets} <= excluded]
        for request in gone:
            self.book.discharge(request)
        return gone

    def leakage(self, obligation: Obligation, lm: CausalLM) -> tuple[float, list[str]]:
        """VERIFY's parameter leakage of ``lm`` on the obligation's probes, answered by the agent through memory and
        the barrier (which refuses every write-back about the targets: nothing is written), and — unless the
        protocol's ``closed_book_check`` is off — the weights' own closed-book leakage: the larger of the two, and the
        probes that leaked by either."""
        protocol = self.protocol
        agent = Agent(lm, protocol.store, protocol._index(), protocol.barrier, k=protocol.config.k, key=protocol.key)
        probes = self._probes(obligation)
        leakage, leaked = parameter_leakage_of(probes, agent.answer(probes))
        if protocol.config.closed_book_check:
            closed, closed_leaked = closed_book_leakage(lm, probes)
            leakage, leaked = max(leakage, closed), sorted(set(leaked) | set(closed_leaked))
        return leakage, leaked

    def _probes(self, obligation: Obligation) -> list:
        by_id = {q.id: q for q in self.protocol.corpus.qa}
        missing = [p for p in obligation.probes if p not in by_id]
        if missing or not obligation.probes:
            raise ObligationError(f"the obligation of request {obligation.request} names {len(missing)} probe(s) this "
                                  "corpus does not hold: it was made for another corpus; re-verify with that one")
        return [by_id[p] for p in obligation.probes]

    def _keep(self, obligation: Obligation, lm: CausalLM) -> CausalLM:
        started = time.perf_counter()
        config = self.protocol.config
        leakage, leaked = self.leakage(obligation, lm)
        after, rounds = leakage, 0
        while after > obligation.epsilon and rounds < config.resuppress_rounds:
            rounds += 1
            lm = self._resuppress(obligation, lm, leaked, seed=config.seed + 1000 * (obligation.checks + 1) + rounds)
            after, leaked = self.leakage(obligation, lm)
        clean = obligation.clean + 1 if rounds == 0 else 0
        discharged = clean >= obligation.discharge_after
        if discharged:
            self.book.discharge(obligation.request)
        else:
            self.book.write(replace(obligation, clean=clean, checks=obligation.checks + 1,
                                    resuppressions=obligation.resuppressions + rounds, pending=False))
        self.history.append(Upkeep(obligation.request, self.updates, leakage, rounds, after, discharged,
                                   time.perf_counter() - started))
        return lm

    def _resuppress(self, obligation: Obligation, lm: CausalLM, leaked: Sequence[str], seed: int) -> CausalLM:
        """One PARAMETER round on the current weights: the configured method, D_f from the obligation's forget set
        plus the probes that leaked, merged into the weights."""
        protocol = self.protocol
        sets = unlearning_sets(protocol.corpus, ForgetSet.from_record(obligation.forget_set), seed=protocol.config.seed)
        wanted = set(leaked)
        forget = list(sets.forget) + [qa_example(q) for q in protocol.corpus.qa if q.id in wanted]
        config = protocol.config
        stop = [] if config.resuppress_to is None else [BackUnder(self._probes(obligation),
                                                                  config.resuppress_to * obligation.epsilon)]
        run = unlearn(lm, forget, sets.retain, config.method, progress=False, callbacks=stop,
                      **{**config.unlearn, "seed": seed})
        merged = run.merged()
        return CausalLM(merged.model, lm.tokenizer, lm.path,
                        {**lm.info, "resuppressions": lm.info.get("resuppressions", 0) + 1})


def memory_content(store: MemoryStore) -> list[str]:
    """The store's N-Quads lines, sorted, without the request's timestamps: what two runs of the same request
    (one interrupted and resumed, one not) must agree on."""
    return sorted(line for line in store.nquads().splitlines()
                  if "invalidatedAtTime" not in line and "startedAtTime" not in line)


MAX_TARGETS = 10_000  # entities in one request
MAX_ID_LENGTH = 2_048  # characters in one entity id


def _checked_targets(targets) -> list[str]:
    """The request's entity ids, or a clear error before anything is read or written."""
    if isinstance(targets, str):
        targets = [targets]
    if not isinstance(targets, list | tuple):
        raise StoreError(f"a forget request is a list of entity ids such as ['patient/p007'], got {targets!r:.80}")
    if len(targets) > MAX_TARGETS:
        raise ConfigError(f"a forget request names at most {MAX_TARGETS:_} entities, got {len(targets):_}; "
                          "split it into several requests")
    for t in targets:
        if not isinstance(t, str) or not t.strip():
            raise StoreError(f"a forget request names entities by id strings such as 'patient/p007'; got {t!r:.80}")
        if len(t) > MAX_ID_LENGTH:
            raise StoreError(f"an entity id of {len(t):_} characters is not an id (at most {MAX_ID_LENGTH:_})")
    ids = [record_id(t) for t in targets]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise StoreError(f"the request names {len(twice)} entit{'y' if len(twice) == 1 else 'ies'} twice (an id and "
                         "its IRI count as the same); name each once")
    return list(targets)


@dataclass(frozen=True)
class PastRequest:
    """A journaled request that named an entity: its id, whether it committed, and when (ISO time, UTC) it
    committed or, if it did not, was received."""

    request: str
    committed: bool
    at: str

    def when(self) -> str:
        return self.at[:16].replace("T", " ") + " UTC"


def past_requests(journal: Journal, keys: Sequence[bytes], entity: str) -> list[PastRequest]:
    """The journal's requests that named ``entity``, oldest first, found by the keyed hashes of their targets (under
    the barrier's current key or a retired one), so that nothing but the id asked about is ever compared."""
    hashes = {keyed_hash(key, "id", record_id(entity)) for key in keys}
    by_request: dict[str, list[dict]] = {}
    for record in journal.records():  # read once: one journal holds every request of its work folder
        by_request.setdefault(record["request"], []).append(record)
    found = []
    for request, records in by_request.items():
        if hashes & set(records[0].get("targets", ())):
            committed = records[-1]["state"] == "COMMITTED"
            found.append(PastRequest(request, committed, records[-1 if committed else 0]["at"]))
    return found


def check_targets(store: MemoryStore, journal: Journal, targets: Sequence[str],
                  keys: Sequence[bytes] = ()) -> None:
    """Refuse a request before anything is loaded or written when memory holds nothing about one of its targets: the
    error says whether a journaled request already forgot it (its id and date), is still forgetting it, or no
    request ever named it. ``keys``: the barrier's keys (current first), needed only when the journal is not empty."""
    for target in _checked_targets(list(targets)):
        entity = record_id(target)
        if seeds_of(store, entity):
            continue
        past = past_requests(journal, keys, entity) if journal.records() else []
        done = [p for p in past if p.committed]
        if done:
            raise StoreError(f"{entity!r} is already forgotten (request {done[0].request}, {done[0].when()}); its "
                             f"certificate is {journal.path.parent / done[0].request / 'certificate.json'}")
        if past:
            raise StoreError(f"{entity!r} is being forgotten by request {past[0].request} (received "
                             f"{past[0].when()}), which has not committed: finish it with `sbu resume --work "
                             f"{journal.path.parent}` (or ForgetProtocol.resume)")
        raise StoreError(f"no assertion in memory is about {entity!r}, and no forget request in {journal.path} "
                         "named it; check the id")


def _plain(value) -> bool:
    try:
        json.dumps(value)
        return True
    except TypeError:
        return False


def _leaks(barrier: Barrier, hit: URIRef, text: str) -> bool:
    """Is a retrieved document forgotten data: a node of a request's closure, or a text that names a forgotten
    entity (its name or id)? Read from the barrier's keyed hashes, not plaintext. Values alone do not count: a
    retained patient may share one (an allergy, a city)."""
    return not barrier.check(text, (), [hit], count=False)


def _retained_probes(corpus: Corpus, targets: Sequence[str], n: int, seed: int) -> list:
    kept = set(trained_patients(corpus)) - {record_id(t) for t in targets}
    items = [q for q in corpus.qa if q.kind in SUBJECT_KINDS and q.phrasing == "train" and q.about in kept]
    if not items or n <= 0:
        return []
    rng = np.random.default_rng(seed)
    return [items[i] for i in sorted(rng.choice(len(items), size=min(n, len(items)), replace=False))]
