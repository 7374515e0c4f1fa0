"""One frozen dataclass describes an experiment; a profile (``params/profiles/<name>.yaml``) says how it differs from
the defaults below, which are the one source of every setting.

``smoke`` (the default) is small enough for CI and for stepping through the notebooks on a laptop; ``paper`` is
the scale of the replication study; ``smoke-study`` is the smoke cohort with the wider model that the smoke-cohort
study ran on. Any field can be overridden: ``ExperimentConfig.from_profile("smoke",
seed=1)`` or, for nested fields, ``from_profile("paper", cohort={"n_patients": 200})``.
"""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import yaml

from sbu import checks
from sbu.data.cohort import FORGET_SPLITS, CohortConfig
from sbu.data.pubmed_study import PubMedStudyConfig
from sbu.errors import ConfigError, ProfileError
from sbu.model.network import ModelConfig
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
    # the unlearning budget (optimizer steps) of every method and request: the notebooks' when their unlearn_steps is
    # 0, sbu forget's without --steps (docs/tuning.md)
    unlearn_steps: int = 100

    def __post_init__(self):
        checks.integer("unlearn_steps", self.unlearn_steps, 1)
        if self.forget_split not in FORGET_SPLITS:
            raise ConfigError(f"forget_split must be one of {', '.join(FORGET_SPLITS)}, got {self.forget_split!r}")
        _check_dataset(self.dataset)

    @classmethod
    def from_profile(cls, profile: str = "smoke", **overrides) -> ExperimentConfig:
        """The profile's settings (``params/profiles/<profile>.yaml``), then the dataset's needs, then ``overrides``."""
        base = _apply(cls(profile=profile), load_profile(profile), f"params/profiles/{profile}.yaml")
        seed = overrides.pop("seed", base.seed)
        dataset = overrides.pop("dataset", base.dataset)
        base = DATASETS[_check_dataset(dataset)](base)
        for name in SEEDED:  # one seed drives the data, the abstracts drawn and training
            given = overrides.get(name, {})
            if not isinstance(given, dict):
                raise ConfigError(f"{name} overrides must be a mapping, got {given!r}")
            overrides[name] = {"seed": seed, **given}
        return replace(_apply(base, overrides, "overrides"), seed=seed, dataset=dataset)

    def to_dict(self) -> dict:
        return asdict(self)

    def settings(self) -> dict[str, str]:
        """The settings grouped for display, one line per part: ``{"model": "vocab_size 1024 · n_layer 3 · …"}``."""
        groups: dict[str, list[str]] = {}

        def walk(group: str, name: str, value) -> None:
            if isinstance(value, dict) and name in NESTED + ("recipe",):
                for key, inner in value.items():
                    walk(f"{group}.{name}" if group and name == "recipe" else name, key, inner)
            else:
                shown = ", ".join(f"{k} {v}" for k, v in value.items()) if isinstance(value, dict) else value
                groups.setdefault(group or "experiment", []).append(f"{name} {shown}")

        for key, value in self.to_dict().items():
            walk("", key, value)
        return {group: " · ".join(items) for group, items in groups.items()}

    def _repr_pretty_(self, printer, cycle) -> None:  # IPython's text display: one part per line
        printer.text("\n".join(f"{k:<12} {v}" for k, v in self.settings().items()))

    def _repr_html_(self) -> str:  # a notebook's display: a short table that wraps, instead of one long line
        rows = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
                       f"<td style='text-align:left'>{html.escape(v)}</td></tr>" for k, v in self.settings().items())
        return f"<table><tbody>{rows}</tbody></table>"


PROFILES_DIR = Path(__file__).resolve().parents[1] / "params" / "profiles"  # params/profiles/<name>.yaml
NESTED = ("cohort", "pubmedqa", "model", "train")
SEEDED = ("cohort", "pubmedqa", "train")
TOP_LEVEL = ("forget_split", "unlearn_steps")  # the other fields a profile or an override may set


def profiles() -> list[str]:
    """The names of the profiles in ``params/profiles/``."""
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def load_profile(name: str) -> dict:
    """What profile ``name`` changes from the defaults: the mapping in ``params/profiles/<name>.yaml``."""
    path = PROFILES_DIR / f"{name}.yaml" if isinstance(name, str) and name and "/" not in name else None
    if path is None or not path.is_file():
        raise ProfileError(f"unknown profile {name!r}; choose one of {', '.join(profiles()) or '(none found)'}")
    try:
        settings = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ProfileError(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from err
    if not isinstance(settings, dict):
        raise ProfileError(f"{path} must hold a mapping of settings, got {type(settings).__name__}")
    return settings


def _apply(config: ExperimentConfig, changes: dict, where: str) -> ExperimentConfig:
    """``config`` with ``changes`` (nested fields given as mappings) applied; unknown fields are a clear error."""
    changes = dict(changes)
    nested = {}
    for name in NESTED:
        given = changes.pop(name, {})
        if not isinstance(given, dict):
            raise ConfigError(f"{name} in {where} must be a mapping, got {given!r}")
        current = getattr(config, name)
        if name == "train" and isinstance(given.get("recipe"), dict):
            given = {**given, "recipe": replace(current.recipe, **given["recipe"])}
        try:
            nested[name] = replace(current, **given)
        except TypeError as err:
            raise ConfigError(f"bad {name} setting in {where} {given!r}: {err}") from err
    unknown = set(changes) - set(TOP_LEVEL)
    if unknown:
        raise ConfigError(f"unknown experiment field(s) {sorted(unknown)} in {where}; known: seed, forget_split, "
                          "dataset, cohort, pubmedqa, model, train, unlearn_steps")
    return replace(config, **nested, **changes)


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
