"""Erasure by key destruction: texts and personal values are stored sealed under their node's data key, reads open
them, a forget destroys the keys of what it prunes and tombstones — so no file of an on-disk store or of a real
``oxigraph serve`` ever holds forgotten plaintext, and a backup taken before the forget opens nothing of it after.
A missing or corrupt key store or master key is a typed error, rotation re-wraps every key, and a crash between
the graph update and the keys' destruction is finished by the next forget."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap

import pytest
from rdflib import Literal, URIRef

from sbu.errors import KeyStoreError
from sbu.eval.exposure import forgotten_strings
from sbu.memory import open_store
from sbu.memory.barrier import Barrier
from sbu.memory.forget import apply_forget, forget
from sbu.memory.ingest import ingest
from sbu.memory.keys import default_master_path, keystore_path, load_master_keys, rotate_master
from sbu.memory.plan import plan_forget
from sbu.memory.sealing import SEALED, seal, unseal
from sbu.memory.server import oxigraph_serve
from sbu.memory.texts import live_texts
from sbu.memory.vocab import META, SBU


def _patient(corpus) -> str:
    return corpus.splits["forget10"][0]


def _secrets(corpus, patient) -> list[str]:
    """The patient's name, values and sentences, ≥ 4 characters (shorter strings match binary noise)."""
    found = forgotten_strings(corpus, [patient]) + [f.text for f in corpus.facts if f.about == patient]
    return sorted({s for s in found if len(s) >= 4})


def _in_files(folder, secrets) -> list[str]:
    """The secrets found in any file under ``folder``, byte for byte (UTF-8)."""
    blobs = [p.read_bytes() for p in folder.rglob("*") if p.is_file()]
    return [s for s in secrets if any(s.encode() in b for b in blobs)]


def _wrapped(store, nodes) -> list[bytes]:
    """The wrapped data keys of ``nodes`` as the key store's file holds them."""
    with contextlib.closing(sqlite3.connect(store.keys.path)) as db:
        return [row[0] for n in nodes for row in db.execute("SELECT wrapped FROM keys WHERE node = ?", (str(n),))]


def test_texts_are_sealed_in_the_store_and_read_in_clear(store, tiny_corpus):
    ingest(store, tiny_corpus)
    patient = _patient(tiny_corpus)
    stored = store.nquads(reveal=False)
    assert [s for s in _secrets(tiny_corpus, patient) if s in stored] == [], "plaintext in the stored graph"
    assert SEALED.n3() in stored and "prov#wasDerivedFrom" in stored, "structure stays plaintext"
    plain = open_store("memory:", sealed=False)
    ingest(plain, tiny_corpus)
    assert store.nquads() == plain.nquads(), "reading opens every sealed literal, byte for byte"
    assert live_texts(store) == live_texts(plain)
    ingest(store, tiny_corpus)  # sealing is deterministic: the same write again adds nothing
    assert len(store) == len(plain)


def test_a_ciphertext_opens_only_under_its_node_and_predicate():
    key = os.urandom(64)
    node, s = URIRef("https://w3id.org/sbu/id/fact/a"), URIRef("https://w3id.org/sbu/id/patient/a")
    sealed = seal(key, node, s, SBU.text, "Kalo Venmaru is allergic to penicillin.")
    assert "Kalo" not in str(sealed) and unseal(key, node, s, SBU.text, sealed).startswith("Kalo")
    for other in ((os.urandom(64), node, s, SBU.text), (key, s, s, SBU.text), (key, node, s, SBU.allergy)):
        with pytest.raises(KeyStoreError, match="does not open"):
            unseal(*other, sealed)
    with pytest.raises(KeyStoreError):
        unseal(key, node, s, SBU.text, Literal("not base64 !", datatype=SEALED))


def test_a_forget_destroys_the_keys_of_every_pruned_and_tombstoned_node(store, tiny_corpus):
    ingest(store, tiny_corpus)
    plan, result = forget(store, [_patient(tiny_corpus)], Barrier(bytes(32)))
    gone = {str(n) for n in result.pruned | result.tombstoned}
    keys = store.key_store()
    assert result.keys_destroyed > 0 and keys.get(gone) == {} and keys.pending() == []
    kept = [str(s) for s in result.successors.values()] + [f"{SBU}nothing"]
    assert set(keys.get(kept)) == {kept[0]}, "a successor is sealed under a key of its own"
    assert not any(s in t for s in _secrets(tiny_corpus, _patient(tiny_corpus)) for t in live_texts(store).values())


