"""The barrier's key stays outside the graph and is handled with care; texts are checked through keyed hashes."""

from __future__ import annotations

import multiprocessing
import os

import pytest
from rdflib import Literal

from sbu.errors import ConfigError
from sbu.memory import open_store
from sbu.memory.barrier import MAX_NGRAM, Barrier, Reason, keyed_hash, load_key, normalize
from sbu.memory.vocab import META, SBU, iri


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
    barrier.block(barrier.entries(pairs=[("patient/p001", "levothyroxine 75 mg twice daily")]))
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


LONG_VALUE = "a rare presentation of " + " ".join("word" + chr(97 + i % 26) + chr(97 + i // 26) for i in range(30))


def test_a_texts_n_grams_reach_as_far_as_the_longest_blocked_entry_and_no_further(tmp_path):
    """The request records its longest entry in words (no text); a barrier loaded from memory checks n-grams of
    that length, so a 34-word value is still found and a short blocklist checks short n-grams only."""
    store = open_store("oxigraph:")
    assert Barrier.load(store, key=b"k" * 32).reach == 0, "nothing blocked: no n-grams to check"
    short = Barrier.load(store, key=b"k" * 32)
    short.raise_for(store, iri("request/a"), short.entries(ids=["patient/p1"], names=["Alice Smith"]))
    loaded = Barrier.load(store, key=b"k" * 32)
    assert 3 <= loaded.reach < 12, "ids, IRIs and names are a few words"
    assert not loaded.check("Notes: alice SMITH's visit", count=False)
    long = Barrier.load(store, key=b"k" * 32)
    long.raise_for(store, iri("request/b"), long.entries(pairs=[("patient/p2", LONG_VALUE)]))
    assert long.reach == 34 and Barrier.load(store, key=b"k" * 32).reach == 34
    text = "Intro. " * 20 + LONG_VALUE.upper() + ". Outro." * 20
    assert not Barrier.load(store, key=b"k" * 32).check(text, about=["patient/p2"], count=False)
    by_hand = Barrier(b"k" * 32)
    by_hand.blocked |= set(long.entries(pairs=[("patient/p2", LONG_VALUE)]).hashes)
    assert by_hand.reach == MAX_NGRAM and not by_hand.check(text, about=["patient/p2"], count=False), (
        "hashes added by hand, not through block(): the n-grams reach MAX_NGRAM")


def test_a_blocklist_without_recorded_lengths_is_checked_to_max_ngram():
    """A blocklist written before requests recorded their longest entry: every text is checked as far as ever."""
    store = open_store("oxigraph:")
    old = Barrier.load(store, key=b"k" * 32)
    old.raise_for(store, iri("request/old"), old.entries(pairs=[("patient/p2", LONG_VALUE)]))
    store.update(f"DELETE WHERE {{ GRAPH {META.n3()} {{ ?r {SBU.longestEntry.n3()} ?w }} }}")
    loaded = Barrier.load(store, key=b"k" * 32)
    assert loaded.reach == MAX_NGRAM
    assert not loaded.check("so: " + LONG_VALUE, about=["patient/p2"], count=False)


def test_a_longer_entry_raised_meanwhile_refuses_a_write_that_holds_it_and_lets_the_others_land():
    """Two barriers on one memory: the writer's was loaded while only names were blocked (short n-grams); the
    other raises a 34-word value. The writer's next write holding that value is refused (the insert's own check
    sees the longer entry, the write is checked again); a write that does not hold it lands on the retry."""
    store = open_store("oxigraph:")
    writer = Barrier.load(store, key=b"k" * 32)
    writer.raise_for(store, iri("request/a"), writer.entries(names=["Alice Smith"]))
    other = Barrier.load(store, key=b"k" * 32)
    other.raise_for(store, iri("request/b"), other.entries(pairs=[("patient/p2", LONG_VALUE)]))
    assert writer.reach < 34

    def write(name: str, text: str):
        node = iri(f"note/{name}")
        return writer.write(store, [(node, SBU.text, Literal(text), META)], text, about=["patient/p2"]), node

    verdict, node = write("holds", "Seen today: " + LONG_VALUE)
    assert verdict.reasons == (Reason.MEANWHILE,) and writer.refusals == {Reason.MEANWHILE: 1}
    assert not store.query(f"ASK {{ GRAPH ?g {{ {node.n3()} ?p ?o }} }}").askAnswer
    assert writer.reach == 34, "the writer caught up with memory"
    verdict, node = write("other", "Seen today: nothing remarkable.")
    assert verdict and store.query(f"ASK {{ GRAPH ?g {{ {node.n3()} ?p ?o }} }}").askAnswer


def test_a_value_blocked_meanwhile_for_an_entity_a_write_is_about_refuses_it():
    """Values are looked up only for entities that hold a blocked value (their ``holder`` hash): an entity that
    becomes a holder between the writer's check and its insert stops the insert, the write is checked again and
    refused; the same text about another entity lands."""
    store = open_store("oxigraph:")
    writer = Barrier.load(store, key=b"k" * 32)
    writer.raise_for(store, iri("request/a"), writer.entries(names=["Alice Smith"]))
    assert writer.check("Moved to Bilbao.", about=["patient/p3"], count=False)
    other = Barrier.load(store, key=b"k" * 32)
    other.raise_for(store, iri("request/b"), other.entries(pairs=[("patient/p3", "Bilbao")]))

    def write(name: str, about: str):
        node = iri(f"note/{name}")
        verdict = writer.write(store, [(node, SBU.text, Literal("Moved to Bilbao."), META)], "Moved to Bilbao.",
                               about=[about])
        return verdict, store.query(f"ASK {{ GRAPH ?g {{ {node.n3()} ?p ?o }} }}").askAnswer

    verdict, landed = write("p3", "patient/p3")
    assert verdict.reasons == (Reason.MEANWHILE,) and not landed
    verdict, landed = write("p3-again", "patient/p3")
    assert not verdict and not landed and verdict.reasons == (Reason.VALUE,), "caught up: refused for its value"
    verdict, landed = write("p4", "patient/p4")
    assert verdict and landed
