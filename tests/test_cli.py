"""The command line: clear errors, exit code 2, and the cohort writer."""

from __future__ import annotations

import subprocess
import sys
from argparse import Namespace

from sbu.cli import _unlearn_budget, main
from sbu.config import ExperimentConfig
from sbu.data.schema import Corpus
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
