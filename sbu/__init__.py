"""sbu — Synchronized Backflow Unlearning (Wang et al., arXiv 2602.17692), reproduced for notebooks, courses and
papermill batches.

``sbu.data`` (cohort, PubMedQA-L, the ForgetSet hand-off), ``sbu.memory`` (the RDF memory pathway),
``sbu.retrieval`` (the indexes), ``sbu.model`` (the language model), ``sbu.unlearn`` (the parameter pathway),
``sbu.agent`` (the closed loop), ``sbu.sync`` (the synchronized protocol), ``sbu.eval`` (measures, study, figures),
``sbu.experiment`` (what a notebook cell calls), ``sbu.batch`` (sweeps), ``sbu.cli`` (the ``sbu`` command).
docs/design.md has the map.
"""

__version__ = "0.1.0"
