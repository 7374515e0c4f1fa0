"""The write barrier: a keyed-hash blocklist that every write-back passes.

A forget request blocks these kinds of entries, each kept only as HMAC-SHA256(key, kind | normalized text), the
text reduced by the one normaliser of :mod:`sbu.memory.normalise` (Unicode forms, invisible characters,
diacritics, look-alike letters, markup and punctuation, possessives):

- ``id``: the forgotten entity ids (``patient/p007``, and ``p007``), and ``iri``: their full IRIs;
- ``name``: their names, in every form of :func:`~sbu.memory.normalise.name_forms` (either order, initials,
  joined);
- ``pair``: (entity id, value) for every forgotten assertion (``patient/p007`` | ``bilbao``);
- ``unique``: forgotten record numbers and dates that no retained assertion or text shares, as canonical digit
  strings (any separators, any date format);
- ``node``: every pruned or tombstoned artifact IRI.

:meth:`Barrier.check` refuses a candidate write that is about a blocked id, derives from a blocked node, whose
text holds a blocked name, id or IRI anywhere, a blocked value while it is about that value's entity, or a blocked
unique value whoever it is about — and counts refusals by :class:`Reason`. Texts are checked without any
plaintext on the barrier's side: the candidate's word n-grams and digit strings are hashed with the same key and
looked up.

The secret key never enters the graph: it comes from ``$SBU_BARRIER_KEY`` (hex) or a key file readable by its
owner only (created with mode 0600 on first use). The blocked hashes live in the metadata graph, on the forget
request node with the id of the key that made them (``sbu:keyId``), so that the barrier survives a restart and a
missing or wrong key is an error, not a silently empty barrier. **Rotation** (:func:`rotate_key`, ``sbu
rotate-key``): a new key goes first in the key file and blocks from then on; the old keys stay, retired, because
the hashes they made cannot be re-keyed (the plaintext is gone) — they keep checking. Keep a backup of the file.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from urllib.parse import unquote

from rdflib import Literal, URIRef

from sbu.cache import cache_dir
from sbu.errors import ConfigError
from sbu.files import read_key_file, write_atomic
from sbu.memory.normalise import name_forms, normalize, tokens, unique_forms, value_unique_forms
from sbu.memory.sparql import load_query
from sbu.memory.store import MemoryStore
from sbu.memory.vocab import ID_BASE, META, RDF, SBU, iri

KEY_ENV = "SBU_BARRIER_KEY"
KEY_BYTES = 32
MAX_NGRAM = 64  # the longest blocked value, in words, that a text check can find


def default_key_path() -> Path:
    return cache_dir() / "barrier.key"


def _parse_keys(text: str, where: str) -> list[bytes]:
    try:
        keys = [bytes.fromhex(part) for part in text.replace(",", " ").split()]
    except ValueError as err:
        raise ConfigError(f"{where} must be hex keys (one per line), e.g. the output of "
                          "`python -c 'import secrets; print(secrets.token_hex(32))'`") from err
    if not keys:
        raise ConfigError(f"{where} holds no key")
    short = [len(k) for k in keys if len(k) < KEY_BYTES]
    if short:
        raise ConfigError(f"{where} holds a key of {short[0]} bytes; the barrier needs at least {KEY_BYTES}")
    return keys


def load_keys(path: str | Path | None = None, create: bool = True) -> list[bytes]:
    """The barrier's keys, current first, then retired ones (still used to *check*, never to block anew):
    ``$SBU_BARRIER_KEY`` (hex keys separated by commas) if set, else the key file at ``path`` (default
    ``<cache>/barrier.key``, one hex key per line), created with mode 0600 when missing and ``create``. A key file
    that others can read is refused. The key is never logged: no message here or elsewhere prints it."""
    path = Path(path) if path else default_key_path()
    return _parse_keys(*read_key_file(
        KEY_ENV, path, "the barrier key file", ConfigError,
        f"the barrier key file {str(path)!r} is missing, but this memory holds a blocklist made with a key: restore "
        "the key file from its backup (or set $SBU_BARRIER_KEY); a new key cannot check the old blocklist",
        _new_key if create else None))


def _new_key() -> str:
    return secrets.token_hex(KEY_BYTES) + "\n"


def load_key(path: str | Path | None = None, create: bool = True) -> bytes:
    """The current barrier key (the first of :func:`load_keys`)."""
    return load_keys(path, create)[0]


def rotate_key(path: str | Path | None = None) -> str:
    """Put a new current key at the head of the key file; the old ones stay below it, retired: they still check
    the blocklists they made (their hashes cannot be re-keyed: the plaintext is gone), new requests block under
    the new key. Returns the new key's id (never the key)."""
    if os.environ.get(KEY_ENV):
        raise ConfigError(f"the keys come from ${KEY_ENV}: rotate there (put a new hex key first, keep the others)")
    path = Path(path) if path else default_key_path()
    keys = load_keys(path)
    new = secrets.token_bytes(KEY_BYTES)
    write_atomic(path, "".join(k.hex() + "\n" for k in [new, *keys]), mode=0o600)
    return key_id(new)


