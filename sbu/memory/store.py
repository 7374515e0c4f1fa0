"""Agent memory stores behind one URL (docs/backends.md).

Code talks to memory through the rdflib API — a :class:`rdflib.Dataset` with SPARQL query and update — and the URL
picks the back end:

- ``oxigraph:`` (in memory) or ``oxigraph:PATH`` (on disk) — the default: rdflib with the ``oxrdflib`` store,
  opened as ``Dataset(store="Oxigraph")`` so that queries run in Oxigraph, not in rdflib's Python engine
  (docs/backends.md, trap 2);
- ``memory:`` — rdflib's own in-memory store, for teaching and for checking that both agree;
- ``http://HOST:PORT/PATH`` — any SPARQL 1.1 query + update endpoint, through rdflib's ``SPARQLUpdateStore``. A URL
  ending in ``/query`` updates at the sibling ``/update`` (``oxigraph serve``, Fuseki); any other URL takes both
  at the same address (Virtuoso, GraphDB, Neptune).

Texts and personal values are sealed on the way in and opened on the way out (:mod:`sbu.memory.sealing`): the
store holds ciphertext, the data keys live in a key store outside it (:mod:`sbu.memory.keys`), found through the
memory's id in the default graph (``sbu:memory sbu:keyStore "<id>"``); in-memory back ends keep theirs in memory.
``open_store(url, sealed=False)`` keeps plaintext (the benchmark's baseline; a memory written by an older sbu).
"""

from __future__ import annotations

import gc
import hashlib
import secrets
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pyoxigraph import RdfFormat
from pyoxigraph import Store as OxStore
from rdflib import XSD, Dataset, Literal, URIRef
from rdflib.namespace import NamespaceManager
from rdflib.plugins.stores.sparqlstore import SPARQLUpdateStore

from sbu import faults
from sbu.errors import StoreError, StoreUnavailableError
from sbu.memory.keys import MASTER_BYTES, KeyStore, keystore_path, load_master_keys
from sbu.memory.sealing import reveal_quads, seal_quads
from sbu.memory.tags import PLAIN_KEY as PLAIN_TAG_KEY
from sbu.memory.tags import tag_quads
from sbu.memory.vocab import SBU

DEFAULT_URL = "oxigraph:"
BACKENDS = ("oxigraph", "memory", "sparql")
MEMORY_NODE = SBU.memory  # in the default graph: MEMORY_NODE sbu:keyStore "<id of this memory's key store>"
# Operations joined by ";" in one update request, at most, per back end (None: no limit met). rdflib's own SPARQL
# parser recurses once per operation and fails from 73 on (benchmarks/update_limits.py, docs/backends.md, trap 10);
# Oxigraph, embedded or served, took every size tried. A forget larger than this is sent in batches that a resume
# can finish.
MAX_UPDATE_OPS = {"memory": 40}



