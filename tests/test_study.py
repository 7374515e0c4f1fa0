"""The replication study's plumbing on the tiny cohort: every arm runs, the tidy table is complete, PrivLeak is
read against the retrain arm, intervals appear with two seeds, and the claims read the run's own numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sbu.cli import main
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
    assert {a.name: a for a in study.arms(["sra"])}["sbu"].obligations and not ablated["sbu − obligation"].obligations
    assert all(a.obligations for name, a in ablated.items() if name.startswith("sbu") and name != "sbu − obligation")
    assert not ablated["sbu − repair"].repair and dict(ablated["sbu, prior uniform"].unlearn) == {"prior": "uniform"}
    for bad in ([], ["sra", "nope"]):
        with pytest.raises(ConfigError, match="methods"):
            study.arms(bad)


def test_confidence_interval():
    mean, half, n = study.confidence([1.0, 2.0, 3.0])
    assert (mean, n) == (2.0, 3) and half == pytest.approx(2.4841, abs=1e-3)  # t(0.975, 2) · 1 / √3
    assert np.isnan(study.confidence([5.0])[1]) and study.confidence([])[2] == 0


def test_main_table_shows_a_dash_where_nothing_could_be_measured():
    rows = [{"dataset": "cohort", "forget_split": "forget01", "n_forgotten": 1, "seed": seed, "condition": "sbu",
             "metric": metric, "value": value} for seed in (0, 1)
            for metric, value in (("forget acc", 0.25 + seed / 10), ("collateral acc", float("nan")))]
    table = study.main_table(pd.DataFrame(rows))
    assert table.loc["sbu", "collateral acc"] == "—" and table.loc["sbu", "forget acc"].startswith("0.30 ± ")


@pytest.mark.slow
def test_study_runs_every_arm_and_reads_privleak_against_retrain(tiny_corpus, tiny_lm, tmp_path, capsys):
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
    assert "collateral acc" in table.columns
    found = study.claims(results, rounds=1)
    assert len(found) >= 4 and found.held.dtype == bool
    assert "held" in study.describe_claims(found)

    # the same study run in pieces (one sweep run per seed) reads back as one, and reports what notebook 04 writes
    sweep = tmp_path / "sweep"
    for seed in (0, 1):
        run = sweep / f"seeds={seed}"
        run.mkdir(parents=True)
        results[results.seed == seed].to_csv(run / "results.csv", index=False)
        per_round[per_round.seed == seed].to_csv(run / "rounds.csv", index=False)
        (run / "done.json").write_text("{}")
    (sweep / "seeds=2").mkdir()  # an unfinished run (no done.json) is not read
    (sweep / "seeds=2" / "results.csv").write_text("garbage")
    again, rounds_again = study.from_sweep(sweep)
    assert len(again) == len(results) and len(rounds_again) == len(per_round)
    assert study.main_table(again).equals(table)
    assert main(["study-report", str(sweep), "--out", str(tmp_path / "report")]) == 0
    written = {p.name for p in (tmp_path / "report").iterdir()}
    assert {"summary.csv", "main_table_forget01.csv", "claims.csv", "backflow.png", "backflow.svg",
            "privacy_utility.png", "costs.svg"} <= written
    assert "claim checks held" in capsys.readouterr().out
    reread = pd.read_csv(tmp_path / "report" / "claims.csv")
    assert list(reread.claim) == list(found.claim) and list(reread.held) == list(found.held)


def test_a_sweep_read_as_one_study_must_be_one(tmp_path):
    with pytest.raises(ConfigError, match="no finished run"):
        study.from_sweep(tmp_path)
    rows = pd.DataFrame([{"dataset": "cohort", "forget_split": "forget05", "n_forgotten": 3, "seed": 0,
                          "condition": "none", "metric": "forget acc", "value": 1.0}])
    for name in ("methods=[sra]", "methods=[npo]"):  # a methods sweep repeats the shared arms in every run
        run = tmp_path / name
        run.mkdir()
        rows.to_csv(run / "results.csv", index=False)
        (run / "done.json").write_text("{}")
    with pytest.raises(ConfigError, match="rounds.csv missing"):
        study.from_sweep(tmp_path)
    for name in ("methods=[sra]", "methods=[npo]"):
        pd.DataFrame([{"condition": "none", "round": 0}]).to_csv(tmp_path / name / "rounds.csv", index=False)
    with pytest.raises(ConfigError, match="'none' on forget05 seed 0 is in more than one run"):
        study.from_sweep(tmp_path)
