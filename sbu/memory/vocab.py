"""The memory vocabulary: IRIs for records, the ``sbu:`` terms, the metadata graph (documented in
``schema.ttl`` beside this file). [choice] one named graph per assertion, named by the assertion's IRI;
everything *about* assertions and artifacts (type, text, ``sbu:about``, PROV-O links, tombstones) lives in the
metadata graph ``META``."""

from __future__ import annotations

from urllib.parse import quote

from rdflib import Namespace, URIRef
from rdflib.namespace import PROV, RDF, RDFS

SBU = Namespace("https://w3id.org/sbu/ns#")
ID_BASE = "https://w3id.org/sbu/id/"
META = URIRef("https://w3id.org/sbu/graph/meta")

ENTITY_CLASS = {"patient": SBU.Patient, "condition": SBU.Condition, "concept": SBU.Concept,
                "document": SBU.Document}
ARTIFACT_CLASS = {"episode": SBU.Episode, "patient_summary": SBU.PatientSummary,
                  "condition_summary": SBU.ConditionSummary, "concept_summary": SBU.ConceptSummary,
                  "cached_answer": SBU.CachedAnswer}

__all__ = ["ARTIFACT_CLASS", "ENTITY_CLASS", "ID_BASE", "META", "PROV", "RDF", "RDFS", "SBU", "iri", "predicate"]


def predicate(attribute: str) -> URIRef:
    """The property of an attribute (``allergy`` → ``sbu:allergy``), percent-encoded like :func:`iri`."""
    return SBU[quote(attribute, safe="-_.~")]


def iri(record_id: str) -> URIRef:
    """The IRI of a record id (``patient/p007`` → ``https://w3id.org/sbu/id/patient/p007``); every character
    outside a safe set is percent-encoded, so no id can break out of ``<…>`` in a query."""
    return URIRef(ID_BASE + quote(record_id, safe="/-_.~"))
