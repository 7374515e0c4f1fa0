"""PubMedQA-L as a data set of the replication study: abstracts play the patients' part.

The cohort's study needs, per forgotten subject, many facts the model memorized and QA probes of each; PubMedQA-L
has one yes/no/maybe question per abstract — too few probes for accuracy or membership inference. So every
abstract is a *document* entity whose context sentences are its facts (as :func:`sbu.data.pubmedqa.load` makes
them), and a sentence becomes a probe as a **cloze item**: the sentence without its last words is the question,
those words the answer, among ``n_options - 1`` endings of the same length taken from the abstract's other
sentences. A model trained on the abstract completes its sentences; a model that never read it can only guess
(chance is 1 / ``n_options``). The memory holds every study abstract's sentences and the MeSH concept
summaries derived from them, so forgetting an abstract reaches real shared concepts.

Splits, as the cohort's: ``holdout`` (abstracts no model reads: the non-members of membership inference, and with
their sentences in context the reading test), ``forget01/05/10`` (nested, shares of the study abstracts) and
``retain`` (trained, outside ``forget10``); ``test`` is the holdout abstracts' cloze items closed-book — how well
the model completes sentences of medicine it never read, the general skill unlearning should not touch.

*Reading documents* [choice]: a small model learns to read its context (what the agent's memory relies on) only
from contexts it cannot answer from its weights — the cohort's reading patients. Here they are abstracts of the
file outside the study's selection, a fresh sample each epoch, seen only inside contexts; the last
``calibration_documents`` of them are never read by any model (the unlearning's calibration non-members).

Each cloze sentence's fact *value* is its answer (the plaintext the barrier blocks for that abstract, and what
exposure looks for); the other sentences keep the sentence as value.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from sbu import checks
from sbu.data.cohort import FORGET_SPLITS
from sbu.data.pubmedqa import concept_summaries, document_records, read_raw, resolve
from sbu.data.schema import Corpus, Entity, Fact, QAItem
from sbu.errors import ConfigError

NAME = "pubmedqa"
KIND = "document"  # QAItem.kind of a cloze item (a cohort patient's item is "patient")


@dataclass(frozen=True)
class PubMedStudyConfig:
    n_documents: int = 150  # abstracts in the study (memory, training, splits); the rest of the file is reading
    holdout_share: float = 0.15
    forget_shares: dict[str, float] = field(default_factory=lambda: dict(FORGET_SPLITS))
    items_per_document: int = 6  # cloze items per abstract (sentences of at least `min_words` words)
    answer_words: int = 3  # words an item asks for: the end of the sentence
    min_words: int = 10
    max_words: int = 40  # longer sentences are cut into parts of at most this many words (one fact each)
    n_options: int = 4
    calibration_documents: int = 30  # reading-pool abstracts no model ever reads
    seed: int = 0

    def __post_init__(self):
        for name in ("n_documents", "items_per_document", "answer_words", "n_options", "calibration_documents"):
            checks.integer(f"pubmedqa {name}", getattr(self, name), 1)
        if self.n_options < 2:
            raise ConfigError("pubmedqa n_options must be at least 2")
        if not self.answer_words < self.min_words <= self.max_words:
            raise ConfigError(f"need answer_words < min_words ≤ max_words, got {self.answer_words}, {self.min_words}, "
                              f"{self.max_words}")
        if not isinstance(self.forget_shares, dict) or set(self.forget_shares) != set(FORGET_SPLITS):
            raise ConfigError(f"forget_shares must map {', '.join(FORGET_SPLITS)} to shares, "
                              f"got {self.forget_shares!r}")
        shares = [self.holdout_share, *self.forget_shares.values()]
        if any(not 0 < s < 1 for s in shares) or self.holdout_share + max(self.forget_shares.values()) >= 1:
            raise ConfigError(f"split shares must lie in (0, 1) and leave retained abstracts, got holdout "
                              f"{self.holdout_share}, forget {self.forget_shares}")


def _cut(sentence: str, answer_words: int) -> tuple[str, str] | None:
    """(question, answer): the sentence without its last ``answer_words`` words, and those words (the closing
    full stop dropped)."""
    words = sentence.rstrip(" .").split()
    if len(words) <= answer_words:
        return None
    return " ".join(words[:-answer_words]), " ".join(words[-answer_words:])


def _parts(facts: list[Fact], max_words: int) -> list[Fact]:
    """One abstract's facts with every sentence of more than ``max_words`` words cut into near-equal parts
    (renumbered in order), so that a sentence and an open-book context fit a small model's positions."""
    out = []
    for fact in facts:
        words = fact.text.split()
        size = -(-len(words) // -(-len(words) // max_words))  # near-equal parts of at most max_words
        for i in range(0, len(words), size):
            text = " ".join(words[i: i + size])
            out.append(Fact(f"fact/{fact.about}/{len(out)}", fact.about, fact.attribute, text, (text,), (),
                            fact.entities))
    return out


def _records(raw: dict, pmids: list[str], entities: dict[str, Entity], max_words: int) -> dict[str, list[Fact]]:
    out = {}
    for pmid in pmids:
        doc, facts = document_records(pmid, raw[pmid], entities)
        out[doc] = _parts(facts, max_words)
    return out


def _cloze(docs: dict[str, list[Fact]], config: PubMedStudyConfig, rng: random.Random,
           ) -> tuple[list[Fact], list[QAItem]]:
    """The documents' facts (cloze sentences valued by their answer) and one cloze item per chosen sentence.

    Distractors are endings of the *same* abstract's other sentences [choice]: then every option of an item is
    as familiar, or as unfamiliar, to a model as its answer. Measured on the first version, which drew them from
    other abstracts: a model that never read the abstract chose the familiar endings of abstracts it had read, and
    scored 0.09–0.20, below chance, so "chance" meant nothing for forgotten or unseen abstracts."""
    chosen: dict[str, list[tuple[Fact, str, str]]] = {}
    endings: dict[str, list[str]] = {}
    for doc, facts in docs.items():
        cuts = [(f, *c) for f in facts if (c := _cut(f.text, config.answer_words))]
        endings[doc] = sorted({a.lower(): a for _, _, a in cuts}.values())  # "Mortality" and "mortality": one
        cuts = [x for x in cuts if config.min_words <= len(x[0].text.split()) <= config.max_words]
        if len(endings[doc]) < config.n_options:  # too few sentences for distractors of its own: no probes
            cuts = []
        chosen[doc] = sorted(rng.sample(cuts, min(len(cuts), config.items_per_document)), key=lambda x: x[0].id)
    out_facts, items = [], []
    for doc, facts in docs.items():
        answers = {f.id: (q, a) for f, q, a in chosen[doc]}
        for fact in facts:
            if fact.id not in answers:
                out_facts.append(fact)
                continue
            question, answer = answers[fact.id]
            out_facts.append(Fact(fact.id, fact.about, fact.attribute, answer, fact.texts, (), fact.entities))
            pool = [a for a in endings[doc] if a.lower() != answer.lower()]
            options = [answer, *rng.sample(pool, config.n_options - 1)]
            rng.shuffle(options)
            items.append(QAItem(f"qa/cloze/{fact.id.removeprefix('fact/')}", question, tuple(options),
                                options.index(answer), doc, "ending", (fact.id,), "train", KIND))
    return out_facts, items


def study_corpus(path=None, config: PubMedStudyConfig | None = None) -> Corpus:
    """The study's corpus from ``ori_pqal.json`` at ``path`` (default: ``shared/data/pubmedqa``), deterministic
    in ``config`` (its seed picks the abstracts, the splits, the cloze sentences and their distractors)."""
    config = config or PubMedStudyConfig()
    source = resolve(path)
    raw = read_raw(source)
    pmids = sorted(raw)
    needed = config.n_documents + config.calibration_documents + 1
    if len(pmids) < needed:
        raise ConfigError(f"{source} holds {len(pmids)} abstracts; a study of {config.n_documents} needs at "
                          f"least {needed} (reading and calibration abstracts come from the rest)")
    rng = random.Random(f"pubmedqa-study-{config.seed}")
    rng.shuffle(pmids)
    study, pool = pmids[: config.n_documents], pmids[config.n_documents:]
    entities: dict[str, Entity] = {}
    docs = _records(raw, study, entities, config.max_words)
    facts, items = _cloze(docs, config, rng)
    empty = [d for d in docs if not any(q.about == d for q in items)]
    order = [d for d in docs if d not in empty]  # abstracts without a long sentence cannot be probed
    n = len(order)
    n_holdout = max(1, round(config.holdout_share * n))
    splits = {"holdout": sorted(order[:n_holdout])}
    trained = order[n_holdout:]
    n_forget = max(max(1, round(share * n)) for share in config.forget_shares.values())
    if n_forget >= len(trained):
        raise ConfigError(f"{n} probed abstracts leave no retained ones after {n_holdout} holdout and {n_forget} "
                          "forgotten: raise n_documents")
    for split, share in config.forget_shares.items():
        splits[split] = sorted(trained[: max(1, round(share * n))])
    largest = max(config.forget_shares, key=lambda s: len(splits[s]))
    splits["retain"] = sorted(d for d in trained if d not in set(splits[largest]))
    splits["test"] = [q.id for q in items if q.about in set(splits["holdout"])]
    facts = [f for f in facts if f.about not in set(empty)]
    for d in empty:
        del entities[d]
    concepts = {c for f in facts for c in f.entities}
    kept = [e for e in entities.values() if e.type == "document" or e.id in concepts]
    artifacts = concept_summaries(kept, facts)
    meta = {"source": str(source), "config": {**config.__dict__}, "reading_pool": pool,
            "n_documents": n, "n_facts": len(facts), "n_qa": len(items), "n_artifacts": len(artifacts)}
    return Corpus(NAME, kept, facts, items, artifacts, splits, meta)


def is_study_corpus(corpus: Corpus) -> bool:
    return corpus.name == NAME and "reading_pool" in corpus.meta


def reading_documents(corpus: Corpus, n: int, seed: int = 0) -> tuple[list[Fact], list[QAItem]]:
    """Facts and cloze items of ``n`` abstracts from outside the study (seed ≥ 0: a sample of the reading pool,
    a fresh one per seed; seed < 0: the calibration abstracts, which no model reads)."""
    config = PubMedStudyConfig(**corpus.meta["config"])
    pool = list(corpus.meta["reading_pool"])
    calibration, reading = pool[-config.calibration_documents:], pool[: -config.calibration_documents]
    rng = random.Random(f"pubmedqa-reading-{seed}")
    chosen = calibration[:n] if seed < 0 else rng.sample(reading, min(n, len(reading)))
    raw = read_raw(corpus.meta["source"])
    entities: dict[str, Entity] = {}
    docs = _records(raw, chosen, entities, config.max_words)
    return _cloze(docs, config, rng)