def key_id(key: bytes) -> str:
    """A public name for a key (a keyed hash of nothing): lets memory say which key its blocklist was made with."""
    return hmac.new(key, b"sbu barrier key id", hashlib.sha256).hexdigest()[:16]


def record_id(node) -> str:
    """``patient/p007`` for either the id or its IRI."""
    text = str(node)
    return unquote(text[len(ID_BASE):]) if text.startswith(ID_BASE) else text


def keyed_hash(key: bytes, kind: str, *parts: str) -> str:
    """HMAC-SHA256 of ``kind|part|part…`` (parts normalized), as hex."""
    message = "|".join([kind, *(normalize(p) for p in parts)])
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


class _Hasher:
    """:func:`keyed_hash` for many messages under one key and kind: the keyed state is computed once and copied
    (the parts must already be normalized)."""

    def __init__(self, key: bytes, kind: str, *prefix: str):
        self._state = hmac.new(key, "|".join([kind, *prefix, ""]).encode(), hashlib.sha256)

    def __call__(self, normalized: str) -> str:
        mac = self._state.copy()
        mac.update(normalized.encode())
        return mac.hexdigest()


def _ngrams(words: list[str]) -> list[str]:
    return [" ".join(words[i:j]) for i in range(len(words)) for j in range(i + 1, min(i + MAX_NGRAM, len(words)) + 1)]


def text_grams(text: str) -> list[str]:
    """The normalized word n-grams of a text (up to :data:`MAX_NGRAM` words), of the text as written and, when it
    holds percent-escapes, of the text unescaped (an IRI pasted from a URL)."""
    grams = _ngrams(tokens(text))
    if "%" in text:
        grams += _ngrams(tokens(unquote(text)))
    return grams


def id_forms(record: str) -> set[str]:
    """The normalized forms an entity id is blocked as: the id (``patient/p007`` → ``patient p 007``) and, when
    its last segment carries a digit and is not a bare number, that segment alone (``p007``)."""
    forms = {normalize(record)}
    last = record.rsplit("/", 1)[-1]
    words = tokens(last)
    if any(w.isdigit() for w in words) and not all(w.isdigit() for w in words) and len(last) >= 3:
        forms.add(normalize(last))
    return forms - {""}


