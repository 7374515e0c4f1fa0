"""The barrier's key stays outside the graph and is handled with care; texts are checked through keyed hashes."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from sbu.errors import ConfigError
from sbu.memory.barrier import Barrier, keyed_hash, load_key, normalize
from sbu.memory.vocab import iri


def test_a_missing_key_file_is_created_readable_by_its_owner_only(tmp_path):
    path = tmp_path / "keys" / "barrier.key"
    key = load_key(path)
    assert len(key) == 32 and oct(path.stat().st_mode & 0o777) == "0o600"
    assert load_key(path) == key, "the same file gives the same key"


def _load_key_at_once(path, start, keys):
    start.wait()
    try:
        keys.put(load_key(path).hex())
    except Exception as err:  # noqa: BLE001 - reported to the test, which fails on it
        keys.put(f"error: {err!r}")


def test_processes_creating_the_key_file_at_once_all_get_the_one_key(tmp_path):
    """``sbu batch`` workers (or tests side by side) on a fresh cache create the key file together: one key wins,
    nobody reads a half-written file or trips over the other's file."""
    ctx = multiprocessing.get_context("fork")
    for attempt in range(25):
        path = tmp_path / f"try{attempt}" / "barrier.key"
        start, keys = ctx.Barrier(6), ctx.Queue()
        workers = [ctx.Process(target=_load_key_at_once, args=(path, start, keys)) for _ in range(6)]
        for w in workers:
            w.start()
        got = [keys.get(timeout=60) for _ in workers]
        for w in workers:
            w.join(60)
        assert len(set(got)) == 1 and not got[0].startswith("error"), got
        assert load_key(path).hex() == got[0]
        assert [p.name for p in path.parent.iterdir()] == ["barrier.key"], "no temporary file is left"


def test_the_default_key_file_lies_in_the_cache_folder(tmp_path):
    load_key()
    assert (tmp_path / "cache" / "barrier.key").is_file()  # SBU_CACHE points at tmp_path/cache in these tests


def test_a_key_file_others_can_read_is_refused(tmp_path):
    path = tmp_path / "barrier.key"
    load_key(path)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_key(path)


@pytest.mark.parametrize("value, message", [("not hex", "must be hex"), ("00" * 8, "at least 32")])
def test_a_bad_key_in_the_environment_is_a_clear_error(monkeypatch, value, message):
    monkeypatch.setenv("SBU_BARRIER_KEY", value)
    with pytest.raises(ConfigError, match=message):
        load_key()


def test_the_environment_key_wins_over_the_file(monkeypatch, tmp_path):
    monkeypatch.setenv("SBU_BARRIER_KEY", "ab" * 32)
    assert load_key(tmp_path / "unused.key") == bytes.fromhex("ab" * 32)
    assert not (tmp_path / "unused.key").exists()


def test_hashes_are_keyed_and_normalized():
    assert normalize("  Kalo   PARTA. ") == "kalo parta"
    assert keyed_hash(b"k" * 32, "name", "Kalo Parta") == keyed_hash(b"k" * 32, "name", "kalo  parta!")
    assert keyed_hash(b"k" * 32, "name", "Kalo Parta") != keyed_hash(b"j" * 32, "name", "Kalo Parta")
    assert keyed_hash(b"k" * 32, "name", "x") != keyed_hash(b"k" * 32, "id", "x"), "kinds do not collide"


def test_a_text_check_finds_a_blocked_multi_word_value_anywhere_in_a_long_text():
    barrier = Barrier(b"k" * 32)
    barrier.blocked |= barrier.entries(pairs=[("patient/p001", "levothyroxine 75 mg twice daily")])
    text = "Plenty of words first. " * 10 + "Takes Levothyroxine 75 mg, twice daily." + " More words." * 10
    assert not barrier.check(text, about=["patient/p001"])
    assert barrier.check(text.replace("75", "50"), about=["patient/p001"])
    assert not barrier.check("on levothyroxine 75mg twice-daily", about=["patient/p001"], count=False)
    assert barrier.refused == 1 and barrier.refusals == {"value": 1}


def test_a_rotated_key_keeps_checking_the_old_blocklist_and_a_missing_key_is_an_error(tmp_path):
    from sbu.memory import open_store
    from sbu.memory.barrier import default_key_path, load_keys, rotate_key

    store = open_store("oxigraph:")
    old = Barrier.load(store)
    old.raise_for(store, iri("request/old"), old.entries(ids=["patient/p1"], names=["Alice Smith"]))
    rotate_key()
    assert oct(default_key_path().stat().st_mode & 0o777) == "0o600" and len(load_keys()) == 2
    rotated = Barrier.load(store)
    assert rotated.key != old.key and rotated.retired == (old.key,)
    assert not rotated.check("ALICE smith was here", count=False)  # the old blocklist still holds
    assert not rotated.check("a note", about=["patient/p1"], count=False)
    rotated.raise_for(store, iri("request/new"), rotated.entries(names=["Bob Jones"]))
    assert not Barrier.load(store).check("bob  JONES", count=False)
    default_key_path().unlink()  # the key file is lost: an error, and no new key is made behind the user's back
    with pytest.raises(ConfigError, match="missing"):
        Barrier.load(store)
    assert not default_key_path().exists()
    with pytest.raises(ConfigError, match="not among the barrier keys"):
        Barrier.load(store, key=bytes(32))
