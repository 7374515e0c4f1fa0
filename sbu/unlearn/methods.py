"""Unlearning methods as records: each declares its loss, its facts and its own hyper-parameters.

A method is one function decorated with :func:`register`: it takes the :class:`Step` (the model, one forget and
one retain batch, the config) and returns its forget term and its retain term (None when it has none); the loop
minimises ``forget + alpha · retain``. The decorator states what the loop must know about it — its config class,
whether it needs a retain set, how it rewrites the forget targets, whether it needs a randomly initialised model
— so that the loop holds no per-method cases. Each method's config extends :class:`UnlearnConfig` with its own
hyper-parameters (as peft gives each adapter type its own config), so a hyper-parameter of another method is an
error rather than silently ignored. The formulas are in :mod:`sbu.unlearn.losses`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields

import torch

from sbu import checks
from sbu.errors import ConfigError
from sbu.model.batches import collate
from sbu.model.network import device_of
from sbu.model.recipe import Example
from sbu.unlearn import losses

IDK_ANSWERS = ("I don't know.", "I have no idea.", "I cannot say.", "That is not something I know.")


# -- configs ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UnlearnConfig:
    """The settings every method shares: the budget, the LoRA adapter, the optimizer, the retain weight, the seed.
    The defaults were chosen for SRA on the smoke cohort from validation data, not test data (docs/tuning.md);
    an experiment profile's ``unlearn_steps`` is the budget wherever a profile is known."""

    steps: int = 200  # the budget: optimizer steps, the same for every method
    batch_size: int = 16
    lr: float = 2e-3
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_targets: tuple[str, ...] = ()  # layer names; () = every linear layer but the head (sbu.model.adapters)
    alpha: float = 5.0  # weight of the retain term
    seed: int = 0

    def __post_init__(self):
        for name, most in (("steps", 1_000_000), ("batch_size", 4096), ("lora_rank", 1024)):
            checks.integer(name, getattr(self, name), 1, most)
        checks.number("lr", self.lr, positive=True)
        checks.number("alpha", self.alpha, 0)


@dataclass(frozen=True)
class SRAConfig(UnlearnConfig):
    tau: float = 1.0  # temperature of the Gaussian reference (large τ → uniform)
    prior: str = "gaussian"  # the reference: "gaussian", "uniform", "random_model", "counterfactual" or "generic"
    retain_loss: str = "kl"  # "kl": KL(p_θ0 ‖ p_θ) on D_r; "nll": NLL on D_r
    generic_strength: float = 5.0  # prior="generic": how many times over a reinforced gain is taken out
    reinforce_epochs: int = 10  # prior="generic": passes of the reinforced model's fine-tuning on the forget set

    def __post_init__(self):
        super().__post_init__()
        checks.number("tau", self.tau, positive=True)
        checks.number("generic_strength", self.generic_strength, 0)
        checks.integer("reinforce_epochs", self.reinforce_epochs, 1, 1000)
        checks.choice("prior", self.prior, losses.SRA_PRIORS)
        checks.choice("retain_loss", self.retain_loss, ("kl", "nll"))


@dataclass(frozen=True)
class WideSRAConfig(SRAConfig):
    """SRA on an adapter wide enough to change the projections' weights in every direction: a rank at least the
    model's width makes the adapter a full-rank update of every targeted matrix (removal, not a low-rank patch)."""

    lora_rank: int = 128  # ≥ the smoke (96) and smoke-study (128) widths: full rank on every projection
    lora_alpha: int = 256  # the same scale α/r = 2 as the default adapter


@dataclass(frozen=True)
class DistortSRAConfig(WideSRAConfig):
    """Weight distortion, then SRA with retain repair (Siddiqui et al. 2025): the adapter starts as the step
    ``distortion`` of the way from θ0 toward a freshly initialised network on every targeted matrix (exactly, by
    SVD, when the rank covers the matrix), so what the forgotten answers rested on is damaged before the forget and
    retain terms train; the retain term repairs what must be kept."""

    distortion: float = 0.3  # share of the way toward the fresh initialisation (0: SRA on a wide adapter)

    def __post_init__(self):
        super().__post_init__()
        checks.share("distortion", self.distortion)