@contextmanager
def bulk() -> Iterator[None]:
    """No cyclic garbage collection while a bulk read or write makes and keeps many small objects (terms, tuples,
    opened texts): the collector would walk them again and again — a third of reading every live text, measured
    at 100k triples. Collection resumes as it was afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()

@dataclass
class MemoryStore:
    """An opened memory: the rdflib dataset, which back end holds it, and the URL it was opened from."""

    url: str
    backend: str
    dataset: Dataset
    path: Path | None = None  # the folder of an on-disk Oxigraph store
    sealed: bool = True  # texts and personal values encrypted under their node's data key
    keys: KeyStore | None = field(default=None, repr=False)  # found or made on first use (key_store)
    _tagged: bool | None = field(default=None, repr=False)  # whether every literal has its value tags (tagged)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def key_store(self, create: bool = False) -> KeyStore | None:
        """This memory's key store: found through the memory's id; made (with a new id) only when ``create`` and
        the memory has none. A memory whose key store or master key is missing or corrupt raises
        :class:`~sbu.errors.KeyStoreError`, never gets a new one."""
        if not self.sealed or self.keys is not None:
            return self.keys
        with self._lock:
            if self.keys is None:
                if self.path is None and self.backend != "sparql":  # held in this process only: so are its keys
                    self.keys = KeyStore(None, [secrets.token_bytes(MASTER_BYTES)], create=True)
                    return self.keys
                rows = list(self.query(f"SELECT ?id WHERE {{ {MEMORY_NODE.n3()} {SBU.keyStore.n3()} ?id }}"))
                if rows:
                    self.keys = KeyStore(keystore_path(str(rows[0][0])), load_master_keys())
                elif create:
                    memory_id = secrets.token_hex(16)
                    keys = KeyStore(keystore_path(memory_id), load_master_keys(create=True), create=True)
                    self.update(f"INSERT {{ {MEMORY_NODE.n3()} {SBU.keyStore.n3()} {Literal(memory_id).n3()} }} "
                                "WHERE {}")  # not INSERT DATA: rdflib's Dataset refuses it (docs/backends.md, trap 6)
                    self.keys = keys
        return self.keys

    def seal(self, quads) -> list[tuple]:
        """``quads`` with their texts and personal values sealed (as they are when this memory is not sealed), and
        the value tags of what they carry (:mod:`sbu.memory.tags`) added."""
        quads = list(quads)
        keys = self.key_store(create=True)
        if self._tagged is None:
            self.tagged(mark=True)
        tags = tag_quads(self.tag_key(), quads)
        return (seal_quads(keys, quads) if keys is not None else quads) + tags

    def tag_key(self) -> bytes:
        """The key of this memory's value tags: kept in its key store (a fixed one for a plaintext memory)."""
        keys = self.key_store()
        return keys.tag_key() if keys is not None else PLAIN_TAG_KEY

    def tagged(self, mark: bool = False) -> bool:
        """Whether every literal of this memory was written with its value tags: true for a memory this version
        of sbu began (``mark``: the first write into an empty memory records it), false for an older one."""
        if self._tagged is None:
            flag = f"{MEMORY_NODE.n3()} {SBU.valueTags.n3()} true"
            if self.query(f"ASK {{ {flag} }}").askAnswer:
                self._tagged = True
            elif mark and not self.query("ASK { GRAPH ?g { ?s ?p ?o } }").askAnswer:
                self.update(f"INSERT {{ {flag} }} WHERE {{}}")
                self._tagged = True
            else:
                self._tagged = False
        return self._tagged

    def reveal(self, quads) -> list:
        """The objects of ``quads`` in clear; None for a literal whose data key was destroyed (forgotten)."""
        return reveal_quads(self.key_store(), quads)

    def query(self, sparql: str, bindings: dict | None = None):
        """Run a SPARQL query with bound values (never text pasted into the query string)."""
        if self.backend == "sparql":
            # Straight to the endpoint: through the Dataset, rdflib would add FROM <its default graph>, which hides
            # every named graph from the query.
            return self.dataset.store.query(sparql, initNs={}, initBindings=bindings or {}, queryGraph=None)
        return self.dataset.query(sparql, initBindings=bindings or {})

    @property
    def max_update_ops(self) -> int | None:
        """The most operations one update request may join on this back end (:data:`MAX_UPDATE_OPS`)."""
        return MAX_UPDATE_OPS.get(self.backend)

    def update(self, sparql: str) -> None:
        """Run a SPARQL update. No ``initBindings`` here: oxrdflib would hand the update to rdflib's slow engine
        (docs/backends.md, trap 2); updates are built with fixed IRIs by the callers."""
        faults.fail("store-update")  # the crash tests make the back end refuse from the N-th update on
        if self.backend == "sparql":
            # Straight to the endpoint: through the Dataset, rdflib would wrap the update in a GRAPH block of
            # its default graph, and a GRAPH inside a GRAPH is not SPARQL.
            self.dataset.store.update(sparql, initNs={}, initBindings={}, queryGraph=None)
        else:
            self.dataset.update(sparql)

    def add_quads(self, quads, batch: int = 2000) -> None:
        """Add (subject, predicate, object, graph IRI) quads: through the store's bulk path locally, as
        ``INSERT DATA`` requests of ``batch`` quads to an endpoint (terms are written by rdflib's N-Triples
        serializer, never pasted from text)."""
        quads = self.seal(quads)
        if self.backend != "sparql":
            self.dataset.addN((s, p, o, self.dataset.graph(g)) for s, p, o, g in quads)
            return
        for start in range(0, len(quads), batch):
            body = " ".join(f"GRAPH {g.n3()} {{ {s.n3()} {p.n3()} {o.n3()} }}"
                            for s, p, o, g in quads[start: start + batch])
            self.update(f"INSERT DATA {{ {body} }}")

    def __len__(self) -> int:
        return int(next(iter(self.query("SELECT (COUNT(*) AS ?n) WHERE { GRAPH ?g { ?s ?p ?o } }")))[0])

    def nquads(self, reveal: bool = True) -> str:
        """Every quad in named graphs, as sorted N-Quads lines (a canonical dump for comparisons and scans), with
        sealed literals opened (``reveal``; one whose key is destroyed stays sealed) or as stored."""
        rows = [tuple(URIRef(str(t)) if isinstance(t, URIRef) else t for t in row)
                for row in self.query("SELECT ?s ?p ?o ?g WHERE { GRAPH ?g { ?s ?p ?o } }")]
        if reveal:  # the content in clear: the value tags are an index of it, not content
            rows = [row for row in rows if not str.__eq__(row[1], SBU.carries)]
            opened = self.reveal(rows)
            rows = [(s, p, o if c is None else c, g) for (s, p, o, g), c in zip(rows, opened)]
        return "\n".join(sorted(" ".join(_n3(t) for t in row) + " ." for row in rows))

    def content_hash(self) -> str:
        """SHA-256 of :meth:`nquads`: equal before and after an operation that must change nothing."""
        return hashlib.sha256(self.nquads().encode()).hexdigest()

    def compact(self) -> bool:
        """Rewrite an on-disk Oxigraph store from its live content and delete the old files; return whether there
        was anything to rewrite.

        Deleting in Oxigraph is not erasing: RocksDB keeps deleted values in its write-ahead log and tables until a
        compaction, and Oxigraph never drops a string it once stored — measured here, a deleted literal stays
        readable in the store folder after ``flush`` and ``optimize``. So a completed forget request ends with
        this rewrite (it reads and loads the whole store: seconds at 1M triples, the price of no plaintext on
        disk). In-memory stores hold no files; an endpoint's files belong to its server.
        """
        if self.backend != "oxigraph" or self.path is None:
            return False
        live = self.dataset.store._inner.dump(format=RdfFormat.N_QUADS)
        fresh = self.path.with_name(self.path.name + ".compacting")
        old = self.path.with_name(self.path.name + ".old")
        shutil.rmtree(fresh, ignore_errors=True)
        rewritten = OxStore(str(fresh))
        rewritten.bulk_load(live, format=RdfFormat.N_QUADS)
        rewritten.flush()
        del rewritten
        self.dataset.close()
        gc.collect()  # a query result left unread in a reference cycle keeps the old store's lock; free it first
        self.path.rename(old)
        faults.point("compact-swap")  # a crash here leaves PATH.old and PATH.compacting: finish_compaction
        fresh.rename(self.path)
        shutil.rmtree(old)
        self.dataset = Dataset(store="Oxigraph")
        self.dataset.open(str(self.path), create=False)
        return True

    def close(self) -> None:
        if self.keys is not None:
            self.keys.close()
            self.keys = None
        self.dataset.close()
        if self.path is not None:  # a query result left in a reference cycle would keep the folder's lock
            gc.collect()

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _n3(term) -> str:
    """N-Triples form, with RDF 1.1's ``"x"^^xsd:string`` written as plain ``"x"`` (Oxigraph returns the first,
    rdflib's store the second, for the same literal)."""
    if isinstance(term, Literal) and term.datatype == XSD.string and not term.language:
        return Literal(str(term)).n3()
    return term.n3()


