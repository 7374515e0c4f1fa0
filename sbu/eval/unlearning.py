"""How well a model unlearned: accuracy on what it should forget and keep, every
membership attack, PrivLeak and forget quality against the retrain gold standard, side by side for many models.

Probe sets (closed-book, multiple choice):
- *forget*: the forgotten facts' QA in the train phrasing (what D_f trained away);
- *retain*: retained patients' QA in the train phrasing;
- *collateral*: the retain probes of the retained patients who share a condition with a forgotten one (PubMedQA-L:
  a MeSH concept) — what unlearning a neighbour may damage;
- *test*: the knowledge base in held-out phrasings (general medical knowledge no unlearning should touch);
- *holdout*: never-seen patients — the non-members of membership inference — and, with the fact in context,
  the reading skill the agent's memory relies on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import numpy as np
import pandas as pd

from sbu.data.cohort import patients_in, trained_patients
from sbu.data.contexts import open_book_contexts
from sbu.data.schema import Corpus, QAItem
from sbu.eval.mia import attack_aucs, forget_quality, privleak
from sbu.eval.targets import PRIVLEAK_TARGET
from sbu.model import prompts
from sbu.model.network import CausalLM
from sbu.model.scoring import accuracy, answer_token_stats, correct
from sbu.unlearn.forget_sets import UnlearningSets

PRIVLEAK_ATTACK = "min_k_plus_plus"  # PrivLeak is reported for every attack; the target reads this one


SHARED_ENTITY_TYPES = ("condition", "concept")  # what links two subjects for the collateral probes
COMMON_SHARE = 0.25  # [choice] an entity more than this share of the subjects carry links no one (MeSH's check
# tags — Humans, Female, Male, age groups — sit on most abstracts; a cohort's condition on at most 17 % of patients)


def collateral_subjects(corpus: Corpus, forgotten: set[str], retained: list[str]) -> list[str]:
    """The retained subjects whose facts name a condition (or MeSH concept) that a forgotten subject's facts name,
    leaving out entities so common that they tell nothing about who is near whom (:data:`COMMON_SHARE`)."""
    shared = {e.id for e in corpus.entities if e.type in SHARED_ENTITY_TYPES}
    links: dict[str, set[str]] = {}
    for fact in corpus.facts:
        links.setdefault(fact.about, set()).update(e for e in fact.entities if e in shared)
    holders = Counter(e for entities in links.values() for e in entities)
    subjects = sum(1 for entities in links.values() if entities)
    common = {e for e, n in holders.items() if n > COMMON_SHARE * subjects}
    touched = set().union(*(links.get(p, set()) for p in forgotten)) - common
    return [p for p in retained if links.get(p, set()) & touched]


def probe_sets(corpus: Corpus, sets: UnlearningSets) -> dict[str, list[QAItem]]:
    forgotten_facts = {f for q in sets.forget_items for f in q.fact_ids}
    forgotten_patients = {q.about for q in sets.forget_items}
    retained = [p for p in trained_patients(corpus) if p not in forgotten_patients]
    return {
        "forget": list(sets.forget_items),
        "forget, paraphrased": [q for q in corpus.qa if q.phrasing == "heldout" and set(q.fact_ids) & forgotten_facts],
        "retain": corpus.qa_about(retained, "train"),
        "collateral": corpus.qa_about(collateral_subjects(corpus, forgotten_patients, retained), "train"),
        "test": [q for q in corpus.qa if q.id in set(corpus.splits["test"])],
        "holdout": corpus.qa_about(patients_in(corpus, "holdout"), "train"),
    }


def evaluate(lm: CausalLM, corpus: Corpus, sets: UnlearningSets, retrain: CausalLM | None = None,
             seed: int = 0) -> dict[str, float]:
    """One model's row: accuracies, every attack's AUC (forget vs holdout), and forget quality vs ``retrain``."""
    probes = probe_sets(corpus, sets)
    m, tok = lm.model, lm.tokenizer
    # collateral probes are retain probes: score the retain set once and read both from it
    right = dict(zip((q.id for q in probes["retain"]), correct(m, tok, probes["retain"])))
    collateral = [right[q.id] for q in probes["collateral"]]
    row = {"forget accuracy": accuracy(m, tok, probes["forget"]),
           "retain accuracy": float(np.mean(list(right.values()))) if right else float("nan"),
           "collateral accuracy": float(np.mean(collateral)) if collateral else float("nan"),
           "test accuracy": accuracy(m, tok, probes["test"])}
    holdout = probes["holdout"]
    row["holdout in context accuracy"] = accuracy(m, tok, holdout, open_book_contexts(corpus, holdout, seed=seed))
    reference = (retrain.model, retrain.tokenizer) if retrain is not None and retrain is not lm else None
    row.update({f"{name} AUC": auc for name, auc in attack_aucs(m, tok, probes["forget"], holdout, reference).items()})
    if retrain is not None:  # PubMedQA-L's cloze items have no paraphrases: no forget quality there
        row["forget quality"] = forget_quality(m, tok, retrain.model, retrain.tokenizer, probes["forget, paraphrased"]
                                               ) if probes["forget, paraphrased"] else float("nan")
    return row


def comparison_table(rows: Mapping[str, Mapping[str, float]], retrain: str = "retrain") -> pd.DataFrame:
    """Rows of :func:`evaluate` side by side (one per model), with PrivLeak of every attack against ``retrain``."""
    table = pd.DataFrame(rows).T
    table.index.name = "model"
    for column in [c for c in table.columns if c.endswith(" AUC") and c != "reference AUC"]:
        attack = column[: -len(" AUC")]
        table[f"{attack} PrivLeak"] = [privleak(auc, table.loc[retrain, column]) for auc in table[column]]
    return table


def sra_targets(table: pd.DataFrame, model: str = "sra", base: str = "base", retrain: str = "retrain") -> pd.DataFrame:
    """The parameter pathway's targets next to what this run measured."""
    row, b, r = table.loc[model], table.loc[base], table.loc[retrain]
    leak = row[f"{PRIVLEAK_ATTACK} PrivLeak"]
    checks = [
        ("forget accuracy within 5 points of retrain", row["forget accuracy"], f"{r['forget accuracy']:.3f} ± 0.05",
         abs(row["forget accuracy"] - r["forget accuracy"]) <= 0.05),
        (f"|PrivLeak| ≤ {PRIVLEAK_TARGET * 100:.0f} % ({PRIVLEAK_ATTACK})", leak, f"|x| <= {PRIVLEAK_TARGET:.2f}",
         abs(leak) <= PRIVLEAK_TARGET),
        ("retain accuracy ≥ 95 % of base", row["retain accuracy"] / b["retain accuracy"], ">= 0.95",
         row["retain accuracy"] >= 0.95 * b["retain accuracy"]),
        ("test accuracy ≥ 98 % of base", row["test accuracy"] / b["test accuracy"], ">= 0.98",
         row["test accuracy"] >= 0.98 * b["test accuracy"]),
    ]
    return pd.DataFrame([(name, model, float(value), wanted, bool(met)) for name, value, wanted, met in checks],
                        columns=["target", "model", "measured", "wanted", "met"])


