"""The write barrier: a keyed-hash blocklist that every write-back passes (SPEC §3.4).

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
request node, so that the barrier survives a restart.
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
from sbu.memory.sparql import load_query
from sbu.memory.store import MemoryStore
from sbu.memory.vocab import ID_BASE, META, RDF, SBU

KEY_ENV = "SBU_BARRIER_KEY"
KEY_BYTES = 32
MAX_NGRAM = 64  # the longest blocked value, in words, that a text check can find
_EDGE_PUNCT = ".,;:!?()[]{}\"'"


def default_key_path() -> Path:
    return cache_dir() / "barrier.key"


def load_key(path: str | Path | None = None) -> bytes:
    """The barrier's secret key: ``$SBU_BARRIER_KEY`` (hex, at least 32 bytes) if set, else the key file at
    ``path`` (default ``<cache>/barrier.key``), created with mode 0600 when missing. A key file that others can
    read is refused."""
    if os.environ.get(KEY_ENV):
        try:
            key = bytes.fromhex(os.environ[KEY_ENV])
        except ValueError as err:
            raise ConfigError(f"${KEY_ENV} must be hex, e.g. the output of "
                              "`python -c 'import secrets; print(secrets.token_hex(32))'`") from err
        if len(key) < KEY_BYTES:
            raise ConfigError(f"${KEY_ENV} holds {len(key)} bytes; the barrier needs at least {KEY_BYTES}")
        return key
    path = Path(path) if path else default_key_path()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(KEY_BYTES))
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"the barrier key file {str(path)!r} is readable by others (mode {oct(mode & 0o777)}); "
                          f"run `chmod 600 {path}`")
    try:
        key = bytes.fromhex(path.read_text().strip())
    except ValueError as err:
        raise ConfigError(f"the barrier key file {str(path)!r} does not hold a hex key") from err
    if len(key) < KEY_BYTES:
        raise ConfigError(f"the barrier key file {str(path)!r} holds {len(key)} bytes; need {KEY_BYTES}")
    return key


def normalize(text: str) -> str:
    """NFKC, lower case, words split on white space with punctuation stripped from their edges."""
    words = unicodedata.normalize("NFKC", str(text)).lower().split()
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

    @classmethod
    def load(cls, store: MemoryStore, key: bytes | None = None) -> Barrier:
        """The barrier of ``store``: every hash its forget requests blocked."""
        rows = store.query(load_query("blocked"))
        return cls(key if key is not None else load_key(), {str(row[0]) for row in rows})

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
        store.update(f"INSERT {{ GRAPH {META.n3()} {{ {request.n3()} {RDF.type.n3()} {SBU.ForgetRequest.n3()} . "
                     f"{body} }} }} WHERE {{}}")
        self.blocked |= hashes

    def check(self, text: str = "", about: Iterable = (), derived_from: Iterable = (), count: bool = True) -> Verdict:
        """May a write-back with this text, about these entities, derived from these sources, enter memory?"""
        about = [normalize(record_id(a)) for a in about]
        blocked, reasons = self.blocked, []
        id_hash, name_hash = _Hasher(self.key, "id"), _Hasher(self.key, "name")
        if any(id_hash(a) in blocked for a in about):
            reasons.append("blocked id")
        node_hash = _Hasher(self.key, "node")
        if any(node_hash(normalize(record_id(s))) in blocked for s in derived_from):
            reasons.append("derives from forgotten")
        grams = _ngrams(text) if text else []
        if any(name_hash(g) in blocked or id_hash(g) in blocked for g in grams):
            reasons.append("blocked name")
        if any(pair_hash(g) in blocked for pair_hash in (_Hasher(self.key, "pair", a) for a in about) for g in grams):
            reasons.append("blocked value")
        if reasons and count:
            self.refused += 1
            self.refusals.update(reasons)
        return Verdict(not reasons, tuple(reasons))

    def check_artifact(self, artifact, count: bool = True) -> Verdict:
        """:meth:`check` for anything with ``text``, ``about`` and ``derived_from`` (e.g. a data-set Artifact)."""
        return self.check(artifact.text, artifact.about, artifact.derived_from, count)

