"""Parameter-side unlearning on a LoRA adapter: SRA and the baselines, by one loop.

``unlearn(lm, forget, retain, method="sra", **hparams)`` copies the model, wraps it in a peft LoRA adapter (the
base weights stay frozen, so the unlearning delta is small, inspectable and removable), and trains the adapter
through ``accelerate`` for a fixed budget of steps, each on one forget batch and one retain batch:

    loss = forget_term(method) + alpha · retain_term

The methods, their facts and their hyper-parameters are records in :data:`sbu.unlearn.methods.METHODS`; the loop
asks them, and has no case of its own per method. The reference θ0 (for KL-to-θ0 retain terms and NPO) is the
same network with the adapter switched off — no second copy in memory.

**Callbacks**, as a transformers ``Trainer`` takes them: after each step every :class:`Callback` sees the step
number, the model, the tokenizer and the step's log record; it may add columns to the record and stop training.
The calibration stop (:class:`sbu.eval.calibration.CalibrationStop`) is one: it belongs to evaluation, which the
parameter pathway does not import.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from peft import PeftModel, get_peft_model
from tqdm import tqdm
from transformers import AutoModelForCausalLM

from sbu.errors import ConfigError
from sbu.model.adapters import lora_config
from sbu.model.batches import encode_all, encode_examples, random_batches
from sbu.model.consolidate import ConsolidationConfig, consolidate
from sbu.model.network import CausalLM, check_context, device_of
from sbu.model.recipe import Example
from sbu.unlearn.methods import Counterfactuals, References, Step, UnlearnConfig
from sbu.unlearn.methods import method as method_named


class Callback:
    """Called by :func:`unlearn` around training; subclass it and override what you need."""

    def on_train_begin(self, config: UnlearnConfig) -> None:
        """Before the first step, with the run's config (``config.steps`` is the budget)."""

    def on_step_end(self, step: int, model: torch.nn.Module, tokenizer, record: dict) -> bool:
        """After optimizer step ``step`` (from 1): may add fields to ``record``, the step's row of the log; True
        stops training after this step."""
        return False


@dataclass
class Unlearned:
    """An unlearned model (the base model + a LoRA adapter), its per-step log, and what it cost."""

    lm: CausalLM
    method: str
    config: UnlearnConfig
    log: pd.DataFrame
    seconds: float
    stopped_at: int | None = None  # the step a callback stopped training at (None: the full budget)

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
    model = PeftModel.from_pretrained(copy.deepcopy(base.model), str(path))
    model.eval()
    return CausalLM(model, base.tokenizer, Path(path), {**base.info, "adapter": str(path)})


