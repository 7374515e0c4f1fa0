"""The command line: clear errors, exit code 2, and the cohort writer; help and defaults for every option, the
version; patients checked against memory and the journal before any model is loaded; outputs only where pointed."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest

import sbu
from sbu.cli import _unlearn_budget, build_parser, main
from sbu.config import ExperimentConfig
from sbu.data.schema import Corpus
from sbu.journal import Journal
from sbu.memory import open_store
from sbu.memory.ingest import ingest
from sbu.unlearn.methods import UnlearnConfig


def test_cohort_command_writes_a_readable_corpus(tmp_path):
    assert main(["cohort", "--out", str(tmp_path)]) == 0
    assert len(Corpus.read(tmp_path).entities) == 80


def test_unknown_profile_is_a_clear_error(tmp_path, capsys):
    assert main(["cohort", "--profile", "huge", "--out", str(tmp_path)]) == 2
    assert "unknown profile 'huge'" in capsys.readouterr().err
    assert not any(tmp_path.iterdir()), "nothing is written on bad input"


def test_run_refuses_an_unknown_notebook(tmp_path, capsys):
    assert main(["run", "--out", str(tmp_path), "99_nothing"]) == 2
    assert "no notebook matches" in capsys.readouterr().err


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "sbu.cli", "--help"], capture_output=True, text=True, check=True)
    assert "model-report" in out.stdout and "run" in out.stdout


def test_forget_unlearns_for_the_profiles_budget_unless_given_steps():
    for profile in ("smoke", "smoke-study", "paper"):
        expected = ExperimentConfig.from_profile(profile).unlearn_steps
        assert _unlearn_budget(Namespace(steps=None, profile=profile)) == {"steps": expected}
    assert _unlearn_budget(Namespace(steps=None, profile="smoke"))["steps"] != UnlearnConfig().steps  # as notebooks
    assert _unlearn_budget(Namespace(steps=7, profile="smoke")) == {"steps": 7}


# -- what a new user meets --------------------------------------------------------------------------------------
def _subcommands():
    parser = build_parser()
    choices = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    return parser, choices


def test_every_option_of_every_command_has_help_and_shows_its_default():
    parser, commands = _subcommands()
    assert set(commands) >= {"run", "batch", "model-report", "cohort", "ingest", "forget", "resume", "obligations"}
    for name, command in [("sbu", parser), *commands.items()]:
        formatter = command._get_formatter()
        for action in command._actions:
            if action.dest in ("help", "version", "command") or isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, f"sbu {name} {action.option_strings or action.dest} has no help"
            flag = action.nargs == 0 or action.required or not action.option_strings
            assert flag or "(default" in formatter._get_help_string(action), \
                f"sbu {name} {action.option_strings} does not show its default"
    forget_help = commands["forget"].format_help()
    for shown in ("(default: results/forget)", "(default: 3)", "(default: 0)", "(default: smoke)"):
        assert shown in " ".join(forget_help.split()), shown


def test_version_and_a_plain_description():
    version = subprocess.run([sys.executable, "-m", "sbu.cli", "--version"], capture_output=True, text=True,
                             check=True).stdout.strip()
    assert version == f"sbu {sbu.__version__}"
    described = subprocess.run([sys.executable, "-m", "sbu.cli", "--help"], capture_output=True, text=True,
                               check=True).stdout
    assert "``" not in described and ":mod:" not in described and "Forget patients" in described


@pytest.fixture
def world(tiny_corpus, tiny_lm, tmp_path, monkeypatch):
    """A memory on disk holding the tiny cohort, a copy of the tiny model, the corpus as files; an empty model cache
    and an empty working directory."""
    shutil.copytree(tiny_lm.path, tmp_path / "model")
    tiny_corpus.write(tmp_path / "corpus")
    for folder in ("cache", "cwd"):
        (tmp_path / folder).mkdir()
    monkeypatch.setenv("SBU_CACHE", str(tmp_path / "cache"))  # the memory's key store and master key go there
    with open_store(f"oxigraph:{tmp_path / 'store'}") as store:
        ingest(store, tiny_corpus)
    monkeypatch.delenv("SBU_BARRIER_KEY", raising=False)
    monkeypatch.chdir(tmp_path / "cwd")
    return tmp_path


def _models(cache: Path) -> list[str]:
    """What the cache holds besides the memory's keys (its key store and master key) and the barrier key."""
    return sorted(p.name for p in cache.iterdir() if p.name not in ("keys", "master.key", "barrier.key"))


def test_an_unknown_patient_or_a_missing_store_is_refused_before_any_model_is_loaded(world, capsys):
    corpus = ["--corpus", str(world / "corpus")]
    # no --model: checked after the model, this would train the smoke profile's base model into the empty cache
    assert main(["forget", "--patient", "patient/nobody", "--store", f"oxigraph:{world / 'store'}", *corpus]) == 2
    err = capsys.readouterr().err
    assert "no assertion in memory is about 'patient/nobody'" in err and "e.g." not in err
    assert _models(world / "cache") == [], "a model was loaded or trained before the patient was checked"
    missing = f"oxigraph:{world / 'missing'}"
    assert main(["forget", "--patient", "patient/p000", "--store", missing, *corpus]) == 2
    err = capsys.readouterr().err
    assert f"make one with `sbu ingest --store {missing}`" in err and "'oxigraph:'" not in err
    assert not (world / "missing").exists() and _models(world / "cache") == []
    assert not any((world / "cwd").iterdir()), "a command left a folder in the working directory"


def test_forgetting_a_patient_twice_names_the_request_that_forgot_them(world, tiny_corpus, capsys):
    patient = tiny_corpus.splits["forget10"][0]
    name = next(e.name for e in tiny_corpus.entities if e.id == patient)
    args = ["forget", "--patient", patient, "--store", f"oxigraph:{world / 'store'}", "--corpus",
            str(world / "corpus"), "--work", str(world / "work"), "--steps", "2", "--max-rounds", "1"]
    assert main([*args, "--model", str(world / "model")]) == 0
    capsys.readouterr()
    request = Journal(world / "work" / "journal.jsonl").requests()[0]
    never = world / "no-model-here"
    assert main([*args, "--model", str(never)]) == 2  # a model that does not exist: never opened
    err = capsys.readouterr().err
    assert f"{patient!r} is already forgotten (request {request}, 20" in err
    assert name not in err and "no model at" not in err and not never.exists()


def test_ingest_and_cohort_write_only_where_they_are_pointed(world, capsys):
    assert main(["ingest", "--store", "oxigraph:"]) == 2
    assert "outlives the process" in capsys.readouterr().err
    files = sorted(p.name for p in (world / "corpus").iterdir())
    assert main(["ingest", "--store", f"oxigraph:{world / 'corpus'}"]) == 2
    assert "holds other files, not a memory store" in capsys.readouterr().err
    assert sorted(p.name for p in (world / "corpus").iterdir()) == files
    assert main(["ingest", "--store", f"oxigraph:{world / 'fresh'}"]) == 0  # the profile's cohort, made in memory
    assert main(["cohort", "--profile", "smoke-study", "--seed", "2"]) == 0
    assert [p.relative_to(world / "cwd").as_posix() for p in (world / "cwd").rglob("*") if p.is_dir()] == \
        ["data", "data/cohort-smoke-study-seed2"]
    assert Corpus.read(world / "cwd" / "data" / "cohort-smoke-study-seed2").meta["config"]["seed"] == 2
