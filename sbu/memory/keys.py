"""The data keys of memory's texts, kept outside the graph, so that forgetting can destroy them (crypto-shredding).

Each node that owns text — an assertion (its value and its sentence), an artifact (its text), an entity (its name)
— has a random data key; :mod:`sbu.memory.sealing` encrypts its literals under it. The data keys live here, each
wrapped (AES-GCM, the node's IRI as associated data) by a **master key** kept like the barrier key:
``$SBU_MASTER_KEY`` (hex keys, current first) or ``<cache>/master.key``, mode 0600, created once and never
silently: a key store whose master key is not here is a :class:`~sbu.errors.KeyStoreError`.

The store is an SQLite file (``<cache>/keys/<memory id>.sqlite``; in-memory back ends keep an in-memory one under a
throwaway master key) with ``secure_delete=ON`` in WAL mode: destroying a key overwrites its row with zeros in the
database file, and the WAL is checkpointed and truncated right after, so no file of the key store holds it any
more. Destroying is two-phase, for the crash-safety of the journaled MEMORY step: :meth:`KeyStore.schedule` marks
the keys of a request's closure (durably) before the graph update; :meth:`KeyStore.destroy` deletes them after it;
a crash in between leaves marked keys that :meth:`KeyStore.pending` lists and the next forget or ``sbu resume``
destroys once the request's graph update is in memory. **Rotation** (:func:`rotate_master`): a new master key goes
first in the key file, every data key is re-wrapped under it in one transaction, then the old master key is dropped.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sbu.cache import cache_dir
from sbu.errors import KeyStoreError
from sbu.files import read_key_file, write_atomic

MASTER_ENV = "SBU_MASTER_KEY"
MASTER_BYTES = 32
DATA_KEY_BYTES = 64  # 32 bytes AES-256-GCM key + 32 bytes for the synthetic nonce (sbu.memory.sealing)
FORMAT = "1"
_TAG_KEY = "sbu:value-tag-key"  # the associated data that wraps the tag key (no node IRI has this form)
_CHUNK = 500  # nodes per SQL statement (SQLite's parameter limit is far above; statements stay short)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS info (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS keys (node TEXT PRIMARY KEY, wrapped BLOB NOT NULL, master TEXT NOT NULL,
                                 doomed TEXT) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS keys_doomed ON keys (doomed) WHERE doomed IS NOT NULL;
"""


def default_master_path() -> Path:
    return cache_dir() / "master.key"


def keystore_path(memory_id: str) -> Path:
    """Where the key store of the memory with id ``memory_id`` lives (outside any store folder or server)."""
    return cache_dir() / "keys" / f"{memory_id}.sqlite"


def master_id(key: bytes) -> str:
    """A public name for a master key (a keyed hash of nothing)."""
    return hmac.new(key, b"sbu master key id", hashlib.sha256).hexdigest()[:16]


def _parse(text: str, where: str) -> list[bytes]:
    try:
        keys = [bytes.fromhex(part) for part in text.replace(",", " ").split()]
    except ValueError:
        raise KeyStoreError(f"{where} must hold hex master keys (one per line); it is corrupt") from None
    if not keys or any(len(k) != MASTER_BYTES for k in keys):
        raise KeyStoreError(f"{where} must hold {MASTER_BYTES}-byte hex master keys; it is empty or corrupt")
    return keys


def load_master_keys(path: str | Path | None = None, create: bool = False) -> list[bytes]:
    """The master keys, current first: ``$SBU_MASTER_KEY`` if set, else the key file (default
    ``<cache>/master.key``), created with mode 0600 only when ``create`` (a new memory's first key store)."""
    path = Path(path) if path else default_master_path()
    return _parse(*read_key_file(
        MASTER_ENV, path, "the master key file", KeyStoreError,
        f"the master key file {str(path)!r} is missing, but this memory's texts are sealed under data keys it "
        "wraps: restore it from its backup (or set $SBU_MASTER_KEY); a new master key cannot open the old data keys",
        (lambda: secrets.token_hex(MASTER_BYTES) + "\n") if create else None))


