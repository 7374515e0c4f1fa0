"""A corpus of bad inputs for the forget protocol's API and CLI: each one gets a clear error of a
stated type and message, and changes nothing — the memory's content hash and the model's files are the same after
as before. Names in other cases, spacing and Unicode forms are not errors: the barrier must still refuse them."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys

import pytest

from sbu import cli
from sbu.errors import ConfigError, DataFileError, JournalError, StoreError, StoreUnavailableError
from sbu.journal import Journal, Sealer
from sbu.memory import open_store
from sbu.memory.barrier import Barrier
from sbu.memory.ingest import ingest
from sbu.memory.server import free_port
from sbu.memory.vocab import iri
from sbu.model.network import load
from sbu.sync import JOURNAL_FORMAT, ForgetProtocol, ProtocolConfig

FAST = ProtocolConfig(unlearn={"steps": 2, "batch_size": 4}, max_rounds=1, retained_probes=5)


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SBU_CACHE", str(tmp_path_factory.getbasetemp() / "bad-inputs-cache"))
    monkeypatch.delenv("SBU_BARRIER_KEY", raising=False)
    monkeypatch.delenv("SBU_FAULT", raising=False)


@pytest.fixture(scope="module")
def world(tiny_corpus, tiny_lm, tmp_path_factory):
    """A memory on disk holding the tiny cohort, a copy of the tiny model, the corpus as files."""
    folder = tmp_path_factory.mktemp("bad-inputs")
    model = folder / "model"
    shutil.copytree(tiny_lm.path, model)
    tiny_corpus.write(folder / "corpus")
    with pytest.MonkeyPatch.context() as env:  # the private cache holds the master key and key store it seals with
        env.setenv("SBU_CACHE", str(tmp_path_factory.getbasetemp() / "bad-inputs-cache"))
        with open_store(f"oxigraph:{folder / 'store'}") as store:
            ingest(store, tiny_corpus)
    return {"folder": folder, "store": folder / "store", "model": model, "corpus": folder / "corpus",
            "patient": tiny_corpus.splits["forget10"][0]}


def _model_hash(path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.name.encode() + file.read_bytes())
    return digest.hexdigest()


def _state(world) -> tuple[str, str]:
    with open_store(f"oxigraph:{world['store']}", create=False) as store:
        return store.content_hash(), _model_hash(world["model"])


def _unchanged(world, action, error, pattern):
    before = _state(world)
    with pytest.raises(error, match=pattern):
        action()
    assert _state(world) == before, "a bad input changed memory or the model"


# -- the request's targets ----------------------------------------------------------------------------------------
BAD_TARGETS = [
    ("patient/nobody", StoreError, "no assertion in memory is about"),
    ("", StoreError, "id strings"),
    ("   ", StoreError, "id strings"),
    (None, StoreError, "list of entity ids"),
    (42, StoreError, "list of entity ids"),
    ([], StoreError, "empty forget request"),
    ([None], StoreError, "id strings"),
    ([3.5], StoreError, "id strings"),
    (["patient/p000", 3], StoreError, "id strings"),
    ("DUPLICATE", StoreError, "twice"),
    ("DUPLICATE-IRI", StoreError, "twice"),
    (["patient/" + "x" * 5000], StoreError, "not an id"),
    (["patient/p000"] * 10_001, ConfigError, "at most 10_000"),
    ("patient/p001> } ; DROP ALL ; #", StoreError, "no assertion"),
    ('patient/"; CLEAR ALL', StoreError, "no assertion"),
    ("patient/p001\n} DELETE WHERE { ?s ?p ?o }", StoreError, "no assertion"),
    ("patient/x' } ; CLEAR ALL ; #", StoreError, "no assertion"),
    ("http://", StoreError, "no assertion"),
    ("<patient/p000>", StoreError, "no assertion"),
    ("patient/p000>", StoreError, "no assertion"),
    ("urn:x", StoreError, "no assertion"),
    ("patient p000", StoreError, "no assertion"),
    ("../../etc/passwd", StoreError, "no assertion"),
    ("patient/%00", StoreError, "no assertion"),
    ("PATIENT/P000", StoreError, "no assertion"),
    ({"patient": "p000"}, StoreError, "list of entity ids"),
]


@pytest.mark.parametrize("targets,error,pattern", BAD_TARGETS, ids=[f"targets-{i}" for i in range(len(BAD_TARGETS))])
def test_a_bad_request_is_refused_before_anything_changes(world, tiny_corpus, tiny_lm, targets, error, pattern):
    patient = world["patient"]
    if targets == "DUPLICATE":
        targets = [patient, patient]
    elif targets == "DUPLICATE-IRI":
        targets = [patient, str(iri(patient))]
    with open_store(f"oxigraph:{world['store']}", create=False) as store:
        protocol = ForgetProtocol(world["folder"] / "work", store, tiny_lm, tiny_corpus, FAST)
        before = store.content_hash()
        with pytest.raises(error, match=pattern):
            protocol.submit(targets)
        assert store.content_hash() == before
    assert not (world["folder"] / "work" / "journal.jsonl").exists()


# -- hyper-parameters ---------------------------------------------------------------------------------------------
BAD_CONFIGS = [
    ({"epsilon": -0.1}, "epsilon"), ({"epsilon": 1}, "epsilon"), ({"epsilon": float("nan")}, "epsilon"),
    ({"epsilon": "0.1"}, "epsilon"), ({"max_rounds": 0}, "max_rounds"), ({"max_rounds": 10**6}, "max_rounds"),
    ({"k": 0}, "k must"), ({"k": True}, "k must"), ({"retained_probes": -1}, "retained_probes"),
    ({"unlearn": {"steps": 0}}, "steps"), ({"unlearn": {"steps": 10**12}}, "steps"),
    ({"unlearn": {"lr": float("inf")}}, "lr"), ({"unlearn": {"batch_size": 10**9}}, "batch_size"),
    ({"unlearn": {"prior": "laplace"}}, "prior"), ({"unlearn": {"stepz": 1}}, "unknown unlearning"),
    ({"unlearn": [1]}, "unlearn must be a dict"),
]


@pytest.mark.parametrize("kwargs,pattern", BAD_CONFIGS, ids=[f"config-{i}" for i in range(len(BAD_CONFIGS))])
def test_absurd_settings_are_clear_errors(world, kwargs, pattern):
    _unchanged(world, lambda: ProtocolConfig(**kwargs), ConfigError, pattern)


# -- the journal --------------------------------------------------------------------------------------------------
def _journal_with(world, tmp_path, damage):
    key = Barrier.load(open_store("oxigraph:")).key
    journal = Journal(tmp_path / "work" / "journal.jsonl")
    sealed = Sealer(key).seal({"targets": [world["patient"]]})
    journal.append({"request": "r1", "state": "RECEIVED", "sealed": sealed, "targets": [], "config": {},
                    "format": JOURNAL_FORMAT})
    journal.append({"request": "r1", "state": "BARRIER", "plan": {}, "blocked": 0, "sealed": sealed})
    damage(journal, key)
    return journal


JOURNAL_DAMAGE = {
    "corrupted line": (lambda j, k: j.path.write_text(j.path.read_text().replace('"BARRIER"', '"BAR')), "line 2"),
    "not a record": (lambda j, k: j.path.write_text('[1, 2]\n' + j.path.read_text()), "not a journal record"),
    "tampered seal": (lambda j, k: j.path.write_text(j.path.read_text().replace('"sealed": "g', '"sealed": "h')),
                      "does not open"),
    "another key": (lambda j, k: _reseal(j, b"z" * 32), "does not open"),
    "unknown request": (lambda j, k: None, "no request"),
}


def _reseal(journal, other_key):
    lines = [json.loads(line) for line in journal.path.read_text().splitlines()]
    for record in lines:
        record["sealed"] = Sealer(other_key).seal({"targets": ["patient/p000"]})
    journal.path.write_text("".join(json.dumps(r) + "\n" for r in lines))


@pytest.mark.parametrize("damage", sorted(JOURNAL_DAMAGE))
def test_a_damaged_journal_is_a_clear_error(world, tiny_corpus, tiny_lm, tmp_path, damage):
    action, pattern = JOURNAL_DAMAGE[damage]
    journal = _journal_with(world, tmp_path, action)
    with open_store(f"oxigraph:{world['store']}", create=False) as store:
        protocol = ForgetProtocol(tmp_path / "work", store, tiny_lm, tiny_corpus, FAST)
        before = store.content_hash()
        with pytest.raises(JournalError, match=pattern):
            protocol.resume("r-unknown" if damage == "unknown request" else "r1")
        assert store.content_hash() == before
    assert journal.path.exists()


def test_a_journal_that_is_a_folder_is_a_clear_error(tmp_path):
    (tmp_path / "journal.jsonl").mkdir()
    with pytest.raises(JournalError, match="not a file"):
        Journal(tmp_path / "journal.jsonl").records()


# -- the model ----------------------------------------------------------------------------------------------------
def _broken_model(world, tmp_path, how):
    target = tmp_path / "model"
    if how == "missing":
        return target
    if how == "a file":
        target.write_text("not a model")
        return target
    target.mkdir()
    if how == "empty":
        return target
    shutil.copytree(world["model"], target, dirs_exist_ok=True)
    if how == "garbled config":
        (target / "config.json").write_text("{ not json")
    elif how == "truncated weights":
        weights = next(target.glob("*.safetensors"))
        weights.write_bytes(weights.read_bytes()[:100])
    elif how == "no tokenizer":
        for file in target.glob("tokenizer*"):
            file.unlink()
    return target


@pytest.mark.parametrize("how", ["missing", "a file", "empty", "garbled config", "truncated weights",
                                 "no tokenizer"])
def test_a_missing_or_corrupted_model_is_a_clear_error(world, tmp_path, how):
    path = _broken_model(world, tmp_path, how)
    _unchanged(world, lambda: load(path), DataFileError, "no model at|cannot be loaded")


# -- the store ----------------------------------------------------------------------------------------------------
BAD_URLS = [("", "non-empty string"), ("oxigraph", "unknown memory URL"), ("ftp://x", "unknown memory URL"),
            ("memory:extra", "unknown memory URL"), (42, "non-empty string")]


@pytest.mark.parametrize("url,pattern", BAD_URLS, ids=[f"url-{i}" for i in range(len(BAD_URLS))])
def test_a_malformed_memory_url_is_a_clear_error(world, url, pattern):
    _unchanged(world, lambda: open_store(url), StoreError, pattern)


def test_a_missing_store_a_file_and_an_unreachable_endpoint_are_clear_errors(world, tmp_path):
    (tmp_path / "file").write_text("x")
    _unchanged(world, lambda: open_store(f"oxigraph:{tmp_path / 'nothing'}", create=False), StoreError, "no memory")
    _unchanged(world, lambda: open_store(f"oxigraph:{tmp_path / 'file'}"), StoreError, "is a file")
    _unchanged(world, lambda: open_store(f"http://127.0.0.1:{free_port()}/query"), StoreUnavailableError, "")


def test_a_store_held_by_another_process_is_a_clear_error(world):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from sbu.memory import open_store; "
                               f"s = open_store('oxigraph:{world['store']}', create=False); print('ready', "
                               "flush=True); time.sleep(120)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        model_before = _model_hash(world["model"])
        with pytest.raises(StoreError, match="in use by another process"):
            open_store(f"oxigraph:{world['store']}", create=False)
        assert _model_hash(world["model"]) == model_before
    finally:
        holder.kill()
        holder.wait()


# -- the command line ---------------------------------------------------------------------------------------------
def _cli_cases(world):
    store, model, corpus = f"oxigraph:{world['store']}", str(world["model"]), str(world["corpus"])
    base = ["--model", model, "--corpus", corpus, "--work", str(world["folder"] / "cli-work")]
    return {
        "in-memory store": (["forget", "--patient", world["patient"], "--store", "oxigraph:", *base],
                            "outlives the process"),
        "negative steps": (["forget", "--patient", world["patient"], "--store", store, "--steps", "-1", *base],
                           "steps"),
        "epsilon 2": (["forget", "--patient", world["patient"], "--store", store, "--epsilon", "2", *base],
                      "epsilon"),
        "unknown patient": (["forget", "--patient", "patient/nobody", "--store", store, *base], "no assertion"),
        "missing model": (["forget", "--patient", world["patient"], "--store", store, "--model",
                           str(world["folder"] / "no-model"), "--corpus", corpus], "no model at"),
        "missing corpus": (["forget", "--patient", world["patient"], "--store", store, "--model", model,
                            "--corpus", str(world["folder"] / "no-corpus")], "no corpus"),
        "ingest into a full store": (["ingest", "--store", store, "--corpus", corpus], "already holds"),
    }


CLI_CASES = ["in-memory store", "negative steps", "epsilon 2", "unknown patient", "missing model", "missing corpus",
             "ingest into a full store"]


@pytest.mark.parametrize("case", CLI_CASES)
def test_the_command_line_says_what_is_wrong_and_exits_2(world, capsys, case):
    argv, pattern = _cli_cases(world)[case]
    before = _state(world)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # (model loading may draw a progress bar first)
    assert last.startswith("sbu: error: ") and pattern in last and "Traceback" not in err
    assert _state(world) == before


# -- names in other forms: not errors, refusals ---------------------------------------------------------------------
NAME_FORMS = ["ALICE  smith", "alice smith", "Alice\u00a0Smith", "ａｌｉｃｅ ｓｍｉｔｈ", "Alice Smith!",
              "alice\nsmith", "Ａlice  ＳＭＩＴＨ."]


@pytest.mark.parametrize("form", NAME_FORMS)
def test_the_barrier_catches_a_name_in_any_case_spacing_or_unicode_form(form):
    barrier = Barrier(b"k" * 32)
    barrier.block(barrier.entries(names=["Alice Smith", "Jürgen Straße"]))
    assert not barrier.check(f"A note: {form} came in.", count=False)
    assert not barrier.check("JU\u0308RGEN STRASSE", count=False)  # decomposed umlaut, ß case-folded
    assert barrier.check("Alice Smythe came in.", count=False)  # a near miss is not a hit
