"""Accuracy tables: multiple-choice accuracy of a model on the cohort's probe sets (SPEC §6)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sbu.data.cohort import patients_in, trained_patients
from sbu.data.schema import Corpus, QAItem
from sbu.eval.mia import loss_auc
from sbu.model.recipe import open_book_contexts
from sbu.model.scoring import accuracy, choose


def probe_sets(corpus: Corpus, forget_split: str = "forget05") -> dict[str, list[QAItem]]:
    """The named QA sets the base-model table reports."""
    holdout = patients_in(corpus, "holdout")
    return {
        "trained patients": corpus.qa_about(trained_patients(corpus), "train"),
        "trained patients, paraphrased": corpus.qa_about(trained_patients(corpus), "heldout"),
        "forget": corpus.qa_about(patients_in(corpus, forget_split), "train"),
        "holdout patients": corpus.qa_about(holdout, "train"),
        "knowledge base, held-out phrasing": [q for q in corpus.qa if q.id in set(corpus.splits["test"])],
    }


def model_report(lm, corpus: Corpus, forget_split: str = "forget05", seed: int = 0) -> pd.DataFrame:
    """One row per probe set: closed-book accuracy, and open-book accuracy for holdout patients; plus the LOSS
    attack's ROC-AUC forget-vs-holdout (members = the forget split)."""
    sets = probe_sets(corpus, forget_split)
    rows = []
    for name, items in sets.items():
        rows.append({"probe set": name, "mode": "closed-book", "n": len(items),
                     "accuracy": accuracy(lm.model, lm.tokenizer, items)})
    holdout = sets["holdout patients"]
    rows.append({"probe set": "holdout patients", "mode": "fact in context", "n": len(holdout),
                 "accuracy": accuracy(lm.model, lm.tokenizer, holdout, open_book_contexts(corpus, holdout, seed=seed))})
    rows.append({"probe set": f"{forget_split} vs holdout", "mode": "LOSS attack ROC-AUC",
                 "n": len(sets["forget"]) + len(holdout),
                 "accuracy": loss_auc(lm.model, lm.tokenizer, sets["forget"], holdout)})
    table = pd.DataFrame(rows).rename(columns={"accuracy": "value"})
    table.insert(0, "model", lm.info.get("name", str(lm.path)))
    return table


def accuracy_by_attribute(lm, corpus: Corpus, patients: list[str], open_book: bool, seed: int = 0) -> pd.Series:
    """Multiple-choice accuracy per fact attribute (age, allergy, record number, …) on ``patients``' train-phrasing
    items, closed-book or with each item's fact in context among distractors."""
    items = corpus.qa_about(patients, "train")
    contexts = open_book_contexts(corpus, items, seed=seed) if open_book else None
    correct = choose(lm.model, lm.tokenizer, items, contexts) == np.array([q.answer for q in items])
    return pd.Series(correct, index=[q.attribute for q in items]).groupby(level=0, sort=False).mean()