def test_on_disk_no_file_ever_holds_forgotten_plaintext_and_a_backup_opens_none_of_it(tmp_path, tiny_corpus):
    patient = _patient(tiny_corpus)
    secrets = _secrets(tiny_corpus, patient)
    store = open_store(f"oxigraph:{tmp_path / 'store'}")
    ingest(store, tiny_corpus)
    before = live_texts(store)
    store.close()
    shutil.copytree(tmp_path / "store", tmp_path / "backup")  # a backup taken before the forget
    with open_store(f"oxigraph:{tmp_path / 'store'}", create=False) as store:  # not compacted: RocksDB keeps all
        plan, result = forget(store, [patient], Barrier(bytes(32)), compact=False)
        doomed = _wrapped(store, result.pruned)  # empty: the keys are gone from the table
        assert doomed == [] and result.keys_destroyed > 0
        after = live_texts(store)
    assert _in_files(tmp_path / "store", secrets) == [] and _in_files(tmp_path / "backup", secrets) == []
    with open_store(f"oxigraph:{tmp_path / 'backup'}", create=False) as backup:
        old = live_texts(backup)
        dump = backup.nquads()
    forgotten = {x for x in before if x in plan.closure}
    assert forgotten and not forgotten & set(old), "the backup's forgotten texts no longer open"
    assert [s for s in secrets if s in dump or any(s in t for t in old.values())] == []
    assert {x: t for x, t in before.items() if x not in plan.closure} == old, "what was kept still opens"
    assert set(after) - set(before) <= {x for x in after if "/rev/" in str(x)}


def test_the_key_store_files_keep_no_destroyed_key(tmp_path, tiny_corpus):
    with open_store(f"oxigraph:{tmp_path / 'store'}") as store:
        ingest(store, tiny_corpus)
        plan = plan_forget(store, [_patient(tiny_corpus)])
        files = lambda: b"".join(p.read_bytes() for p in store.keys.path.parent.iterdir())  # noqa: E731
        doomed = _wrapped(store, plan.closure | plan.entities_pruned)
        kept = _wrapped(store, [x for x in live_texts(store) if x not in plan.closure])
        assert doomed and kept and all(w in files() for w in doomed + kept), "the scan finds keys that are there"
        apply_forget(store, plan, Barrier(bytes(32)))
        assert [w for w in doomed if w in files()] == [], "a destroyed key is overwritten, not only unlinked"
        assert all(w in files() for w in kept)
        wal = store.keys.path.with_name(store.keys.path.name + "-wal")
        assert not wal.exists() or wal.stat().st_size == 0, "the WAL was checkpointed and truncated"


def test_an_endpoint_server_never_holds_forgotten_plaintext_and_its_backup_opens_none_of_it(tmp_path, tiny_corpus):
    patient = _patient(tiny_corpus)
    secrets = _secrets(tiny_corpus, patient)
    with oxigraph_serve(tmp_path / "server") as url:
        with open_store(url) as store:
            ingest(store, tiny_corpus)
            before = live_texts(store)
    shutil.copytree(tmp_path / "server", tmp_path / "backup")  # the server's folder, copied while it was stopped
    with oxigraph_serve(tmp_path / "server") as url:
        with open_store(url) as store:
            plan, _ = forget(store, [patient], Barrier(bytes(32)))
            assert not set(live_texts(store)) & plan.closure
    assert _in_files(tmp_path / "server", secrets) == [] and _in_files(tmp_path / "backup", secrets) == []
    with oxigraph_serve(tmp_path / "backup") as url:
        with open_store(url) as backup:
            old = live_texts(backup)
            dump = backup.nquads()
    assert not set(old) & plan.closure and [s for s in secrets if s in dump] == []
    assert {x: t for x, t in before.items() if x not in plan.closure} == old


