"""Value tags: a keyed index of the record numbers and dates that memory's texts and values carry.

A forget blocks a forgotten record number or date whoever a later note is about, unless a retained node carries it
too (a shared visit date): blocking that would refuse a retained write. Finding such holders by reading every text
costs time in proportion to the whole memory, and SPARQL cannot read sealed texts at all. So every literal a node
owns (:func:`sbu.memory.sealing.owner`) is written with one ``<node> sbu:carries "<tag>"`` triple in the metadata
graph per canonical value form it carries (:func:`sbu.memory.normalise.unique_forms`), the tag a keyed hash of the
form under the memory's tag key (kept in its key store). A forget deletes a node's metadata, its tags with it, and
finding the holders of a value is one index lookup (``queries/value_holders.rq``). The tags tell whoever holds the
tag key which nodes carry the same value, as the barrier's keyed hashes do.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable

from rdflib import Literal

from sbu.memory.normalise import unique_forms, value_unique_forms
from sbu.memory.sealing import is_sealed, owner
from sbu.memory.vocab import META, SBU

PLAIN_KEY = b"sbu value tags of a memory that is not sealed"  # its texts are plaintext: the key guards nothing
_DIGIT = re.compile(r"\d")  # every canonical form has digits (fold() maps full-width and other digits to ASCII)


def tag(key: bytes, form: str) -> str:
    """The tag of one canonical value form."""
    return hmac.new(key, form.encode(), hashlib.sha256).hexdigest()[:32]


def tag_quads(key: bytes, quads: Iterable[tuple]) -> list[tuple]:
    """The ``sbu:carries`` quads of the literals in ``quads`` (s, p, o, g) that a node owns, given in clear."""
    out = []
    for s, p, o, g in quads:
        if not isinstance(o, Literal) or is_sealed(o) or not _DIGIT.search(o):
            continue
        node = owner(s, p, o, g)
        if node is not None:
            out += [(node, SBU.carries, Literal(tag(key, f)), META) for f in sorted(unique_forms(str(o)))]
    return out


def value_tags(key: bytes, value: str) -> set[str]:
    """The tags under which a forgotten value would be found in a holder (empty: not a record number or date)."""
    return {tag(key, f) for f in value_unique_forms(value)}
