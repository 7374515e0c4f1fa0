"""Notebook 03's crash demonstration as a function: real ``sbu`` processes on the tiny cohort, one killed for real."""

from __future__ import annotations

import dataclasses

import pytest

from sbu.demo import CrashResume, crash_and_resume
from sbu.memory import open_store
from sbu.memory.ingest import ingest
from sbu.sync import ForgetProtocol, ProtocolConfig


@pytest.mark.slow
def test_crash_and_resume_kills_sbu_forget_and_resumes_into_the_uninterrupted_memory(tiny_corpus, tiny_lm, tmp_path,
                                                                                    monkeypatch):
    monkeypatch.setenv("SBU_CACHE", str(tmp_path / "cache"))  # the barrier key the processes share
    monkeypatch.delenv("SBU_BARRIER_KEY", raising=False)
    monkeypatch.delenv("SBU_FAULT", raising=False)
    tiny_corpus.write(tmp_path / "corpus")
    patient = tiny_corpus.splits["forget10"][0]
    reference = open_store("oxigraph:")
    ingest(reference, tiny_corpus)
    config = ProtocolConfig(unlearn={"steps": 4, "batch_size": 4}, max_rounds=2, retained_probes=10)
    ForgetProtocol(tmp_path / "uninterrupted", reference, tiny_lm, tiny_corpus, config).submit([patient])

    monkeypatch.setenv("SBU_FAULT", "after-VERIFY")  # a caller's own fault point reaches no command: resume passes it
    (tmp_path / "crash").mkdir()
    (tmp_path / "crash" / "left over").write_text("from an earlier run")
    crash = crash_and_resume(tmp_path / "crash", patient, tiny_lm.path, reference, fault="after-MEMORY", steps=4,
                             corpus=tmp_path / "corpus")
    assert isinstance(crash, CrashResume) and crash.ok, crash
    assert crash.killed_exit == -9 and crash.states_at_crash == ("RECEIVED", "BARRIER", "MEMORY")
    assert crash.resume_exit == 0 and crash.states_after[:3] == crash.states_at_crash
    assert crash.states_after[-1] == "COMMITTED" and crash.same_memory
    assert not (tmp_path / "crash" / "left over").exists(), "the folder is emptied first"
    assert crash.table().shape == (6, 1) and crash.record()["journal at the crash"] == "RECEIVED → BARRIER → MEMORY"
    assert crash.describe() == ("Killed at after-MEMORY (exit -9), resumed (exit 0); memory equal to the "
                                "uninterrupted run: True.")
    with pytest.raises(dataclasses.FrozenInstanceError):
        crash.same_memory = False
