"""The notebooks' parameters, checked by the package: every parameter of every notebook has a rule, its default
passes, good values pass and bad ones are a one-line ParameterError naming the parameter, what it got and what is
allowed; each notebook runs the check right after its parameters cell, and shows the error without a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import papermill as pm
import pytest

from sbu import params
from sbu.cli import main
from sbu.config import profiles
from sbu.errors import ConfigError, ParameterError
from sbu.kernel import execute_notebook
from sbu.unlearn import METHODS

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))

# For each parameter name: values its notebook accepts, and wrong ones (a string for a number, a scalar for a list,
# out of range, not among the allowed values); notebooks sharing a name share its rule unless listed per notebook.
GOOD = {
    "profile": profiles(), "seed": [0, 7, params.MAX_SEED], "forget_split": ["forget01", "forget10"],
    "out_dir": ["out", "../results/x"], "data_path": ["", "/data/ori_pqal.json"], "model_name_or_path": ["", "m"],
    "memory_url": ["oxigraph:", "oxigraph:/tmp/store", "memory:", "http://127.0.0.1:7878/query"],
    "pubmed_abstracts": [1, 1000], "retrieval_k": [1, 5], "retrieval_probes": [1, 200],
    "unlearn_steps": [0, 50], "rounds": [1, 3], "requests": [1, 4], "request_steps": [0, 50],
    "crash_at": ["after-BARRIER", "after-MEMORY", "memory-apply", "memory-apply@2"],
    "dataset": ["cohort", "pubmedqa"], "forget_splits": [["forget05"], ["forget01", "forget10"]],
    "seeds": [[0], [0, 1, 2]], "methods": [["sra"], ["npo"], list(METHODS)], "ablations": [True, False],
}
GOOD["pubmed_memory_url"] = GOOD["memory_url"]
GOOD_02 = {"methods": [["all"], ["grad_diff", "npo"]]}
BAD = {
    "profile": ["bogus", "", 1, None], "seed": ["abc", "seven", -1, 1.5, True, params.MAX_SEED + 1],
    "forget_split": ["f", "forget5", ["forget05"]], "out_dir": ["", "  ", 3],
    "data_path": [3, None], "model_name_or_path": [0, ["m"]],
    "memory_url": ["oxi", "", "memory:x", 5], "pubmed_abstracts": [0, "50"], "retrieval_k": [0, -1, 2.0],
    "retrieval_probes": [0, "all"], "unlearn_steps": [-1, "100"], "rounds": [0, "2"], "requests": [0, 2.5],
    "request_steps": [-5, None], "crash_at": ["after-FOO", "", "memory-apply@0", "memory-apply@x", 3],
    "dataset": ["pubmed", ""], "forget_splits": ["forget05", [], ["forget05", "f"], ["forget05", "forget05"]],
    "seeds": [3, "0", [], [0, 0], [-1], ["a"]], "methods": ["npo", [], ["nope"], ["sra", "sra"], ["all"]],
    "ablations": ["false", 0, None],
}
BAD["pubmed_memory_url"] = BAD["memory_url"]
BAD_02 = {"methods": ["npo", [], ["nope"], ["all", "sra"]]}


def _defaults(notebook: Path) -> dict:
    return {name: eval(p["default"]) for name, p in pm.inspect_notebook(str(notebook)).items()}  # noqa: S307


def _cases(table: dict, per_02: dict) -> list[tuple[str, str, object]]:
    return [(nb.stem, name, value) for nb in NOTEBOOKS for name in params.rules(nb.stem)
            for value in (per_02 if nb.stem.startswith("02") and name in per_02 else table)[name]]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_parameter_of_every_notebook_has_a_rule_and_its_default_passes(notebook):
    defaults = _defaults(notebook)
    assert set(params.rules(notebook.stem)) == set(defaults), "sbu.params.NOTEBOOKS lists every parameter"
    params.check_values(notebook.stem, defaults)
    assert all(name in GOOD and name in BAD for name in defaults), "every parameter is tested below"


@pytest.mark.parametrize(("notebook", "name", "value"), _cases(GOOD, GOOD_02))
def test_good_values_pass(notebook, name, value):
    params.check_values(notebook, {name: value})


@pytest.mark.parametrize(("notebook", "name", "value"), _cases(BAD, BAD_02))
def test_bad_values_are_one_line_errors_naming_the_parameter_and_the_value(notebook, name, value):
    with pytest.raises(ParameterError) as caught:
        params.check_values(notebook, {name: value})
    message = str(caught.value)
    assert message.startswith(name) and repr(value) in message and "\n" not in message
    assert isinstance(caught.value, ConfigError), "callers catching ConfigError (or ValueError) keep working"


def test_a_scalar_for_a_list_says_to_write_the_list_with_y():
    with pytest.raises(ParameterError, match=r'with papermill a list needs -y, e\.g\. -y "forget_splits: '
                                             r'\[forget05\]"'):
        params.check_values("04_evaluation", {"forget_splits": "forget05"})
    with pytest.raises(ParameterError, match=r"seeds must be a non-empty list .* got 3;"):
        params.check_values("04_evaluation", {"seeds": 3})


def _check_cell(notebook: Path) -> tuple[str, str]:
    cells = json.loads(notebook.read_text())["cells"]
    at = next(i for i, c in enumerate(cells) if "parameters" in c["metadata"].get("tags", []))
    return "".join(cells[at]["source"]), "".join(cells[at + 1]["source"])


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_each_notebook_checks_its_parameters_right_after_the_parameters_cell(notebook):
    """The parameters cell and the cell after it, run as the kernel runs them: the defaults pass, an injected
    wrong value stops the notebook there."""
    parameters, check = _check_cell(notebook)
    assert f'sbu.params.check("{notebook.stem}", globals())' in check and len(check.splitlines()) <= 3
    namespace: dict = {}
    exec(parameters, namespace)  # noqa: S102 — the notebook's own literals
    exec(check, namespace)  # noqa: S102
    name = next(iter(params.rules(notebook.stem)))
    namespace[name] = "bogus"  # what papermill -p profile bogus injects
    with pytest.raises(ParameterError, match=f"^{name} must be"):
        exec(check, namespace)  # noqa: S102
    del namespace["seed"]
    with pytest.raises(ParameterError, match="without its parameter"):
        params.check(notebook.stem, namespace)


def test_the_error_shows_as_one_line_in_a_notebook():
    assert ParameterError("seed must be an integer, got 'abc'")._render_traceback_() == [
        "ParameterError: seed must be an integer, got 'abc'"]


def test_papermill_stops_at_the_check_cell_with_one_line(tmp_path):
    """The issue's case: notebook 04 with -p seed abc ends at the check cell, its error one line, not a traceback
    from deep inside the package (papermill exits non-zero on this error)."""
    notebook = next(p for p in NOTEBOOKS if p.stem.startswith("04"))
    with pytest.raises(pm.PapermillExecutionError) as caught:
        execute_notebook(notebook, tmp_path / "out.ipynb", cwd=str(notebook.parent), progress_bar=False,
                         parameters={"seed": "abc", "out_dir": str(tmp_path / "out")})
    assert caught.value.ename == "ParameterError"
    assert caught.value.traceback == ["ParameterError: seed must be an integer in [0, 4_294_967_295], got 'abc'"]
    assert not (tmp_path / "out").exists(), "nothing written"


def test_sbu_run_checks_the_parameters_before_writing_a_handout(tmp_path, capsys):
    out = tmp_path / "handout"
    assert main(["run", "--prepare-only", "--out", str(out), "03", "-p", "seed", "seven"]) == 2
    assert "seed must be an integer in [0, 4_294_967_295], got 'seven'" in capsys.readouterr().err
    assert main(["run", "--prepare-only", "--out", str(out), "03", "-p", "forget_splits", "[forget05]"]) == 2
    assert "03_synchronization has no parameter 'forget_splits'" in capsys.readouterr().err
    assert not out.exists(), "nothing written"

    assert main(["run", "--prepare-only", "--out", str(out), "03", "-p", "seed", "7", "-p", "crash_at",
                 "after-BARRIER"]) == 0
    cells = json.loads((out / "03_synchronization" / "03_synchronization.ipynb").read_text())["cells"]
    injected = next(c for c in cells if "injected-parameters" in c["metadata"].get("tags", []))
    assert "seed = 7" in "".join(injected["source"]) and 'crash_at = "after-BARRIER"' in "".join(injected["source"])
    assert not any(c.get("outputs") for c in cells), "prepared, not run"
    assert main(["run", "--prepare-only", "--out", str(out), "02"]) == 0  # committed with the outputs nbval checks
    cells = json.loads((out / "02_parameter_pathway" / "02_parameter_pathway.ipynb").read_text())["cells"]
    assert not any(c.get("outputs") for c in cells), "a handout shows no output before the student runs it"
