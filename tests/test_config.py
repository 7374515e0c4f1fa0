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
    ({"colour": "blue"}, ConfigError), ({"model": 3}, ConfigError), ({"unlearn_steps": 0}, ConfigError),
    ({"unlearn_steps": True}, ConfigError),
])
def test_bad_settings_are_refused(kwargs, error):
    with pytest.raises(error):
        ExperimentConfig.from_profile(**kwargs)


def test_smoke_study_is_the_configuration_the_readmes_smoke_cohort_tables_ran_on():
    """The README's smoke-cohort study ran on the smoke profile as it was before the smoke model was sized for CI;
    ``smoke-study`` must still name exactly those models (the cache keys of that run's base and retrain models),
    or the README's numbers no longer come from the profile it cites."""
    from sbu.data.cohort import generate
    from sbu.model.cache import cache_name

    study, smoke = ExperimentConfig.from_profile("smoke-study"), ExperimentConfig.from_profile("smoke")
    corpus = generate(study.cohort)
    assert study.cohort == smoke.cohort, "the same smoke cohort"
    assert cache_name(corpus, study.model, study.train) == "base-2efa95c37df259b9"
    assert cache_name(corpus, study.model, study.train, "forget05") == "retrain-forget05-cd00d3ac5bc9d9e4"
    assert cache_name(corpus, smoke.model, smoke.train) != "base-2efa95c37df259b9"
    assert study.unlearn_steps == 200 and smoke.unlearn_steps == 100  # the notebooks' budget when theirs is 0
    assert ExperimentConfig.from_profile("smoke", unlearn_steps=150).unlearn_steps == 150


def test_profiles_are_the_yaml_files_the_code_loads(tmp_path, monkeypatch):
    import sbu.config

    assert set(sbu.config.profiles()) >= {"smoke", "smoke-study", "paper"}
    (tmp_path / "wide.yaml").write_text("model: {n_embd: 64}\nunlearn_steps: 7\n")
    (tmp_path / "typo.yaml").write_text("modle: {n_embd: 64}\n")
    (tmp_path / "broken.yaml").write_text("model: {n_embd: [\n")
    monkeypatch.setattr(sbu.config, "PROFILES_DIR", tmp_path)
    wide = ExperimentConfig.from_profile("wide", seed=2)
    assert (wide.model.n_embd, wide.unlearn_steps, wide.cohort.seed, wide.profile) == (64, 7, 2, "wide")
    with pytest.raises(ConfigError, match=r"modle.*typo\.yaml"):
        ExperimentConfig.from_profile("typo")
    with pytest.raises(ProfileError, match="broken.yaml is not valid YAML"):
        ExperimentConfig.from_profile("broken")
    with pytest.raises(ProfileError, match="choose one of broken, typo, wide"):
        ExperimentConfig.from_profile("../smoke")


def test_a_config_displays_as_a_short_table_of_its_parts_with_every_setting():
    """A notebook shows ``exp.config`` as one row per part (wrapping), not as one line hundreds of characters long;
    every leaf setting appears once."""
    config = ExperimentConfig.from_profile("smoke", seed=3)

    def leaves(value):
        return sum(leaves(v) for v in value.values()) if isinstance(value, dict) else 1

    shown = config.settings()
    assert list(shown) == ["experiment", "cohort", "pubmedqa", "model", "train", "train.recipe"]
    forget_shares = 2 * (len(config.cohort.forget_shares) - 1)  # each mapping is one item of its part
    assert sum(v.count(" · ") + 1 for v in shown.values()) == leaves(config.to_dict()) - forget_shares
    assert "seed 3" in shown["experiment"] and "n_embd 96" in shown["model"]
    html = config._repr_html_()
    assert html.startswith("<table>") and html.count("<tr>") == len(shown)