class Reason(StrEnum):
    """Why the barrier refused a write (``Barrier.refusals`` counts writes by reason; one write may have several)."""

    ABOUT = "about"  # the write is about a forgotten entity
    DERIVED = "derived"  # it derives from a pruned or tombstoned node
    NAME = "name"  # its text names a forgotten entity (in any spelling, order, with initials, joined)
    ID = "id"  # its text holds a forgotten entity's id
    IRI = "iri"  # its text holds a forgotten entity's full IRI
    VALUE = "value"  # its text states a forgotten value of an entity it is about
    UNIQUE_VALUE = "unique_value"  # its text carries a forgotten record number or date, whoever it is about
    MEANWHILE = "meanwhile"  # the barrier was raised in memory between the check and the insert


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reasons: tuple[Reason, ...] = ()

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True)
class _Probe:
    """What a check looks up, normalized once for every key: the ids the write is about, its sources, its text's
    n-grams and canonical digit strings."""

    about: tuple[str, ...]
    sources: tuple[str, ...]
    grams: tuple[str, ...]
    digits: tuple[str, ...]

    @classmethod
    def of(cls, text: str, about: Iterable, derived_from: Iterable) -> _Probe:
        return cls(tuple(normalize(record_id(a)) for a in about), tuple(normalize(record_id(s)) for s in derived_from),
                   tuple(dict.fromkeys(text_grams(text))) if text else (),
                   tuple(sorted(unique_forms(text))) if text else ())

    def hashes(self, key: bytes) -> dict[Reason, set[str]]:
        """The hashes under ``key`` that, if blocked, refuse this write, by the reason they refuse it for."""
        id_hash = _Hasher(key, "id")
        return {Reason.ABOUT: {id_hash(a) for a in self.about},
                Reason.DERIVED: {_Hasher(key, "node")(s) for s in self.sources},
                Reason.NAME: {_Hasher(key, "name")(g) for g in self.grams},
                Reason.ID: {id_hash(g) for g in self.grams},
                Reason.IRI: {_Hasher(key, "iri")(g) for g in self.grams},
                Reason.VALUE: {pair(g) for pair in (_Hasher(key, "pair", a) for a in self.about) for g in self.grams},
                Reason.UNIQUE_VALUE: {_Hasher(key, "unique")(d) for d in self.digits}}


