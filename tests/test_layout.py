"""The package map of docs/design.md, kept true: which part of sbu may import which, imports at the top of each
file, and memory free of torch / model free of RDF."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sbu"

# part → the parts of sbu it may import (besides itself). The foundation is what every part may use.
FOUNDATION = {"errors", "checks", "files", "cache", "faults", "journal", "obligations"}
MAY_IMPORT = {
    "foundation": set(),
    "data": set(),
    "memory": {"data"},
    "model": {"data"},
    "retrieval": {"memory"},
    "unlearn": {"data", "model"},
    "config": {"data", "model"},
    "agent": {"data", "memory", "retrieval", "model"},
    "sync": {"data", "memory", "retrieval", "model", "unlearn", "agent"},
    "eval": {"data", "memory", "retrieval", "model", "unlearn", "agent", "sync", "config"},
    "experiment": {"data", "model", "unlearn", "config", "eval"},
    "kernel": set(),
    "batch": {"kernel", "eval"},
    "demo": {"data", "memory", "sync", "config"},
    "cli": {"*"},
}
# third-party packages a part must not import (memory knows RDF and nothing of torch; model knows torch, not RDF)
FORBIDDEN = {
    "memory": {"torch", "transformers", "peft", "accelerate", "sentence_transformers"},
    "model": {"rdflib", "pyoxigraph", "oxrdflib"},
    "unlearn": {"rdflib", "pyoxigraph", "oxrdflib"},
    "data": {"torch", "transformers", "peft", "rdflib", "pyoxigraph"},
}
# function-level imports allowed: a heavy optional dependency, each with a comment on its line saying so
LAZY_ALLOWED_FILES = {"cli.py"}  # the command line starts fast: each command imports what it needs


def part_of(module: str) -> str:
    name = module.split(".")[1] if module.count(".") >= 1 else ""
    return "foundation" if name in FOUNDATION else name


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found.append((".".join(parts), path))
    return found


def imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, at top level?) for every import in the file."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] if node.module == "sbu" else [node.module]
            out += [(name, node.lineno, id(node) in top) for name in names]
    return out


@pytest.mark.parametrize("module,path", modules(), ids=[m for m, _ in modules()])
def test_each_part_imports_only_what_the_map_allows(module, path):
    if module == "sbu":
        return
    part = part_of(module)
    assert part in MAY_IMPORT, f"{module} belongs to no part of the map in docs/design.md: add it there and here"
    allowed = MAY_IMPORT[part] | {"foundation", part}
    for name, line, _ in imports(path):
        if name.startswith("sbu.") and "*" not in allowed:
            target = part_of(name)
            assert target in allowed, f"{path.relative_to(ROOT)}:{line} imports {name}: {part} may import " \
                                      f"{sorted(allowed)}"
        root = name.split(".")[0]
        assert root not in FORBIDDEN.get(part, set()), f"{path.relative_to(ROOT)}:{line}: {part} imports {root}"


@pytest.mark.parametrize("module,path", modules(), ids=[m for m, _ in modules()])
def test_imports_sit_at_the_top_of_each_file(module, path):
    if path.name in LAZY_ALLOWED_FILES:
        return
    lines = path.read_text().splitlines()
    for name, line, top in imports(path):
        if not top and "TYPE_CHECKING" not in lines[line - 1]:
            assert "optional" in lines[line - 1], (
                f"{path.relative_to(ROOT)}:{line} imports {name} inside a function; move it to the top (a lazy "
                "import is for a really optional dependency, with a comment on its line saying so)")


@pytest.mark.parametrize("package,absent", [("memory", ("torch", "transformers")),
                                             ("model", ("rdflib", "pyoxigraph")), ("unlearn", ("rdflib", "sbu.eval"))])
def test_a_part_loads_without_what_it_must_not_know(package, absent):
    code = (f"import sys, pkgutil, importlib, sbu.{package} as p\n"
            f"for m in pkgutil.iter_modules(p.__path__): importlib.import_module('sbu.{package}.' + m.name)\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {absent!r} or m in {absent!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", f"importing sbu.{package} loaded {out}"


def test_the_design_doc_names_every_part():
    design = (ROOT / "docs" / "design.md").read_text()
    for part in MAY_IMPORT:
        if part != "foundation":
            assert f"`{part}" in design, f"docs/design.md does not describe {part}"
