"""Training the embedded GPT-2 from scratch, like nanoGPT's ``train.py``: a config dataclass and one loop, run
through ``accelerate`` (a no-op on one CPU, the route to many GPUs)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm import tqdm  # text bars: tqdm.auto would want ipywidgets, whose comm traffic stalls nbval
from transformers import get_cosine_schedule_with_warmup

from sbu import checks
from sbu.model.batches import LengthGroupedBatches, collate, encode_all
from sbu.model.network import ModelConfig, check_context, gpt2
from sbu.model.recipe import Example, Recipe


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 14
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_share: float = 0.05  # share of steps with a linear learning-rate warm-up, then cosine decay
    seed: int = 0
    recipe: Recipe = field(default_factory=Recipe)

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            checks.integer(name, getattr(self, name), 1)
        checks.number("lr", self.lr, positive=True)
        checks.number("weight_decay", self.weight_decay, 0)
        checks.share("warmup_share", self.warmup_share)


def train(epochs: list[list[Example]], tokenizer, model_config: ModelConfig, train_config: TrainConfig,
          progress: bool = True, desc: str = "train base model"):
    """Train a GPT-2 from scratch, one list of examples per epoch; return the model and the per-epoch mean loss."""
    set_seed(train_config.seed)
    model = gpt2(model_config, tokenizer)
    return fit(model, tokenizer, epochs, batch_size=train_config.batch_size, lr=train_config.lr,
               weight_decay=train_config.weight_decay, warmup_share=train_config.warmup_share,
               seed=train_config.seed, progress=progress, desc=desc)


def fit(model: torch.nn.Module, tokenizer, epochs: list[list[Example]], *, batch_size: int, lr: float,
        weight_decay: float, warmup_share: float, seed: int, progress: bool = True, desc: str = "train"):
    """Train ``model`` (every parameter that requires a gradient) on ``epochs`` — one list of examples per epoch,
    length-grouped batches, AdamW with a linear warm-up then cosine decay — through ``accelerate``; return it in
    eval mode and the per-epoch mean loss. An example longer than the model's context is a ConfigError, before any
    step."""
    loaders = []
    for e, examples in enumerate(epochs):
        encoded = encode_all(tokenizer, examples)
        check_context(model, encoded)
        sampler = LengthGroupedBatches([len(ids) for ids, _ in encoded], batch_size, seed * 1000 + e)
        loaders.append(torch.utils.data.DataLoader(encoded, batch_sampler=sampler,
                                                   collate_fn=lambda b: collate(b, tokenizer.pad_token_id)))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=weight_decay)
    steps = sum(len(loader) for loader in loaders)
    scheduler = get_cosine_schedule_with_warmup(optimizer, int(warmup_share * steps), steps)
    accelerator = Accelerator()
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    model.train()
    losses = []
    bar = tqdm(total=steps, desc=desc, disable=not progress, unit="step")
    for epoch, loader in enumerate(loaders):
        total, n = 0.0, 0
        for batch in accelerator.prepare(loader):
            loss = model(**batch).loss
            accelerator.backward(loss)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            total, n = total + loss.item(), n + 1
            bar.update()
        losses.append(total / n)
        bar.set_postfix(epoch=epoch + 1, loss=f"{losses[-1]:.3f}")
    bar.close()
    model = accelerator.unwrap_model(model)
    model.eval()
    return model, losses
