"""The parameter pathway: forget and retain sets (:mod:`~sbu.unlearn.forget_sets`), the losses
(:mod:`~sbu.unlearn.losses`), and LoRA unlearning by a registered method (:mod:`~sbu.unlearn.loop`)."""

from sbu.unlearn.loop import METHODS, Unlearned, unlearn

__all__ = ["METHODS", "Unlearned", "unlearn"]
