"""The notebooks, run top to bottom at their defaults (the smoke profile) with papermill — exactly as ``sbu run``
and ``sbu batch`` run them — and then every file a run wrote is scanned for what it forgot.

Each run writes into its own folder: the executed notebook, its ``out_dir`` (tables, figures, metrics.json, and
the work folders of its forget requests: journals, certificates, adapters, on-disk stores). The scan looks for
the names and unique values (:func:`sbu.eval.exposure.forgotten_strings`) of everything the notebook forgets;
displays of data before it is forgotten go through :func:`sbu.eval.leaks.redact`, so zero hits is the bar.
"""

from __future__ import annotations

import json
from pathlib import Path

import papermill as pm
import pytest

from sbu.config import ExperimentConfig
from sbu.data import cohort, pubmedqa
from sbu.eval.exposure import forgotten_strings
from sbu.eval.leaks import files_scanned, scan
from sbu.eval.requests import request_patients
from sbu.kernel import execute_notebook

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))

# What each notebook records: the keys of its metrics.json and the tables and figures (each a PNG and an SVG) in its
# out_dir. Notebook 01 is the memory pathway alone and loads no model; the base and retrain models' table and
# targets are notebook 02's.
RECORDS = {
    "01": ({"config", "memory"}, ["memory_requests.csv", "plan_kinds.png", "plan_decisions.svg", "plan_pubmedqa.png"]),
    "02": ({"config", "models", "model_table", "reading_by_attribute", "targets", "unlearning", "entropy",
            "sra_targets"}, ["model_table.csv", "reading_by_attribute.csv", "unlearning_table.csv",
                             "training_curves.png", "privacy_utility.svg", "entropy_shift.png"]),
    "03": ({"config", "models", "backflow", "retrain_forget_accuracy", "certificate", "crash", "requests"},
           ["backflow.csv", "requests.csv", "backflow.svg", "obligations.png", "requests.png"]),
    "04": ({"config", "models", "main_table", "claims", "study_seconds"},
           ["results.csv", "rounds.csv", "summary.csv", "claims.csv", "privacy_utility.png", "backflow.svg",
            "costs.png"]),
}


def _defaults(notebook: Path) -> dict:
    return {name: eval(p["default"]) for name, p in pm.inspect_notebook(str(notebook)).items()}  # noqa: S307


def _forgotten(notebook: Path, params: dict) -> list[str]:
    """What a notebook run at ``params`` forgets, as the strings that must not be left anywhere."""
    corpus = cohort.generate(ExperimentConfig.from_profile(params["profile"], seed=params["seed"]).cohort)
    splits = params.get("forget_splits") or [params.get("forget_split", "forget05")]
    patients = {p for split in splits for p in corpus.splits[split]}
    if "requests" in params:  # notebook 03's many-requests part
        patients |= set(request_patients(corpus, params["requests"]))
    secrets = forgotten_strings(corpus, sorted(patients))
    if "pubmed_abstracts" in params:  # notebook 01 forgets the first abstract of its PubMedQA-L memory
        pubmed = pubmedqa.load(params.get("data_path") or None, limit=params["pubmed_abstracts"])
        secrets += forgotten_strings(pubmed, [pubmed.qa[0].about])
    return secrets


def test_every_notebook_is_covered():
    assert [p.stem[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04"]


@pytest.mark.slow
@pytest.mark.smoke_model
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_leaves_no_plaintext_of_what_it_forgot(notebook, tmp_path):
    out = tmp_path / notebook.stem
    executed = tmp_path / notebook.name
    params = _defaults(notebook)
    execute_notebook(notebook, executed, cwd=str(notebook.parent), parameters={"out_dir": str(out)}, progress_bar=False)
    assert (out / "metrics.json").is_file(), "every notebook records its results in metrics.json"
    keys, tables = RECORDS[notebook.stem[:2]]
    metrics = json.loads((out / "metrics.json").read_text())
    assert keys <= set(metrics), f"metrics.json lacks {sorted(keys - set(metrics))}"
    assert [t for t in tables if not (out / t).is_file()] == []
    if notebook.stem.startswith("01"):
        assert "models" not in metrics and not (out / "model_table.csv").exists(), "notebook 01 needs no model"
        assert {"cohort", "pubmedqa", "barrier_refusals"} <= set(metrics["memory"])
    if notebook.stem.startswith("02"):
        assert {r["model"] for r in metrics["targets"]} == {"base", "retrain"}, "both models' targets are checked"
        assert all({"base", "retrain"} <= set(row) for row in metrics["model_table"])
    streams = [out_ for cell in json.loads(executed.read_text())["cells"] for out_ in cell.get("outputs", [])
               if out_.get("output_type") == "stream"]
    printed = "".join("".join(s["text"]) for s in streams)
    assert "\r" not in printed and "\x1b" not in printed, "progress bars are left at their last state"
    for noise in ("IProgress not found", "Loading weights", "Writing model shards", "loss_type=None"):
        assert noise not in printed, f"library noise in the executed notebook: {noise!r}"
    secrets = _forgotten(notebook, params)
    assert secrets, "the scan must look for something"
    stores = sorted(p for p in out.rglob("store") if p.is_dir())  # on-disk memories: scanned for their own request
    written = [executed] + [p for p in out.rglob("*") if p.is_file() and not any(s in p.parents for s in stores)]
    hits = scan(written, secrets)
    assert len(written) >= 3
    assert hits.empty, f"forgotten plaintext left behind:\n{hits.to_string()}"
    if stores:  # notebook 03's crash demonstration forgets one patient in an on-disk store that holds the rest
        corpus = cohort.generate(ExperimentConfig.from_profile(params["profile"], seed=params["seed"]).cohort)
        one = forgotten_strings(corpus, corpus.splits[params["forget_split"]][:1])
        assert files_scanned(stores) > 0
        hits = scan(stores, one)
        assert hits.empty, f"the store still holds the forgotten patient's plaintext:\n{hits.to_string()}"