class KeyStore:
    """Wrapped data keys by node IRI, in SQLite (a file, or ``path=None``: in memory). Unwrapped keys are cached in
    this process (the process's memory is outside what key destruction protects: RELIABILITY.md)."""

    def __init__(self, path: Path | None, masters: list[bytes], create: bool = False):
        if not masters:
            raise KeyStoreError("a key store needs a master key")
        self.path = path
        self.masters = {master_id(k): AESGCM(k) for k in masters}
        self.current = master_id(masters[0])
        self._lock = threading.RLock()
        self._cache: dict[str, bytes] = {}
        self._tag_key: bytes | None = None
        if path is not None and not path.exists() and not create:
            raise KeyStoreError(f"the key store {str(path)!r} is missing, but this memory's texts are sealed under "
                                "the data keys it held: restore it from its backup; a new key store cannot open them")
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(":memory:" if path is None else str(path), isolation_level=None,
                                       check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA secure_delete=ON")
            if path is not None:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            self._check_format(create)
        except sqlite3.DatabaseError as err:
            raise KeyStoreError(f"the key store {str(path)!r} cannot be read ({err}): it is corrupt; restore it from "
                                "its backup") from None
        if path is not None:
            os.chmod(path, 0o600)

    def _check_format(self, create: bool) -> None:
        found = dict(self._db.execute("SELECT name, value FROM info").fetchall())
        if not found and create:
            self._db.execute("INSERT OR IGNORE INTO info VALUES ('format', ?)", (FORMAT,))
            return
        if found.get("format") != FORMAT:
            raise KeyStoreError(f"the key store {str(self.path)!r} is not a key store of this sbu (format "
                                f"{found.get('format')!r}): it is corrupt or from another program")
        masters = {row[0] for row in self._db.execute("SELECT DISTINCT master FROM keys")}
        masters |= {row[0].split(":", 1)[0] for row in self._db.execute(
            "SELECT value FROM info WHERE name = 'tag_key'")}
        missing = masters - set(self.masters)
        if missing:
            raise KeyStoreError(f"the key store {str(self.path)!r} was wrapped with a master key that is not here "
                                f"(id {sorted(missing)[0]}): restore the master key file or set $SBU_MASTER_KEY")

    # -- wrapping --------------------------------------------------------------------------------------------------
    def _wrap(self, node: str, key: bytes, master: str | None = None) -> bytes:
        nonce = os.urandom(12)
        return nonce + self.masters[master or self.current].encrypt(nonce, key, node.encode())

    def _unwrap(self, node: str, wrapped: bytes, master: str) -> bytes:
        try:
            return self.masters[master].decrypt(wrapped[:12], wrapped[12:], node.encode())
        except (InvalidTag, KeyError, ValueError):
            raise KeyStoreError(f"the data key of {node} does not open under its master key: the key store is "
                                "corrupt; restore it from its backup") from None

    # -- reading and creating --------------------------------------------------------------------------------------
    def get(self, nodes: Iterable[str]) -> dict[str, bytes]:
        """The data keys of ``nodes`` that exist (a node without one has none yet, or its key was destroyed)."""
        nodes = set(nodes)
        with self._lock:
            wanted = sorted(n for n in nodes if n not in self._cache)
            rows = self._rows(wanted) if wanted else []
            for node, wrapped, master in rows:
                self._cache[node] = self._unwrap(node, wrapped, master)
            return {n: self._cache[n] for n in nodes if n in self._cache}

    def _rows(self, nodes: list[str]) -> list[tuple]:
        if len(nodes) > 20 * _CHUNK:  # most of the table: one scan beats many lookups
            wanted = set(nodes)
            return [r for r in self._db.execute("SELECT node, wrapped, master FROM keys") if r[0] in wanted]
        rows = []
        for start in range(0, len(nodes), _CHUNK):
            part = nodes[start: start + _CHUNK]
            rows += self._db.execute(f"SELECT node, wrapped, master FROM keys WHERE node IN "
                                     f"({','.join('?' * len(part))})", part).fetchall()
        return rows

    def ensure(self, nodes: Iterable[str]) -> dict[str, bytes]:
        """The data keys of ``nodes``, new random ones for those that have none (one transaction; a key another
        process made meanwhile wins)."""
        nodes = set(nodes)
        with self._lock:
            found = self.get(nodes)
            made = {n: secrets.token_bytes(DATA_KEY_BYTES) for n in sorted(nodes - set(found))}
            if made:
                with self._transaction():
                    inserted = self._db.executemany(
                        "INSERT OR IGNORE INTO keys (node, wrapped, master) VALUES (?, ?, ?)",
                        [(n, self._wrap(n, key), self.current) for n, key in made.items()]).rowcount
                if inserted == len(made):  # every key is the one made here
                    self._cache.update(made)
                    found.update(made)
                else:  # another process made some meanwhile: theirs won
                    found.update(self.get(made))
            return found

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM keys").fetchone()[0])

    def tag_key(self) -> bytes:
        """The key of the memory's value tags (:mod:`sbu.memory.tags`), wrapped like a data key, made on first use
        (a key another process made meanwhile wins)."""
        with self._lock:
            if self._tag_key is None:
                row = self._db.execute("SELECT value FROM info WHERE name = 'tag_key'").fetchone()
                if row is None:
                    made = f"{self.current}:{self._wrap(_TAG_KEY, secrets.token_bytes(32)).hex()}"
                    with self._transaction():
                        self._db.execute("INSERT OR IGNORE INTO info VALUES ('tag_key', ?)", (made,))
                    row = self._db.execute("SELECT value FROM info WHERE name = 'tag_key'").fetchone()
                master, _, wrapped = row[0].partition(":")
                try:
                    self._tag_key = self._unwrap(_TAG_KEY, bytes.fromhex(wrapped), master)
                except ValueError:
                    raise KeyStoreError(f"the value-tag key of {str(self.path)!r} is corrupt; restore the key store "
                                        "from its backup") from None
            return self._tag_key

    # -- destroying ------------------------------------------------------------------------------------------------
    def schedule(self, request: str, nodes: Iterable[str]) -> int:
        """Mark the keys of ``nodes`` for destruction by ``request`` (durable; nothing is destroyed yet)."""
        nodes = sorted(set(nodes))
        with self._lock, self._transaction():
            for start in range(0, len(nodes), _CHUNK):
                part = nodes[start: start + _CHUNK]
                self._db.execute(f"UPDATE keys SET doomed = ? WHERE node IN ({','.join('?' * len(part))})",
                                 [request, *part])
            return int(self._db.execute("SELECT COUNT(*) FROM keys WHERE doomed = ?", (request,)).fetchone()[0])

    def pending(self) -> list[str]:
        """Requests whose marked keys are not destroyed yet (a crash came between the two phases)."""
        return [r[0] for r in self._db.execute("SELECT DISTINCT doomed FROM keys WHERE doomed IS NOT NULL")]

    def destroy(self, request: str) -> int:
        """Delete the keys ``request`` marked, for good: overwritten in the database file (secure_delete), the WAL
        checkpointed and truncated. Returns how many were destroyed."""
        with self._lock:
            with self._transaction():
                doomed = [r[0] for r in self._db.execute("SELECT node FROM keys WHERE doomed = ?", (request,))]
                self._db.execute("DELETE FROM keys WHERE doomed = ?", (request,))
            for node in doomed:
                self._cache.pop(node, None)
            self._checkpoint()
            return len(doomed)

    def _checkpoint(self) -> None:
        if self.path is None:
            return
        for _ in range(300):  # a reader in another process can hold the WAL for a moment
            busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                return
            time.sleep(0.1)
        raise KeyStoreError(f"the key store {str(self.path)!r} could not be checkpointed (another process keeps "
                            "reading it): the destroyed keys are deleted but may remain in its WAL until then")

    def _transaction(self):
        return _Transaction(self._db)

    # -- rotation --------------------------------------------------------------------------------------------------
    def rewrap(self, new_master: bytes) -> int:
        """Re-wrap every data key under ``new_master`` (one transaction), which becomes current."""
        new_id = master_id(new_master)
        with self._lock:
            self.masters[new_id] = AESGCM(new_master)
            with self._transaction():
                rows = self._db.execute("SELECT node, wrapped, master FROM keys").fetchall()
                self._db.executemany("UPDATE keys SET wrapped = ?, master = ? WHERE node = ?",
                                     [(self._wrap(n, self._unwrap(n, w, m), new_id), new_id, n) for n, w, m in rows])
                tag = self._db.execute("SELECT value FROM info WHERE name = 'tag_key'").fetchone()
                if tag is not None:
                    master, _, wrapped = tag[0].partition(":")
                    key = self._unwrap(_TAG_KEY, bytes.fromhex(wrapped), master)
                    self._db.execute("UPDATE info SET value = ? WHERE name = 'tag_key'",
                                     (f"{new_id}:{self._wrap(_TAG_KEY, key, new_id).hex()}",))
            self._checkpoint()
            self.current = new_id
            return len(rows)

    def close(self) -> None:
        with self._lock:
            self._cache.clear()
            self._db.close()


class _Transaction:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind, *_):
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")


def rotate_master(path: str | Path | None = None) -> str:
    """A new master key for every key store of this cache (``<cache>/keys/*.sqlite``): written first in the key
    file (the old ones kept below it), every data key re-wrapped under it (one transaction per key store), then the
    old keys dropped from the file. A crash at any point leaves a file that still holds every master key some row
    needs; run it again to finish. Run it while no process has a memory open (their cached master keys would be
    stale). Returns the new key's id (never the key)."""
    if os.environ.get(MASTER_ENV):
        raise KeyStoreError(f"the master keys come from ${MASTER_ENV}: rotate there (put a new hex key first, "
                            "keep the old one until every data key is re-wrapped)")
    path = Path(path) if path else default_master_path()
    old = load_master_keys(path)
    new = secrets.token_bytes(MASTER_BYTES)
    write_atomic(path, "".join(k.hex() + "\n" for k in [new, *old]), mode=0o600)
    for file in sorted((cache_dir() / "keys").glob("*.sqlite")):
        store = KeyStore(file, [new, *old])
        try:
            store.rewrap(new)
        finally:
            store.close()
    write_atomic(path, new.hex() + "\n", mode=0o600)
    return master_id(new)
