"""The write barrier: a keyed-hash blocklist that every write-back passes.

A forget request blocks these kinds of entries, each kept only as HMAC-SHA256(key, kind | normalized text), the
text reduced by the one normaliser of :mod:`sbu.memory.normalise` (Unicode forms, invisible characters,
diacritics, look-alike letters, markup and punctuation, possessives):

- ``id``: the forgotten entity ids (``patient/p007``, and ``p007``), and ``iri``: their full IRIs;
- ``name``: their names, in every form of :func:`~sbu.memory.normalise.name_forms` (either order, initials,
  joined);
- ``pair``: (entity id, value) for every forgotten assertion (``patient/p007`` | ``bilbao``), and ``holder``:
  the entity id of each, so that a text is checked for values only of the entities that hold a blocked one;
- ``unique``: forgotten record numbers and dates that no retained assertion or text shares, as canonical digit
  strings (any separators, any date format);
- ``node``: every pruned or tombstoned artifact IRI.

:meth:`Barrier.check` refuses a candidate write that is about a blocked id, derives from a blocked node, whose
text holds a blocked name, id or IRI anywhere, a blocked value while it is about that value's entity, or a blocked
unique value whoever it is about — and counts refusals by :class:`Reason`. Texts are checked without any
plaintext on the barrier's side: the candidate's word n-grams and digit strings are hashed with the same key and
looked up. A text's n-grams reach only as far as the longest text entry the blocklist holds, in words
(``sbu:longestEntry`` on each request, a small integer and no text): a blocklist of names and ids checks n-grams of
a few words, not :data:`MAX_NGRAM`.

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
from collections.abc import Iterable, Iterator
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


def _recorded(store: MemoryStore) -> tuple[int, bool]:
    """The longest text entry any forget request of ``store`` blocks, in words (0 without requests), and whether
    every request blocked the holders of its values. A request that does not record its longest entry was
    written before either was kept: :data:`MAX_NGRAM`, and values are looked up for every entity."""
    longest, old = next(iter(store.query(
        f"SELECT (MAX(COALESCE(?w, {MAX_NGRAM})) AS ?n) (SUM(IF(BOUND(?w), 0, 1)) AS ?old) WHERE {{ "
        f"GRAPH {META.n3()} {{ ?r a {SBU.ForgetRequest.n3()} OPTIONAL {{ ?r {SBU.longestEntry.n3()} ?w }} }} }}")))
    return (min(int(longest), MAX_NGRAM) if longest is not None else 0), not (old is not None and int(old))


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


def _ngrams(words: list[str], reach: int) -> list[str]:
    return [" ".join(words[i:j]) for i in range(len(words)) for j in range(i + 1, min(i + reach, len(words)) + 1)]


def text_grams(text: str, reach: int = MAX_NGRAM) -> list[str]:
    """The normalized word n-grams of a text (up to ``reach`` words), of the text as written and, when it holds
    percent-escapes, of the text unescaped (an IRI pasted from a URL)."""
    grams = _ngrams(tokens(text), reach)
    if "%" in text:
        grams += _ngrams(tokens(unquote(text)), reach)
    return grams


def _words(normalized: str) -> int:
    return normalized.count(" ") + 1 if normalized else 0


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
class Entries:
    """What a forget request blocks: its keyed hashes, and its longest entry a text is checked for (a name, id,
    IRI or value), in words — how far a text check's n-grams must reach to find it."""

    hashes: frozenset[str]
    words: int

    def __len__(self) -> int:
        return len(self.hashes)


@dataclass(frozen=True)
class _Probe:
    """What a check looks up, normalized once for every key: the ids the write is about, its sources, its text's
    n-grams and canonical digit strings."""

    about: tuple[str, ...]
    sources: tuple[str, ...]
    grams: tuple[str, ...]
    digits: tuple[str, ...]

    @classmethod
    def of(cls, text: str, about: Iterable, derived_from: Iterable, reach: int) -> _Probe:
        return cls(tuple(normalize(record_id(a)) for a in about), tuple(normalize(record_id(s)) for s in derived_from),
                   tuple(dict.fromkeys(text_grams(text, reach))) if text and reach else (),
                   tuple(sorted(unique_forms(text))) if text else ())

    def hashes(self, key: bytes, blocked: set[str], indexed: bool) -> tuple[dict[Reason, set[str]], set[str]]:
        """The hashes under ``key`` that, if blocked, refuse this write, by the reason they refuse it for; and the
        guard: the holder hashes of the entities it is about that hold no blocked value yet (a request raising one
        meanwhile must stop the write). A value is looked up only for an entity that holds a blocked one (its
        ``holder`` hash is blocked) — every entity when the blocklist has no holder hashes (``indexed`` False)."""
        id_hash, holder, node, name, iri_hash, unique = (_Hasher(key, kind) for kind in (
            "id", "holder", "node", "name", "iri", "unique"))
        holders = {a: holder(a) for a in self.about} if indexed else {}
        checked = [a for a in self.about if not indexed or holders[a] in blocked]
        reasons = {Reason.ABOUT: {id_hash(a) for a in self.about},
                   Reason.DERIVED: {node(s) for s in self.sources},
                   Reason.NAME: {name(g) for g in self.grams},
                   Reason.ID: {id_hash(g) for g in self.grams},
                   Reason.IRI: {iri_hash(g) for g in self.grams},
                   Reason.VALUE: {pair(g) for pair in (_Hasher(key, "pair", a) for a in checked) for g in self.grams},
                   Reason.UNIQUE_VALUE: {unique(d) for d in self.digits}}
        return reasons, {h for a, h in holders.items() if h not in blocked}


