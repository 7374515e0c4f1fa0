"""Parameter-side unlearning on a LoRA adapter (SPEC §4): SRA and the baselines, one registry.

``unlearn(lm, forget, retain, method="sra", **hparams)`` copies the model, wraps it in a peft LoRA adapter (the
base weights stay frozen, so the unlearning delta is small, inspectable and removable), and trains the adapter
through ``accelerate`` for a fixed budget of steps, each on one forget batch and one retain batch:

    loss = forget_term(method) + alpha · retain_term

A method is one small function in :data:`METHODS` returning its two terms (see :mod:`sbu.unlearn.losses` for the
formulas); adding one is a function and an entry. The reference θ0 (for KL-to-θ0 retain terms and NPO) is the same
network with the adapter switched off — no second copy in memory.

**Calibration stop** [choice, SPEC §4]: with ``calibration=(forget_items, nonmember_items)`` the run checks every
``calibrate_every`` steps the Min-K%++ membership AUC of the forget probes against never-seen patients, and stops
once it is ≤ 0.5 — the forget set then looks like unseen data, instead of being driven as far as the loss goes
(over-unlearning is detectable too: AUC well below 0.5).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import pandas as pd
import torch

from sbu.errors import ConfigError
from sbu.model.batches import collate, encode_all, random_batches
from sbu.model.network import CausalLM
from sbu.model.recipe import Example
from sbu.unlearn import losses

IDK_ANSWERS = ("I don't know.", "I have no idea.", "I cannot say.", "That is not something I know.")


@dataclass(frozen=True)
class UnlearnConfig:
    """Hyper-parameters of one unlearning run. The defaults were chosen for SRA on the smoke cohort (forget05) from
    data that is not test data: accuracy on the validation patients (kept out of D_r) and the Min-K%++ AUC of the
    forget probes against the calibration patients (never seen by any model), closest to 0.5. Measured here, with
    D_r four times D_f: 100, 150, 200 steps at lr 2e-3 and 300 at 1e-3 all kept 0.984 of the validation patients;
    their calibration AUCs were 0.65, 0.67, 0.61 and 0.69, so 200 steps. Retain weight 1 (instead of 5) kept only
    0.91 of retained patients; D_r twice D_f (instead of four times) 0.94. (That smoke model is now the smoke-study
    profile's; the narrower smoke model runs the notebooks at 100 steps, ``ExperimentConfig.unlearn_steps``.)"""

    steps: int = 200  # the budget: optimizer steps, the same for every method
    batch_size: int = 16
    lr: float = 2e-3
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_targets: tuple[str, ...] = ("c_attn", "c_proj", "c_fc")  # GPT-2's attention and MLP projections
    alpha: float = 5.0  # weight of the retain term
    retain_loss: str = "kl"  # "kl": KL(p_θ0 ‖ p_θ) on D_r; "nll": NLL on D_r (SRA only; baselines use their own)
    tau: float = 1.0  # SRA: temperature of the Gaussian reference (large τ → uniform)
    prior: str = "gaussian"  # SRA: "gaussian", "uniform" or "random_model"
    beta: float = 0.1  # NPO's β (SimNPO uses simnpo_beta)
    simnpo_beta: float = 2.5
    simnpo_gamma: float = 0.0
    calibrate_every: int = 5  # steps between calibration checks (when a calibration set is given)
    calibrate_attack: str = "min_k_plus_plus"  # the membership signal the calibration stop reads (sbu.eval.mia)
    seed: int = 0

    def __post_init__(self):
        for name, most in (("steps", 1_000_000), ("batch_size", 4096), ("lora_rank", 1024),
                           ("calibrate_every", 1_000_000)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= most:
                raise ConfigError(f"{name} must be an integer in [1, {most:_}], got {value!r}")
        for name in ("lr", "tau", "beta", "simnpo_beta"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
                raise ConfigError(f"{name} must be a positive finite number, got {value!r}")
        if self.alpha < 0:
            raise ConfigError(f"alpha must be ≥ 0, got {self.alpha!r}")
        from sbu.eval.mia import ATTACKS

        if self.calibrate_attack not in ATTACKS or self.calibrate_attack == "reference":
            raise ConfigError(f"calibrate_attack must be one of {', '.join(a for a in ATTACKS if a != 'reference')}, "
                              f"got {self.calibrate_attack!r}")
        if self.prior not in losses.SRA_PRIORS:
            raise ConfigError(f"prior must be one of {', '.join(losses.SRA_PRIORS)}, got {self.prior!r}")
        if self.retain_loss not in ("kl", "nll"):
            raise ConfigError(f"retain_loss must be 'kl' or 'nll', got {self.retain_loss!r}")

    @classmethod
    def of(cls, **hparams) -> UnlearnConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(hparams) - known)
        if unknown:
            raise ConfigError(f"unknown unlearning hyper-parameter(s) {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(known))}")
        if "lora_targets" in hparams:
            hparams["lora_targets"] = tuple(hparams["lora_targets"])
        return cls(**hparams)


@dataclass
class Step:
    """What a method sees at one step: the model, the two batches, the config, and lazily the logits. θ0's logits
    come from :class:`References`, computed once per set, not from a second forward pass every step."""

    model: torch.nn.Module
    forget: dict
    retain: dict
    config: UnlearnConfig
    generator: torch.Generator
    random_model: torch.nn.Module | None = None
    reference: References | None = None
    _cache: dict = field(default_factory=dict)

    def logits(self, which: str) -> torch.Tensor:
        if which not in self._cache:
            batch = getattr(self, which)
            self._cache[which] = self.model(input_ids=batch["input_ids"],
                                            attention_mask=batch["attention_mask"]).logits
        return self._cache[which]

    def reference_logits(self, which: str) -> torch.Tensor:
        """θ0's logits on a batch (at answer positions; zeros elsewhere, which no loss reads), no gradient."""
        key = "ref_" + which
        if key not in self._cache:
            self._cache[key] = self.reference.logits(which, getattr(self, which))
        return self._cache[key]

    def labels(self, which: str) -> torch.Tensor:
        return getattr(self, which)["labels"]

    def retain_term(self, kind: str) -> torch.Tensor:
        if kind == "kl":
            return losses.kl_to_reference(self.logits("retain"), self.labels("retain"),
                                          self.reference_logits("retain"))
        return losses.nll(self.logits("retain"), self.labels("retain"))


class References:
    """θ0's logits at the answer positions of every training example of a set, computed on first use in batches
    without gradient and with the adapter switched off (θ0 — no second copy of the network), then kept: answers are
    a few tokens and the vocabulary small, so this is kilobytes per example. ``logits(which, batch)`` lays them out as
    a [batch, time, vocab] tensor for the losses, which read answer positions only (zeros elsewhere)."""

    def __init__(self, model: torch.nn.Module, encoded: dict[str, list], pad_id: int, batch_size: int = 16):
        self.model, self.encoded, self.pad_id, self.batch_size = model, encoded, pad_id, batch_size
        self.rows: dict[str, list[torch.Tensor]] = {}

    def _compute(self, which: str) -> list[torch.Tensor]:
        rows, encoded, model = [], self.encoded[which], self.model
        was_training = model.training
        model.eval()
        with torch.no_grad(), model.disable_adapter():
            for start in range(0, len(encoded), self.batch_size):
                batch = collate(encoded[start: start + self.batch_size], self.pad_id)
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                mask = losses.answer_mask(batch["labels"])
                rows.extend(logits[row, :-1][mask[row]].clone() for row in range(len(mask)))
        model.train(was_training)
        return rows

    def logits(self, which: str, batch: dict) -> torch.Tensor:
        if which not in self.rows:
            self.rows[which] = self._compute(which)
        rows, labels = self.rows[which], batch["labels"]
        out = torch.zeros(*labels.shape, rows[0].shape[-1])
        mask = losses.answer_mask(labels)
        for row, index in enumerate(batch["index"].tolist()):
            out[row, :-1][mask[row]] = rows[index]
        return out


def _sra(step: Step):
    c = step.config
    reference = None
    if c.prior == "random_model":
        batch = step.forget
        with torch.no_grad():
            reference = step.random_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    forget = losses.sra(step.logits("forget"), step.labels("forget"), tau=c.tau, prior=c.prior,
                        generator=step.generator, reference_logits=reference)
    return forget, step.retain_term(c.retain_loss)


def _grad_ascent(step: Step):
    return losses.grad_ascent(step.logits("forget"), step.labels("forget")), None


def _grad_diff(step: Step):
    return losses.grad_ascent(step.logits("forget"), step.labels("forget")), step.retain_term("nll")


def _npo(step: Step):
    forget = losses.npo(step.logits("forget"), step.labels("forget"), step.reference_logits("forget"),
                        beta=step.config.beta)
    return forget, step.retain_term("nll")


def _simnpo(step: Step):
    c = step.config
    return (losses.simnpo(step.logits("forget"), step.labels("forget"), beta=c.simnpo_beta, gamma=c.simnpo_gamma),
            step.retain_term("nll"))


def _max_entropy(step: Step):
    return losses.max_entropy(step.logits("forget"), step.labels("forget")), step.retain_term("nll")


def _idk_nll(step: Step):  # the forget batch already carries "I don't know" answers (see IDK_METHODS)
    return losses.nll(step.logits("forget"), step.labels("forget")), step.retain_term("nll")


METHODS: dict[str, Callable[[Step], tuple]] = {
    "sra": _sra, "grad_ascent": _grad_ascent, "grad_diff": _grad_diff, "npo": _npo, "simnpo": _simnpo,
    "me": _max_entropy, "idk_nll": _idk_nll,
}
IDK_METHODS = {"idk_nll"}  # methods that train on "I don't know"-style answers instead of the forget answers


@dataclass
class Unlearned:
    """An unlearned model (the base model + a LoRA adapter), its per-step log, and what it cost."""

    lm: CausalLM
    method: str
    config: UnlearnConfig
    log: pd.DataFrame
    seconds: float
    stopped_at: int | None = None  # the step the calibration stop ended training at (None: the full budget)

    def save(self, path: str | Path) -> Path:
        """Save the adapter (``save_pretrained``: adapter weights and config only), the tokenizer and the log."""
        path = Path(path)
        self.lm.model.save_pretrained(path)
        self.lm.tokenizer.save_pretrained(path)
        self.log.to_csv(path / "unlearning_log.csv", index=False)
        return path

    def merged(self) -> CausalLM:
        """A plain model with the adapter merged into the weights (the adapted model stays usable)."""
        merged = copy.deepcopy(self.lm.model).merge_and_unload()
        merged.eval()
        return CausalLM(merged, self.lm.tokenizer, self.lm.path, {**self.lm.info, "merged": True})


def load_adapter(base: CausalLM, path: str | Path) -> CausalLM:
    """The base model with an adapter saved by :meth:`Unlearned.save` (the base model itself is not changed)."""
    from peft import PeftModel

    model = PeftModel.from_pretrained(copy.deepcopy(base.model), str(path))
    model.eval()
    return CausalLM(model, base.tokenizer, Path(path), {**base.info, "adapter": str(path)})


def _random_model(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    random_model = AutoModelForCausalLM.from_config(model.config)
    random_model.eval()
    return random_model


def unlearn(lm: CausalLM, forget: Sequence[Example], retain: Sequence[Example], method: str = "sra", *,
            calibration: tuple | None = None, progress: bool = True, **hparams) -> Unlearned:
    """Unlearn ``forget`` from ``lm`` while keeping ``retain``, by ``method`` (a key of :data:`METHODS`) on a
    LoRA adapter; ``hparams`` override :class:`UnlearnConfig`. ``lm`` itself is never changed."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from peft import LoraConfig, get_peft_model
    from tqdm import tqdm

    if method not in METHODS:
        raise ConfigError(f"unknown unlearning method {method!r}; choose one of {', '.join(METHODS)}")
    if not forget:
        raise ConfigError("the forget set is empty: nothing to unlearn")
    if not retain and method not in ("grad_ascent",):
        raise ConfigError(f"{method} needs a retain set; it is empty")
    config = UnlearnConfig.of(**hparams)
    set_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    tokenizer = lm.tokenizer
    if method in IDK_METHODS:  # the forget questions, answered "I don't know" (fact sentences have no question)
        targets = [Example(x.prompt, idk_answer(i)) for i, x in enumerate(x for x in forget if x.prompt)]
    else:
        targets = list(forget)
    encoded_forget = encode_all(tokenizer, targets)
    encoded_retain = encode_all(tokenizer, retain)

    lora = LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, target_modules=list(config.lora_targets),
                      lora_dropout=0.0, bias="none", fan_in_fan_out=True, task_type="CAUSAL_LM")
    model = get_peft_model(copy.deepcopy(lm.model), lora)
    random_model = (_random_model(lm.model, config.seed) if method == "sra" and config.prior == "random_model"
                    else None)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=0.0)
    accelerator = Accelerator()
    model, optimizer = accelerator.prepare(model, optimizer)
    pad = tokenizer.pad_token_id
    reference = References(model, {"forget": encoded_forget, "retain": encoded_retain}, pad)
    forget_batches = random_batches(encoded_forget, config.batch_size, pad, generator)
    retain_batches = random_batches(encoded_retain, config.batch_size, pad, generator) if encoded_retain else None

    log, stopped_at = [], None
    started = time.perf_counter()
    bar = tqdm(total=config.steps, desc=f"unlearn ({method})", disable=not progress, unit="step")
    for step_no in range(1, config.steps + 1):
        model.train()
        step = Step(model, next(forget_batches), next(retain_batches) if retain_batches else {}, config, generator,
                    random_model, reference)
        forget_term, retain_term = METHODS[method](step)
        loss = forget_term + (config.alpha * retain_term if retain_term is not None else 0.0)
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        record = {"step": step_no, "loss": loss.item(), "forget_term": forget_term.item(),
                  "retain_term": None if retain_term is None else retain_term.item(),
                  "seconds": time.perf_counter() - started}
        if calibration is not None and (step_no % config.calibrate_every == 0 or step_no == config.steps):
            record["calibration_auc"] = calibration_auc(model, tokenizer, *calibration, attack=config.calibrate_attack)
            if record["calibration_auc"] <= 0.5:
                stopped_at = step_no
        log.append(record)
        bar.update()
        bar.set_postfix(loss=f"{record['loss']:.3f}")
        if stopped_at is not None:
            break
    bar.close()
    model = accelerator.unwrap_model(model)
    model.eval()
    seconds = time.perf_counter() - started
    info = {**lm.info, "unlearning": {"method": method, **asdict(config), "stopped_at": stopped_at}}
    return Unlearned(CausalLM(model, tokenizer, lm.path, info), method, config, pd.DataFrame(log), seconds, stopped_at)


def idk_answer(i: int) -> str:
    """The i-th "I don't know"-style answer, as an answer continuation."""
    return " " + IDK_ANSWERS[i % len(IDK_ANSWERS)]


def calibration_auc(model, tokenizer, forget_items, nonmember_items, attack: str = "min_k_plus_plus") -> float:
    """ROC-AUC of an attack (default Min-K%++) on the forget probes (members) against never-seen probes."""
    from sbu.eval.mia import ATTACKS, roc_auc

    was_training = model.training
    model.eval()
    score = ATTACKS[attack]
    auc = roc_auc(score(model, tokenizer, forget_items), score(model, tokenizer, nonmember_items))
    model.train(was_training)
    return auc
