"""Backflow, measured: unlearn one pathway, or both, then let the agent's loop run.

Conditions [choice, stated in notebook 03]:

- ``none``: nothing forgotten (the reference);
- ``memory-only``: the dependency closure on memory (prune, tombstone + redact, repair, index), as a memory
  system would apply it — the agent's write-backs are not checked by a barrier, the model is unchanged;
- ``parameter-only``: SRA on the weights, memory unchanged, no barrier;
- ``sbu``: the synchronized protocol (:mod:`sbu.sync`): barrier, closure, SRA, verify — the agent keeps the barrier
  and the request's standing obligation: after each consolidation its probes are re-verified and, while leakage
  exceeds ε, re-suppressed (:class:`sbu.sync.StandingObligations`).

Then ``rounds`` rounds of closed-loop interaction whose queries are the forgotten patients' questions and as many
about retained patients, each round answered through memory, written back, then consolidated into the weights.
Per round: forget accuracy closed-book (weights only) and through the agent, retained accuracy through the agent,
memory exposure (share of forget probes whose top-k holds a forgotten name or value), forgotten facts back in
memory (a live text holding the patient's name and the right answer), cached answers about forgotten patients
re-created, the write-backs the barrier refused, and for an arm with standing obligations the parameter leakage
re-verified after the round's consolidation (``obligation_leakage``; NaN without obligations), after the
re-suppression (``obligation_leakage_after``) and the PARAMETER rounds that took (``resuppression_rounds``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from accelerate.utils import set_seed
from tqdm import tqdm

from sbu import checks
from sbu.agent import Agent, Turn
from sbu.data.cohort import SUBJECT_KINDS, patients_in, trained_patients
from sbu.data.forget_set import ForgetSet
from sbu.data.schema import Corpus, QAItem
from sbu.errors import ConfigError
from sbu.eval.exposure import _occurs, forgotten_strings, memory_exposure, retained_text
from sbu.memory import open_store
from sbu.memory.barrier import Barrier
from sbu.memory.forget import forget
from sbu.memory.ingest import ingest
from sbu.memory.vocab import ID_BASE
from sbu.model.consolidate import ConsolidationConfig
from sbu.model.network import CausalLM
from sbu.model.scoring import accuracy
from sbu.retrieval.hybrid import Retriever
from sbu.sync import ForgetProtocol, ProtocolConfig, StandingObligations, Upkeep
from sbu.unlearn.forget_sets import unlearning_sets
from sbu.unlearn.loop import unlearn as run_unlearn

CONDITIONS = ("none", "memory-only", "parameter-only", "sbu")


@dataclass(frozen=True)
class Arm:
    """What a condition does to each pathway: the study's conditions and ablations are all arms.

    ``memory``: apply the dependency closure; ``parameter``: an unlearning method of :mod:`sbu.unlearn`,
    ``"retrain"`` (the gold standard's model) or None; ``protocol``: run the synchronized protocol (then memory and
    parameter are its own); ``barrier``: the agent's write-backs go through the barrier; ``repair`` and
    ``max_rounds`` are the protocol's; ``unlearn``: hyper-parameters over the run's (an SRA prior, τ);
    ``obligations``: the protocol's request stands after commit, kept by the agent's consolidations;
    ``protocol_options``: other :class:`~sbu.sync.ProtocolConfig` settings of the arm (e.g. the obligation's
    ``closed_book_check``)."""

    name: str
    memory: bool = False
    parameter: str | None = None
    protocol: bool = False
    barrier: bool = False
    repair: bool = True
    max_rounds: int = 3
    unlearn: tuple = ()  # (name, value) pairs, hashable
    obligations: bool = False
    protocol_options: tuple = ()  # (name, value) pairs of ProtocolConfig, hashable

    @classmethod
    def named(cls, name: str) -> Arm:
        """The four conditions of notebook 03 by name (``parameter-only`` is SRA)."""
        arms = {"none": cls("none"), "memory-only": cls("memory-only", memory=True),
                "parameter-only": cls("parameter-only", parameter="sra"),
                "sbu": cls("sbu", protocol=True, barrier=True, obligations=True)}
        if name not in arms:
            raise ConfigError(f"unknown condition {name!r}; choose from {', '.join(CONDITIONS)}")
        return arms[name]


@dataclass
class Condition:
    """One condition, ready for the loop: its agent, and what the unlearning step left behind."""

    name: str
    agent: Agent
    patients: list[str]
    certificate: object | None = None  # the protocol's certificate (sbu only)
    unlearn_seconds: float = 0.0
    standing: StandingObligations | None = None  # the agent's obligations hook (an arm with obligations)


def prepare(name: str | Arm, corpus: Corpus, base: CausalLM, patients: Sequence[str], *, work: str | Path,
            unlearn: dict | None = None, k: int = 3, consolidation: ConsolidationConfig | None = None,
            seed: int = 0, retrain: CausalLM | None = None) -> Condition:
    """A fresh memory holding ``corpus``, the agent of condition ``name`` (or of any :class:`Arm`) after
    forgetting ``patients``; ``retrain`` is the model of an arm whose parameter is ``"retrain"``."""
    arm = name if isinstance(name, Arm) else Arm.named(name)
    hparams = {**(unlearn or {}), **dict(arm.unlearn)}
    if arm.parameter == "retrain" and retrain is None:
        raise ConfigError(f"arm {arm.name!r} needs the retrain model (retrain=...)")
    store = open_store("oxigraph:")
    ingest(store, corpus)
    lm, barrier, certificate, standing = base, None, None, None
    retriever = Retriever.from_store(store)  # the agent's index before forgetting (embedding is not unlearning)
    started = time.perf_counter()
    if arm.protocol:
        config = ProtocolConfig(unlearn=hparams, k=k, seed=seed, repair=arm.repair, max_rounds=arm.max_rounds,
                                standing=arm.obligations, **dict(arm.protocol_options))
        protocol = ForgetProtocol(work, store, base, corpus, config, retriever=retriever)
        certificate = protocol.submit(list(patients))
        lm = protocol.model_after(certificate.request)
        barrier = protocol.barrier if arm.barrier else None
        standing = protocol.standing() if arm.obligations else None
    else:
        if arm.memory:
            forget(store, patients)
            retriever = Retriever.from_store(store)  # what survived (its vectors are cached: no re-embedding)
        if arm.parameter == "retrain":
            lm = retrain
        elif arm.parameter is not None:
            sets = unlearning_sets(corpus, ForgetSet.of_patients(corpus, patients), seed=seed)
            lm = run_unlearn(base, sets.forget, sets.retain, arm.parameter, progress=False,
                             **{"seed": seed, **hparams}).lm
        if arm.barrier:
            barrier = Barrier.load(store)
    if not arm.protocol and arm.parameter in (None, "retrain"):
        # Each consolidation initialises a fresh LoRA adapter from torch's global generator. Unlearning seeds it
        # (set_seed in sbu.unlearn.loop.unlearn); an arm that unlearns nothing seeds it here, the same way, or its
        # loop would start from whatever the process left there (at start-up torch seeds it at random)
        set_seed(seed)
    seconds = time.perf_counter() - started
    agent = Agent(lm, store, retriever, barrier, k=k, consolidation=consolidation or ConsolidationConfig(seed=seed),
                  hooks=[standing] if standing else [])
    return Condition(arm.name, agent, list(patients), certificate, seconds, standing)


def queries(corpus: Corpus, patients: Sequence[str], retained: int | None = None, seed: int = 0) -> list[QAItem]:
    """The loop's questions: every train-phrasing question about the forgotten patients, and as many (or
    ``retained``) about retained patients."""
    forgotten = set(patients)
    forget_items = [q for q in corpus.qa if q.about in forgotten and q.phrasing == "train"]
    kept = set(trained_patients(corpus)) - forgotten
    pool = [q for q in corpus.qa if q.about in kept and q.phrasing == "train" and q.kind in SUBJECT_KINDS]
    n = min(len(pool), len(forget_items) if retained is None else retained)
    rng = np.random.default_rng(seed)
    return forget_items + [pool[i] for i in sorted(rng.choice(len(pool), size=n, replace=False))]


def cue(corpus: Corpus, item: QAItem) -> str:
    """What tells that a text is about ``item``'s subject: the patient's name, which the cohort's questions hold;
    else the question itself (a PubMedQA-L cloze item: the start of the abstract's sentence)."""
    name = corpus.entity(item.about).name
    return name if name in item.question else item.question


def loop_secrets(corpus: Corpus, patients: Sequence[str], forget_items: Sequence[QAItem]) -> list[str]:
    """What memory exposure looks for: the forgotten subjects' names and unique values, and the cue of every
    forget probe (for the cohort these are the names again) that no retained fact or artifact also holds (a
    common sentence opening is no evidence of a forgotten abstract)."""
    retained = retained_text(corpus, patients)
    cues = [c for c in (cue(corpus, q) for q in forget_items) if not _occurs(c, retained)]
    return list(dict.fromkeys([*forgotten_strings(corpus, patients), *cues]))


def round_metrics(condition: Condition, corpus: Corpus, turns: Sequence[Turn], round_no: int,
                  secrets: Sequence[str], forget_items: Sequence[QAItem]) -> dict:
    agent, forgotten = condition.agent, set(condition.patients)
    live = {str(iri): text for iri, text in agent.retriever.documents().items()}
    cues = {q.id: cue(corpus, q) for q in forget_items}
    back = sum(any(_occurs(cues[q.id], text) and _occurs(q.answer_text, text) for text in live.values())
               for q in forget_items)
    # a cached answer about a forgotten patient names them (its question does); an answer about a retained patient
    # that happens to hold a value only a forgotten patient had (a wrong option) is not about them
    recreated = sum(iri.startswith(ID_BASE + "answer/") and any(_occurs(c, text) for c in set(cues.values()))
                    for iri, text in live.items())
    on_forget = [t.correct for t in turns if t.about in forgotten]
    on_kept = [t.correct for t in turns if t.about not in forgotten]
    return {"condition": condition.name, "round": round_no,
            "forget_acc_closed_book": accuracy(agent.lm.model, agent.lm.tokenizer, list(forget_items)),
            "forget_acc_agent": float(np.mean(on_forget)) if on_forget else np.nan,
            "retain_acc_agent": float(np.mean(on_kept)) if on_kept else np.nan,
            "memory_exposure": memory_exposure(agent.retriever, [q.question for q in forget_items], (), secrets,
                                               agent.k),
            "facts_back_in_memory": back / len(forget_items),
            "recreated_artifacts": recreated,
            "written": sum(t.written is not None for t in turns),
            "refused": sum(bool(t.refused) for t in turns)}


def backflow_study(corpus: Corpus, base: CausalLM, forget_split: str = "forget05", *, work: str | Path,
                   conditions: Sequence[str] = ("memory-only", "parameter-only", "sbu"), rounds: int = 3,
                   consolidate_every: int = 1, k: int = 3, unlearn: dict | None = None, seed: int = 0,
                   progress: bool = True) -> tuple[pd.DataFrame, dict[str, Condition]]:
    """Every condition, then ``rounds`` rounds of the loop; one row per condition and round (round 0: right after
    unlearning, before any interaction) and the prepared conditions (their agents hold the final state)."""
    checks.integer("rounds", rounds, 1)
    patients = patients_in(corpus, forget_split)
    forget_items = [q for q in corpus.qa if q.about in set(patients) and q.phrasing == "train"]
    secrets = loop_secrets(corpus, patients, forget_items)
    loop_queries = queries(corpus, patients, seed=seed)
    rows, prepared = [], {}
    bar = tqdm(total=len(conditions) * (rounds + 1), desc="backflow", disable=not progress, unit="step")
    for name in conditions:
        condition = prepare(name, corpus, base, patients, work=Path(work) / name, unlearn=unlearn, k=k, seed=seed)
        prepared[name] = condition
        rows += run_rounds(condition, corpus, forget_items, loop_queries, secrets, rounds, consolidate_every, seed,
                           on_round=bar.update)
    bar.close()
    return pd.DataFrame(rows), prepared


def run_rounds(condition: Condition, corpus: Corpus, forget_items: Sequence[QAItem], loop_queries: Sequence[QAItem],
               secrets: Sequence[str], rounds: int, consolidate_every: int = 1, seed: int = 0,
               on_round=None) -> list[dict]:
    """Round 0 (the forget probes answered without write-back, right after unlearning), then ``rounds`` rounds of
    the loop (the queries in a seeded order, answered, written back, consolidated): one metrics row per round."""
    probe_turns = condition.agent.answer(list(forget_items), round_no=0, write_back=False)
    rows = [{**round_metrics(condition, corpus, probe_turns, 0, secrets, forget_items),
             "unlearn_seconds": condition.unlearn_seconds, **upkeep_columns([])}]
    if on_round:
        on_round()
    rng = np.random.default_rng(seed)
    for r in range(1, rounds + 1):
        order = rng.permutation(len(loop_queries))
        turns = condition.agent.answer([loop_queries[i] for i in order], round_no=r)
        kept = len(condition.standing.history) if condition.standing else 0
        if consolidate_every and r % consolidate_every == 0:
            condition.agent.consolidate()
        upkeep = condition.standing.history[kept:] if condition.standing else []
        rows.append({**round_metrics(condition, corpus, turns, r, secrets, forget_items), **upkeep_columns(upkeep)})
        if on_round:
            on_round()
    return rows


def upkeep_columns(upkeep: Sequence[Upkeep]) -> dict:
    """A round's standing-obligation columns from its :class:`~sbu.sync.Upkeep` records (none: NaN and 0)."""
    return {"obligation_leakage": max((u.leakage for u in upkeep), default=np.nan),
            "obligation_leakage_after": max((u.leakage_after for u in upkeep), default=np.nan),
            "resuppression_rounds": sum(u.rounds for u in upkeep),
            "obligation_seconds": sum(u.seconds for u in upkeep)}


def describe_backflow(table: pd.DataFrame, retrain_forget_accuracy: float | None = None) -> str:
    """What the rounds show, every number read from the study's table."""
    lines = []
    by = {name: group.set_index("round") for name, group in table.groupby("condition")}
    last = int(table["round"].max())
    if "memory-only" in by:
        m = by["memory-only"]
        lines.append(f"Memory-only: exposure {m.loc[0, 'memory_exposure']:.2f} right after the closure, "
                     f"{m.loc[last, 'memory_exposure']:.2f} after {last} rounds; "
                     f"{m.loc[last, 'recreated_artifacts']} cached answers about the forgotten patients re-created, "
                     f"{m.loc[last, 'facts_back_in_memory']:.2f} of their facts back in memory; closed-book forget "
                     "accuracy stayed "
                     f"{m['forget_acc_closed_book'].min():.2f}–{m['forget_acc_closed_book'].max():.2f} "
                     "(the weights still know).")
    if "parameter-only" in by:
        p = by["parameter-only"]
        lines.append(f"Parameter-only: closed-book forget accuracy {p.loc[0, 'forget_acc_closed_book']:.2f} after "
                     f"SRA, {p.loc[1, 'forget_acc_closed_book']:.2f} after the first consolidation, "
                     f"{p.loc[last, 'forget_acc_closed_book']:.2f} after round {last}; memory exposure "
                     f"{p['memory_exposure'].max():.2f} throughout (memory was never cleaned).")
    if "sbu" in by:
        s = by["sbu"]
        reference = (f" (retrain model: {retrain_forget_accuracy:.2f})" if retrain_forget_accuracy is not None
                     else "")
        lines.append(f"SBU: memory exposure at most {s['memory_exposure'].max():.2f} and "
                     f"{s['recreated_artifacts'].max()} cached answers re-created in any round; the barrier refused "
                     f"{int(s['refused'].sum())} write-backs; closed-book forget accuracy "
                     f"{s['forget_acc_closed_book'].min():.2f}–{s['forget_acc_closed_book'].max():.2f}{reference}; "
                     f"retained accuracy through the agent {s['retain_acc_agent'].min():.2f}–"
                     f"{s['retain_acc_agent'].max():.2f}.")
        checked = s[s["obligation_leakage"].notna()]
        if len(checked):
            lines.append(f"Its standing obligation: parameter leakage re-verified after each of {len(checked)} "
                         f"consolidations, {checked['obligation_leakage'].min():.2f}–"
                         f"{checked['obligation_leakage'].max():.2f}; {int(checked['resuppression_rounds'].sum())} "
                         f"re-suppression round(s) in {checked['obligation_seconds'].sum():.0f} s, leaving "
                         f"{checked['obligation_leakage_after'].min():.2f}–"
                         f"{checked['obligation_leakage_after'].max():.2f}.")
    return "\n".join(lines)
