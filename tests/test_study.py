"""The replication study's plumbing on the tiny cohort: every arm runs, the tidy table is complete, PrivLeak is
read against the retrain arm, intervals appear with two seeds, and the claims read the run's own numbers."""

from __future__ import annotations

import numpy as np
import pytest

from sbu.errors import ConfigError
from sbu.eval import study

STEPS = {"steps": 5, "batch_size": 4}


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SBU_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SBU_BARRIER_KEY", raising=False)


def test_arms_name_every_condition_and_ablation():
    names = [a.name for a in study.arms(["sra", "npo"])]
    assert names == ["none", "memory-only", "parameter-only (sra)", "parameter-only (npo)", "sbu", study.RETRAIN]
    ablated = {a.name: a for a in study.arms(["sra"], ablations=True)}
    assert not ablated["sbu − barrier"].barrier and ablated["sbu − verify rounds"].max_rounds == 1
    assert not ablated["sbu − repair"].repair and dict(ablated["sbu, prior uniform"].unlearn) == {"prior": "uniform"}
    for bad in ([], ["sra", "nope"]):
        with pytest.raises(ConfigError, match="methods"):
            study.arms(bad)


def test_confidence_interval():
    mean, half, n = study.confidence([1.0, 2.0, 3.0])
    assert (mean, n) == (2.0, 3) and half == pytest.approx(2.4841, abs=1e-3)  # t(0.975, 2) · 1 / √3
    assert np.isnan(study.confidence([5.0])[1]) and study.confidence([])[2] == 0


@pytest.mark.slow
def test_study_runs_every_arm_and_reads_privleak_against_retrain(tiny_corpus, tiny_lm, tmp_path):
    # the tiny recipe cannot train a model without its forget patient (see conftest); the tiny model stands as the
    # gold standard's model here: this test is about the study's plumbing, not its numbers
    arms = study.arms(["sra"])
    results, per_round = study.run_study(tiny_corpus, tiny_lm, {"forget01": tiny_lm}, work=tmp_path / "work",
                                         splits=["forget01"], seeds=[0, 1], conditions=arms, rounds=1,
                                         unlearn=STEPS, progress=False)
    assert set(results.condition) == {a.name for a in arms} and set(results.seed) == {0, 1}
    counts = results.groupby(["seed", "condition"]).metric.nunique()
    assert counts.nunique() == 1, "every arm reports the same metrics"
    values = results.set_index(["seed", "condition", "metric"])["value"]
    for seed in (0, 1):
        assert values[(seed, study.RETRAIN, "min_k_plus_plus PrivLeak")] == 0
        assert values[(seed, "none", "exposure r0")] > 0, "nothing forgotten: memory still shows the patient"
        assert values[(seed, "memory-only", "exposure r0")] == 0
        assert values[(seed, "sbu", "exposure rR")] == 0 and values[(seed, "sbu", "recreated rR")] == 0
    assert set(per_round["round"]) == {0, 1} and len(per_round) == 2 * len(arms) * 2
    table = study.main_table(results)
    assert list(table.index) == [a.name for a in arms] and "±" in table.loc["sbu", "exposure after R"]
    found = study.claims(results, rounds=1)
    assert len(found) >= 4 and found.held.dtype == bool
    assert "held" in study.describe_claims(found)
