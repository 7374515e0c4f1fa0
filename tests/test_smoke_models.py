"""The smoke profile's two models, which every notebook runs on at its defaults, meet the foundation targets.

A fresh checkout trains them here (minutes each) into ``$SBU_CACHE``; the notebooks' tests and the smoke MIA checks
then load them. ``make test`` runs these two first, one per pytest-xdist worker, so that the models train side by
side instead of one after the other inside the first notebook (``conftest.pytest_collection_modifyitems``).
"""

from __future__ import annotations

import pytest

from sbu.eval.targets import base_model_targets
from sbu.experiment import Experiment


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    return Experiment.from_params(out_dir=str(tmp_path_factory.mktemp("smoke-models")))


@pytest.mark.slow
@pytest.mark.smoke_model
def test_the_smoke_base_model_meets_the_foundation_targets(smoke):
    """Memorizes trained patients, knows nothing of unseen ones, reads facts from its context, keeps general
    knowledge in new phrasings, and its forget set stands out to the LOSS attack."""
    targets = base_model_targets(smoke.model_table({"base": smoke.base_model()}))
    assert len(targets) == 5 and targets["met"].all(), targets.to_string()


@pytest.mark.slow
@pytest.mark.smoke_model
def test_the_smoke_retrain_model_knows_nothing_of_the_forget_patients(smoke):
    """The gold standard never saw forget05: far from the base model's answers on its patients (the base model
    knows them all), the LOSS attack cannot tell them from unseen patients, and the others are still known."""
    table = smoke.model_table({"retrain": smoke.retrain_model()})["retrain"]
    targets = base_model_targets(table.to_frame())
    assert len(targets) == 1 and targets["met"].all(), targets.to_string()
    assert table[("forget", "closed-book")] <= 0.5, table.to_string()
    assert table[("trained patients", "closed-book")] >= 0.9, table.to_string()
