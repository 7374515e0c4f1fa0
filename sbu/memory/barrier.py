"""The write barrier: a keyed-hash blocklist that every write-back passes.

A forget request blocks four kinds of entries, each kept only as HMAC-SHA256(key, kind | normalized text):

- ``id``: the forgotten entity ids (``patient/p007``);
- ``name``: their names (``kalo parta``);
- ``pair``: (entity id, value) for every forgotten assertion (``patient/p007`` | ``bilbao``);
- ``node``: every pruned or tombstoned artifact IRI.

:meth:`Barrier.check` refuses a candidate write that is about or mentions a blocked id, whose text holds a blocked
name (or a blocked id), whose text holds a blocked value while it is about that value's entity, or that derives
from a blocked node — and counts each refusal by reason. Texts are checked without any plaintext on the barrier's
side: the candidate's word n-grams are hashed with the same key and looked up.

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
import stat
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from rdflib import Literal, URIRef

from sbu.cache import cache_dir
from sbu.errors import ConfigError
from sbu.files import write_atomic
from sbu.memory.sparql import load_query
from sbu.memory.store import MemoryStore
from sbu.memory.vocab import ID_BASE, META, RDF, SBU

KEY_ENV = "SBU_BARRIER_KEY"
KEY_BYTES = 32
MAX_NGRAM = 64  # the longest blocked value, in words, that a text check can find
_EDGE_PUNCT = ".,;:!?()[]{}\"'"


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
    if os.environ.get(KEY_ENV):
        return _parse_keys(os.environ[KEY_ENV], f"${KEY_ENV}")
    path = Path(path) if path else default_key_path()
    if not path.exists():
        if not create:
            raise ConfigError(f"the barrier key file {str(path)!r} is missing, but this memory holds a blocklist "
                              "made with a key: restore the key file from its backup (or set $SBU_BARRIER_KEY); "
                              "a new key cannot check the old blocklist")
        _create_key_file(path)
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"the barrier key file {str(path)!r} is readable by others (mode {oct(mode & 0o777)}); "
                          f"run `chmod 600 {path}`")
    return _parse_keys(path.read_text(), f"the barrier key file {str(path)!r}")


def _create_key_file(path: Path) -> None:
    """A new key file that appears whole or not at all: the key is written to a private temporary file, then
    linked into place. Processes that create it at once (``sbu batch`` workers, tests side by side on a fresh
    cache) agree on the one that was linked first, and none reads a file that is still empty."""
    write_atomic(path, secrets.token_hex(KEY_BYTES) + "\n", mode=0o600, exclusive=True)  # the first one made wins


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


def normalize(text: str) -> str:
    """NFKC, case-folded (ß = ss), words split on white space with punctuation stripped from their edges."""
    words = unicodedata.normalize("NFKC", str(text)).casefold().split()
    return " ".join(w for w in (w.strip(_EDGE_PUNCT) for w in words) if w)


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


def _ngrams(text: str) -> list[str]:
    words = normalize(text).split()
    return [" ".join(words[i:j]) for i in range(len(words)) for j in range(i + 1, min(i + MAX_NGRAM, len(words)) + 1)]


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reasons: tuple[str, ...] = ()  # "blocked id", "blocked name", "blocked value", "derives from forgotten"

    def __bool__(self) -> bool:
        return self.allowed


@dataclass
class Barrier:
    """The blocklist of one memory: blocked hashes, the key, and how many writes it refused (by reason)."""

    key: bytes
    blocked: set[str] = field(default_factory=set)
    refused: int = 0  # writes refused
    refusals: Counter = field(default_factory=Counter)  # refusals by reason (one write may have several)
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
                pairs: Iterable[tuple[str, str]] = (), nodes: Iterable = ()) -> set[str]:
        """The hashes of a request's entries."""
        out = {keyed_hash(self.key, "id", record_id(i)) for i in ids}
        out |= {keyed_hash(self.key, "name", n) for n in names if normalize(n)}
        out |= {keyed_hash(self.key, "pair", record_id(e), v) for e, v in pairs if normalize(v)}
        out |= {keyed_hash(self.key, "node", record_id(n)) for n in nodes}
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
        about = [normalize(record_id(a)) for a in about]
        sources = [normalize(record_id(s)) for s in derived_from]
        blocked, reasons = self.blocked, []
        grams = _ngrams(text) if text else []
        for key in self.keys:  # the current key, then retired ones (their blocklists are still in force)
            id_hash, name_hash, node_hash = _Hasher(key, "id"), _Hasher(key, "name"), _Hasher(key, "node")
            if any(id_hash(a) in blocked for a in about):
                reasons.append("blocked id")
            if any(node_hash(s) in blocked for s in sources):
                reasons.append("derives from forgotten")
            if any(name_hash(g) in blocked or id_hash(g) in blocked for g in grams):
                reasons.append("blocked name")
            if any(pair_hash(g) in blocked for pair_hash in (_Hasher(key, "pair", a) for a in about) for g in grams):
                reasons.append("blocked value")
        reasons = list(dict.fromkeys(reasons))
        if reasons and count:
            self.refused += 1
            self.refusals.update(reasons)
        return Verdict(not reasons, tuple(reasons))

    def hashes_of(self, text: str = "", about: Iterable = (), derived_from: Iterable = ()) -> set[str]:
        """Every hash :meth:`check` looks up for this write: what the store's blocklist must not hold at the moment
        the write lands (:meth:`write`)."""
        about = [normalize(record_id(a)) for a in about]
        grams = _ngrams(text) if text else []
        out: set[str] = set()
        for key in self.keys:
            id_hash, name_hash, node_hash = _Hasher(key, "id"), _Hasher(key, "name"), _Hasher(key, "node")
            out |= {id_hash(a) for a in about} | {node_hash(normalize(record_id(s))) for s in derived_from}
            out |= {h(g) for h in (name_hash, id_hash) for g in grams}
            out |= {_Hasher(key, "pair", a)(g) for a in about for g in grams}
        return out

    def write(self, store: MemoryStore, quads: list[tuple], text: str = "", about: Iterable = (),
              derived_from: Iterable = ()) -> Verdict:
        """Check a write-back, then insert ``quads`` (s, p, o, graph) **in the same update as a check against the
        store's blocklist**, so that a request raising the barrier meanwhile (another process, another thread)
        cannot be slipped past: the insert happens only if none of the write's hashes is blocked in memory at that
        moment. Refused writes are counted; ``Verdict.reasons`` says why ("blocked meanwhile" for the race)."""
        about, derived_from = list(about), list(derived_from)
        verdict = self.check(text, about, derived_from)
        if not verdict:
            return verdict
        values = " ".join(Literal(h).n3() for h in sorted(self.hashes_of(text, about, derived_from)))
        body = " ".join(f"{s.n3()} {p.n3()} {o.n3()} ." for s, p, o, _ in quads)
        graph = quads[0][3]
        store.update(f"INSERT {{ GRAPH {graph.n3()} {{ {body} }} }} WHERE {{ FILTER NOT EXISTS {{ GRAPH {META.n3()} "
                     f"{{ VALUES ?h {{ {values} }} ?request {SBU.blockedHash.n3()} ?h }} }} }}")
        s, p, o, _ = quads[0]
        if store.query(f"ASK {{ GRAPH {graph.n3()} {{ {s.n3()} {p.n3()} {o.n3()} }} }}").askAnswer:
            return verdict
        self.blocked = {str(row[0]) for row in store.query(load_query("blocked"))}  # catch up with memory
        self.refused += 1
        self.refusals.update(["blocked meanwhile"])
        return Verdict(False, ("blocked meanwhile",))

    def check_artifact(self, artifact, count: bool = True) -> Verdict:
        """:meth:`check` for anything with ``text``, ``about`` and ``derived_from`` (e.g. a data-set Artifact)."""
        return self.check(artifact.text, artifact.about, artifact.derived_from, count)

