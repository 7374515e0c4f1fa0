"""The parameter pathway: forget and retain sets (:mod:`~sbu.unlearn.forget_sets`), the losses
(:mod:`~sbu.unlearn.losses`), the methods with their hyper-parameters (:mod:`~sbu.unlearn.methods`), and LoRA
unlearning by one of them (:mod:`~sbu.unlearn.loop`)."""

from sbu.unlearn.loop import Callback, Unlearned, unlearn
from sbu.unlearn.methods import METHODS, UnlearnConfig, register

__all__ = ["METHODS", "Callback", "UnlearnConfig", "Unlearned", "register", "unlearn"]
