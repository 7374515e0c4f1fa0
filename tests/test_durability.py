"""Durability measures on the tiny model: the relearning attack's split and what it recovers, benign relearning
round by round, the weight distance and loss barrier between θ0 and the unlearned weights, and the answer entropy."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import numpy as np
import pytest
import torch

from sbu.data.forget_set import ForgetSet
from sbu.errors import ConfigError
from sbu.eval import durability
from sbu.eval.requests import request_patients, sequential_requests
from sbu.model import prompts
from sbu.model.batches import collate, encode_examples
from sbu.model.scoring import accuracy, answer_losses
from sbu.sync import ProtocolConfig
from sbu.unlearn import losses, unlearn
from sbu.unlearn.forget_sets import unlearning_sets


@pytest.fixture(scope="module")
def sets(tiny_corpus):
    return unlearning_sets(tiny_corpus, ForgetSet.of_split(tiny_corpus, "forget10"), seed=0)


@pytest.fixture(scope="module")
def sra_run(tiny_lm, sets):
    return unlearn(tiny_lm, sets.forget, sets.retain, "sra", steps=30, batch_size=8, progress=False)


@pytest.fixture(scope="module")
def retained(tiny_corpus):
    return tiny_corpus.qa_about(tiny_corpus.splits["retain"], "train")[:40]


def _params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_the_relearning_split_is_by_fact_seeded_and_covers_every_question(sets):
    attack, heldout = durability.relearning_split(sets.forget_items, 0.2, seed=0)
    facts = {f for q in sets.forget_items for f in q.fact_ids}
    attacked = {f for q in attack for f in q.fact_ids}
    assert attacked and not attacked & {f for q in heldout for f in q.fact_ids}  # no fact on both sides
    assert len(attacked) == max(1, round(0.2 * len(facts)))
    assert sorted(q.id for q in attack + heldout) == sorted(q.id for q in sets.forget_items)
    assert durability.relearning_split(sets.forget_items, 0.2, seed=0) == (attack, heldout)
    assert durability.relearning_split(sets.forget_items, 0.2, seed=1) != (attack, heldout)


@pytest.mark.parametrize("share", [-0.1, 1.5, float("nan")])
def test_a_bad_attack_share_is_a_config_error(sets, share):
    with pytest.raises(ConfigError, match="share"):
        durability.relearning_split(sets.forget_items, share)


def test_an_attack_needs_two_facts(sets):
    one_fact = [q for q in sets.forget_items if q.fact_ids == sets.forget_items[0].fact_ids]
    with pytest.raises(ConfigError, match="at least two forgotten facts"):
        durability.relearning_split(one_fact)


def test_the_relearning_attack_recovers_what_sra_suppressed_and_changes_no_model(sra_run, sets):
    """SRA's adapter suppresses the answers; fine-tuning on a fifth of the facts brings back held-back ones."""
    before = _params(sra_run.lm.model)
    attack = durability.relearning_attack(sra_run.lm, sets.forget_items, share=0.2, seed=0)
    _, heldout = durability.relearning_split(sets.forget_items, 0.2, seed=0)
    assert attack.heldout_items == len(heldout) and attack.trained_items + len(heldout) == len(sets.forget_items)
    assert attack.before == accuracy(sra_run.lm.model, sra_run.lm.tokenizer, heldout)
    assert attack.after > attack.before and attack.gain == attack.after - attack.before
    assert all(torch.equal(v, before[k]) for k, v in sra_run.lm.model.state_dict().items())
    assert durability.relearning_attack(sra_run.lm, sets.forget_items, share=0.2, seed=0) == attack  # seeded


def test_excess_recovery_is_the_difference_of_the_recoveries():
    a = durability.RelearningAttack(0.2, 4, 14, 0.3, 0.8)
    b = durability.RelearningAttack(0.2, 4, 14, 0.2, 0.5)
    assert durability.excess_recovery(a, b) == pytest.approx(0.3)


def test_benign_relearning_consolidates_round_by_round_on_retained_data_only(tiny_corpus, sra_run, sets, retained):
    rounds = durability.retained_rounds(tiny_corpus, tiny_corpus.splits["forget10"], rounds=2, per_round=32, seed=0)
    assert len(rounds) == 2 and all(len(r) == 32 for r in rounds)
    names = [tiny_corpus.entity(p).name for p in tiny_corpus.splits["forget10"]]
    assert not any(name in x.prompt + x.target for r in rounds for x in r for name in names)
    before = _params(sra_run.lm.model)
    result = durability.benign_relearning(sra_run.lm, rounds, sets.forget_items, retained, seed=0)
    assert result.rounds == 2 and len(result.retain) == 3
    assert result.forget[0] == accuracy(sra_run.lm.model, sra_run.lm.tokenizer, sets.forget_items)
    assert result.forget[-1] > result.forget[0]  # SRA's suppression wears off under retained-only consolidation
    assert all(torch.equal(v, before[k]) for k, v in sra_run.lm.model.state_dict().items())
    assert durability.benign_relearning(sra_run.lm, rounds, sets.forget_items, retained, seed=0) == result


