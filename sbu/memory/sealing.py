"""Sealed literals: every text and personal value of memory is stored encrypted under its node's data key.

[choice] The granularity is the node that owns the text — the unit a forget prunes or tombstones:

- an assertion owns the value it asserts (``<entity> sbu:<attribute> "value"`` in its own named graph) and its
  sentence (``sbu:text``);
- an artifact (visit note, summary, cached answer, successor) owns its ``sbu:text``;
- an entity owns its name (``rdfs:label``).

Everything else stays plaintext, so that closures stay SPARQL: IRIs, types, ``sbu:about``/``sbu:mentions``,
``prov:`` links, times, and the keyed hashes of the barrier and of tombstones. A sealed literal is
``"<base64 of nonce ‖ AES-256-GCM ciphertext ‖ tag>"^^sbu:sealed``; the associated data is the owner's IRI, the
triple's subject and its predicate, so a ciphertext moved to another node or property does not open. The nonce is
synthetic — an HMAC of the associated data and the plaintext under the data key's second half (the SIV
construction) — so sealing the same literal twice gives the same term, and a write repeated (the same cached
answer, an ingest run twice, a resumed forget) stays one triple; it reveals only that two literals of the same node
and property are equal. The data keys are kept in :mod:`sbu.memory.keys`; destroying one makes every literal sealed
under it unreadable wherever a copy of the ciphertext lies (crypto-shredding).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from rdflib import Literal, URIRef

from sbu.errors import KeyStoreError
from sbu.memory.keys import KeyStore
from sbu.memory.vocab import META, RDFS, SBU

SEALED = SBU.sealed  # the datatype of a sealed literal
_TEXT, _LABEL = SBU.text, RDFS.label  # module constants: a Namespace attribute builds a new URIRef on each access


def owner(s, p, o, g) -> URIRef | None:
    """The node whose data key seals the literal ``o`` of quad (s, p, o, g); None when it stays plaintext: not a
    literal, or a metadata literal that is not a text or a name (times, keyed hashes, key ids)."""
    if not isinstance(o, Literal):
        return None
    if not str.__eq__(g, META):  # str's comparison: rdflib's own is slow, and this runs once per quad
        return URIRef(str(g))  # an asserted value: sealed under its assertion's key
    return URIRef(str(s)) if str.__eq__(p, _TEXT) or str.__eq__(p, _LABEL) else None


def is_sealed(term) -> bool:
    return isinstance(term, Literal) and term.datatype is not None and str.__eq__(term.datatype, SEALED)


def _ad(node, s, p) -> bytes:
    return f"{node}\n{s}\n{p}".encode()


def seal(data_key: bytes, node, s, p, value: str, cipher: AESGCM | None = None) -> Literal:
    """``value`` sealed under ``data_key`` (deterministic: the same inputs give the same literal); ``cipher``:
    ``AESGCM(data_key[:32])`` when the caller has it already."""
    ad, plain = _ad(node, s, p), str(value).encode()
    nonce = hmac.digest(data_key[32:], ad + b"\x00" + plain, "sha256")[:12]
    blob = nonce + (cipher or AESGCM(data_key[:32])).encrypt(nonce, plain, ad)
    return Literal(base64.b64encode(blob).decode("ascii"), datatype=SEALED)


def unseal(data_key: bytes, node, s, p, sealed: Literal) -> str:
    try:
        blob = binascii.a2b_base64(str.encode(sealed, "ascii"), strict_mode=True)  # b64decode's checks cost more
        return AESGCM(data_key[:32]).decrypt(blob[:12], blob[12:], _ad(node, s, p)).decode()
    except (InvalidTag, ValueError):
        raise KeyStoreError(f"a sealed literal of {node} does not open under its data key: the literal was moved "
                            "or altered, or the key store is corrupt") from None


def seal_quads(keys: KeyStore, quads: Iterable[tuple]) -> list[tuple]:
    """``quads`` (s, p, o, g) with every literal that :func:`owner` names sealed (keys made for new owners)."""
    quads = list(quads)
    owners = [owner(*q) for q in quads]
    data_keys = keys.ensure(str(n) for n in owners if n is not None)
    ciphers = {n: AESGCM(k[:32]) for n, k in data_keys.items()}  # an assertion seals two literals with one
    return [(s, p, o if n is None or is_sealed(o) else seal(data_keys[n], n, s, p, o, ciphers[n]), g)
            for (s, p, o, g), n in zip(quads, map(_str_or_none, owners))]


def _str_or_none(node) -> str | None:
    return None if node is None else str(node)


def reveal_quads(keys: KeyStore | None, quads: Iterable[tuple]) -> list:
    """The object of each quad (s, p, o, g) in clear: plaintext terms as they are, sealed ones opened, and None
    where the data key is gone (the node was forgotten: what is left of it is unreadable)."""
    quads = list(quads)
    owners = [owner(*q) if is_sealed(q[2]) else None for q in quads]
    data_keys = keys.get(str(n) for n in owners if n is not None) if keys is not None and any(owners) else {}
    out = []
    for (s, p, o, _), n in zip(quads, owners):
        if n is None:
            out.append(None if is_sealed(o) else o)
        elif str(n) in data_keys:
            out.append(Literal(unseal(data_keys[str(n)], n, s, p, o)))
        else:
            out.append(None)
    return out