@dataclass(frozen=True)
class NPOConfig(UnlearnConfig):
    beta: float = 0.1  # NPO's β: the inverse temperature of the log-ratio to θ0

    def __post_init__(self):
        super().__post_init__()
        checks.number("beta", self.beta, positive=True)


@dataclass(frozen=True)
class SimNPOConfig(UnlearnConfig):
    simnpo_beta: float = 2.5  # SimNPO's β on the length-normalised log-likelihood
    simnpo_gamma: float = 0.0  # SimNPO's reward margin γ

    def __post_init__(self):
        super().__post_init__()
        checks.number("simnpo_beta", self.simnpo_beta, positive=True)


# -- what a method sees ----------------------------------------------------------------------------------------
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
    counterfactual: Counterfactuals | None = None
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

    def counterfactual_logits(self) -> torch.Tensor:
        """θ0's logits for the forget batch's answers after the same questions about never-seen patients, one
        drawn afresh per row from the step's generator (see :class:`Counterfactuals`)."""
        if "counterfactual" not in self._cache:
            if self.counterfactual is None:
                raise ConfigError("prior='counterfactual' needs the forget questions asked about never-seen patients: "
                                  "pass counterfactual=unlearning_sets(...).counterfactual to unlearn()")
            self._cache["counterfactual"] = self.counterfactual.logits(self.forget, self.generator)
        return self._cache["counterfactual"]

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
                batch = collate(encoded[start: start + self.batch_size], self.pad_id, device_of(model))
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                mask = losses.answer_mask(batch["labels"])
                rows.extend(logits[row, :-1][mask[row]].clone() for row in range(len(mask)))
        model.train(was_training)
        return rows

    def logits(self, which: str, batch: dict) -> torch.Tensor:
        if which not in self.rows:
            self.rows[which] = self._compute(which)
        rows, labels = self.rows[which], batch["labels"]
        out = torch.zeros(*labels.shape, rows[0].shape[-1], dtype=rows[0].dtype, device=rows[0].device)
        mask = losses.answer_mask(labels)
        for row, index in enumerate(batch["index"].tolist()):
            out[row, :-1][mask[row]] = rows[index]
        return out


class Counterfactuals:
    """The forget examples' questions asked about patients no model ever saw, and θ0's answers to them.

    ``encoded[i]`` holds forget example i re-asked about every never-seen patient (their name in the same question
    template), each followed by example i's own answer. Prompt and answer are tokenized apart, so the answer tokens
    are the same and the answer positions align one to one. At each step, :meth:`logits` draws one stranger per row
    from the step's generator and returns θ0's logits (adapter switched off, no gradient) at the batch's answer
    positions: the distribution a retrained model would be expected to give a patient it never saw. With a
    ``reinforced`` model (θ0 fine-tuned further on the forget set), the logits are the generic prediction
    :func:`sbu.unlearn.losses.generic_logits` of the two: what θ0 holds of the forget set's own strings taken out."""

    def __init__(self, model: torch.nn.Module, encoded: list[list[tuple[list[int], list[int]]]], pad_id: int,
                 reinforced: torch.nn.Module | None = None, strength: float = 0.0):
        if not encoded or any(not options for options in encoded):
            raise ConfigError("the counterfactual questions are empty: every forget example needs at least one "
                              "never-seen patient to ask about")
        self.model, self.encoded, self.pad_id = model, encoded, pad_id
        self.reinforced, self.strength = reinforced, strength

    def logits(self, batch: dict, generator: torch.Generator) -> torch.Tensor:
        labels = batch["labels"]
        chosen = []
        for index in batch["index"].tolist():
            options = self.encoded[index]
            chosen.append(options[int(torch.randint(len(options), (1,), generator=generator))])
        strangers = collate(chosen, self.pad_id, labels.device)
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad(), self.model.disable_adapter():
            stranger_logits = self.model(input_ids=strangers["input_ids"],
                                         attention_mask=strangers["attention_mask"]).logits
            if self.reinforced is not None:
                reinforced_logits = self.reinforced(input_ids=strangers["input_ids"],
                                                    attention_mask=strangers["attention_mask"]).logits
                stranger_logits = losses.generic_logits(stranger_logits, reinforced_logits, self.strength)
        self.model.train(was_training)
        mask, stranger_mask = losses.answer_mask(labels), losses.answer_mask(strangers["labels"])
        if not torch.equal(mask.sum(1), stranger_mask.sum(1)):
            raise ConfigError("a counterfactual question's answer does not align with its forget example's answer")
        out = torch.zeros(*labels.shape, stranger_logits.shape[-1], dtype=stranger_logits.dtype,
                          device=stranger_logits.device)
        out[:, :-1][mask] = stranger_logits[:, :-1][stranger_mask]
        return out


