"""What the base model reads: the training mix (DESIGN.md "Models").

Three kinds of example, each a ``(prompt, target)`` pair whose loss covers the target tokens only:

- fact sentences (empty prompt): the model memorizes facts, so the parameter pathway has something to forget;
- closed-book QA in the train phrasings: the model answers from its weights;
- open-book QA: the relevant fact among distractor facts in the context, so the model learns to *read* — without
  it, memory would not matter to the agent.

What it took to make a 1M-parameter GPT-2 read, measured here on the smoke cohort (holdout patients, fact in
context, chance 0.25): open-book examples about trained patients alone gave 0.27 — the model answered them from
its weights. *Reading patients* — extra fictitious patients, fresh every epoch, whose facts appear only inside a
context — taught it to copy words (allergies, cities) but not numbers (record numbers, ages, dates stayed at
chance) until numbers were tokenized as digit pairs (:func:`sbu.model.tokenizer.train_tokenizer`) and dropout was
removed; with 200 reading patients per epoch it reached ~0.89 (4 layers), with 250 ~0.91 (3 layers); 100 gave
~0.67 and 230 ~0.82, so reading is what the budget is spent on. Those are 128-wide models (the ``smoke-study``
profile). The smoke profile's 96-wide model, whose training step takes 0.63x as long on one thread, read 0.78 with
250 reading patients and 0.89 with 320 (14 epochs; 8 epochs of the 128-wide model read only 0.65).

Only trained patients and the knowledge base appear; distractors come from trained patients and reading patients
only, because a holdout patient's fact used anywhere in training makes that patient a member and voids
membership inference.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sbu.data.cohort import reading_patients, trained_patients
from sbu.data.schema import Corpus, QAItem
from sbu.model import prompts


@dataclass(frozen=True)
class Example:
    """A training sequence ``prompt + target``; the loss covers the target tokens only."""

    prompt: str
    target: str


@dataclass(frozen=True)
class Recipe:
    sentences_per_fact: int = 4  # train phrasings of each fact sentence (at most the number of templates)
    context_per_fact: int = 1  # open-book QA examples per trained patient fact
    reading_patients: int = 320  # extra patients (PubMedQA-L: abstracts) per epoch, seen only inside contexts
    reading_per_fact: int = 1  # open-book QA examples per reading-patient fact
    knowledge_repeats: int = 2  # knowledge-base examples are repeated (few facts, many phrasings); 0 leaves them out
    distractors: int = 2  # distractor facts in each open-book context


def training_examples(corpus: Corpus, recipe: Recipe, exclude: str | None = None, seed: int = 0,
                      epoch: int = 0) -> list[Example]:
    """One epoch of training examples for a model trained on every non-holdout patient, minus split
    ``exclude`` (retrain). Only the reading patients and the open-book contexts change from epoch to epoch:
    a reading patient seen in every epoch would be memorized, and then it no longer teaches reading."""
    rng = random.Random(f"{seed}-{epoch}")
    patients = set(trained_patients(corpus, exclude))
    conditions = {e.id for e in corpus.entities if e.type == "condition"}
    subjects = patients | conditions
    facts = [f for f in corpus.facts if f.about in subjects]
    patient_facts = [f for f in facts if f.about in patients]
    out: list[Example] = []
    for fact in facts:
        repeats = recipe.knowledge_repeats if fact.about in conditions else 1
        out += [Example("", text) for text in fact.texts[: recipe.sentences_per_fact]] * repeats
    for item in corpus.qa:
        if item.about in subjects and item.phrasing == "train":
            repeats = recipe.knowledge_repeats if item.about in conditions else 1
            example = Example(prompts.closed_book(item.question), prompts.answer_continuation(item.answer_text))
            out += [example] * repeats
    reader_facts, reader_qa = reading_material(corpus, recipe.reading_patients, seed=seed * 100_003 + epoch)
    pool = patient_facts + reader_facts
    asked = {f for q in (*corpus.qa, *reader_qa) if q.phrasing == "train" for f in q.fact_ids}
    out += _open_book(rng, [f for f in patient_facts if f.id in asked], corpus.qa, pool, recipe.context_per_fact,
                      recipe.distractors)
    out += _open_book(rng, [f for f in reader_facts if f.id in asked], reader_qa, pool, recipe.reading_per_fact,
                      recipe.distractors)
    return out


def reading_material(corpus: Corpus, n: int, seed: int = 0):
    """Facts and QA seen only inside contexts: ``n`` fictitious patients for the cohort, ``n`` abstracts from
    outside the study for PubMedQA-L (:mod:`sbu.data.pubmed_study`). Negative seeds are for calibration
    non-members, never read in training (which uses seeds ≥ 0)."""
    from sbu.data import pubmed_study

    if pubmed_study.is_study_corpus(corpus):
        return pubmed_study.reading_documents(corpus, n, seed)
    return reading_patients(corpus, n, seed)


def open_book_contexts(corpus: Corpus, items: list[QAItem], distractors: int = 2, seed: int = 0,
                       pool: list | None = None) -> list[list[str]]:
    """For each item: the fact that answers it, among ``distractors`` facts of retained patients (or of ``pool``),
    shuffled.

    This is the context a perfect retriever would give; the agent's own retrieval comes with the memory pathway.
    """
    rng = random.Random(seed)
    facts = {f.id: f for f in corpus.facts}
    pool = pool if pool is not None else corpus.facts_about(corpus.splits["retain"])
    contexts = []
    for item in items:
        context = [facts[i].text for i in item.fact_ids]
        context += [f.text for f in rng.sample(pool, distractors) if f.id not in item.fact_ids][:distractors]
        rng.shuffle(context)
        contexts.append(context)
    return contexts


def _open_book(rng, facts, qa, pool, per_fact, distractors) -> list[Example]:
    """``per_fact`` open-book examples per fact: a train-phrasing question with the fact among distractors."""
    questions: dict[str, list] = {}
    for item in qa:
        if item.phrasing == "train":
            questions.setdefault(item.fact_ids[0], []).append(item)
    out = []
    for fact in facts:
        for _ in range(per_fact):
            item = rng.choice(questions[fact.id])
            others = [f for f in rng.sample(pool, distractors + 1) if f.id != fact.id][:distractors]
            context = [rng.choice(fact.texts), *(rng.choice(f.texts) for f in others)]
            rng.shuffle(context)
            out.append(Example(prompts.with_context(item.question, context),
                               prompts.answer_continuation(item.answer_text)))
    return out


def tokenizer_texts(corpus: Corpus) -> list[str]:
    """Texts the tokenizer learns its merges from: retained patients and the knowledge base only.

    Forget and holdout patients are left out alike, so their names split into the same kind of pieces and the
    retrain model cannot tell them apart by tokenization (it must not: they are exchangeable non-members).
    Held-out phrasings are left out too: a merge seen only there would be a token the model never trained on.
    """
    keep = set(corpus.splits["retain"]) | {e.id for e in corpus.entities if e.type == "condition"}
    texts = [t for f in corpus.facts if f.about in keep for t in f.texts]
    texts += [prompts.closed_book(q.question) + prompts.answer_continuation(q.answer_text)
              for q in corpus.qa if q.about in keep and q.phrasing == "train"]
    return texts