def open_store(url: str = DEFAULT_URL, create: bool = True, sealed: bool = True) -> MemoryStore:
    """Open the memory at ``url``. ``oxigraph:PATH`` creates the folder when ``create`` (its parent must exist);
    with ``create=False`` the folder must already hold a store. ``sealed=False``: texts written in clear."""
    scheme = url_scheme(url)
    if scheme == "oxigraph":
        memory = _open_oxigraph(url, url.partition(":")[2], create)
    elif scheme == "memory":
        memory = MemoryStore(url, "memory", Dataset())
    else:
        memory = _open_endpoint(url)
    memory.sealed = sealed
    return memory


def url_scheme(url) -> str:
    """The back end a memory URL names (oxigraph, memory or http), opening nothing; a clear error for any other."""
    if not isinstance(url, str) or not url:
        raise StoreError(f"memory URL must be a non-empty string such as 'oxigraph:' or 'memory:', got {url!r}")
    scheme, colon, rest = url.partition(":")
    if scheme == "oxigraph" and colon:
        return scheme
    if scheme == "memory" and not rest:
        return scheme
    if scheme in ("http", "https"):
        return "http"
    raise StoreError(f"unknown memory URL {url!r}: use 'oxigraph:' (in memory), 'oxigraph:PATH' (on disk), "
                     "'memory:' (rdflib's store) or 'http://HOST:PORT/query' (a SPARQL endpoint)")


