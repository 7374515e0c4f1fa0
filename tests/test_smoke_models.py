"""The smoke profile's two models, which every notebook runs on at its defaults: shipped with the package, the same as
training from scratch makes them, and meeting the foundation targets.

The base model is trained here from scratch (minutes) into a cache of the test's own and compared with the shipped
one; the notebooks' tests load the shipped models and do not wait for it. ``make test`` starts this training first
(``conftest.pytest_collection_modifyitems``).
"""

from __future__ import annotations

import pytest
import torch

from sbu.eval.targets import base_model_targets
from sbu.experiment import Experiment
from sbu.model.cache import SHIPPED, cache_name, trained_model
from sbu.model.network import INFO_FILE, load


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    return Experiment.from_params(out_dir=str(tmp_path_factory.mktemp("smoke-models")))


def test_the_shipped_weights_are_the_smoke_defaults_models(smoke):
    """What ships is exactly the base model and the forget05 retrain model of the smoke defaults: a change to the
    corpus, the configs, the tokenizer or the training examples changes their cache keys, and this fails until the
    shipped folders are made again (docs/models.md)."""
    config = smoke.config
    wanted = {cache_name(smoke.corpus, config.model, config.train),
              cache_name(smoke.corpus, config.model, config.train, exclude=config.forget_split)}
    assert {p.name for p in SHIPPED.iterdir() if p.is_dir()} == wanted
    for name in wanted:
        assert (SHIPPED / name / INFO_FILE).is_file() and (SHIPPED / name / "model.safetensors").is_file()


@pytest.mark.slow
@pytest.mark.smoke_model
def test_training_from_scratch_makes_the_shipped_base_model(smoke, tmp_path):
    """Trained from scratch, the smoke base model answers like the shipped one on every probe set, meets the
    foundation targets (memorizes trained patients, knows nothing of unseen ones, reads facts from its context,
    keeps general knowledge in new phrasings, its forget set stands out to the LOSS attack), and with the same
    thread count on the same kind of CPU it is the same to the bit."""
    config = smoke.config
    scratch = trained_model(smoke.corpus, config.model, config.train, progress=False, cache=tmp_path, shipped=False)
    shipped = load(SHIPPED / scratch.info["name"])
    table = smoke.model_table({"base": scratch, "shipped": shipped})
    targets = base_model_targets(table[["base"]])
    assert len(targets) == 5 and targets["met"].all(), targets.to_string()
    gap = (table["base"] - table["shipped"]).abs()
    assert (gap <= 0.05).all(), table.round(3).to_string()
    ours, theirs = dict(scratch.model.named_parameters()), dict(shipped.model.named_parameters())
    assert ours.keys() == theirs.keys()
    same_run = all(scratch.info.get(k) == shipped.info.get(k) for k in ("torch_threads", "cpu_capability"))
    if same_run:
        differ = [k for k in ours if not torch.equal(ours[k], theirs[k])]
        assert not differ, f"same threads and CPU, yet {len(differ)} tensors differ, first {differ[0]}"


@pytest.mark.smoke_model
def test_the_smoke_retrain_model_knows_nothing_of_the_forget_patients(smoke):
    """The gold standard never saw forget05: far from the base model's answers on its patients (the base model
    knows them all), the LOSS attack cannot tell them from unseen patients, and the others are still known."""
    table = smoke.model_table({"retrain": smoke.retrain_model()})["retrain"]
    targets = base_model_targets(table.to_frame())
    assert len(targets) == 1 and targets["met"].all(), targets.to_string()
    assert table[("forget", "closed-book")] <= 0.5, table.to_string()
    assert table[("trained patients", "closed-book")] >= 0.9, table.to_string()
