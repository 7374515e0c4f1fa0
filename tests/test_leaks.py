"""The leak scanner and the redaction notebooks use: a scanner that cannot find a planted leak would pass
everything, so every way a leak can be written is planted here first."""

from __future__ import annotations

import json

import pandas as pd
from rdflib import Literal, URIRef

from sbu.eval.leaks import MARK, files_scanned, redact, scan, secret_id
from sbu.memory import open_store


def test_scan_finds_planted_leaks_in_every_form(tmp_path):
    secrets = ["Kalo Venmaru", "MRN-00417", "Zoë Ärnvik"]
    (tmp_path / "plain.txt").write_text("note: Kalo Venmaru was seen.\n")
    (tmp_path / "nb.ipynb").write_text(json.dumps({"text": "Zoë Ärnvik"}))  # JSON escapes non-ASCII: \u00eb
    (tmp_path / "binary.bin").write_bytes(b"\x00\xff" + b"MRN-00417" + b"\x00")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "twice.csv").write_text("MRN-00417,MRN-00417\n")
    (tmp_path / "clean.txt").write_text("MRN-004170 and XKalo Venmaru are other words; nothing here.\n")
    hits = scan([tmp_path], secrets)
    found = {(pd.io.common.stringify_path(f).rsplit("/", 1)[-1], s): n for f, s, n in hits.itertuples(index=False)}
    assert found == {("plain.txt", secret_id("Kalo Venmaru")): 1, ("nb.ipynb", secret_id("Zoë Ärnvik")): 1,
                     ("binary.bin", secret_id("MRN-00417")): 1, ("twice.csv", secret_id("MRN-00417")): 2}
    assert files_scanned([tmp_path]) == 5
    assert not any(s in hits.to_string() for s in secrets), "a scan report never repeats the plaintext"


def test_scan_passes_clean_files_and_single_files(tmp_path):
    clean = tmp_path / "clean.txt"
    clean.write_text("retained patients only\n")
    assert scan([clean], ["Kalo Venmaru"]).empty
    assert scan([tmp_path / "missing"], ["Kalo Venmaru"]).empty
    assert scan([clean], []).empty


def test_redact_hides_whole_words_in_strings_frames_and_lists():
    secrets = ["Kalo Venmaru", "89"]
    assert redact("Kalo Venmaru is 89, born 1989.", secrets) == f"{MARK} is {MARK}, born 1989."
    frame = pd.DataFrame({"rank": [1, 2], "text": ["Kalo Venmaru: asthma", "other patient"]})
    shown = redact(frame, secrets)
    assert shown["text"].tolist() == [f"{MARK}: asthma", "other patient"] and shown["rank"].tolist() == [1, 2]
    assert frame["text"][0] == "Kalo Venmaru: asthma", "the original is not changed"
    assert redact(["Kalo Venmaru", "x"], secrets) == [MARK, "x"]
    assert redact(42, secrets) == 42


def test_scan_leaves_out_strings_too_short_to_tell_apart(tmp_path):
    (tmp_path / "f.txt").write_text("age 69 in 2026-11-28T14:41:69\n")
    assert scan([tmp_path], ["69"]).empty
    assert len(scan([tmp_path], ["69"], min_length=2)) == 1


def test_a_stores_info_log_timestamps_are_not_hits_but_what_its_lines_say_is(tmp_path):
    """RocksDB's info log begins each line with a microsecond timestamp: a six-digit record number would match one
    now and then. The prefix is left out; the same number anywhere else in a line is still a hit."""
    with open_store(f"oxigraph:{tmp_path / 'store'}") as store:
        store.add_quads([(URIRef("urn:x:a"), URIRef("urn:x:p"), Literal("retained"), URIRef("urn:x:g"))])
    log = tmp_path / "store" / "LOG"
    first = log.read_text(errors="ignore").splitlines()[0]
    micros = first.split(" ", 1)[0].rsplit(".", 1)[1]  # 2026/12/08-03:38:57.047745 → 047745
    assert len(micros) == 6 and scan([tmp_path / "store"], [micros]).empty
    with open(log, "a") as out:
        out.write(f"{first.split(' ', 2)[0]} 1234 [db/x.cc:1] a line that says {micros}\n")
    assert scan([tmp_path / "store"], [micros])["hits"].sum() == 1
    elsewhere = tmp_path / "LOG"  # a file called LOG outside a store is read whole
    elsewhere.write_text(first + "\n")
    assert scan([elsewhere], [micros])["hits"].sum() == 1