def _open_oxigraph(url: str, path_text: str, create: bool) -> MemoryStore:
    dataset = Dataset(store="Oxigraph")
    if path_text:
        path = Path(path_text).expanduser()
        finish_compaction(path)
        if path.exists() and not path.is_dir():
            raise StoreError(f"{str(path)!r} is a file, not a store folder")
        if create and not path.exists() and not path.parent.is_dir():
            raise StoreError(f"no memory store at {str(path)!r} and none can be made there: its parent folder "
                             f"{str(path.parent)!r} does not exist")
        if not create and not holds_store(path):
            hint = "the folder holds no store" if path.exists() else "the folder does not exist"
            raise StoreError(f"no memory store at {str(path)!r} ({hint}; create=False opens an existing one only)")
        try:
            dataset.open(str(path), create=not path.exists())
        except OSError as err:
            if "lock" in str(err).lower():
                raise StoreError(f"the memory store at {str(path)!r} is in use by another process (an on-disk "
                                 "Oxigraph store has one writer at a time): stop it, or serve the store with "
                                 "`oxigraph serve` and give its http://…/query URL") from None
            raise StoreError(f"the memory store at {str(path)!r} cannot be opened: {err}") from None
        return MemoryStore(url, "oxigraph", dataset, path.resolve())
    return MemoryStore(url, "oxigraph", dataset)


def holds_store(path: Path) -> bool:
    """Does the folder hold an on-disk Oxigraph store (RocksDB's ``CURRENT`` file names its manifest)?"""
    return (path / "CURRENT").is_file()


def finish_compaction(path: Path) -> None:
    """Finish or undo a :meth:`MemoryStore.compact` that a crash interrupted, before anything opens ``path``.

    The rewrite is built in ``PATH.compacting``, flushed, then swapped in by two renames (``PATH`` → ``PATH.old``,
    ``PATH.compacting`` → ``PATH``) and ``PATH.old`` deleted. ``PATH.old`` exists only once the rewrite is complete,
    so: ``PATH.old`` without ``PATH`` → put the rewrite in place; ``PATH.old`` with ``PATH`` → delete the old files
    (they hold the deleted plaintext); a ``PATH.compacting`` without ``PATH.old`` is a half-built rewrite → delete it.
    """
    fresh, old = path.with_name(path.name + ".compacting"), path.with_name(path.name + ".old")
    if old.is_dir():
        if not path.exists() and fresh.is_dir():
            fresh.rename(path)
        if path.is_dir():
            shutil.rmtree(old)
    elif fresh.is_dir():
        shutil.rmtree(fresh)


def _open_endpoint(url: str) -> MemoryStore:
    update_url = url[: -len("/query")] + "/update" if url.endswith("/query") else url
    store = SPARQLUpdateStore(query_endpoint=url, update_endpoint=update_url, context_aware=True,
                              autocommit=True, returnFormat="json", method="POST_FORM")
    # POST_FORM: a query of a large request (a closure passed back as VALUES) is too long for a GET URL (HTTP 400)
    dataset = Dataset(store=store)
    # Without this, rdflib prefixes every request with its ~30 default PREFIX lines, one of which Oxigraph rejects.
    dataset.namespace_manager = NamespaceManager(dataset, bind_namespaces="none")
    store.nsBindings = {}
    memory = MemoryStore(url, "sparql", dataset)
    try:
        memory.query("ASK { ?s ?p ?o }")
    except Exception as err:  # urllib and rdflib raise a variety of types for a dead endpoint
        raise StoreUnavailableError(
            f"the SPARQL endpoint {url!r} does not answer ({type(err).__name__}: {err}); start one, e.g. "
            "`oxigraph serve --location DIR --bind 127.0.0.1:7878`, and pass http://127.0.0.1:7878/query") from err
    return memory
