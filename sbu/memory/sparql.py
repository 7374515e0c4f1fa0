"""SPARQL kept in files: ``queries/*.rq``, each opening with a comment that says what it returns.

Values reach a query as bindings (``initBindings``) or as a ``VALUES`` block of IRIs built here from
:class:`rdflib.URIRef` terms — never as text pasted into the query string.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from importlib import resources

from rdflib import Literal, URIRef
from rdflib.term import _is_valid_uri

from sbu.errors import StoreError


@cache
def load_query(name: str) -> str:
    """The text of ``queries/<name>.rq``."""
    path = resources.files("sbu.memory") / "queries" / f"{name}.rq"
    if not path.is_file():
        raise StoreError(f"no query named {name!r} in sbu/memory/queries")
    return path.read_text(encoding="utf-8")


def _terms(iris: Iterable[URIRef], what: str) -> list[str]:
    terms = []
    for term in iris:
        if not isinstance(term, URIRef) or not _is_valid_uri(str(term)):
            raise StoreError(f"not a valid IRI for {what}: {term!r}")
        terms.append(term.n3())
    if not terms:
        raise StoreError(f"{what} needs at least one IRI; guard empty sets before querying")
    return terms


def _fill(query: str, marker: str, text: str) -> str:
    if marker not in query:
        raise StoreError(f"the query has no line {marker!r} to fill")
    return query.replace(marker, text)


def with_values(query: str, var: str, iris: Iterable[URIRef]) -> str:
    """Replace the line ``#VALUES ?var`` of ``query`` by a VALUES block of the given IRIs (at least one: rdflib
    raises on an empty ``VALUES {}``, docs/backends.md, trap 4)."""
    terms = _terms(iris, f"VALUES ?{var}")
    return _fill(query, f"#VALUES ?{var}", f"VALUES ?{var} {{ {' '.join(terms)} }}")


def with_not_in(query: str, var: str, iris: Iterable[URIRef]) -> str:
    """Replace the line ``#NOT_IN ?var`` of ``query`` by ``FILTER(?var NOT IN (…))`` over the given IRIs."""
    terms = _terms(iris, f"NOT IN for ?{var}")
    return _fill(query, f"#NOT_IN ?{var}", f"FILTER(?{var} NOT IN ({', '.join(terms)}))")


def with_literals(query: str, var: str, values: Iterable[str]) -> str:
    """Replace the line ``#VALUES_LITERALS ?var`` of ``query`` by a VALUES block of the given strings, each written
    by rdflib's N-Triples serializer as a literal (never pasted)."""
    terms = [Literal(str(v)).n3() for v in values]
    if not terms:
        raise StoreError(f"VALUES ?{var} needs at least one value; guard empty sets before querying")
    return _fill(query, f"#VALUES_LITERALS ?{var}", f"VALUES ?{var} {{ {' '.join(terms)} }}")


def check_iri(term, what: str) -> URIRef:
    """``term`` as a :class:`URIRef` if it is a valid IRI (nothing that could break out of ``<…>`` in a query:
    no spaces, quotes, angle brackets or braces), else a :class:`StoreError` naming it."""
    text = str(term) if isinstance(term, str) else None
    if text is None or not text or not _is_valid_uri(text) or any(c.isspace() for c in text) or ":" not in text:
        raise StoreError(f"not a valid IRI for {what}: {term!r:.120}; give an absolute IRI such as "
                         "'https://w3id.org/sbu/id/fact/p007/allergy'")
    return URIRef(text)