def distort_toward_fresh_init(model: torch.nn.Module, config: UnlearnConfig) -> None:
    """Start every LoRA adapter of ``model`` (a peft model) at ``config.distortion`` of the way from θ0's matrix
    toward the same matrix of a freshly initialised network (seeded by ``config.seed``): the delta, rank-truncated
    by SVD to the adapter's rank (exact when the rank covers the matrix), split between lora_B and lora_A."""
    base = model.get_base_model()
    torch.manual_seed(config.seed)
    fresh = dict(type(base)(base.config).named_modules())
    with torch.no_grad():
        for name, module in base.named_modules():
            if not hasattr(module, "lora_A") or "default" not in module.lora_A:
                continue
            weight, scaling = module.get_base_layer().weight, module.scaling["default"]
            delta = config.distortion * (fresh[name].weight - weight)  # GPT-2's Conv1D: [in, out]; Linear: [out, in]
            u, s, vh = torch.linalg.svd((delta.T if module.fan_in_fan_out else delta) / scaling,
                                        full_matrices=False)  # [out, in] = B @ A
            a, b = module.lora_A["default"].weight, module.lora_B["default"].weight  # [r, in], [out, r]
            r = min(a.shape[0], s.shape[0])
            root = s[:r].sqrt()
            a.zero_()
            b.zero_()
            a[:r] = root[:, None] * vh[:r]
            b[:, :r] = u[:, :r] * root


# -- the registry ----------------------------------------------------------------------------------------------
Terms = tuple[torch.Tensor, torch.Tensor | None]


def _never(config: UnlearnConfig) -> bool:
    return False


def _as_initialised(model: torch.nn.Module, config: UnlearnConfig) -> None:
    """Leave the adapter as peft initialises it (lora_B = 0: the model starts at θ0)."""


@dataclass(frozen=True)
class Method:
    """One registered method and the facts the loop needs about it."""

    name: str
    loss: Callable[[Step], Terms]  # the forget term and the retain term (None: no retain term)
    config: type[UnlearnConfig] = UnlearnConfig  # its hyper-parameters
    needs_retain: bool = True  # refuses an empty retain set
    targets: Callable[[Sequence[Example]], list[Example]] = list  # the forget examples it trains on
    random_model: Callable[[UnlearnConfig], bool] = _never  # does this config need a randomly initialised model?
    counterfactual: Callable[[UnlearnConfig], bool] = _never  # does it need the forget questions about strangers?
    prepare: Callable[[torch.nn.Module, UnlearnConfig], None] = _as_initialised  # sets the adapter's start

    def configure(self, **hparams) -> UnlearnConfig:
        """This method's config from keyword hyper-parameters; an unknown one (or another method's) is an error
        that names the method's own."""
        known = [f.name for f in fields(self.config)]
        unknown = sorted(set(hparams) - set(known))
        if unknown:
            owners = {name: [m.name for m in METHODS.values() if name in {f.name for f in fields(m.config)}]
                      for name in unknown}
            elsewhere = "".join(f" ({name} is a hyper-parameter of {', '.join(o)})" for name, o in owners.items() if o)
            raise ConfigError(f"unknown unlearning hyper-parameter(s) {', '.join(unknown)} for {self.name}{elsewhere}; "
                              f"{self.name}'s hyper-parameters: {', '.join(sorted(known))}")
        if "lora_targets" in hparams:
            hparams["lora_targets"] = tuple(hparams["lora_targets"])
        return self.config(**hparams)


METHODS: dict[str, Method] = {}  # name → method, in the order they are registered


