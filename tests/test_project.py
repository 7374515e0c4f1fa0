"""The project's promises about installation, the two commands, CI and the notebooks' conventions."""

from __future__ import annotations

import ast
import json
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _requirement_name(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].lower().replace("_", "-")


def test_torch_is_pinned_exactly():
    assert "torch==2.13.0" in PYPROJECT["project"]["dependencies"]


def test_environment_yml_installs_this_package_and_names_nothing_pyproject_lacks():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "conda-forge" in env["channels"]
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert {_requirement_name(d) for d in conda} <= {"python", "pip"}, "conda must not supply torch or libraries"
    assert any(d.startswith("python=3.11") for d in conda)
    extras = set(PYPROJECT["project"]["optional-dependencies"])
    for entry in pip:
        match = re.fullmatch(r'-e\s+"?\.(?:\[([\w,]+)\])?"?', entry)
        assert match, f"pip section installs something other than this package: {entry!r}"
        assert set((match.group(1) or "").split(",")) - {""} <= extras


def test_readme_opens_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    first_block = re.search(r"```(?:bash|sh)?\n(.*?)```", readme, re.S).group(1).split()
    assert first_block == ["make", "run", "make", "test"]


def test_ci_runs_the_readme_test_command():
    assert re.search(r"^make test$", (ROOT / ".ci" / "run").read_text(), re.M)
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test: .*\n(\t.*\n)*\t.*pytest", makefile, re.M)
    assert (ROOT / "tests" / "test_notebooks.py").is_file(), "make test runs every notebook (with papermill)"
    assert re.search(r"^run: .*\n\t.*sbu run", makefile, re.M)


def _notebooks():
    return sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_the_four_notebooks_exist():
    assert [p.stem for p in _notebooks()] == ["01_memory_pathway", "02_parameter_pathway", "03_synchronization",
                                             "04_evaluation"]


def test_notebooks_open_with_a_parameters_cell_of_commented_literals():
    for path in _notebooks():
        code = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
        assert "parameters" in code[0]["metadata"].get("tags", []), path.name
        lines = [line for line in "".join(code[0]["source"]).splitlines() if line.strip()]
        names = set()
        for line in lines:
            node = ast.parse(line.split("  #")[0]).body[0]
            assert isinstance(node, ast.AnnAssign), (path.name, line)
            ast.literal_eval(node.value)  # a literal: a constant, or a list of constants
            assert "  # " in line, f"{path.name}: parameter without a comment: {line}"
            names.add(node.target.id)
        assert {"seed", "out_dir"} <= names, path.name


def test_notebooks_define_no_functions_and_carry_only_the_outputs_nbval_checks():
    for path in _notebooks():
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                source = "".join(cell["source"])
                assert not re.search(r"^\s*(def|class)\s", source, re.M), path.name
                if not source.startswith("# NBVAL_CHECK_OUTPUT\n"):  # tests/test_nbval.py compares those
                    assert cell.get("outputs") == [], f"{path.name}: clear outputs before committing"
                    assert cell.get("execution_count") is None, path.name


def test_params_files_name_only_notebook_parameters():
    for params in (ROOT / "params").glob("*.yaml"):
        keys = set(yaml.safe_load(params.read_text()))
        for path in _notebooks():
            source = "".join(json.loads(path.read_text())["cells"][1]["source"])
            assert all(re.search(rf"^{k}:", source, re.M) for k in keys), (params.name, path.name)
