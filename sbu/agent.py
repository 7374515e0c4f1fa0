"""The closed-loop agent: retrieve → generate → write back → consolidate.

``Agent(lm, store, retriever, barrier)`` answers multiple-choice questions with the top-k live artifacts of its
memory as context (the option with the highest log-likelihood), writes each answer back as a cached answer with
``prov:wasDerivedFrom`` links to what it retrieved — through the write barrier when it has one — and every few
interactions fine-tunes its weights on what it recently read and wrote (:mod:`sbu.model.consolidate`). This loop
is where backflow happens: the weights re-create deleted memory, memory re-teaches unlearned weights.

A cached answer's IRI is a keyed hash of what it says and where it came from (no plaintext in the IRI, and the
same answer from the same sources is the same node, so writing it again changes nothing). Its text is
``Q: <question> A: <answer>``.

**Parameter-update hooks** (:class:`UpdateHook`): whatever must happen around each change of the weights — the
standing obligations of committed forget requests (:class:`sbu.sync.StandingObligations`) — is handed to the agent
as hooks, so the agent never imports the protocol. ``before_update()`` runs before a consolidation trains (it may
refuse, and then nothing changes); ``after_update(lm)`` gets the trained model and returns the one the agent keeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd
from rdflib import Literal, URIRef
from tqdm import tqdm

from sbu import checks, faults
from sbu.data.schema import QAItem
from sbu.errors import StoreError
from sbu.memory.barrier import Barrier, keyed_hash, load_key, record_id
from sbu.memory.sparql import check_iri, load_query
from sbu.memory.store import MemoryStore
from sbu.memory.vocab import ARTIFACT_CLASS, META, PROV, RDF, SBU, iri
from sbu.model import prompts
from sbu.model.consolidate import Anchor, ConsolidationConfig, consolidate
from sbu.model.network import CausalLM, context_length
from sbu.model.recipe import Example
from sbu.model.scoring import choose
from sbu.retrieval.hybrid import Retriever


@dataclass(frozen=True)
class Turn:
    """One interaction: the question, what was retrieved, whether the answer was right, what memory got."""

    round: int
    item: str  # QA item id
    about: str  # the entity the question is about
    correct: bool
    retrieved: tuple[str, ...]  # IRIs of the context, best first
    written: str | None  # IRI of the cached answer written back (None: refused, or no write-back)
    refused: tuple[str, ...] = ()  # the barrier's reasons, when it refused the write-back


class UpdateHook(Protocol):
    """Called around every parameter update the agent makes (a consolidation)."""

    def before_update(self) -> None:
        """Before training; raising here leaves the agent (model, pending examples) unchanged."""

    def anchors(self) -> Sequence[Anchor]:
        """What the update must keep in place (its loss gets their terms: a dual update); () for none."""

    def after_update(self, lm: CausalLM) -> CausalLM:
        """After training, with the trained model; returns the model the agent keeps."""


def cached_answer_text(question: str, answer: str) -> str:
    return f"Q: {question} A: {answer}"


@dataclass
class Agent:
    """An LLM agent with a persistent memory. ``barrier=None``: write-backs are not checked (an agent without
    SBU's write barrier); ``consolidation=None``: :meth:`consolidate` uses the defaults; ``hooks``: called around
    every consolidation (:class:`UpdateHook`)."""

    lm: CausalLM
    store: MemoryStore
    retriever: Retriever
    barrier: Barrier | None = None
    k: int = 3
    consolidation: ConsolidationConfig | None = None
    key: bytes | None = None  # for cached answers' IRIs (default: the barrier's key, else the key file)
    recent: list[Example] = field(default_factory=list)  # what the next consolidation trains on
    turns: list[Turn] = field(default_factory=list)
    hooks: list[UpdateHook] = field(default_factory=list)

    def __post_init__(self):
        checks.integer("k (documents retrieved per question)", self.k, 1)
        if self.key is None:
            self.key = self.barrier.key if self.barrier is not None else load_key()

    # -- one step of the loop --------------------------------------------------------------------------------
    def answer(self, items: QAItem | Sequence[QAItem], round_no: int = 0, write_back: bool = True) -> list[Turn]:
        """Answer ``items`` with retrieved context (one batch: answers within a call do not see each other's
        write-backs); write each answer back unless ``write_back=False``."""
        items = [items] if isinstance(items, QAItem) else list(items)
        if not items:
            return []
        hits = [self.retriever.search(item.question, self.k) for item in items]
        contexts = [self.fit_context(item, [h.text for h in hs]) for item, hs in zip(items, hits)]
        chosen = choose(self.lm.model, self.lm.tokenizer, items, contexts)
        turns = []
        for item, hs, c in zip(items, hits, chosen):
            written, refused = None, ()
            if write_back:
                text = cached_answer_text(item.question, item.options[c])
                written, refused = self.write(text, about=[item.about], derived_from=[h.iri for h in hs])
                if written is not None:  # only what entered memory is consolidated
                    self.recent.append(Example(prompts.closed_book(item.question),
                                               prompts.answer_continuation(item.options[c])))
            self.recent += [Example("", h.text) for h in hs]
            turns.append(Turn(round_no, item.id, item.about, bool(c == item.answer), tuple(str(h.iri) for h in hs),
                              written, refused))
        self.turns += turns
        return turns

    def fit_context(self, item: QAItem, texts: Sequence[str]) -> list[str]:
        """The retrieved texts, best first, cut so that prompt + longest option fit the model's positions (a long
        cross-patient summary is shortened from its end; lower-ranked texts that no longer fit are dropped)."""
        tokenizer = self.lm.tokenizer
        limit = context_length(self.lm.model)
        room = limit - 2 - max(len(tokenizer.encode(prompts.answer_continuation(o), add_special_tokens=False))
                               for o in item.options)
        used = len(tokenizer.encode(prompts.with_context(item.question, []), add_special_tokens=False))
        out = []
        for text in texts:
            ids = tokenizer.encode(" " + text, add_special_tokens=False)
            if used + len(ids) <= room:
                out.append(text)
                used += len(ids)
                continue
            if room - used > 8:
                out.append(tokenizer.decode(ids[: room - used - 1]).strip())
            break
        return out

    def write(self, text: str, about: Sequence[str], derived_from: Sequence[URIRef],
              kind: str = "cached_answer") -> tuple[str | None, tuple[str, ...]]:
        """Write one artifact to memory and the index, through the barrier; return (its IRI or None, the
        barrier's reasons for refusing it)."""
        sources = sorted(check_iri(s, "an agent write's derived_from") for s in derived_from)
        about = [_checked_id(a) for a in about]
        node = iri(f"answer/{keyed_hash(self.key, 'answer', text, *sorted(about), *map(str, sources))[:20]}")
        quads = [(node, SBU.text, Literal(text), META), (node, RDF.type, ARTIFACT_CLASS[kind], META)]
        quads += [(node, SBU.about, iri(record_id(a)), META) for a in about]
        quads += [(node, PROV.wasDerivedFrom, s, META) for s in sources]
        if self.barrier is not None:  # checked, and inserted only if memory's blocklist agrees at that moment
            verdict = self.barrier.write(self.store, self.store.seal(quads), text, about, sources)
            if not verdict:
                return None, verdict.reasons
        else:
            self.store.add_quads(quads)
        self.retriever.add({node: text})
        return str(node), ()

    def consolidate(self) -> CausalLM:
        """Fine-tune on what was read and written since the last consolidation (duplicates once), with every hook
        around it; the agent takes the new model (and forgets its pending examples) only once all hooks passed. What
        was read or written before a forget request and is forgotten now never reaches the weights: with a barrier,
        every example is checked again here (memory's blocklist, reloaded) and the refused ones are dropped."""
        for hook in self.hooks:
            hook.before_update()
        examples = list(dict.fromkeys(self.recent))
        if self.barrier is not None:
            examples = self.readable(examples)
        anchors = [a for hook in self.hooks for a in hook.anchors()]
        lm = consolidate(self.lm, examples, self.consolidation, anchors)
        faults.point("consolidation-trained")  # the crash tests kill here: trained, not yet re-verified
        for hook in self.hooks:
            lm = hook.after_update(lm)
        self.lm, self.recent = lm, []
        return self.lm

    def readable(self, examples: Sequence[Example]) -> list[Example]:
        """The examples the barrier lets through, against memory's blocklist as it is now (another process may
        have raised it since they were read)."""
        self.barrier.blocked |= {str(row[0]) for row in self.store.query(load_query("blocked"))}
        return [e for e in examples if self.barrier.check(f"{e.prompt} {e.target}", count=False)]

    # -- the loop --------------------------------------------------------------------------------------------
    def interact(self, queries: Sequence[QAItem], rounds: int = 3, consolidate_every: int = 1,
                 seed: int = 0, progress: bool = True) -> pd.DataFrame:
        """``rounds`` passes over ``queries`` (shuffled per round), consolidating after every
        ``consolidate_every`` rounds; one row per round: answered, correct, written, refused."""
        checks.integer("rounds", rounds, 1)
        rows = []
        rng = np.random.default_rng(seed)
        for r in tqdm(range(1, rounds + 1), desc="agent rounds", disable=not progress, unit="round"):
            order = rng.permutation(len(queries))
            turns = self.answer([queries[i] for i in order], round_no=r)
            if consolidate_every and r % consolidate_every == 0:
                self.consolidate()
            rows.append(round_summary(turns, r))
        return pd.DataFrame(rows)


def _checked_id(entity) -> str:
    """An entity an agent write is about, as a record id (an id or its IRI); anything else is a StoreError."""
    if not isinstance(entity, str) or not entity.strip() or len(entity) > 2_048:
        raise StoreError(f"an agent write is about entities named by id strings such as 'patient/p007'; "
                         f"got {entity!r:.80}")
    return entity


def round_summary(turns: Sequence[Turn], round_no: int) -> dict:
    return {"round": round_no, "answered": len(turns), "correct": sum(t.correct for t in turns),
            "written": sum(t.written is not None for t in turns), "refused": sum(bool(t.refused) for t in turns)}
