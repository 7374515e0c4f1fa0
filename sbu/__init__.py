"""sbu — Synchronized Backflow Unlearning (Wang et al., arXiv 2602.17692), reproduced for notebooks, courses and
papermill batches.

``sbu.data`` (cohort, PubMedQA-L), ``sbu.model`` (the embedded base model, scoring), ``sbu.eval`` (accuracy,
membership inference), ``sbu.experiment`` (what a notebook cell calls), ``sbu.cli`` (the ``sbu`` command).
"""

__version__ = "0.1.0"
