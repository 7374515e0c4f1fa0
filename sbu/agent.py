"""The closed-loop agent: retrieve → generate → write back → consolidate.

``Agent(lm, store, retriever, barrier)`` answers multiple-choice questions with the top-k live artifacts of its
memory as context (the option with the highest log-likelihood), writes each answer back as a cached answer with
``prov:wasDerivedFrom`` links to what it retrieved — through the write barrier when it has one — and every few
interactions fine-tunes its weights on what it recently read and wrote (:mod:`sbu.model.consolidate`). This loop
is where backflow happens: the weights re-create deleted memory, memory re-teaches unlearned weights.

A cached answer's IRI is a keyed hash of what it says and where it came from (no plaintext in the IRI, and the
same answer from the same sources is the same node, so writing it again changes nothing). Its text is
``Q: <question> A: <answer>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from rdflib import Literal, URIRef
from tqdm import tqdm

from sbu import checks
from sbu.data.schema import QAItem
from sbu.memory.barrier import Barrier, keyed_hash, load_key, record_id
from sbu.memory.store import MemoryStore
from sbu.memory.vocab import ARTIFACT_CLASS, META, PROV, RDF, SBU, iri
from sbu.model import prompts
from sbu.model.consolidate import ConsolidationConfig, consolidate
from sbu.model.network import CausalLM
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


def cached_answer_text(question: str, answer: str) -> str:
    return f"Q: {question} A: {answer}"


@dataclass
class Agent:
    """An LLM agent with a persistent memory. ``barrier=None``: write-backs are not checked (an agent without
    SBU's write barrier); ``consolidation=None``: :meth:`consolidate` uses the defaults."""

    lm: CausalLM
    store: MemoryStore
    retriever: Retriever
    barrier: Barrier | None = None
    k: int = 3
    consolidation: ConsolidationConfig | None = None
    key: bytes | None = None  # for cached answers' IRIs (default: the barrier's key, else the key file)
    recent: list[Example] = field(default_factory=list)  # what the next consolidation trains on
    turns: list[Turn] = field(default_factory=list)

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
        limit = getattr(self.lm.model.config, "n_positions", None) or getattr(
            self.lm.model.config, "max_position_embeddings", 1024)
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
        sources = sorted(URIRef(str(s)) for s in derived_from)
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
        """Fine-tune on what was read and written since the last consolidation (duplicates once)."""
        examples = list(dict.fromkeys(self.recent))
        self.lm = consolidate(self.lm, examples, self.consolidation)
        self.recent = []
        return self.lm

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


def round_summary(turns: Sequence[Turn], round_no: int) -> dict:
    return {"round": round_no, "answered": len(turns), "correct": sum(t.correct for t in turns),
            "written": sum(t.written is not None for t in turns), "refused": sum(bool(t.refused) for t in turns)}