def test_a_missing_or_corrupt_key_store_or_master_key_is_a_clear_error_never_a_new_key(tmp_path, tiny_corpus):
    url = f"oxigraph:{tmp_path / 'store'}"
    with open_store(url) as store:
        ingest(store, tiny_corpus)
        path = store.keys.path
        expected = live_texts(store)
    master = default_master_path()
    saved_master, saved_keys = master.read_bytes(), path.read_bytes()

    def reading():
        with open_store(url, create=False) as store:
            return live_texts(store)

    def restore():  # the file as it was, without the WAL a writer below left
        for suffix in ("-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
        path.write_bytes(saved_keys)

    path.unlink()
    with pytest.raises(KeyStoreError, match="key store .* is missing"):
        reading()
    assert not path.exists(), "no new key store was made"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(KeyStoreError, match="corrupt"):
        reading()
    restore()
    with contextlib.closing(sqlite3.connect(path)) as db:  # a wrapped key altered in place
        db.execute("UPDATE keys SET wrapped = zeroblob(60) WHERE node = (SELECT MIN(node) FROM keys)")
        db.commit()
    with pytest.raises(KeyStoreError, match="corrupt"):
        reading()
    restore()
    master.unlink()
    with pytest.raises(KeyStoreError, match="master key file .* is missing"):
        reading()
    assert not master.exists(), "no new master key was made"
    master.write_text("zz not hex\n")
    master.chmod(0o600)
    with pytest.raises(KeyStoreError, match="corrupt"):
        reading()
    master.write_text(os.urandom(32).hex() + "\n")  # another master key
    with pytest.raises(KeyStoreError, match="master key that is not here"):
        reading()
    master.write_bytes(saved_master)
    assert reading() == expected


def test_rotation_rewraps_every_data_key_under_the_new_master_key(tmp_path, tiny_corpus):
    url = f"oxigraph:{tmp_path / 'store'}"
    with open_store(url) as store:
        ingest(store, tiny_corpus)
        expected = live_texts(store)
        path = store.keys.path
    old = load_master_keys()
    new_id = rotate_master()
    assert load_master_keys() != old and len(load_master_keys()) == 1
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert {row[0] for row in db.execute("SELECT DISTINCT master FROM keys")} == {new_id}
    with open_store(url, create=False) as store:
        assert live_texts(store) == expected
        forget(store, [_patient(tiny_corpus)], Barrier(bytes(32)))  # and the rotated keys are destroyed as before
        assert len(live_texts(store)) < len(expected)
    default_master_path().write_text(old[0].hex() + "\n")  # the old master key alone opens nothing any more
    with pytest.raises(KeyStoreError, match="master key that is not here"), open_store(url, create=False) as store:
        live_texts(store)
    assert keystore_path("x").parent == path.parent


CRASHING_FORGET = textwrap.dedent("""
    import sys
    from sbu.memory import open_store
    from sbu.memory.barrier import Barrier
    from sbu.memory.forget import apply_forget, forget
    with open_store(sys.argv[1], create=False) as store:
        forget(store, [sys.argv[2]], Barrier(bytes(32)))
""")


def test_a_crash_between_the_graph_update_and_the_key_destruction_is_finished_by_the_next_forget(tmp_path,
                                                                                                 tiny_corpus):
    url = f"oxigraph:{tmp_path / 'store'}"
    with open_store(url) as store:
        ingest(store, tiny_corpus)
    patient = _patient(tiny_corpus)
    other = next(f.about for f in tiny_corpus.facts if f.about.startswith("patient/") and f.about != patient)
    env = {**os.environ, "SBU_FAULT": "erase-keys"}
    killed = subprocess.run([sys.executable, "-c", CRASHING_FORGET, url, patient], env=env, capture_output=True,
                            text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    with open_store(url, create=False) as store:
        keys = store.key_store()
        pending = keys.pending()
        assert len(pending) == 1, "the keys were marked, the graph updated, and the process died before destroying"
        marked = [r[0] for r in keys._db.execute("SELECT node FROM keys WHERE doomed = ?", (pending[0],))]
        assert marked and not set(live_texts(store)) & {URIRef(n) for n in marked}, "the graph update landed"
        forget(store, [other], Barrier(bytes(32)))
        assert keys.pending() == [] and keys.get(marked) == {}, "the next forget destroyed them"
        assert META.n3() in store.nquads(reveal=False)
