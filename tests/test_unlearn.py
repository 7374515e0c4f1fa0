"""LoRA unlearning on the tiny model: every registered method runs, the base model is never changed, adapters save,
reload and merge to the same function, SRA pushes the forget answers away; the method registry and each method's
own hyper-parameters; forget sets from a plan or a split."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pytest
import torch
from peft import LoraConfig, get_peft_model

from sbu.data.forget_set import ForgetSet
from sbu.errors import ConfigError
from sbu.eval.calibration import CalibrationStop
from sbu.memory import open_store
from sbu.memory.ingest import ingest
from sbu.memory.plan import plan_forget
from sbu.model import prompts
from sbu.model.adapters import lora_config
from sbu.model.batches import collate, encode_example, encode_examples
from sbu.model.recipe import Example
from sbu.model.scoring import answer_losses, answer_token_stats
from sbu.unlearn import METHODS, losses
from sbu.unlearn.forget_sets import unlearning_sets
from sbu.unlearn.loop import Callback, load_adapter, reinforced_model, unlearn
from sbu.unlearn.losses import answer_mask
from sbu.unlearn.methods import (
    Counterfactuals,
    DistortSRAConfig,
    NPOConfig,
    References,
    SimNPOConfig,
    SRAConfig,
    UnlearnConfig,
    WideSRAConfig,
    distort_toward_fresh_init,
    idk_answer,
    register,
)


@pytest.fixture(scope="module")
def sets(tiny_corpus):
    return unlearning_sets(tiny_corpus, ForgetSet.of_split(tiny_corpus, "forget10"), seed=0)


def _params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_trains_an_adapter_and_leaves_the_base_model_alone(tiny_lm, sets, method):
    before = _params(tiny_lm.model)
    run = unlearn(tiny_lm, sets.forget, sets.retain, method, steps=3, batch_size=4, progress=False)
    assert list(run.log.step) == [1, 2, 3] and np.isfinite(run.log.loss).all()
    after = _params(tiny_lm.model)
    assert all(torch.equal(before[k], after[k]) for k in before), "the base model changed"
    trainable = [n for n, p in run.lm.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert isinstance(run.config, METHODS[method].config) and run.config.steps == 3
    assert run.lm.info["unlearning"] == {"method": method, **asdict(run.config), "stopped_at": None}


def test_sra_pushes_the_forget_answers_away_more_than_the_retained_ones(tiny_lm, tiny_corpus, sets):
    retained = tiny_corpus.qa_about(tiny_corpus.splits["retain"], "train")[:40]
    run = unlearn(tiny_lm, sets.forget, sets.retain, "sra", steps=30, batch_size=8, alpha=5.0, progress=False)
    forget_rise = (answer_losses(run.lm.model, run.lm.tokenizer, sets.forget_items).mean()
                   - answer_losses(tiny_lm.model, tiny_lm.tokenizer, sets.forget_items).mean())
    retain_rise = (answer_losses(run.lm.model, run.lm.tokenizer, retained).mean()
                   - answer_losses(tiny_lm.model, tiny_lm.tokenizer, retained).mean())
    assert forget_rise > 0.5 and forget_rise > 3 * retain_rise


def test_same_seed_same_adapter(tiny_lm, sets):
    a = unlearn(tiny_lm, sets.forget, sets.retain, "sra", steps=3, batch_size=4, progress=False)
    b = unlearn(tiny_lm, sets.forget, sets.retain, "sra", steps=3, batch_size=4, progress=False)
    assert list(a.log.loss) == list(b.log.loss)


def test_an_adapter_saves_reloads_and_merges_to_the_same_function(tiny_lm, sets, tmp_path):
    run = unlearn(tiny_lm, sets.forget, sets.retain, "sra", steps=5, batch_size=4, progress=False)
    path = run.save(tmp_path / "adapter")
    assert (path / "adapter_config.json").is_file() and (path / "unlearning_log.csv").is_file()
    reloaded, merged = load_adapter(tiny_lm, path), run.merged()
    items = sets.forget_items[:8]
    expected = answer_losses(run.lm.model, run.lm.tokenizer, items)
    assert np.allclose(answer_losses(reloaded.model, reloaded.tokenizer, items), expected, atol=1e-5)
    assert np.allclose(answer_losses(merged.model, merged.tokenizer, items), expected, atol=1e-4)
    assert not any("lora_" in n for n, _ in merged.model.named_parameters())


def test_the_calibration_stop_reads_the_membership_signal(tiny_lm, sets):
    stop = CalibrationStop(sets.forget_items, sets.calibration_items, every=4, attack="loss")
    run = unlearn(tiny_lm, sets.forget, sets.retain, "sra", steps=40, batch_size=8, alpha=1.0, callbacks=[stop],
                  progress=False)
    checks = run.log.dropna(subset=["calibration_auc"])
    assert len(checks) >= 1 and checks.step.iloc[0] == 4
    if run.stopped_at is not None:
        assert checks.calibration_auc.iloc[-1] <= 0.5 and run.stopped_at == checks.step.iloc[-1] < 40
    else:
        assert (checks.calibration_auc > 0.5).all()


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "forget_everything"}, "unknown unlearning method"),
    ({"learning_rate": 1.0}, "unknown unlearning hyper"),
    ({"steps": 0}, "steps must be an integer in"), ({"prior": "cauchy"}, "prior"),
    ({"retain_loss": "mse"}, "retain_loss"), ({"calibrate_attack": "loss"}, "unknown unlearning hyper")])
def test_bad_settings_are_clear_errors(tiny_lm, sets, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        unlearn(tiny_lm, sets.forget, sets.retain, **{"method": "sra", "steps": 1, "progress": False, **kwargs})


@pytest.mark.parametrize("kwargs, message", [({"attack": "reference"}, "calibration attack must be one of"),
                                             ({"attack": "oracle"}, "calibration attack"),
                                             ({"every": 0}, "every .* must be an integer"),
                                             ({"every": True}, "every .* must be an integer")])
def test_bad_calibration_settings_are_clear_errors(sets, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        CalibrationStop(sets.forget_items, sets.calibration_items, **kwargs)


def test_a_callback_sees_every_step_adds_log_columns_and_stops_training(tiny_lm, sets):
    class Recorder(Callback):
        def __init__(self, stop_at=None):
            self.budget, self.seen, self.stop_at = None, [], stop_at

        def on_train_begin(self, config):
            self.budget = config.steps

        def on_step_end(self, step, model, tokenizer, record):
            assert model.training and tokenizer is tiny_lm.tokenizer and record["step"] == step
            self.seen.append(step)
            record["twice_loss"] = 2 * record["loss"]
            return step == self.stop_at

    plain = unlearn(tiny_lm, sets.forget, sets.retain, "grad_diff", steps=4, batch_size=4, progress=False)
    first, second = Recorder(stop_at=2), Recorder()
    run = unlearn(tiny_lm, sets.forget, sets.retain, "grad_diff", steps=4, batch_size=4, progress=False,
                  callbacks=[first, second])
    assert first.budget == second.budget == 4 and first.seen == second.seen == [1, 2]  # both called at the stop
    assert run.stopped_at == 2 and run.lm.info["unlearning"]["stopped_at"] == 2 and list(run.log.step) == [1, 2]
    assert list(run.log.twice_loss) == [2 * x for x in run.log.loss]
    assert list(run.log.loss) == list(plain.log.loss[:2])  # callbacks change nothing in training


def test_the_parameter_pathway_imports_nothing_from_evaluation():
    root = Path(__file__).resolve().parents[1]
    code = ("import sys; import sbu.unlearn, sbu.unlearn.forget_sets, sbu.unlearn.loop, sbu.unlearn.losses, "
            "sbu.unlearn.methods; [m.configure() for m in sbu.unlearn.METHODS.values()]; "
            "print([m for m in sys.modules if m.startswith('sbu.eval')])")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root, env=env)
    assert out.stdout.strip() == "[]"


def test_every_method_declares_its_facts():
    assert list(METHODS) == ["sra", "grad_ascent", "grad_diff", "npo", "simnpo", "me", "idk_nll",  # notebooks' order
                             "sra_wide", "sra_distort"]
    for name, method in METHODS.items():
        assert method.name == name and callable(method.loss) and issubclass(method.config, UnlearnConfig)
        assert isinstance(method.needs_retain, bool) and callable(method.targets) and callable(method.random_model)
        assert callable(method.counterfactual) and callable(method.prepare)
    assert [name for name, method in METHODS.items() if not method.needs_retain] == ["grad_ascent"]
    configs = {name: method.config for name, method in METHODS.items() if method.config is not UnlearnConfig}
    assert configs == {"sra": SRAConfig, "npo": NPOConfig, "simnpo": SimNPOConfig, "sra_wide": WideSRAConfig,
                       "sra_distort": DistortSRAConfig}
    shared = {f.name for f in fields(UnlearnConfig)}
    assert {"steps", "batch_size", "lr", "lora_rank", "lora_alpha", "lora_targets", "alpha", "seed"} <= shared
    assert {f.name for f in fields(SRAConfig)} - shared == {"tau", "prior", "retain_loss", "generic_strength",
                                                            "reinforce_epochs"}
    assert {f.name for f in fields(NPOConfig)} - shared == {"beta"}
    assert {f.name for f in fields(SimNPOConfig)} - shared == {"simnpo_beta", "simnpo_gamma"}
    assert METHODS["sra"].random_model(SRAConfig(prior="random_model"))
    assert not any(m.random_model(m.config()) for m in METHODS.values())  # not with the default prior, nor others
    assert all(METHODS[name].counterfactual(SRAConfig(prior=prior)) for name in ("sra", "sra_wide", "sra_distort")
               for prior in ("counterfactual", "generic"))
    assert not any(m.counterfactual(m.config()) for m in METHODS.values())
    assert {f.name for f in fields(DistortSRAConfig)} - {f.name for f in fields(SRAConfig)} == {"distortion"}
    assert WideSRAConfig().lora_rank >= 128 and WideSRAConfig().lora_alpha / WideSRAConfig().lora_rank == 2
    forget = [Example("Question: Who?\nAnswer:", " Ann"), Example("", "Ann lives in Oslo."),
              Example("Question: Where?\nAnswer:", " Oslo")]
    assert METHODS["idk_nll"].targets(forget) == [Example(forget[0].prompt, idk_answer(0)),
                                                  Example(forget[2].prompt, idk_answer(1))]
    assert all(m.targets(forget) == forget for name, m in METHODS.items() if name != "idk_nll")


def test_a_method_registered_with_the_decorator_runs_through_unlearn(tiny_lm, sets):
    @dataclass(frozen=True)
    class ScaledConfig(UnlearnConfig):
        scale: float = 0.5

    try:
        @register("scaled_ascent", config=ScaledConfig, needs_retain=False)
        def scaled_ascent(step):
            return step.config.scale * losses.grad_ascent(step.logits("forget"), step.labels("forget")), None

        assert list(METHODS)[-1] == "scaled_ascent" and METHODS["scaled_ascent"].loss is scaled_ascent
        run = unlearn(tiny_lm, sets.forget, [], "scaled_ascent", steps=2, batch_size=4, scale=1.0, progress=False)
        reference = unlearn(tiny_lm, sets.forget, [], "grad_ascent", steps=2, batch_size=4, progress=False)
        assert run.config == ScaledConfig(steps=2, batch_size=4, scale=1.0)
        assert run.lm.info["unlearning"]["scale"] == 1.0 and run.log.retain_term.isna().all()
        assert list(run.log.loss) == list(reference.log.loss)  # scale 1 is GradAscent, draw for draw
        with pytest.raises(ConfigError, match="tau for scaled_ascent"):
            unlearn(tiny_lm, sets.forget, [], "scaled_ascent", steps=1, tau=2.0, progress=False)
        with pytest.raises(ConfigError, match="already registered"):
            register("scaled_ascent")(scaled_ascent)
    finally:
        METHODS.pop("scaled_ascent", None)
    assert "scaled_ascent" not in METHODS


def test_a_method_that_needs_a_retain_set_refuses_an_empty_one(tiny_lm, sets):
    with pytest.raises(ConfigError, match="npo needs a retain set"):
        unlearn(tiny_lm, sets.forget, [], "npo", steps=1, progress=False)


@pytest.mark.parametrize("method, hparam, owner", [
    ("npo", "tau", "sra, sra_wide, sra_distort"), ("sra", "beta", "npo"), ("grad_diff", "simnpo_gamma", "simnpo"),
    ("simnpo", "prior", "sra, sra_wide, sra_distort"), ("idk_nll", "retain_loss", "sra, sra_wide, sra_distort"),
    ("sra_wide", "distortion", "sra_distort")])
def test_a_hyper_parameter_of_another_method_is_an_error_naming_the_methods_own(tiny_lm, sets, method, hparam, owner):
    own = ", ".join(sorted(f.name for f in fields(METHODS[method].config)))
    with pytest.raises(ConfigError, match="unknown unlearning hyper-parameter") as error:
        unlearn(tiny_lm, sets.forget, sets.retain, method, steps=1, progress=False, **{hparam: 1.0})
    message = str(error.value)
    assert f"{hparam} for {method} ({hparam} is a hyper-parameter of {owner})" in message
    assert message.endswith(f"{method}'s hyper-parameters: {own}") and hparam not in own.split(", ")


@pytest.mark.parametrize("method, hparams", [
    ("sra", {"tau": 0.5, "prior": "uniform", "retain_loss": "nll"}), ("npo", {"beta": 0.3}),
    ("simnpo", {"simnpo_beta": 1.5, "simnpo_gamma": 0.5})])
def test_each_method_takes_its_own_hyper_parameters_under_todays_names(method, hparams):
    config = METHODS[method].configure(steps=7, lora_targets=["c_attn"], **hparams)
    assert {name: getattr(config, name) for name in hparams} == hparams
    assert config.steps == 7 and config.lora_targets == ("c_attn",)
    assert METHODS[method].configure().steps == UnlearnConfig().steps == 200  # the budget where no profile is known


def test_forget_sets_from_a_plan_equal_those_from_the_split(tiny_corpus):
    store = open_store("oxigraph:")
    ingest(store, tiny_corpus)
    plan = plan_forget(store, tiny_corpus.splits["forget10"])
    assert unlearning_sets(tiny_corpus, plan.forget_set()) == unlearning_sets(
        tiny_corpus, ForgetSet.of_split(tiny_corpus, "forget10"))


def test_retain_and_calibration_sets_hold_no_forgotten_holdout_or_validation_patient(tiny_corpus, sets):
    forgotten = set(tiny_corpus.splits["forget10"])
    holdout = set(tiny_corpus.splits["holdout"])
    validation = {q.about for q in sets.validation_items}
    names = {e.name for e in tiny_corpus.entities if e.id in forgotten | holdout | validation}
    assert sets.forget and sets.retain and validation and not validation & forgotten
    for example in sets.retain:
        assert not any(name in example.prompt for name in names), example.prompt
    assert not {q.about for q in sets.calibration_items} & {e.id for e in tiny_corpus.entities}
    assert any("Context:" in x.prompt for x in sets.retain), "part of D_r keeps reading"


def test_cached_reference_logits_equal_a_forward_pass_of_theta0_at_every_answer_position(tiny_lm, sets):
    tokenizer = tiny_lm.tokenizer
    encoded = [encode_example(tokenizer, x.prompt, x.target) for x in sets.retain[:12]]
    lora = LoraConfig(r=4, target_modules=["c_attn"], fan_in_fan_out=True, init_lora_weights=False)
    model = get_peft_model(copy.deepcopy(tiny_lm.model), lora)  # a non-zero adapter: θ ≠ θ0
    references = References(model, {"retain": encoded}, tokenizer.pad_token_id, batch_size=5)
    chosen = [7, 2, 11, 0]
    batch = {**collate([encoded[i] for i in chosen], tokenizer.pad_token_id), "index": torch.tensor(chosen)}
    cached = references.logits("retain", batch)
    with torch.no_grad():
        theta0 = tiny_lm.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        adapted = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    mask = answer_mask(batch["labels"])
    assert torch.allclose(cached[:, :-1][mask], theta0[:, :-1][mask], atol=1e-5)
    assert not torch.allclose(cached[:, :-1][mask], adapted[:, :-1][mask], atol=1e-3)  # the check can fail


def test_a_typed_config_from_the_experiment_runs_as_its_keywords_do(tiny_lm, sets, tmp_path):
    from sbu.experiment import Experiment
    from sbu.unlearn.methods import SRAConfig

    exp = Experiment.from_params(out_dir=str(tmp_path), unlearn_steps=3, seed=1)
    config = exp.unlearn_config("sra", tau=2.0)
    assert isinstance(config, SRAConfig) and (config.steps, config.seed, config.tau) == (3, 1, 2.0)
    typed = unlearn(tiny_lm, sets.forget, sets.retain, "sra", config=config, progress=False)
    keywords = unlearn(tiny_lm, sets.forget, sets.retain, "sra", steps=3, seed=1, tau=2.0, progress=False)
    assert typed.log["loss"].tolist() == keywords.log["loss"].tolist()
    with pytest.raises(ConfigError, match="either its config"):
        unlearn(tiny_lm, sets.forget, sets.retain, "npo", config=config, progress=False)
    with pytest.raises(ConfigError, match="tau"):
        exp.unlearn_config("npo", tau=2.0)


# -- the counterfactual prior ----------------------------------------------------------------------------------
def test_counterfactual_prompts_ask_the_same_question_about_every_holdout_patient(tiny_corpus, sets):
    names = {p: tiny_corpus.entity(p).name for p in tiny_corpus.splits["holdout"]}
    assert len(sets.counterfactual) == len(sets.forget) and len(names) >= 2
    for item, example, strangers in zip(sets.forget_items, sets.forget, sets.counterfactual):
        own = tiny_corpus.entity(item.about).name
        assert own in example.prompt and len(strangers) == len(names)
        assert {p.replace(n, own) for p, n in zip(strangers, names.values())} == {example.prompt}
        assert not any(own in p for p in strangers)


def test_counterfactual_logits_are_theta0_on_the_strangers_question_at_the_aligned_answer_positions(tiny_lm, sets):
    run = unlearn(tiny_lm, sets.forget, sets.retain, "sra", steps=3, batch_size=4, progress=False)  # θ ≠ θ0
    model, tokenizer, pad = run.lm.model, tiny_lm.tokenizer, tiny_lm.tokenizer.pad_token_id
    encoded = [encode_examples(tokenizer, list(p), [x.target] * len(p)) for p, x in zip(sets.counterfactual,
                                                                                       sets.forget)]
    strangers = Counterfactuals(model, encoded, pad)
    rows = [0, 5]
    batch = {**collate([encode_example(tokenizer, sets.forget[i].prompt, sets.forget[i].target) for i in rows], pad),
             "index": torch.tensor(rows)}
    generator = torch.Generator().manual_seed(7)
    out = strangers.logits(batch, generator)
    replay = torch.Generator().manual_seed(7)
    mask = answer_mask(batch["labels"])
    for row, i in enumerate(rows):
        pick = int(torch.randint(len(encoded[i]), (1,), generator=replay))
        ids, labels = encoded[i][pick]
        with torch.no_grad():
            theta0 = tiny_lm.model(input_ids=torch.tensor([ids])).logits[0]
        own_mask = answer_mask(torch.tensor([labels]))[0]
        assert torch.allclose(out[row, :-1][mask[row]], theta0[:-1][own_mask], atol=1e-5)
        assert (out[row, :-1][~mask[row]] == 0).all()
    assert not torch.equal(strangers.logits(batch, generator), out) or len(encoded[0]) == 1  # drawn afresh


def test_the_counterfactual_prior_without_stranger_questions_is_a_clear_error(tiny_lm, sets):
    with pytest.raises(ConfigError, match="never-seen patients' questions per forget example"):
        unlearn(tiny_lm, sets.forget, sets.retain, "sra", prior="counterfactual", steps=1, progress=False)
    with pytest.raises(ConfigError, match="never-seen patients' questions"):
        unlearn(tiny_lm, sets.forget, sets.retain, "sra", prior="counterfactual", steps=1, progress=False,
                counterfactual=sets.counterfactual[:-1])


def _answer_entropy(lm, items):
    stats = answer_token_stats(lm.model, lm.tokenizer, [prompts.closed_book(q.question) for q in items],
                               [prompts.answer_continuation(q.answer_text) for q in items])
    return float(-np.concatenate([s.mu for s in stats]).mean())


def test_the_counterfactual_prior_moves_forget_loss_toward_strangers_and_keeps_theta0s_entropy(
        tiny_lm, tiny_corpus, sets):
    """The counterfactual reference is θ0 on a never-seen patient: the forget answers' LOSS rises toward the holdout
    patients', and the entropy at their positions stays near θ0's, where the gaussian prior flattens it."""
    holdout = tiny_corpus.qa_about(tiny_corpus.splits["holdout"], "train")
    base_gap = answer_losses(tiny_lm.model, tiny_lm.tokenizer, holdout).mean() - answer_losses(
        tiny_lm.model, tiny_lm.tokenizer, sets.forget_items).mean()
    runs = {prior: unlearn(tiny_lm, sets.forget, sets.retain, "sra", prior=prior, steps=30, batch_size=8,
                           progress=False, counterfactual=sets.counterfactual).lm
            for prior in ("counterfactual", "gaussian")}
    lm = runs["counterfactual"]
    gap = answer_losses(lm.model, lm.tokenizer, holdout).mean() - answer_losses(lm.model, lm.tokenizer,
                                                                                sets.forget_items).mean()
    assert 0 < gap < base_gap
    entropy = {name: _answer_entropy(m, sets.forget_items) for name, m in {"base": tiny_lm, **runs}.items()}
    assert abs(entropy["counterfactual"] - entropy["base"]) < 0.5, entropy
    assert entropy["gaussian"] > entropy["base"] + 2.0, entropy


def test_the_generic_reference_takes_out_what_more_training_on_the_forget_set_adds(tiny_lm, sets):
    """The generic prior's reference is the counterfactual one with the reinforced model's gain taken out: at the
    forget answers' positions it gives the forgotten answer tokens less probability than θ0 on a stranger does, and
    unlearning toward it runs from the stranger questions like the counterfactual prior."""
    run = unlearn(tiny_lm, sets.forget, sets.retain, "sra", prior="generic", reinforce_epochs=2, steps=3,
                  batch_size=4, progress=False, counterfactual=sets.counterfactual)
    assert run.config.prior == "generic" and len(run.log) == 3 and np.isfinite(run.log["loss"]).all()
    model, tokenizer, pad = run.lm.model, tiny_lm.tokenizer, tiny_lm.tokenizer.pad_token_id  # θ0: adapter off
    encoded = [encode_examples(tokenizer, list(p), [x.target] * len(p)) for p, x in zip(sets.counterfactual,
                                                                                       sets.forget)]
    reinforced = reinforced_model(tiny_lm, sets.forget, SRAConfig(prior="generic", reinforce_epochs=3))
    rows = list(range(min(8, len(sets.forget))))
    batch = {**collate([encode_example(tokenizer, sets.forget[i].prompt, sets.forget[i].target) for i in rows], pad),
             "index": torch.tensor(rows)}
    plain = Counterfactuals(model, encoded, pad).logits(batch, torch.Generator().manual_seed(3))
    generic = Counterfactuals(model, encoded, pad, reinforced, 5.0).logits(batch, torch.Generator().manual_seed(3))
    mask = answer_mask(batch["labels"])  # [B, T - 1]: position t predicts label t + 1
    targets = batch["labels"][:, 1:][mask]

    def answer_logp(logits):
        return torch.log_softmax(logits[:, :-1][mask], -1).gather(1, targets[:, None]).mean()

    assert answer_logp(generic) < answer_logp(plain) - 0.1
    assert torch.equal(Counterfactuals(model, encoded, pad, reinforced, 0.0).logits(
        batch, torch.Generator().manual_seed(3)), plain)  # strength 0: the counterfactual reference
    with pytest.raises(ConfigError, match="prior='generic' needs one list"):
        unlearn(tiny_lm, sets.forget, sets.retain, "sra", prior="generic", steps=1, progress=False)


# -- removal instead of suppression ----------------------------------------------------------------------------
def _targeted_deltas(base, run):
    merged = run.merged().model.state_dict()
    before = base.model.state_dict()
    return {k: merged[k] - before[k] for k in before if k.endswith((".c_attn.weight", ".c_fc.weight",
                                                                     ".c_proj.weight"))}


def test_a_wide_adapter_changes_the_weights_beyond_a_low_rank_patch(tiny_lm, sets):
    run = unlearn(tiny_lm, sets.forget, sets.retain, "sra_wide", steps=10, batch_size=8, progress=False)
    assert run.config.lora_rank == WideSRAConfig().lora_rank
    ranks = [int(torch.linalg.matrix_rank(d.float(), atol=1e-7)) for d in _targeted_deltas(tiny_lm, run).values()]
    assert max(ranks) > SRAConfig().lora_rank, ranks  # the default adapter's deltas are at most rank 8
    assert run.log.forget_term.iloc[-3:].mean() < run.log.forget_term.iloc[:3].mean()


def test_distortion_starts_the_adapter_exactly_on_the_way_to_a_fresh_initialisation(tiny_lm):
    config = DistortSRAConfig(distortion=0.4, seed=3)
    lora = lora_config(tiny_lm.model, config.lora_rank, config.lora_alpha, config.lora_targets)
    model = get_peft_model(copy.deepcopy(tiny_lm.model), lora)
    distort_toward_fresh_init(model, config)
    torch.manual_seed(3)
    fresh = type(tiny_lm.model)(tiny_lm.model.config).state_dict()
    merged = model.merge_and_unload().state_dict()
    before = tiny_lm.model.state_dict()
    targeted = [k for k in before if k.endswith((".c_attn.weight", ".c_fc.weight", ".c_proj.weight"))]
    assert targeted
    for k in targeted:
        assert torch.allclose(merged[k], before[k] + 0.4 * (fresh[k] - before[k]), atol=1e-5), k
    untouched = [k for k in before if k not in targeted and before[k].is_floating_point()]
    assert all(torch.equal(merged[k], before[k]) for k in untouched)


def test_distortion_starts_damaged_and_the_retain_term_repairs_it(tiny_lm, sets):
    run = unlearn(tiny_lm, sets.forget, sets.retain, "sra_distort", steps=20, batch_size=8, progress=False)
    assert run.log.retain_term.iloc[-3:].mean() < run.log.retain_term.iloc[:3].mean()  # the repair
    distorted = unlearn(tiny_lm, sets.forget, sets.retain, "sra_distort", steps=1, batch_size=8, progress=False)
    plain = unlearn(tiny_lm, sets.forget, sets.retain, "sra_wide", steps=1, batch_size=8, progress=False)
    assert distorted.log.retain_term.iloc[0] > 2 * plain.log.retain_term.iloc[0]  # it starts damaged, not at θ0


def test_a_bad_distortion_is_a_config_error(tiny_lm, sets):
    with pytest.raises(ConfigError, match="distortion"):
        unlearn(tiny_lm, sets.forget, sets.retain, "sra_distort", distortion=1.5, steps=1, progress=False)
