"""The notebook facade end to end, at tiny scale: models, tables, targets and metrics.json."""

from __future__ import annotations

import json

import pytest

from sbu.errors import ConfigError
from sbu.experiment import Experiment
from sbu.model.cache import folder_fingerprint
from sbu.model.finetune import FinetuneConfig

TINY = dict(cohort={"n_patients": 12, "holdout_share": 0.25},
            model={"vocab_size": 400, "n_layer": 1, "n_embd": 32, "n_head": 2, "n_positions": 192},
            train={"epochs": 2, "batch_size": 16, "recipe": {"reading_patients": 3, "knowledge_repeats": 0}})


def test_experiment_writes_tables_and_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("SBU_CACHE", str(tmp_path / "cache"))
    exp = Experiment.from_params(seed=1, out_dir=str(tmp_path / "out"), forget_split="forget10", **TINY)
    base, retrain = exp.base_model(), exp.retrain_model()
    assert base.path != retrain.path and "retrain-forget10" in retrain.info["name"]
    table = exp.model_table({"base": base, "retrain": retrain})
    assert list(table.columns) == ["base", "retrain"]
    assert ("holdout patients", "fact in context") in table.index
    reading = exp.reading_table(base)
    assert {"allergy", "mrn"} <= set(reading.index)
    targets = exp.targets(table)
    assert targets["met"].dtype == bool and len(targets) >= 6
    metrics = json.loads(exp.save_metrics().read_text())
    assert metrics["config"]["seed"] == 1 and set(metrics["models"]) == {"base", "retrain"}
    assert (tmp_path / "out" / "model_table.csv").is_file()
    assert (tmp_path / "out" / "reading_by_attribute.csv").is_file()


def test_a_users_own_model_is_fine_tuned_on_the_cohort_with_and_without_the_split(tmp_path, monkeypatch):
    """A model from a path is the starting point of both the base and the retrain model (the TOFU protocol), not
    the base model as it is: the gold standard is the same model, never the embedded one."""
    monkeypatch.setenv("SBU_CACHE", str(tmp_path / "cache"))
    users = Experiment.from_params(out_dir=str(tmp_path / "a"), **TINY).base_model()
    exp = Experiment.from_params(out_dir=str(tmp_path / "b"), model_name_or_path=str(users.path), **TINY)
    exp.finetune = FinetuneConfig(epochs=1, recipe=exp.config.train.recipe)
    base, retrain = exp.base_model(), exp.retrain_model()
    assert base.path.name.startswith("base-ft-") and retrain.path.name.startswith("retrain-forget05-ft-")
    assert base.info["pretrained"] == retrain.info["pretrained"] == folder_fingerprint(users.path)
    assert exp.metrics["models"]["retrain"]["name"] == retrain.info["name"]


def test_bad_parameters_fail_before_anything_is_written(tmp_path):
    with pytest.raises(ConfigError):
        Experiment.from_params(out_dir=str(tmp_path / "never"), forget_split="forget99")
    assert not (tmp_path / "never").exists()