@dataclass
class Barrier:
    """The blocklist of one memory: blocked hashes, the key, and how many writes it refused (by reason)."""

    key: bytes
    blocked: set[str] = field(default_factory=set)
    refused: int = 0  # writes refused
    refusals: Counter = field(default_factory=Counter)  # refused writes by Reason (one write may have several)
    retired: tuple[bytes, ...] = ()  # older keys: their hashes are still checked, never written anew
    longest: int | None = None  # the longest text entry blocked, in words (None: unknown, MAX_NGRAM if any)
    indexed: bool | None = None  # every request blocked its value holders (None: unknown, so only when empty)
    _counted: int = field(default=-1, repr=False)  # len(blocked) when ``longest`` and ``indexed`` were known

    def __post_init__(self):
        if self.longest is None:
            self.longest = MAX_NGRAM if self.blocked else 0
        if self.indexed is None:
            self.indexed = not self.blocked
        self._counted = len(self.blocked)

    @property
    def keys(self) -> tuple[bytes, ...]:
        return (self.key, *self.retired)

    @property
    def reach(self) -> int:
        """How many words a checked text's n-grams span: the longest blocked entry, or :data:`MAX_NGRAM` when the
        blocklist has changed since that was known (hashes added by hand, not through :meth:`block`)."""
        return self.longest if self._known else MAX_NGRAM

    @property
    def _known(self) -> bool:
        return len(self.blocked) == self._counted

    def block(self, entries: Entries) -> None:
        """Add a request's entries to this barrier (in this process; :meth:`raise_for` also writes them)."""
        reach, indexed = self.reach, self.indexed and self._known
        self.blocked |= entries.hashes
        self.longest, self.indexed, self._counted = max(reach, entries.words), indexed, len(self.blocked)

    def _catch_up(self, store: MemoryStore) -> None:
        self.blocked = {str(row[0]) for row in store.query(load_query("blocked"))}
        (self.longest, self.indexed), self._counted = _recorded(store), len(self.blocked)

    def _probe_hashes(self, probe: _Probe) -> Iterator[tuple[dict[Reason, set[str]], set[str]]]:
        """:meth:`_Probe.hashes` under the current key, then the retired ones (still in force)."""
        indexed = self.indexed and self._known
        return (probe.hashes(key, self.blocked, indexed) for key in self.keys)

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
        longest, indexed = _recorded(store)
        return cls(keys[0], blocked, retired=tuple(keys[1:]), longest=longest, indexed=indexed)

    def entries(self, ids: Iterable[str] = (), names: Iterable[str] = (),
                pairs: Iterable[tuple[str, str]] = (), nodes: Iterable = (), unique: Iterable[str] = ()) -> Entries:
        """The hashes of a request's entries: ids (also as full IRIs), names (every form of :func:`name_forms`),
        (entity, value) pairs, closure nodes, and values blocked whoever a note is about (``unique``: record
        numbers and dates, in every canonical form of :func:`value_unique_forms`)."""
        id_hash, iri_hash, name_hash, node_hash, holder_hash, unique_hash = (_Hasher(self.key, kind) for kind in (
            "id", "iri", "name", "node", "holder", "unique"))
        ids = [record_id(i) for i in ids]
        texts = {"id": {f for i in ids for f in id_forms(i)}, "iri": {normalize(iri(i)) for i in ids},
                 "name": {f for n in names for f in name_forms(n)}}
        pairs = {(normalize(record_id(e)), normalize(v)) for e, v in pairs if normalize(v)}
        out = {id_hash(f) for f in texts["id"]} | {iri_hash(f) for f in texts["iri"]}
        out |= {name_hash(f) for f in texts["name"]}
        out |= {_Hasher(self.key, "pair", e)(v) for e, v in pairs} | {holder_hash(e) for e, _ in pairs}
        out |= {node_hash(normalize(record_id(n))) for n in nodes}
        out |= {unique_hash(f) for v in unique for f in value_unique_forms(v)}
        words = max([_words(f) for forms in texts.values() for f in forms] + [_words(v) for _, v in pairs], default=0)
        return Entries(frozenset(out), min(words, MAX_NGRAM))

    def raise_for(self, store: MemoryStore, request: URIRef, entries: Entries) -> None:
        """Block ``entries`` in memory (on the request node, one update) and here. Raised again (a resumed request),
        the request keeps the longest of its recorded entry lengths."""
        body = " ".join(f"{request.n3()} {SBU.blockedHash.n3()} {Literal(h).n3()} ." for h in sorted(entries.hashes))
        store.update(f"INSERT {{ GRAPH {META.n3()} {{ {request.n3()} {RDF.type.n3()} {SBU.ForgetRequest.n3()} ; "
                     f"{SBU.keyId.n3()} {Literal(key_id(self.key)).n3()} ; "
                     f"{SBU.longestEntry.n3()} {Literal(entries.words).n3()} . {body} }} }} WHERE {{}}")
        self.block(entries)

    def check(self, text: str = "", about: Iterable = (), derived_from: Iterable = (), count: bool = True) -> Verdict:
        """May a write-back with this text, about these entities, derived from these sources, enter memory?"""
        probe = _Probe.of(text, about, derived_from, self.reach)
        reasons = [reason for by_reason, _ in self._probe_hashes(probe) for reason, hashes in by_reason.items()
                   if not hashes.isdisjoint(self.blocked)]
        reasons = list(dict.fromkeys(reasons))
        if reasons and count:
            self.refused += 1
            self.refusals.update(reasons)
        return Verdict(not reasons, tuple(reasons))

    def hashes_of(self, text: str = "", about: Iterable = (), derived_from: Iterable = ()) -> set[str]:
        """Every hash :meth:`check` looks up for this write, and the holder hashes of the entities it is about that
        hold no blocked value yet: what the store's blocklist must not hold at the moment the write lands
        (:meth:`write`)."""
        probe = _Probe.of(text, about, derived_from, self.reach)
        return {h for by_reason, guard in self._probe_hashes(probe) for hashes in (*by_reason.values(), guard)
                for h in hashes}

    def write(self, store: MemoryStore, quads: list[tuple], text: str = "", about: Iterable = (),
              derived_from: Iterable = ()) -> Verdict:
        """Check a write-back, then insert ``quads`` (s, p, o, graph) **in the same update as a check against the
        store's blocklist**, so that a request raising the barrier meanwhile (another process, another thread)
        cannot be slipped past: the insert happens only if none of the write's hashes is blocked in memory at that
        moment. The same update checks that no request raised meanwhile blocks longer entries than this check's
        n-grams reached; if one did, the write is checked again against memory's blocklist and retried. Refused
        writes are counted; ``Verdict.reasons`` says why (``Reason.MEANWHILE`` for the race)."""
        about, derived_from = list(about), list(derived_from)
        verdict = self.check(text, about, derived_from)
        if not verdict:
            return verdict
        graphs: dict = {}
        for s, p, o, g in quads:  # each quad into its own graph (a write's value tags go to the metadata graph)
            graphs.setdefault(g, []).append(f"{s.n3()} {p.n3()} {o.n3()} .")
        body = " ".join(f"GRAPH {g.n3()} {{ {' '.join(lines)} }}" for g, lines in graphs.items())
        s, p, o, graph = quads[0]
        for _ in range(3):  # a longer entry raised meanwhile that this text does not hold: check again, retry
            reach = self.reach
            values = " ".join(Literal(h).n3() for h in sorted(self.hashes_of(text, about, derived_from)))
            longer = "" if reach >= MAX_NGRAM else (
                f"FILTER NOT EXISTS {{ GRAPH {META.n3()} {{ ?r a {SBU.ForgetRequest.n3()} "
                f"OPTIONAL {{ ?r {SBU.longestEntry.n3()} ?w }} FILTER(!BOUND(?w) || ?w > {reach}) }} }}")
            store.update(f"INSERT {{ {body} }} WHERE {{ FILTER NOT EXISTS {{ GRAPH {META.n3()} "
                         f"{{ VALUES ?h {{ {values} }} ?request {SBU.blockedHash.n3()} ?h }} }} {longer} }}")
            if store.query(f"ASK {{ GRAPH {graph.n3()} {{ {s.n3()} {p.n3()} {o.n3()} }} }}").askAnswer:
                return verdict
            self._catch_up(store)
            if not self.check(text, about, derived_from, count=False):
                break
        self.refused += 1
        self.refusals.update([Reason.MEANWHILE])
        return Verdict(False, (Reason.MEANWHILE,))

    def check_artifact(self, artifact, count: bool = True) -> Verdict:
        """:meth:`check` for anything with ``text``, ``about`` and ``derived_from`` (e.g. a data-set Artifact)."""
        return self.check(artifact.text, artifact.about, artifact.derived_from, count)

