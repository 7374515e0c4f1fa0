"""The calibration stop: end unlearning once the forget set looks like data the model never saw.

Driving the forget loss as far as it goes over-unlearns (the forget probes then look *less* familiar than unseen
data, which a membership attack detects as well: AUC well below 0.5). :class:`CalibrationStop` instead reads the
membership signal during training — every ``every`` steps and at the last one, the ROC-AUC of an attack (Min-K%++
by default) on the forget probes against probes of never-seen patients — logs it as ``calibration_auc`` and stops
at the first AUC ≤ 0.5. It is a callback of :func:`sbu.unlearn.loop.unlearn`, so the parameter pathway does not
depend on evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from sbu import checks
from sbu.data.schema import QAItem
from sbu.errors import ConfigError
from sbu.eval.mia import ATTACKS, roc_auc
from sbu.unlearn.loop import Callback
from sbu.unlearn.methods import UnlearnConfig


def calibration_auc(model, tokenizer, forget_items, nonmember_items, attack: str = "min_k_plus_plus") -> float:
    """ROC-AUC of an attack (default Min-K%++) on the forget probes (members) against never-seen probes."""
    was_training = model.training
    model.eval()
    score = ATTACKS[attack]
    auc = roc_auc(score(model, tokenizer, forget_items), score(model, tokenizer, nonmember_items))
    model.train(was_training)
    return auc


@dataclass
class CalibrationStop(Callback):
    """Checks the membership AUC every ``every`` steps and at the last step; stops once it is ≤ 0.5."""

    forget_items: Sequence[QAItem]  # the forget probes (members)
    nonmember_items: Sequence[QAItem]  # probes of patients no model has seen (the calibration set)
    every: int = 5  # steps between checks
    attack: str = "min_k_plus_plus"  # the membership signal (a key of sbu.eval.mia.ATTACKS)
    _steps: int | None = field(default=None, init=False, repr=False)  # the run's budget, set when it begins

    def __post_init__(self):
        checks.integer("every (steps between calibration checks)", self.every, 1, 1_000_000)
        if self.attack not in ATTACKS or self.attack == "reference":
            raise ConfigError(f"the calibration attack must be one of "
                              f"{', '.join(a for a in ATTACKS if a != 'reference')}, got {self.attack!r}")

    def on_train_begin(self, config: UnlearnConfig) -> None:
        self._steps = config.steps

    def on_step_end(self, step: int, model: torch.nn.Module, tokenizer, record: dict) -> bool:
        if step % self.every and step != self._steps:
            return False
        record["calibration_auc"] = calibration_auc(model, tokenizer, self.forget_items, self.nonmember_items,
                                                    attack=self.attack)
        return record["calibration_auc"] <= 0.5
