"""The notebooks' parameters, checked: each notebook calls :func:`check` right after its parameters cell, and
``sbu batch`` and ``sbu run`` call :func:`check_values` on every run's parameters before any run starts.

Each allowed value comes from where the package keeps it: profiles from ``params/profiles/``, forget splits from
the cohort, datasets from :mod:`sbu.config`, unlearning methods from the registry of :mod:`sbu.unlearn`, crash
points from the protocol's states, memory URLs from the store. A list parameter takes a list and nothing else:
``papermill -p forget_splits forget05`` gives a string, whose letters would be read as splits, and ``-p seeds 3``
could mean three seeds or seed 3; both are an error saying to write the list with ``-y``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sbu import checks
from sbu.config import DATASETS, profiles
from sbu.data.cohort import FORGET_SPLITS
from sbu.errors import ParameterError, SbuError
from sbu.memory.store import url_scheme
from sbu.sync import STATES
from sbu.unlearn import METHODS

MAX_SEED = 2**32 - 1  # numpy's seeds stop here
ALL_METHODS = "all"  # notebook 02's methods: ["all"] runs every registered method


Check = Callable[[str, object], object]  # check(name, value): the value, or a package error naming it


def _text(name: str, value) -> str:
    if not isinstance(value, str):
        raise ParameterError(f"{name} must be a string, got {value!r}")
    return value


def _folder(name: str, value) -> str:
    if not _text(name, value).strip():
        raise ParameterError(f"{name} must name a folder, got {value!r}")
    return value


def _at_least(least: int) -> Check:
    return lambda name, value: checks.integer(name, value, least)


def _seed(name: str, value) -> int:
    return checks.integer(name, value, 0, MAX_SEED)


def _split(name: str, value) -> str:
    return checks.choice(name, value, FORGET_SPLITS)


def _profile(name: str, value) -> str:
    return checks.choice(name, value, profiles())


def _dataset(name: str, value) -> str:
    return checks.choice(name, value, DATASETS)


def _memory_url(name: str, value) -> str:
    try:
        url_scheme(value)
    except SbuError as err:
        raise ParameterError(f"{name}: {err}") from None
    return value


def crash_points() -> tuple[str, ...]:
    """Where notebook 03 may kill ``sbu forget``: after each state of the protocol, or inside its memory step."""
    return (*(f"after-{state}" for state in STATES), "memory-apply")


def _crash_point(name: str, value) -> str:
    point, at, nth = value.partition("@") if isinstance(value, str) else (value, "", "")
    checks.choice(name, point, crash_points())
    if at and not (nth.isdigit() and int(nth) >= 1):
        raise ParameterError(f"{name} may end in @N (the N-th time the point is reached, N ≥ 1), got {value!r}")
    return value


def _list_of(item: Check, allowed: str) -> Check:
    """A non-empty list without repeats, each element passing ``item``; ``allowed`` says what the elements are."""

    def check(name: str, value) -> list:
        if not isinstance(value, list) or not value:
            example = f"-y \"{name}: [{value}]\"" if isinstance(value, str | int) and value != "" else \
                f"-y \"{name}: [a, b]\""
            raise ParameterError(f"{name} must be a non-empty list of {allowed}, got {value!r}; with papermill a "
                                 f"list needs -y, e.g. {example}")
        for element in value:
            try:
                item(name, element)
            except SbuError:
                raise ParameterError(f"{name} must be a list of {allowed}, got {value!r} ({element!r} is not "
                                     "one)") from None
        repeated = [v for i, v in enumerate(value) if v in value[:i]]
        if repeated:
            raise ParameterError(f"{name} lists {repeated[0]!r} twice, got {value!r}")
        return value

    return check


def _method(name: str, value) -> str:
    return checks.choice(name, value, METHODS)


def _methods_or_all(name: str, value) -> list:
    if value == [ALL_METHODS]:
        return value
    return _list_of(_method, f"unlearning methods ({', '.join(METHODS)}), or [{ALL_METHODS}]")(name, value)


COMMON = {"profile": _profile, "seed": _seed, "out_dir": _folder}
MODEL = {"model_name_or_path": _text, "unlearn_steps": _at_least(0)}
NOTEBOOKS: dict[str, dict[str, Check]] = {  # every parameter of every notebook (tests/test_params.py keeps it whole)
    "01_memory_pathway": {
        **COMMON, "forget_split": _split, "data_path": _text, "memory_url": _memory_url,
        "pubmed_memory_url": _memory_url, "pubmed_abstracts": _at_least(1),
        "retrieval_k": _at_least(1), "retrieval_probes": _at_least(1)},
    "02_parameter_pathway": {
        **COMMON, **MODEL, "forget_split": _split, "methods": _methods_or_all},
    "03_synchronization": {
        **COMMON, **MODEL, "forget_split": _split, "rounds": _at_least(1),
        "requests": _at_least(1), "request_steps": _at_least(0), "crash_at": _crash_point},
    "04_evaluation": {
        **COMMON, **MODEL, "dataset": _dataset, "data_path": _text,
        "forget_splits": _list_of(_split, f"forget splits ({', '.join(FORGET_SPLITS)})"),
        "seeds": _list_of(_seed, f"seeds (integers in [0, {MAX_SEED}])"),
        "methods": _list_of(_method, f"unlearning methods ({', '.join(METHODS)})"),
        "rounds": _at_least(1), "ablations": checks.flag},
}


def rules(notebook: str) -> dict[str, Check] | None:
    """The rules of ``notebook`` (its name, file name or path), or None for a notebook this package does not ship."""
    stem = str(notebook).replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".ipynb")
    return NOTEBOOKS.get(stem)


def check_values(notebook: str, values: Mapping[str, object]) -> None:
    """Check every parameter in ``values`` that ``notebook`` declares; a :class:`~sbu.errors.ParameterError` names
    the first wrong one, what it got and what is allowed. Names the notebook does not have are left to the caller."""
    known = rules(notebook)
    if known is None:
        raise ParameterError(f"no parameter rules for notebook {notebook!r}; known: {', '.join(NOTEBOOKS)}")
    for name, rule in known.items():
        if name in values:
            try:
                rule(name, values[name])
            except ParameterError:
                raise
            except SbuError as err:
                raise ParameterError(str(err)) from None


def check(notebook: str, namespace: Mapping[str, object]) -> None:
    """The check cell of a notebook: ``check("02_parameter_pathway", globals())`` right after the parameters cell.
    Every parameter must be there (papermill injected or the cell defined it) and pass its rule."""
    known = rules(notebook)
    missing = [name for name in known or () if name not in namespace]
    if missing:
        raise ParameterError(f"{notebook} runs without its parameter(s) {', '.join(missing)}: run the parameters "
                             "cell first")
    check_values(notebook, namespace)
