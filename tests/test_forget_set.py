"""The hand-off between the pathways: a ForgetSet of record ids, from a plan or from the data, and nothing else."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sbu.data.forget_set import ForgetSet
from sbu.errors import ConfigError
from sbu.memory import open_store
from sbu.memory.ingest import ingest
from sbu.memory.plan import plan_forget
from sbu.unlearn.forget_sets import unlearning_sets


def test_a_plan_and_the_data_hand_over_the_same_facts(tiny_corpus):
    store = open_store("oxigraph:")
    ingest(store, tiny_corpus)
    patients = tiny_corpus.splits["forget10"]
    from_plan, from_data = plan_forget(store, patients).forget_set(), ForgetSet.of_patients(tiny_corpus, patients)
    facts = {f.id for f in tiny_corpus.facts}
    assert from_plan.seeds & facts == from_data.seeds
    assert all(isinstance(i, str) and not i.startswith("http") for i in from_plan.closure)  # plain ids, not IRIs
    assert from_data.closure <= from_plan.closure


@pytest.mark.parametrize("given", ["forget10", None, {"seeds": ["x"]}])
def test_unlearning_takes_only_a_forget_set(tiny_corpus, given):
    with pytest.raises(ConfigError, match="ForgetSet"):
        unlearning_sets(tiny_corpus, given)


def test_a_forget_set_of_nothing_is_a_clear_error(tiny_corpus):
    with pytest.raises(ConfigError, match="nothing to forget"):
        ForgetSet.of_patients(tiny_corpus, ["patient/nobody"])
    with pytest.raises(ConfigError, match="closure must hold"):
        ForgetSet(frozenset({"a"}), frozenset({"b"}))


def test_installing_the_library_does_not_pull_in_the_lab():
    code = ("import sys, sbu.experiment, sbu.sync, sbu.eval.study, sbu.batch\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jupyterlab', 'notebook', 'nbval')))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() \
        == "[]"
