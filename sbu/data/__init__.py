"""Data: the synthetic cohort, the PubMedQA-L loader, and the record schema they share."""

from sbu.data.cohort import CohortConfig, generate
from sbu.data.schema import Artifact, Corpus, Entity, Fact, QAItem

__all__ = ["Artifact", "CohortConfig", "Corpus", "Entity", "Fact", "QAItem", "generate"]
