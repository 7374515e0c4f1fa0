"""sbu — Synchronized Backflow Unlearning (Wang et al., arXiv 2602.17692), reproduced for notebooks, courses and
papermill batches.

``sbu.data`` (cohort, PubMedQA-L, the ForgetSet hand-off), ``sbu.memory`` (the RDF memory pathway),
``sbu.retrieval`` (the indexes), ``sbu.model`` (the language model), ``sbu.unlearn`` (the parameter pathway),
``sbu.agent`` (the closed loop), ``sbu.sync`` (the synchronized protocol), ``sbu.eval`` (measures, study, figures),
``sbu.experiment`` (what a notebook cell calls), ``sbu.batch`` (sweeps), ``sbu.cli`` (the ``sbu`` command).
docs/design.md has the map.
"""

import warnings

__version__ = "0.1.0"

# huggingface_hub imports tqdm.auto, which warns in a Jupyter kernel without ipywidgets; our bars are text bars
warnings.filterwarnings("ignore", message="IProgress not found")
