"""One frozen dataclass describes an experiment; profiles name the two scales we run.

``smoke`` (the default) is small enough for CI and for stepping through the notebooks on a laptop; ``paper`` is
the scale of the replication study; ``smoke-study`` is the smoke cohort with the wider model that the README's
smoke-cohort study ran on. Any field can be overridden: ``ExperimentConfig.from_profile("smoke",
seed=1)`` or, for nested fields, ``from_profile("paper", cohort={"n_patients": 200})``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from sbu.data.cohort import FORGET_SPLITS, CohortConfig
from sbu.data.pubmed_study import PubMedStudyConfig
from sbu.errors import ConfigError, ProfileError
from sbu.model.network import ModelConfig
from sbu.model.recipe import Recipe
from sbu.model.training import TrainConfig


@dataclass(frozen=True)
class ExperimentConfig:
    profile: str = "smoke"
    seed: int = 0
    forget_split: str = "forget05"
    dataset: str = "cohort"  # "cohort" (synthetic patients) or "pubmedqa" (PubMedQA-L abstracts, sbu.data.pubmed_study)
    cohort: CohortConfig = field(default_factory=CohortConfig)
    pubmedqa: PubMedStudyConfig = field(default_factory=PubMedStudyConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    # the unlearning budget (optimizer steps): the notebooks' when their unlearn_steps is 0, sbu forget's without
    # --steps. Smoke: on its model, 100 steps of SRA met the forget-accuracy and retain targets that 200 missed
    # (over-unlearned: retain 0.94 of base; docs/tuning.md)
    unlearn_steps: int = 100

    def __post_init__(self):
        if isinstance(self.unlearn_steps, bool) or not isinstance(self.unlearn_steps, int) or self.unlearn_steps < 1:
            raise ConfigError(f"unlearn_steps must be a positive integer, got {self.unlearn_steps!r}")
        if self.forget_split not in FORGET_SPLITS:
            raise ConfigError(f"forget_split must be one of {', '.join(FORGET_SPLITS)}, got {self.forget_split!r}")
        _check_dataset(self.dataset)

    @classmethod
    def from_profile(cls, profile: str = "smoke", **overrides) -> ExperimentConfig:
        if profile not in PROFILES:
            raise ProfileError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
        base = PROFILES[profile]()
        seed = overrides.pop("seed", base.seed)
        dataset = overrides.pop("dataset", base.dataset)
        base = DATASETS[_check_dataset(dataset)](base)
        nested = {}
        for name in ("cohort", "pubmedqa", "model", "train"):
            given = overrides.pop(name, {})
            if not isinstance(given, dict):
                raise ConfigError(f"{name} overrides must be a mapping, got {given!r}")
            current = getattr(base, name)
            if name in ("cohort", "pubmedqa", "train"):
                given = {"seed": seed, **given}
            if name == "train" and isinstance(given.get("recipe"), dict):
                given["recipe"] = replace(current.recipe, **given["recipe"])
            try:
                nested[name] = replace(current, **given)
            except TypeError as err:
                raise ConfigError(f"bad {name} override {given!r}: {err}") from err
        unknown = set(overrides) - {"forget_split", "unlearn_steps"}
        if unknown:
            raise ConfigError(f"unknown experiment field(s) {sorted(unknown)}; known: seed, forget_split, "
                              "dataset, cohort, pubmedqa, model, train, unlearn_steps")
        return replace(base, seed=seed, dataset=dataset, **nested, **overrides)

    def to_dict(self) -> dict:
        return asdict(self)


PROFILES = {
    "smoke": lambda: ExperimentConfig(profile="smoke"),
    # the smoke cohort with the wider model the README's smoke-cohort study ran on (before the smoke model was sized
    # for CI): 128 wide, GPT-2's unfused GELU, 250 reading patients per epoch
    "smoke-study": lambda: ExperimentConfig(
        profile="smoke-study", model=ModelConfig(n_embd=128, activation="gelu_new"),
        train=TrainConfig(recipe=Recipe(reading_patients=250)), unlearn_steps=200),
    "paper": lambda: ExperimentConfig(
        profile="paper", cohort=CohortConfig(n_patients=400),
        model=ModelConfig(n_layer=6, n_embd=192, n_head=6, activation="gelu_new"),
        train=TrainConfig(epochs=20, recipe=Recipe(reading_patients=400)), unlearn_steps=200),
}


def _pubmedqa(config: ExperimentConfig) -> ExperimentConfig:
    """PubMedQA-L abstracts need more of the model than the cohort's short records: a larger vocabulary (medical
    words), room for an open-book context of three sentences of up to 40 words, and reading abstracts instead of
    reading patients (fewer per epoch: each brings about six cloze items)."""
    return replace(config, dataset="pubmedqa",
                   model=replace(config.model, vocab_size=2048, n_positions=768),
                   train=replace(config.train, recipe=replace(config.train.recipe, reading_patients=60)))


DATASETS = {"cohort": lambda config: config, "pubmedqa": _pubmedqa}


def _check_dataset(dataset) -> str:
    if not isinstance(dataset, str) or dataset not in DATASETS:
        raise ConfigError(f"dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
    return dataset