def _random_model(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    random_model = AutoModelForCausalLM.from_config(model.config)
    random_model.to(device_of(model), next(model.parameters()).dtype)
    random_model.eval()
    return random_model


def reinforced_model(lm: CausalLM, forget: Sequence[Example], config: UnlearnConfig) -> torch.nn.Module:
    """θ0 fine-tuned further on the forget set (a LoRA adapter, merged): the generic prior's reinforced model, whose
    gain over θ0 marks what is the forget set's own."""
    tuned = consolidate(lm, forget, ConsolidationConfig(epochs=config.reinforce_epochs, lora_rank=config.lora_rank,
                                                        seed=config.seed))
    return tuned.model


def unlearn(lm: CausalLM, forget: Sequence[Example], retain: Sequence[Example], method: str = "sra", *,
            config: UnlearnConfig | None = None, callbacks: Sequence[Callback] = (), progress: bool = True,
            counterfactual: Sequence[Sequence[str]] | None = None, **hparams) -> Unlearned:
    """Unlearn ``forget`` from ``lm`` while keeping ``retain``, by ``method`` (a key of :data:`METHODS`) on a
    LoRA adapter; ``hparams`` override the method's config (an :class:`UnlearnConfig`; a hyper-parameter the method
    does not have is a :class:`ConfigError`); ``callbacks`` are called after every step. ``lm`` itself is never
    changed. ``config`` gives the method's config whole (e.g. :meth:`sbu.experiment.Experiment.unlearn_config`)
    instead of keyword hyper-parameters. ``counterfactual[i]`` are forget example i's question asked about
    never-seen patients (prompts; :attr:`UnlearningSets.counterfactual <sbu.unlearn.forget_sets.UnlearningSets>`),
    which SRA's ``prior="counterfactual"`` and ``prior="generic"`` need."""
    spec = method_named(method)
    if not forget:
        raise ConfigError("the forget set is empty: nothing to unlearn")
    if not retain and spec.needs_retain:
        raise ConfigError(f"{method} needs a retain set; it is empty")
    if config is None:
        config = spec.configure(**hparams)
    elif hparams or type(config) is not spec.config:
        raise ConfigError(f"give {method} either its config (a {spec.config.__name__}) or keyword hyper-parameters, "
                          f"not {type(config).__name__}" + (" and keywords" if hparams else ""))
    wants_counterfactual = spec.counterfactual(config)
    if wants_counterfactual and (counterfactual is None or len(counterfactual) != len(forget)):
        raise ConfigError(f"{method} with prior={config.prior!r} needs one list of never-seen patients' questions per "
                          f"forget example (unlearning_sets(...).counterfactual), got "
                          f"{'none' if counterfactual is None else len(counterfactual)} for {len(forget)}")
    set_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    tokenizer = lm.tokenizer
    encoded_forget = encode_all(tokenizer, spec.targets(forget))
    encoded_retain = encode_all(tokenizer, retain)
    check_context(lm.model, encoded_forget, "a forget example")
    check_context(lm.model, encoded_retain, "a retain example")

    lora = lora_config(lm.model, config.lora_rank, config.lora_alpha, config.lora_targets)
    model = get_peft_model(copy.deepcopy(lm.model), lora)
    spec.prepare(model, config)
    device = device_of(lm.model)
    random_model = _random_model(lm.model, config.seed) if spec.random_model(config) else None
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=0.0)
    accelerator = Accelerator(cpu=device.type == "cpu")  # where the model is: a model kept on the CPU stays there
    model, optimizer = accelerator.prepare(model, optimizer)
    pad = tokenizer.pad_token_id
    reference = References(model, {"forget": encoded_forget, "retain": encoded_retain}, pad)
    strangers = None
    if wants_counterfactual:
        generic = config.prior == "generic"
        strangers = Counterfactuals(model, [encode_examples(tokenizer, list(prompts), [x.target] * len(prompts))
                                            for prompts, x in zip(counterfactual, forget)], pad,
                                    reinforced_model(lm, forget, config) if generic else None,
                                    config.generic_strength if generic else 0.0)
    forget_batches = random_batches(encoded_forget, config.batch_size, pad, generator, accelerator.device)
    retain_batches = (random_batches(encoded_retain, config.batch_size, pad, generator, accelerator.device)
                      if encoded_retain else None)

    for callback in callbacks:
        callback.on_train_begin(config)
    log, stopped_at = [], None
    started = time.perf_counter()
    bar = tqdm(total=config.steps, desc=f"unlearn ({method})", disable=not progress, unit="step")
    for step_no in range(1, config.steps + 1):
        model.train()
        step = Step(model, next(forget_batches), next(retain_batches) if retain_batches else {}, config, generator,
                    random_model, reference, strangers)
        forget_term, retain_term = spec.loss(step)
        loss = forget_term + (config.alpha * retain_term if retain_term is not None else 0.0)
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        record = {"step": step_no, "loss": loss.item(), "forget_term": forget_term.item(),
                  "retain_term": None if retain_term is None else retain_term.item(),
                  "seconds": time.perf_counter() - started}
        stops = [callback.on_step_end(step_no, model, tokenizer, record) for callback in callbacks]  # all of them
        if any(stops):
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

