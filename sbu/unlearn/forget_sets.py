"""Forget and retain sets of the parameter pathway: what unlearning trains on, and what it is checked on.

The memory pathway tells the parameter pathway what to forget, as a :class:`~sbu.data.forget_set.ForgetSet`: D_f
is the question–answer probes of its seed facts (the derived artifacts in the closure restate those facts, so they add
no probe). A forget split gives the same sets without a memory (:meth:`ForgetSet.of_split`). D_f holds no raw fact
sentences: they pushed common words towards the reference too and cost retain accuracy (docs/tuning.md).

D_r samples the QA of retained patients and of the knowledge base; a tenth of the retained patients is kept out of
D_r as a *validation* split for choosing hyper-parameters (never the test data). *Calibration* non-members —
fictitious patients generated for this purpose and seen by no model — give the early-stopping signal its
"never seen" level without touching the holdout patients that membership inference is scored on.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from sbu import checks
from sbu.data.cohort import SUBJECT_KINDS, trained_patients
from sbu.data.contexts import open_book_contexts
from sbu.data.forget_set import ForgetSet
from sbu.data.schema import Corpus, QAItem
from sbu.errors import ConfigError
from sbu.model import prompts
from sbu.model.recipe import Example, reading_material

VALIDATION_SHARE = 0.1  # share of retained patients kept out of D_r for choosing hyper-parameters


@dataclass(frozen=True)
class UnlearningSets:
    forget: list[Example]  # D_f: what unlearning pushes away
    retain: list[Example]  # D_r: what it must keep
    forget_items: list[QAItem]  # QA probes of the forgotten facts (forget accuracy, MIA members)
    validation_items: list[QAItem]  # retained patients kept out of D_r (hyper-parameter choice)
    calibration_items: list[QAItem]  # never-seen patients (the calibration stop's non-member level)
    # per forget example, its question asked about each holdout patient (SRA's counterfactual prior); empty tuples
    # where the corpus has no holdout patients or the question names no patient
    counterfactual: list[tuple[str, ...]] = field(default_factory=list)

    def sizes(self) -> dict[str, int]:
        return {"forget_examples": len(self.forget), "retain_examples": len(self.retain),
                "forget_probes": len(self.forget_items), "validation_probes": len(self.validation_items),
                "calibration_probes": len(self.calibration_items)}


def qa_example(item: QAItem, answer: str | None = None) -> Example:
    return Example(prompts.closed_book(item.question), prompts.answer_continuation(answer or item.answer_text))


def counterfactual_prompts(corpus: Corpus, items: Sequence[QAItem]) -> list[tuple[str, ...]]:
    """For each item, its closed-book prompt with the patient's name replaced by each holdout patient's — the
    same question about a patient no model was trained on (an empty tuple where the question does not name its
    subject, e.g. a knowledge question)."""
    names = {e.id: e.name for e in corpus.entities}
    strangers = [names[p] for p in corpus.splits.get("holdout", []) if p in names]
    out = []
    for item in items:
        name = names.get(item.about, "") if item.kind in SUBJECT_KINDS else ""
        if not name or name not in item.question:
            out.append(())
            continue
        out.append(tuple(prompts.closed_book(item.question.replace(name, other)) for other in strangers
                         if other != name))
    return out


def forget_probes(corpus: Corpus, forget: ForgetSet) -> list[QAItem]:
    """The train-phrasing QA probes of the forget set's seed facts: D_f's questions (derived texts restate these
    facts, so they add none)."""
    if not isinstance(forget, ForgetSet):
        raise ConfigError(f"unlearning takes a ForgetSet (plan.forget_set() or ForgetSet.of_split(corpus, split)), "
                          f"got {type(forget).__name__}")
    fact_ids = {f.id for f in corpus.facts if f.id in forget.seeds}
    if not fact_ids:
        raise ConfigError("the forget set's facts are not facts of this corpus: plan on a memory of the same corpus")
    return [q for q in corpus.qa if q.phrasing == "train" and set(q.fact_ids) & fact_ids]


def unlearning_sets(corpus: Corpus, forget: ForgetSet, seed: int = 0, retain_factor: float = 4.0,
                    open_book_share: float = 0.5, calibration_patients: int = 12) -> UnlearningSets:
    """D_f, D_r and the probe sets for forgetting ``forget`` (from a plan: ``plan.forget_set()``; from a split:
    ``ForgetSet.of_split(corpus, split)``). ``open_book_share``
    of the retained patients' examples in D_r carry their fact in a context (among distractor facts of retained
    patients), so that unlearning keeps the model's reading — what the agent's memory relies on."""
    checks.number("retain_factor", retain_factor, positive=True)
    forget_items = forget_probes(corpus, forget)
    forget_examples = [qa_example(q) for q in forget_items]
    fact_ids = set(forget.seeds)

    forgotten_patients = {f.about for f in corpus.facts if f.id in fact_ids}
    retained = [p for p in trained_patients(corpus) if p not in forgotten_patients]
    rng = random.Random(f"retain-{seed}")
    validation = set(rng.sample(retained, max(1, round(VALIDATION_SHARE * len(retained)))))
    pool = [q for q in corpus.qa if q.phrasing == "train" and not set(q.fact_ids) & fact_ids
            and q.about not in validation and (q.kind == "knowledge" or q.about in retained)]
    checks.share("open_book_share", open_book_share)
    chosen = rng.sample(pool, min(len(pool), round(retain_factor * len(forget_examples))))
    patient_items = [q for q in chosen if q.kind in SUBJECT_KINDS]
    open_items = patient_items[: round(open_book_share * len(patient_items))]
    distractors = corpus.facts_about([p for p in corpus.splits["retain"] if p not in validation | forgotten_patients])
    contexts = {q.id: c for q, c in zip(open_items, open_book_contexts(corpus, open_items, seed=seed,
                                                                       pool=distractors))}
    retain_examples = [Example(prompts.with_context(q.question, contexts[q.id]), prompts.answer_continuation(
        q.answer_text)) if q.id in contexts else qa_example(q) for q in chosen]
    validation_items = [q for q in corpus.qa if q.about in validation and q.phrasing == "train"]
    _, calibration = reading_material(corpus, calibration_patients, seed=-(seed + 1))  # training uses seeds ≥ 0
    calibration_items = [q for q in calibration if q.phrasing == "train"]
    return UnlearningSets(forget_examples, retain_examples, forget_items, validation_items, calibration_items,
                          counterfactual_prompts(corpus, forget_items))
