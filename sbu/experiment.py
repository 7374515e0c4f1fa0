"""What a notebook cell calls: one experiment's data, models, tables and output folder.

A notebook's parameters cell holds literals; the next cell makes an :class:`Experiment` from them, and every later
cell is one call on it and one thing shown. Nothing here computes anything new — it wires the package together
and decides where results go (``out_dir``), so that notebooks, ``sbu run`` and papermill batches agree.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pandas as pd

from sbu.config import ExperimentConfig
from sbu.data import cohort, pubmed_study
from sbu.data.schema import Corpus
from sbu.errors import ConfigError
from sbu.eval import style
from sbu.eval.accuracy import accuracy_by_attribute, model_report
from sbu.eval.targets import base_model_targets
from sbu.model.cache import finetuned_model, trained_model
from sbu.model.finetune import FinetuneConfig
from sbu.model.network import CausalLM
from sbu.unlearn.methods import UnlearnConfig
from sbu.unlearn.methods import method as unlearning_method


@dataclass
class Experiment:
    config: ExperimentConfig
    out_dir: Path
    model_name_or_path: str = ""  # a user's own causal LM on disk; empty: the embedded model, trained and cached
    finetune: FinetuneConfig | None = None  # how a user's model learns the cohort; None: the defaults, with the
    # experiment's training recipe and seed
    metrics: dict = field(default_factory=dict)
    data_path: str = ""  # PubMedQA-L's ori_pqal.json (or its folder); empty: shared/data/pubmedqa beside the project

    @classmethod
    def from_params(cls, profile: str = "smoke", seed: int = 0, out_dir: str = "results/dev",
                    forget_split: str = "forget05", model_name_or_path: str = "", dataset: str = "cohort",
                    data_path: str = "", **overrides) -> Experiment:
        config = ExperimentConfig.from_profile(profile, seed=seed, forget_split=forget_split, dataset=dataset,
                                               **overrides)
        if data_path and config.dataset != "pubmedqa":
            raise ConfigError(f"data_path is PubMedQA-L's file: set dataset='pubmedqa' to use it (dataset is "
                              f"{config.dataset!r})")
        out = Path(out_dir).expanduser().resolve()
        out.mkdir(parents=True, exist_ok=True)
        return cls(config, out, model_name_or_path, data_path=data_path)

    @cached_property
    def corpus(self) -> Corpus:
        """The experiment's data set: the synthetic cohort, or PubMedQA-L as a study corpus."""
        if self.config.dataset == "pubmedqa":
            return pubmed_study.study_corpus(self.data_path or None, self.config.pubmedqa)
        return cohort.generate(self.config.cohort)

    def _model(self, exclude: str | None) -> CausalLM:
        start = time.perf_counter()
        if self.model_name_or_path:  # the user's model fine-tuned on the cohort, with and without the split
            finetune = self.finetune or FinetuneConfig(recipe=self.config.train.recipe, seed=self.config.train.seed)
            lm = finetuned_model(self.model_name_or_path, self.corpus, finetune, exclude=exclude)
        else:
            lm = trained_model(self.corpus, self.config.model, self.config.train, exclude=exclude)
        kind = "base" if exclude is None else "retrain" if exclude == self.config.forget_split else f"retrain {exclude}"
        self.metrics.setdefault("models", {})[kind] = {
            "name": lm.info.get("name"), "path": str(lm.path), "load_or_train_seconds": time.perf_counter() - start,
            "train_seconds": lm.info.get("train_seconds"), "n_parameters": lm.info.get("n_parameters"),
            "torch_threads": lm.info.get("torch_threads")}
        return lm

    def base_model(self) -> CausalLM:
        """The model before unlearning (trained on every non-holdout patient), from the cache when it is there."""
        return self._model(None)

    def retrain_model(self, forget_split: str | None = None) -> CausalLM:
        """The gold standard: the same recipe without the forget split's patients (``forget_split``, default the
        experiment's)."""
        return self._model(forget_split or self.config.forget_split)

    def unlearn_config(self, method: str = "sra", **hparams) -> UnlearnConfig:
        """The config of an unlearning method for this experiment: the profile's budget and the experiment's seed,
        then ``hparams``."""
        defaults = {"steps": self.config.unlearn_steps, "seed": self.config.seed}
        return unlearning_method(method).configure(**{**defaults, **hparams})

    def model_table(self, models: dict[str, CausalLM]) -> pd.DataFrame:
        """The base-model accuracy table for each named model, side by side."""
        rows = []
        for kind, lm in models.items():
            report = model_report(lm, self.corpus, self.config.forget_split, self.config.seed)
            report["model"] = kind
            rows.append(report)
        table = pd.concat(rows, ignore_index=True)
        self.save_table(table, "model_table.csv")
        return table.pivot_table(index=["probe set", "mode"], columns="model", values="value", sort=False)

    def reading_table(self, lm: CausalLM) -> pd.DataFrame:
        """Holdout patients' accuracy per attribute, closed-book and with the fact in context: what the model
        can take from memory that it does not know itself."""
        holdout = self.corpus.splits["holdout"]
        table = pd.DataFrame({
            "closed-book": accuracy_by_attribute(lm, self.corpus, holdout, open_book=False, seed=self.config.seed),
            "fact in context": accuracy_by_attribute(lm, self.corpus, holdout, open_book=True, seed=self.config.seed),
        })
        table.index.name = "attribute"
        self.save_table(table.reset_index(), "reading_by_attribute.csv")
        self.metrics["reading_by_attribute"] = table.to_dict()
        return table

    def targets(self, table: pd.DataFrame) -> pd.DataFrame:
        """The targets next to what this run measured."""
        checked = base_model_targets(table, self.metrics.get("models", {}).get("base", {}).get("train_seconds"))
        self.metrics["targets"] = checked.to_dict(orient="records")
        return checked

    def save_table(self, table: pd.DataFrame, name: str) -> Path:
        path = self.out_dir / name
        table.to_csv(path, index=False)
        return path

    def save_figure(self, figure, name: str) -> list[Path]:
        """Write a matplotlib figure (or a seaborn grid, or an axes' figure) as ``name``.png and .svg in
        ``out_dir`` (:func:`sbu.eval.style.save`)."""
        return style.save(figure, self.out_dir, name)

    def save_metrics(self, **extra) -> Path:
        """Write ``metrics.json`` (config, environment, everything recorded so far) to ``out_dir``."""
        self.metrics.update(extra)
        payload = {"config": self.config.to_dict(), "python": platform.python_version(), **self.metrics}
        path = self.out_dir / "metrics.json"
        path.write_text(json.dumps(payload, indent=1, default=_jsonable) + "\n")
        return path


def _jsonable(obj):
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)