@dataclass
class Barrier:
    """The blocklist of one memory: blocked hashes, the key, and how many writes it refused (by reason)."""

    key: bytes
    blocked: set[str] = field(default_factory=set)
    refused: int = 0  # writes refused
    refusals: Counter = field(default_factory=Counter)  # refused writes by Reason (one write may have several)
    retired: tuple[bytes, ...] = ()  # older keys: their hashes are still checked, never written anew

    @property
    def keys(self) -> tuple[bytes, ...]:
        return (self.key, *self.retired)

    @classmethod
    def load(cls, store: MemoryStore, key: bytes | None = None) -> Barrier:
        """The barrier of ``store``: every hash its forget requests blocked, with the keys they were made with
        (a memory whose blocklist was made with a key that is not here is a clear error, not a silent new key)."""
        blocked = {str(row[0]) for row in store.query(load_query("blocked"))}
        made_with = {str(row[0]) for row in store.query(
            f"SELECT DISTINCT ?id WHERE {{ GRAPH {META.n3()} {{ ?r {SBU.keyId.n3()} ?id }} }}")}
        keys = [key] if key is not None else load_keys(create=not blocked)
        missing = made_with - {key_id(k) for k in keys}
        if missing:
            raise ConfigError(f"this memory's blocklist was made with {len(missing)} key(s) that are not among the "
                              f"barrier keys here (key id {sorted(missing)[0]}); restore the key file from its "
                              "backup or set $SBU_BARRIER_KEY — a blocklist can only be checked with its own key")
        return cls(keys[0], blocked, retired=tuple(keys[1:]))

    def entries(self, ids: Iterable[str] = (), names: Iterable[str] = (),
                pairs: Iterable[tuple[str, str]] = (), nodes: Iterable = (), unique: Iterable[str] = ()) -> set[str]:
        """The hashes of a request's entries: ids (also as full IRIs), names (every form of :func:`name_forms`),
        (entity, value) pairs, closure nodes, and values blocked whoever a note is about (``unique``: record
        numbers and dates, in every canonical form of :func:`value_unique_forms`)."""
        id_hash, iri_hash, name_hash = _Hasher(self.key, "id"), _Hasher(self.key, "iri"), _Hasher(self.key, "name")
        ids = [record_id(i) for i in ids]
        out = {id_hash(f) for i in ids for f in id_forms(i)}
        out |= {iri_hash(normalize(iri(i))) for i in ids}
        out |= {name_hash(f) for n in names for f in name_forms(n)}
        out |= {_Hasher(self.key, "pair", normalize(record_id(e)))(normalize(v)) for e, v in pairs if normalize(v)}
        out |= {_Hasher(self.key, "node")(normalize(record_id(n))) for n in nodes}
        out |= {_Hasher(self.key, "unique")(f) for v in unique for f in value_unique_forms(v)}
        return out

    def raise_for(self, store: MemoryStore, request: URIRef, hashes: set[str]) -> None:
        """Block ``hashes`` in memory (on the request node, one update) and here."""
        hashes = set(hashes)
        body = " ".join(f"{request.n3()} {SBU.blockedHash.n3()} {Literal(h).n3()} ." for h in sorted(hashes))
        store.update(f"INSERT {{ GRAPH {META.n3()} {{ {request.n3()} {RDF.type.n3()} {SBU.ForgetRequest.n3()} ; "
                     f"{SBU.keyId.n3()} {Literal(key_id(self.key)).n3()} . {body} }} }} WHERE {{}}")
        self.blocked |= hashes

    def check(self, text: str = "", about: Iterable = (), derived_from: Iterable = (), count: bool = True) -> Verdict:
        """May a write-back with this text, about these entities, derived from these sources, enter memory?"""
        probe = _Probe.of(text, about, derived_from)
        reasons = [reason for key in self.keys for reason, hashes in probe.hashes(key).items()
                   if not hashes.isdisjoint(self.blocked)]  # the current key, then retired ones (still in force)
        reasons = list(dict.fromkeys(reasons))
        if reasons and count:
            self.refused += 1
            self.refusals.update(reasons)
        return Verdict(not reasons, tuple(reasons))

    def hashes_of(self, text: str = "", about: Iterable = (), derived_from: Iterable = ()) -> set[str]:
        """Every hash :meth:`check` looks up for this write: what the store's blocklist must not hold at the moment
        the write lands (:meth:`write`)."""
        probe = _Probe.of(text, about, derived_from)
        return {h for key in self.keys for hashes in probe.hashes(key).values() for h in hashes}

    def write(self, store: MemoryStore, quads: list[tuple], text: str = "", about: Iterable = (),
              derived_from: Iterable = ()) -> Verdict:
        """Check a write-back, then insert ``quads`` (s, p, o, graph) **in the same update as a check against the
        store's blocklist**, so that a request raising the barrier meanwhile (another process, another thread)
        cannot be slipped past: the insert happens only if none of the write's hashes is blocked in memory at that
        moment. Refused writes are counted; ``Verdict.reasons`` says why (``Reason.MEANWHILE`` for the race)."""
        about, derived_from = list(about), list(derived_from)
        verdict = self.check(text, about, derived_from)
        if not verdict:
            return verdict
        values = " ".join(Literal(h).n3() for h in sorted(self.hashes_of(text, about, derived_from)))
        graphs: dict = {}
        for s, p, o, g in quads:  # each quad into its own graph (a write's value tags go to the metadata graph)
            graphs.setdefault(g, []).append(f"{s.n3()} {p.n3()} {o.n3()} .")
        body = " ".join(f"GRAPH {g.n3()} {{ {' '.join(lines)} }}" for g, lines in graphs.items())
        store.update(f"INSERT {{ {body} }} WHERE {{ FILTER NOT EXISTS {{ GRAPH {META.n3()} "
                     f"{{ VALUES ?h {{ {values} }} ?request {SBU.blockedHash.n3()} ?h }} }} }}")
        s, p, o, graph = quads[0]
        if store.query(f"ASK {{ GRAPH {graph.n3()} {{ {s.n3()} {p.n3()} {o.n3()} }} }}").askAnswer:
            return verdict
        self.blocked = {str(row[0]) for row in store.query(load_query("blocked"))}  # catch up with memory
        self.refused += 1
        self.refusals.update([Reason.MEANWHILE])
        return Verdict(False, (Reason.MEANWHILE,))

    def check_artifact(self, artifact, count: bool = True) -> Verdict:
        """:meth:`check` for anything with ``text``, ``about`` and ``derived_from`` (e.g. a data-set Artifact)."""
        return self.check(artifact.text, artifact.about, artifact.derived_from, count)