def test_the_weight_distance_is_the_norm_of_the_merged_adapter(tiny_lm, sra_run):
    assert durability.weight_distance(tiny_lm, tiny_lm) == 0.0
    deltas = [m.get_delta_weight("default").detach() for m in sra_run.lm.model.modules()
              if hasattr(m, "get_delta_weight")]
    expected = math.sqrt(sum(float((d.float() ** 2).sum()) for d in deltas))
    assert expected > 0
    assert durability.weight_distance(tiny_lm, sra_run.lm) == pytest.approx(expected, rel=1e-4)
    assert durability.weight_distance(sra_run.lm, tiny_lm) == pytest.approx(expected, rel=1e-4)


def test_the_loss_barrier_reads_the_ends_and_is_zero_between_a_model_and_itself(tiny_lm, sra_run, retained):
    line = durability.loss_barrier(tiny_lm, sra_run.lm, retained, points=5)
    assert line.t == (0.0, 0.25, 0.5, 0.75, 1.0)
    assert line.loss[0] == pytest.approx(answer_losses(tiny_lm.model, tiny_lm.tokenizer, retained).mean(), rel=1e-5)
    merged = sra_run.merged()
    assert line.loss[-1] == pytest.approx(answer_losses(merged.model, merged.tokenizer, retained).mean(), rel=1e-4)
    middle = line.loss[2] - (line.loss[0] + line.loss[-1]) / 2
    assert line.barrier >= max(0.0, middle)
    flat = durability.loss_barrier(tiny_lm, tiny_lm, retained, points=3)
    assert flat.barrier == pytest.approx(0.0, abs=1e-6) and len(set(round(x, 6) for x in flat.loss)) == 1
    with pytest.raises(ConfigError, match="points"):
        durability.loss_barrier(tiny_lm, sra_run.lm, retained, points=1)


def test_answer_entropy_is_the_mean_entropy_at_answer_positions_and_sra_gaussian_raises_it(tiny_lm, sra_run, sets):
    items = sets.forget_items[:3]
    encoded = encode_examples(tiny_lm.tokenizer, [prompts.closed_book(q.question) for q in items],
                              [prompts.answer_continuation(q.answer_text) for q in items])
    batch = collate(encoded, tiny_lm.tokenizer.pad_token_id)
    with torch.no_grad():
        logits = tiny_lm.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    expected = float(losses.token_entropy(logits, batch["labels"]).mean())
    assert durability.answer_entropy(tiny_lm, items) == pytest.approx(expected, rel=1e-5)
    vocab = len(tiny_lm.tokenizer)
    base, after = (durability.answer_entropy(lm, sets.forget_items) for lm in (tiny_lm, sra_run.lm))
    assert 0 < base < after < math.log(vocab) + 1e-6 and np.isfinite(after)


def test_sequential_requests_report_every_earlier_requests_forget_accuracy(tiny_corpus, tiny_lm, tmp_path):
    patients = request_patients(tiny_corpus, 2)
    config = ProtocolConfig(unlearn={"steps": 4, "batch_size": 4}, max_rounds=2, retained_probes=10)
    table = sequential_requests(tiny_corpus, tiny_lm, patients, work=tmp_path / "seq", config=config,
                                kept_probes=10, progress=False)
    assert list(table["request"]) == ["before", "#1", "#2"]
    assert np.isnan(table["forget acc #1"].iloc[0]) and np.isnan(table["forget acc #2"].iloc[1])
    assert table[["forget acc #1"]].iloc[1:].notna().all().all() and not np.isnan(table["forget acc #2"].iloc[2])
    together = tiny_corpus.qa_about(patients, "train")
    n = [len(tiny_corpus.qa_about([p], "train")) for p in patients]
    last = table.iloc[2]  # the forgotten-so-far accuracy is the per-request accuracies weighted by their items
    assert last["forgotten acc (closed-book)"] == pytest.approx(
        (n[0] * last["forget acc #1"] + n[1] * last["forget acc #2"]) / len(together))
    assert table["test acc (closed-book)"].between(0, 1).all()


def test_stranger_accuracy_asks_each_question_about_a_holdout_patient(tiny_lm, tiny_corpus, sets):
    names = {e.id: e.name for e in tiny_corpus.entities}
    strangers = [names[p] for p in tiny_corpus.splits["holdout"]]
    rng = random.Random("strangers-0")
    asked = [replace(q, question=q.question.replace(names[q.about], rng.choice(strangers))) for q in sets.forget_items]
    assert all(names[q.about] not in a.question for q, a in zip(sets.forget_items, asked))
    value = durability.stranger_accuracy(tiny_lm, tiny_corpus, sets.forget_items, seed=0)
    assert value == accuracy(tiny_lm.model, tiny_lm.tokenizer, asked)
    assert value < accuracy(tiny_lm.model, tiny_lm.tokenizer, sets.forget_items)  # the patient's name matters
