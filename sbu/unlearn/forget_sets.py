"""Forget and retain sets of the parameter pathway (SPEC §4): what unlearning trains on, and what it is checked on.

The memory pathway tells the parameter pathway what to forget: D_f comes from a forget plan — the question–answer
probes of its seed facts (SPEC §4; the derived artifacts in the closure restate those facts, so they add no probe).
A forget *split* of the cohort gives the same sets without a memory (the facts of the split's patients), behind
the same function. Measured here: adding the facts' raw sentences to D_f (empty prompt, every token an answer
token) pushed common words ("is", "years old") towards the reference too and cost retain accuracy.

D_r samples the QA of retained patients and of the knowledge base; a tenth of the retained patients is kept out of
D_r as a *validation* split for choosing hyper-parameters (never the test data). *Calibration* non-members —
fictitious patients generated for this purpose and seen by no model — give the early-stopping signal its
"never seen" level without touching the holdout patients that membership inference is scored on.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sbu.data.cohort import SUBJECT_KINDS, patients_in, trained_patients
from sbu.data.schema import Corpus, Fact, QAItem
from sbu.errors import ConfigError
from sbu.model import prompts
from sbu.model.recipe import Example, open_book_contexts, reading_material

VALIDATION_SHARE = 0.1  # share of retained patients kept out of D_r for choosing hyper-parameters


@dataclass(frozen=True)
class UnlearningSets:
    forget: list[Example]  # D_f: what unlearning pushes away
    retain: list[Example]  # D_r: what it must keep
    forget_items: list[QAItem]  # QA probes of the forgotten facts (forget accuracy, MIA members)
    validation_items: list[QAItem]  # retained patients kept out of D_r (hyper-parameter choice)
    calibration_items: list[QAItem]  # never-seen patients (the calibration stop's non-member level)

    def sizes(self) -> dict[str, int]:
        return {"forget examples": len(self.forget), "retain examples": len(self.retain),
                "forget probes": len(self.forget_items), "validation probes": len(self.validation_items),
                "calibration probes": len(self.calibration_items)}


def forgotten_facts(corpus: Corpus, forget) -> tuple[list[Fact], list[str]]:
    """The facts a request forgets and the texts of the derived artifacts it reaches. ``forget`` is a
    :class:`~sbu.memory.plan.ForgetPlan` or the name of a forget split."""
    if isinstance(forget, str):
        patients = set(patients_in(corpus, forget))
        facts = [f for f in corpus.facts if f.about in patients]
        texts = [a.text for a in corpus.artifacts if set(a.derived_from) & {f.id for f in facts}]
        return facts, texts
    from sbu.memory.barrier import record_id

    seeds = {record_id(s) for s in forget.seeds}
    closure = {record_id(x) for x in forget.closure}
    facts = [f for f in corpus.facts if f.id in seeds]
    if not facts:
        raise ConfigError("the forget plan's seeds are not facts of this corpus: plan on a memory of the same corpus")
    return facts, [a.text for a in corpus.artifacts if a.id in closure]


def qa_example(item: QAItem, answer: str | None = None) -> Example:
    return Example(prompts.closed_book(item.question), prompts.answer_continuation(answer or item.answer_text))


def unlearning_sets(corpus: Corpus, forget, seed: int = 0, retain_factor: float = 4.0, open_book_share: float = 0.5,
                    calibration_patients: int = 12) -> UnlearningSets:
    """D_f, D_r and the probe sets for forgetting ``forget`` (a plan or a forget split name). ``open_book_share``
    of the retained patients' examples in D_r carry their fact in a context (among distractor facts of retained
    patients), so that unlearning keeps the model's reading — what the agent's memory relies on."""
    if retain_factor <= 0:
        raise ConfigError(f"retain_factor must be positive, got {retain_factor!r}")
    facts, _ = forgotten_facts(corpus, forget)  # the derived texts carry the same facts, so the same probes
    fact_ids = {f.id for f in facts}
    forget_items = [q for q in corpus.qa if q.phrasing == "train" and set(q.fact_ids) & fact_ids]
    forget_examples = [qa_example(q) for q in forget_items]

    forgotten_patients = {f.about for f in facts}
    retained = [p for p in trained_patients(corpus) if p not in forgotten_patients]
    rng = random.Random(f"retain-{seed}")
    validation = set(rng.sample(retained, max(1, round(VALIDATION_SHARE * len(retained)))))
    pool = [q for q in corpus.qa if q.phrasing == "train" and not set(q.fact_ids) & fact_ids
            and q.about not in validation and (q.kind == "knowledge" or q.about in retained)]
    if not 0 <= open_book_share <= 1:
        raise ConfigError(f"open_book_share must lie in [0, 1], got {open_book_share!r}")
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
    return UnlearningSets(forget_examples, retain_examples, forget_items, validation_items, calibration_items)
