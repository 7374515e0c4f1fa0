"""Data: the synthetic cohort, the PubMedQA-L loader, PubMedQA-L as a study corpus (``pubmed_study``: cloze probes,
splits, reading abstracts), and the record schema they share."""

from sbu.data.cohort import CohortConfig, generate
from sbu.data.schema import Artifact, Corpus, Entity, Fact, QAItem

__all__ = ["Artifact", "CohortConfig", "Corpus", "Entity", "Fact", "QAItem", "generate"]
