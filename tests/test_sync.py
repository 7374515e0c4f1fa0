"""The synchronized protocol on the tiny cohort and model: a request commits with a certificate and no plaintext in
anything it wrote; the journal survives torn writes and keeps its seals shut; and a real ``sbu forget`` process
killed with SIGKILL at every state boundary (and inside the memory step) is finished by ``sbu resume`` into the
same memory as an uninterrupted run."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sbu.errors import ConfigError, JournalError, StoreError
from sbu.eval.exposure import forgotten_strings
from sbu.journal import Journal, Sealer
from sbu.memory import open_store
from sbu.memory.barrier import Barrier, keyed_hash, load_key
from sbu.memory.ingest import ingest
from sbu.memory.texts import live_texts
from sbu.sync import STATES, ForgetProtocol, ProtocolConfig, check_targets, memory_content

FAST = ProtocolConfig(unlearn={"steps": 4, "batch_size": 4}, max_rounds=2, retained_probes=10)


pytestmark = pytest.mark.usefixtures("private_cache")


def _patient(corpus):
    return corpus.splits["forget10"][0]


def _files_text(folder) -> str:
    return "\n".join(p.read_bytes().decode("latin-1") for p in folder.rglob("*") if p.is_file())


def test_a_request_commits_and_nothing_it_wrote_holds_forgotten_plaintext(tiny_corpus, tiny_lm, tmp_path):
    store = open_store("oxigraph:")
    ingest(store, tiny_corpus)
    patient = _patient(tiny_corpus)
    protocol = ForgetProtocol(tmp_path / "work", store, tiny_lm, tiny_corpus, FAST)
    certificate = protocol.submit([patient])
    states = [r["state"] for r in protocol.journal.records()]
    assert states[:3] == ["RECEIVED", "BARRIER", "MEMORY"] and states[-1] == "COMMITTED"
    assert set(states) <= set(STATES) and 1 <= certificate.rounds <= FAST.max_rounds
    assert certificate.counts["pruned"] > 0 and certificate.leakage[-1]["memory"] == 0.0
    assert (tmp_path / "work" / certificate.request / "model" / "config.json").is_file()
    assert len(certificate.adapter_sha256) == 64 and certificate.targets[0] != patient
    texts = live_texts(store).values()
    secrets = forgotten_strings(tiny_corpus, [patient]) + [patient]
    assert not any(s in t for s in secrets for t in texts)
    written = _files_text(tmp_path / "work")  # journal, certificate, adapters, model, logs
    leaked = [s for s in secrets if len(s) >= 4 and re.search(re.escape(s), written)]
    assert leaked == [], f"plaintext of forgotten data in the work folder: {leaked}"
    with pytest.raises(StoreError, match="already forgotten \\(request "):
        protocol.submit([patient])


def test_an_id_memory_lacks_is_named_with_the_request_that_forgot_it_under_any_of_the_keys(tmp_path):
    """The journal is searched by the keyed hash of the id only (no seal opened), under the current key or a retired
    one: committed → "already forgotten (request, date)", received only → how to finish it, never named → check."""
    store, journal = open_store("oxigraph:"), Journal(tmp_path / "journal.jsonl")
    old, new = b"o" * 32, b"n" * 32
    with pytest.raises(StoreError, match="no assertion in memory is about 'patient/p099', and no forget request"):
        check_targets(store, journal, ["patient/p099"], ())
    journal.append({"request": "r1", "state": "RECEIVED", "targets": [keyed_hash(old, "id", "patient/p099")]})
    with pytest.raises(StoreError, match="being forgotten by request r1 .*`sbu resume --work "):
        check_targets(store, journal, ["patient/p099"], (new, old))
    journal.append({"request": "r1", "state": "COMMITTED"})
    with pytest.raises(StoreError, match=r"'patient/p099' is already forgotten \(request r1, 20\d\d-\d\d-\d\d "):
        check_targets(store, journal, ["patient/p099"], (new, old))
    with pytest.raises(StoreError, match="no assertion in memory is about 'patient/p098'"):
        check_targets(store, journal, ["patient/p098"], (new, old))
    with pytest.raises(StoreError, match="no forget request"):  # a key that made none of the hashes finds nothing
        check_targets(store, journal, ["patient/p099"], (new,))


def test_a_bad_request_is_a_clear_error_and_writes_nothing(tiny_corpus, tiny_lm, tmp_path):
    store = open_store("oxigraph:")
    ingest(store, tiny_corpus)
    before = store.content_hash()
    protocol = ForgetProtocol(tmp_path / "work", store, tiny_lm, tiny_corpus, FAST)
    for bad in (["patient/nobody"], [], ["   "], ["patient/p0' } ; DROP ALL ; #"]):
        with pytest.raises(StoreError):
            protocol.submit(bad)
    assert store.content_hash() == before and not (tmp_path / "work" / "journal.jsonl").exists()
    with pytest.raises(ConfigError, match="unknown unlearning hyper-parameter"):
        ProtocolConfig(unlearn={"stepz": 3})
    with pytest.raises(ConfigError, match="epsilon"):
        ProtocolConfig(epsilon=1.5)


def test_the_journal_ignores_a_torn_last_line_and_refuses_a_corrupted_one(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append({"request": "r1", "state": "RECEIVED"})
    journal.append({"request": "r1", "state": "BARRIER"})
    with open(journal.path, "a") as handle:
        handle.write('{"request": "r1", "state": "MEM')  # a write cut short by a crash
    assert [r["state"] for r in journal.records()] == ["RECEIVED", "BARRIER"] and journal.pending() == ["r1"]
    journal.append({"request": "r1", "state": "MEMORY"})  # the torn record is cut, the new one starts clean
    assert [r["state"] for r in journal.records()] == ["RECEIVED", "BARRIER", "MEMORY"]
    text = journal.path.read_text().replace('"BARRIER"', '"BARR')
    journal.path.write_text(text)
    with pytest.raises(JournalError, match="line 2"):
        journal.records()
    assert oct(journal.path.stat().st_mode & 0o777) == "0o600"


def test_seals_hide_their_content_and_open_only_with_the_same_key(tmp_path):
    sealer = Sealer(b"k" * 32)
    token = sealer.seal({"targets": ["patient/p007"]})
    assert "p007" not in token and sealer.open(token) == {"targets": ["patient/p007"]}
    with pytest.raises(JournalError, match="does not open"):
        Sealer(b"x" * 32).open(token)
    with pytest.raises(JournalError):
        sealer.open(token[:-4] + "AAAA")
    rotated = Sealer(b"n" * 32, b"k" * 32)  # after a key rotation: seals with the new key, opens the old seals
    assert rotated.open(token) == {"targets": ["patient/p007"]}
    with pytest.raises(JournalError):
        Sealer(b"k" * 32).open(rotated.seal({"x": 1}))


# -- crash safety: a real process, killed for real ------------------------------------------------------------
CRASH_POINTS = ["after-RECEIVED", "after-BARRIER", "memory-apply", "erase-keys", "compact-swap", "after-MEMORY",
                "after-PARAMETER", "after-VERIFY"]  # in the order a request reaches them


def _run(args: list[str], setup, fault: str | None = None, fail: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "SBU_CACHE": str(setup["cache"])}
    env.pop("SBU_FAULT", None)
    env.pop("SBU_FAIL", None)
    if fault:
        env["SBU_FAULT"] = fault
    if fail:
        env["SBU_FAIL"] = fail
    return subprocess.run([sys.executable, "-m", "sbu.cli", *args], env=env, capture_output=True, text=True,
                          timeout=600)


def _forget_args(setup, store_dir, work, patient) -> list[str]:
    return ["forget", "--patient", patient, "--store", f"oxigraph:{store_dir}", "--model", str(setup["model"]),
            "--corpus", str(setup["corpus"]), "--work", str(work), "--steps", "4", "--max-rounds", "2"]


@contextlib.contextmanager
def _cache_of(setup):
    """The commands' cache for this process too: a store's key store and master key live there."""
    saved = os.environ.get("SBU_CACHE")
    os.environ["SBU_CACHE"] = str(setup["cache"])
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("SBU_CACHE", None)
        else:
            os.environ["SBU_CACHE"] = saved


def _fresh_store(tiny_corpus, path, setup):
    with _cache_of(setup), open_store(f"oxigraph:{path}") as store:
        ingest(store, tiny_corpus)


@pytest.fixture(scope="module")
def cli_setup(tiny_corpus, tiny_lm, built_once):
    """The corpus on disk, the commands' cache, and an uninterrupted ``sbu forget`` of one patient (its folder and
    the memory it left): built once per run, by whichever pytest-xdist worker asks first."""

    def build(folder):
        tiny_corpus.write(folder / "corpus")
        setup = {"corpus": folder / "corpus", "model": tiny_lm.path, "cache": folder / "cache"}
        reference = folder / "uninterrupted"
        reference.mkdir()
        _fresh_store(tiny_corpus, reference / "store", setup)
        done = _run(_forget_args(setup, reference / "store", reference / "work", _patient(tiny_corpus)), setup)
        assert done.returncode == 0, done.stderr[-2000:]
        (reference / "forget.log").write_text(done.stdout + done.stderr)
        with _cache_of(setup), open_store(f"oxigraph:{reference / 'store'}", create=False) as store:
            (folder / "memory.nq").write_text("\n".join(memory_content(store)))  # outside what the request wrote

    folder = built_once("cli", build)
    return {"corpus": folder / "corpus", "model": tiny_lm.path, "cache": folder / "cache",
            "uninterrupted": folder / "uninterrupted",
            "uninterrupted memory": (folder / "memory.nq").read_text().split("\n")}


def test_after_a_commit_no_file_the_request_wrote_holds_a_forgotten_value(tiny_corpus, cli_setup):
    """Store folder (texts sealed, then compacted), journal, certificate, adapters, model, the command's log, the
    embedding cache: none holds the patient's id, name, values or fact sentences (≥ 4 characters: shorter ones
    match binary noise)."""
    patient = _patient(tiny_corpus)
    secrets = [s for s in forgotten_strings(tiny_corpus, [patient]) + [patient]
               + [f.text for f in tiny_corpus.facts if f.about == patient] if len(s) >= 4]
    written = _files_text(cli_setup["uninterrupted"]) + _files_text(cli_setup["cache"] / "embeddings")
    assert written and [s for s in secrets if s in written] == []


@pytest.mark.parametrize("fail_at", [2, 3])
def test_a_back_end_that_fails_after_the_barrier_is_finished_by_resume(tiny_corpus, cli_setup, tmp_path, fail_at):
    """Not a kill but a real error at the store's update boundary (``SBU_FAIL``): the barrier's update lands, then
    the store refuses (2: the memory step's re-raise of the barrier, 3: the forget itself). ``sbu forget`` exits
    with a one-line error, the request is pending with the barrier up, and ``sbu resume`` ends in the memory the
    uninterrupted run left."""
    patient = _patient(tiny_corpus)
    _fresh_store(tiny_corpus, tmp_path / "store", cli_setup)
    failed = _run(_forget_args(cli_setup, tmp_path / "store", tmp_path / "work", patient), cli_setup,
                  fail=f"store-update@{fail_at}")
    assert failed.returncode == 2 and "refused update" in failed.stderr, failed.stderr[-2000:]
    journal = Journal(tmp_path / "work" / "journal.jsonl")
    assert journal.pending() and journal.records()[-1]["state"] == "BARRIER"
    name = next(e.name for e in tiny_corpus.entities if e.id == patient)
    with _cache_of(cli_setup), open_store(f"oxigraph:{tmp_path / 'store'}", create=False) as store:
        assert not Barrier.load(store, load_key(Path(cli_setup["cache"]) / "barrier.key")).check(name)
    resumed = _run(["resume", "--work", str(tmp_path / "work")], cli_setup)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert journal.records()[-1]["state"] == "COMMITTED"
    with _cache_of(cli_setup), open_store(f"oxigraph:{tmp_path / 'store'}", create=False) as store:
        assert memory_content(store) == cli_setup["uninterrupted memory"]


def test_purge_caches_finds_the_cached_models_trained_on_a_patient(tiny_corpus, tiny_lm, tmp_path):
    import shutil

    from sbu.model.cache import models_trained_on
    from sbu.model.network import INFO_FILE

    base = shutil.copytree(tiny_lm.path, tmp_path / "models" / "base")
    retrain = shutil.copytree(tiny_lm.path, tmp_path / "models" / "retrain")  # a model that excluded forget10
    info = json.loads((retrain / INFO_FILE).read_text())
    (retrain / INFO_FILE).write_text(json.dumps({**info, "exclude": "forget10"}))
    found = models_trained_on(tiny_corpus, [_patient(tiny_corpus)], cache=tmp_path / "models")
    assert found == [base]  # the retrain model never saw the patient
    assert models_trained_on(tiny_corpus, ["patient/nobody"], cache=tmp_path / "models") == []


@pytest.mark.slow
def test_sigkill_at_every_boundary_in_turn_then_resume_gives_the_uninterrupted_memory(tiny_corpus, cli_setup,
                                                                                      tmp_path):
    """``sbu forget`` killed at the first point, then each ``sbu resume`` killed at the next one — so every point
    is crashed at once and resumed from once, and resuming a resumed request is exercised too; the last resume
    commits, into the memory the uninterrupted run left."""
    patient = _patient(tiny_corpus)
    _fresh_store(tiny_corpus, tmp_path / "store", cli_setup)
    journal = Journal(tmp_path / "work" / "journal.jsonl")
    resume = ["resume", "--work", str(tmp_path / "work")]
    for n, point in enumerate(CRASH_POINTS):
        args = _forget_args(cli_setup, tmp_path / "store", tmp_path / "work", patient) if n == 0 else resume
        killed = _run(args, cli_setup, fault=point)
        assert killed.returncode == -9, f"not killed at {point}: rc {killed.returncode}\n{killed.stderr[-2000:]}"
        assert journal.pending(), f"the request killed at {point} should be pending"
    resumed = _run(resume, cli_setup)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert not journal.pending() and journal.records()[-1]["state"] == "COMMITTED"
    with _cache_of(cli_setup), open_store(f"oxigraph:{tmp_path / 'store'}", create=False) as store:
        assert memory_content(store) == cli_setup["uninterrupted memory"]
        texts = list(live_texts(store).values())
    secrets = forgotten_strings(tiny_corpus, [patient])
    assert not any(s in t for s in secrets for t in texts), "a forgotten value is still retrievable"
    kept = [f for f in tiny_corpus.facts if f.about != patient]
    assert all(f.text in texts for f in kept), "a retained fact was lost"
    certificate = json.loads(next((tmp_path / "work").glob("*/certificate.json")).read_text())
    assert certificate["rounds"] >= 1 and certificate["leakage"][-1]["memory"] == 0.0
    assert not list(tmp_path.glob("store.*")), "a compaction left its old or half-built files"


def test_requests_one_after_another_chain_their_models_and_one_request_takes_them_all(tiny_corpus, tiny_lm,
                                                                                     tmp_path):
    from sbu.eval.requests import batch_request, request_patients, sequential_requests

    patients = request_patients(tiny_corpus, 2)
    assert len(patients) == 2 and not set(patients) & set(tiny_corpus.splits["holdout"])
    table = sequential_requests(tiny_corpus, tiny_lm, patients, work=tmp_path / "seq", config=FAST, kept_probes=10,
                                progress=False)
    assert list(table["patients forgotten"]) == [0, 1, 2] and (table["pruned"].iloc[1:] > 0).all()
    journal = Journal(tmp_path / "seq" / "journal.jsonl")
    first, second = journal.requests()
    assert journal.records(second)[0]["model"] == str(tmp_path / "seq" / first / "model")  # chained, resumable
    together = batch_request(tiny_corpus, tiny_lm, patients, work=tmp_path / "one", config=FAST, kept_probes=10)
    assert together["patients forgotten"].iloc[0] == 2
    assert together["pruned"].iloc[0] == table["pruned"].iloc[1:].sum()


def test_a_journal_of_an_older_format_is_a_clear_error_and_changes_nothing(tiny_corpus, tiny_lm, tmp_path):
    store = open_store("oxigraph:")
    ingest(store, tiny_corpus)
    protocol = ForgetProtocol(tmp_path / "work", store, tiny_lm, tiny_corpus, ProtocolConfig(unlearn={"steps": 2}))
    before = memory_content(store)
    protocol.journal.append({"request": "old", "state": "RECEIVED",
                             "sealed": protocol.sealer.seal({"targets": [_patient(tiny_corpus)]})})
    with pytest.raises(JournalError, match="older sbu"):
        protocol.resume("old")
    assert memory_content(store) == before
