"""The barrier's key stays outside the graph and is handled with care; texts are checked through keyed hashes."""

from __future__ import annotations

import os

import pytest

from sbu.errors import ConfigError
from sbu.memory.barrier import Barrier, keyed_hash, load_key, normalize


def test_a_missing_key_file_is_created_readable_by_its_owner_only(tmp_path):
    path = tmp_path / "keys" / "barrier.key"
    key = load_key(path)
    assert len(key) == 32 and oct(path.stat().st_mode & 0o777) == "0o600"
    assert load_key(path) == key, "the same file gives the same key"


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
    assert barrier.refused == 1 and barrier.refusals == {"blocked value": 1}
