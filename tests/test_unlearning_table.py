"""Notebook 02's comparison table, targets and summary for any subset of methods, on numbers made up here."""

from __future__ import annotations

import numpy as np

from sbu.eval.unlearning import comparison_table, describe_unlearning, sra_targets


def _row(forget: float, retain: float, auc: float) -> dict[str, float]:
    return {"forget accuracy": forget, "retain accuracy": retain, "collateral accuracy": retain,
            "test accuracy": 0.9, "min_k_plus_plus AUC": auc, "loss AUC": auc}


def _entropies(methods):
    return {probe: {m: np.array([1.0, 2.0]) for m in ("base", "retrain", *methods)} for probe in ("forget", "retain")}


def test_the_summary_reads_sra_when_it_ran_and_the_method_that_stood_in_when_it_did_not():
    rows = {"base": _row(1.0, 1.0, 0.95), "retrain": _row(0.3, 1.0, 0.5), "sra": _row(0.32, 0.97, 0.52),
            "npo": _row(0.1, 0.8, 0.2)}
    table = comparison_table(rows)
    with_sra = describe_unlearning(table, sra_targets(table), _entropies(["sra"]))
    assert with_sra.startswith("4 of 4 SRA targets met in this run.\n") and ", SRA 1.50 nats" in with_sra

    no_sra = comparison_table({k: v for k, v in rows.items() if k != "sra"})
    targets = sra_targets(no_sra, model="npo")
    assert set(targets.model) == {"npo"} and not targets.met.all()
    text = describe_unlearning(no_sra, targets, _entropies(["npo"]))
    assert text.startswith(f"{targets.met.sum()} of 4 SRA targets met in this run, read for npo (SRA did not run).")
    assert ", npo 1.50 nats" in text and "SRA 1" not in text and "Over-unlearned" in text
