"""One frozen dataclass describes an experiment; profiles name the two scales we run.

``smoke`` (the default) is small enough for CI and for stepping through the notebooks on a laptop; ``paper`` is
the scale of the replication study. Any field can be overridden: ``ExperimentConfig.from_profile("smoke",
seed=1)`` or, for nested fields, ``from_profile("paper", cohort={"n_patients": 200})``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from sbu.data.cohort import FORGET_SPLITS, CohortConfig
from sbu.errors import ConfigError, ProfileError
from sbu.model.base import ModelConfig, TrainConfig
from sbu.model.recipe import Recipe


@dataclass(frozen=True)
class ExperimentConfig:
    profile: str = "smoke"
    seed: int = 0
    forget_split: str = "forget05"
    cohort: CohortConfig = field(default_factory=CohortConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        if self.forget_split not in FORGET_SPLITS:
            raise ConfigError(f"forget_split must be one of {', '.join(FORGET_SPLITS)}, got {self.forget_split!r}")

    @classmethod
    def from_profile(cls, profile: str = "smoke", **overrides) -> ExperimentConfig:
        if profile not in PROFILES:
            raise ProfileError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
        base = PROFILES[profile]()
        seed = overrides.pop("seed", base.seed)
        nested = {}
        for name in ("cohort", "model", "train"):
            given = overrides.pop(name, {})
            if not isinstance(given, dict):
                raise ConfigError(f"{name} overrides must be a mapping, got {given!r}")
            current = getattr(base, name)
            if name in ("cohort", "train"):
                given = {"seed": seed, **given}
            if name == "train" and isinstance(given.get("recipe"), dict):
                given["recipe"] = replace(current.recipe, **given["recipe"])
            try:
                nested[name] = replace(current, **given)
            except TypeError as err:
                raise ConfigError(f"bad {name} override {given!r}: {err}") from err
        unknown = set(overrides) - {"forget_split"}
        if unknown:
            raise ConfigError(f"unknown experiment field(s) {sorted(unknown)}; known: seed, forget_split, "
                              "cohort, model, train")
        return replace(base, seed=seed, **nested, **overrides)

    def to_dict(self) -> dict:
        return asdict(self)


PROFILES = {
    "smoke": lambda: ExperimentConfig(profile="smoke"),
    "paper": lambda: ExperimentConfig(
        profile="paper", cohort=CohortConfig(n_patients=400),
        model=ModelConfig(n_layer=6, n_embd=192, n_head=6),
        train=TrainConfig(epochs=20, recipe=Recipe(reading_patients=400))),
}