def answer_entropies(lm: CausalLM, items: list[QAItem], batch_size: int = 64) -> np.ndarray:
    """The entropy (nats) of the model's next-token distribution at every answer position of the items'
    correct answers, closed-book: SRA should raise it on the forget set and leave it elsewhere. It is −μ of
    Min-K%++'s normalisers (:func:`sbu.model.scoring.answer_token_stats`)."""
    stats = answer_token_stats(lm.model, lm.tokenizer, [prompts.closed_book(q.question) for q in items],
                               [prompts.answer_continuation(q.answer_text) for q in items], batch_size)
    return np.concatenate([-s.mu for s in stats]) if stats else np.array([])


def describe_unlearning(table: pd.DataFrame, targets: pd.DataFrame, entropies: dict | None = None,
                        attack: str = PRIVLEAK_ATTACK) -> str:
    """A few sentences on the comparison, every number read from the run's tables."""
    r = table.loc["retrain"]
    methods = [m for m in table.index if m not in ("base", "retrain")]
    read_for = targets["model"].iloc[0] if len(targets) else "sra"  # another method when SRA did not run
    lines = [f"{int(targets.met.sum())} of {len(targets)} SRA targets met in this run"
             + ("." if read_for == "sra" else f", read for {read_for} (SRA did not run).")]
    lines += [f"{'Met' if row.met else 'Missed'}: {row.target}: {row.measured:.3f} ({row.wanted})."
              for row in targets.itertuples()]
    closest = min(methods, key=lambda m: abs(table.loc[m, f"{attack} PrivLeak"]))
    lines.append(f"Retrain answers {r['forget accuracy']:.2f} of the forget probes (chance 0.25). Closest to it in "
                 f"membership signal ({attack}): {closest} (PrivLeak {table.loc[closest, f'{attack} PrivLeak']:+.3f}, "
                 f"retain accuracy {table.loc[closest, 'retain accuracy']:.3f}).")
    over = [m for m in methods if table.loc[m, "loss AUC"] < 0.4]
    if over:
        lines.append("Over-unlearned by the LOSS attack (forget answers less likely than never-seen ones, AUC < 0.4): "
                     + ", ".join(f"{m} ({table.loc[m, 'loss AUC']:.2f})" for m in over) + ".")
    unlearned = [m for m in (entropies or {}).get("forget", {}) if m not in ("base", "retrain")]
    if unlearned:  # SRA's, or another method's when SRA did not run
        f, k, m = entropies["forget"], entropies["retain"], unlearned[0]
        name = "SRA" if m == "sra" else m
        lines.append(f"Mean answer-token entropy on the forget probes: base {f['base'].mean():.2f}, retrain "
                     f"{f['retrain'].mean():.2f}, {name} {f[m].mean():.2f} nats; on retained patients: base "
                     f"{k['base'].mean():.2f}, {name} {k[m].mean():.2f}.")
    return "\n".join(lines)
