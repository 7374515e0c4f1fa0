"""Experiment profiles and overrides."""

from __future__ import annotations

import pytest

from sbu.config import ExperimentConfig
from sbu.errors import ConfigError, ProfileError


def test_smoke_is_the_default_and_paper_is_larger():
    smoke, paper = ExperimentConfig.from_profile(), ExperimentConfig.from_profile("paper")
    assert smoke.profile == "smoke" and smoke.cohort.n_patients == 60
    assert paper.cohort.n_patients == 400


def test_seed_reaches_cohort_and_training():
    config = ExperimentConfig.from_profile("smoke", seed=5)
    assert config.seed == config.cohort.seed == config.train.seed == 5


def test_nested_overrides():
    config = ExperimentConfig.from_profile("smoke", cohort={"n_patients": 30}, train={"recipe": {"distractors": 3}})
    assert config.cohort.n_patients == 30 and config.train.recipe.distractors == 3
    assert config.train.recipe.reading_patients == ExperimentConfig().train.recipe.reading_patients


@pytest.mark.parametrize("kwargs, error", [
    ({"profile": "huge"}, ProfileError), ({"forget_split": "forget50"}, ConfigError),
    ({"cohort": {"n_patients": 0}}, ConfigError), ({"cohort": {"no_such_field": 1}}, ConfigError),
    ({"colour": "blue"}, ConfigError), ({"model": 3}, ConfigError),
])
def test_bad_settings_are_refused(kwargs, error):
    with pytest.raises(error):
        ExperimentConfig.from_profile(**kwargs)