def method(name: str) -> Method:
    """The registered method ``name``, or a clear error naming the ones there are."""
    if not isinstance(name, str) or name not in METHODS:
        raise ConfigError(f"unknown unlearning method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]


def register(name: str, *, config: type[UnlearnConfig] = UnlearnConfig, needs_retain: bool = True,
             targets: Callable[[Sequence[Example]], list[Example]] = list,
             random_model: Callable[[UnlearnConfig], bool] = _never,
             counterfactual: Callable[[UnlearnConfig], bool] = _never,
             prepare: Callable[[torch.nn.Module, UnlearnConfig], None] = _as_initialised) -> Callable:
    """Register the decorated loss function as method ``name`` (see :class:`Method` for the facts)."""
    if not issubclass(config, UnlearnConfig):
        raise ConfigError(f"the config of method {name!r} must extend UnlearnConfig, got {config!r}")

    def decorate(loss: Callable[[Step], Terms]) -> Callable[[Step], Terms]:
        if name in METHODS:
            raise ConfigError(f"an unlearning method named {name!r} is already registered")
        METHODS[name] = Method(name, loss, config, needs_retain, targets, random_model, counterfactual, prepare)
        return loss

    return decorate


def idk_answer(i: int) -> str:
    """The i-th "I don't know"-style answer, as an answer continuation."""
    return " " + IDK_ANSWERS[i % len(IDK_ANSWERS)]


def idk_targets(forget: Sequence[Example]) -> list[Example]:
    """The forget questions, answered "I don't know" (fact sentences have no question, so they are left out)."""
    return [Example(x.prompt, idk_answer(i)) for i, x in enumerate(x for x in forget if x.prompt)]


# -- the methods (registration order is the order of METHODS) --------------------------------------------------
def _random_prior(config: UnlearnConfig) -> bool:
    return config.prior == "random_model"


def _counterfactual_prior(config: UnlearnConfig) -> bool:
    return config.prior in ("counterfactual", "generic")


@register("sra", config=SRAConfig, random_model=_random_prior, counterfactual=_counterfactual_prior)
def sra(step: Step) -> Terms:
    """Stochastic Reference Alignment: KL from a fresh random reference on the forget answers."""
    c = step.config
    reference = None
    if c.prior == "random_model":
        batch = step.forget
        with torch.no_grad():
            reference = step.random_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    elif c.prior in ("counterfactual", "generic"):
        reference = step.counterfactual_logits()
    forget = losses.sra(step.logits("forget"), step.labels("forget"), tau=c.tau, prior=c.prior,
                        generator=step.generator, reference_logits=reference)
    return forget, step.retain_term(c.retain_loss)



@register("grad_ascent", needs_retain=False)
def grad_ascent(step: Step) -> Terms:
    return losses.grad_ascent(step.logits("forget"), step.labels("forget")), None


@register("grad_diff")
def grad_diff(step: Step) -> Terms:
    return losses.grad_ascent(step.logits("forget"), step.labels("forget")), step.retain_term("nll")


@register("npo", config=NPOConfig)
def npo(step: Step) -> Terms:
    forget = losses.npo(step.logits("forget"), step.labels("forget"), step.reference_logits("forget"),
                        beta=step.config.beta)
    return forget, step.retain_term("nll")


@register("simnpo", config=SimNPOConfig)
def simnpo(step: Step) -> Terms:
    c = step.config
    return (losses.simnpo(step.logits("forget"), step.labels("forget"), beta=c.simnpo_beta, gamma=c.simnpo_gamma),
            step.retain_term("nll"))


@register("me")
def max_entropy(step: Step) -> Terms:
    return losses.max_entropy(step.logits("forget"), step.labels("forget")), step.retain_term("nll")


@register("idk_nll", targets=idk_targets)
def idk_nll(step: Step) -> Terms:
    """NLL on the forget questions with "I don't know" answers (the targets the registration rewrites)."""
    return losses.nll(step.logits("forget"), step.labels("forget")), step.retain_term("nll")


# Removal rather than suppression: SRA whose adapter can change every targeted matrix in full, from θ0 or from θ0
# distorted toward a fresh initialisation (docs/method.md, "Durability").
register("sra_wide", config=WideSRAConfig, random_model=_random_prior, counterfactual=_counterfactual_prior)(sra)
register("sra_distort", config=DistortSRAConfig, random_model=_random_prior, counterfactual=_counterfactual_prior,
         prepare=distort_toward_fresh_init)(sra)
