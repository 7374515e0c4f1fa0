"""Training examples as token ids and batches: labels only on answer tokens, padding, random and length-grouped
batches. Prompt and target are tokenized apart, exactly as :mod:`sbu.model.scoring` does."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sbu.model.recipe import Example


def encode_example(tokenizer, prompt: str, target: str) -> tuple[list[int], list[int]]:
    """Token ids of ``bos + prompt + target + eos`` and labels that are -100 except on target tokens and eos.

    Prompt and target are tokenized apart, exactly as :mod:`sbu.model.scoring` does, so that a trained answer
    and a scored answer are the same tokens.
    """
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    p = tokenizer.encode(prompt, add_special_tokens=False) if prompt else []
    t = tokenizer.encode(target, add_special_tokens=False) + [tokenizer.eos_token_id]
    return bos + p + t, [-100] * (len(bos) + len(p)) + t


def encode_examples(tokenizer, prompts: Sequence[str], targets: Sequence[str]) -> list[tuple[list[int], list[int]]]:
    """:func:`encode_example` for many examples at once: the same ids and labels, with each side tokenized in one
    batch call (a fast tokenizer's batch is many times quicker than one call per text)."""
    if len(prompts) != len(targets):
        raise ValueError(f"{len(prompts)} prompts but {len(targets)} targets")
    if not prompts:
        return []
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    eos = [tokenizer.eos_token_id]
    p_ids = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    t_ids = tokenizer(list(targets), add_special_tokens=False)["input_ids"]
    return [(bos + p + t + eos, [-100] * (len(bos) + len(p)) + t + eos) for p, t in zip(p_ids, t_ids)]


def encode_all(tokenizer, examples: Sequence[Example]) -> list[tuple[list[int], list[int]]]:
    """:func:`encode_examples` of training examples (their prompts and targets)."""
    return encode_examples(tokenizer, [x.prompt for x in examples], [x.target for x in examples])


def collate(batch: list[tuple[list[int], list[int]]], pad_id: int, device: torch.device | None = None
            ) -> dict[str, torch.Tensor]:
    """Padded ids, labels and attention mask of a batch, on ``device`` (the model's) when given."""
    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, (x, y) in enumerate(batch):
        ids[row, : len(x)] = torch.tensor(x)
        labels[row, : len(y)] = torch.tensor(y)
        mask[row, : len(x)] = 1
    out = {"input_ids": ids, "labels": labels, "attention_mask": mask}
    return out if device is None else {k: v.to(device) for k, v in out.items()}


def random_batches(encoded: list, batch_size: int, pad_id: int, generator: torch.Generator,
                   device: torch.device | None = None):
    """Endless random batches (a fresh permutation per pass, full batches only) on ``device``; ``index`` holds each
    row's position in ``encoded``."""
    size = min(batch_size, len(encoded))
    while True:
        order = torch.randperm(len(encoded), generator=generator).tolist()
        for start in range(0, len(order) - size + 1, size):  # the rest waits for the next pass
            chosen = order[start: start + size]
            yield {**collate([encoded[i] for i in chosen], pad_id, device), "index": torch.tensor(chosen)}


class LengthGroupedBatches(torch.utils.data.Sampler):
    """Random batches of similar lengths, so that little compute goes to padding (sentences are ~15 tokens,
    open-book prompts ~80). Each epoch: shuffle, sort within windows of 50 batches, cut, shuffle the batches."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int, window: int = 50):
        self.lengths, self.batch_size, self.window = lengths, batch_size, window
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self):
        order = torch.randperm(len(self.lengths), generator=self.generator).tolist()
        span = self.batch_size * self.window
        batches = []
        for start in range(0, len(order), span):
            chunk = sorted(order[start: start + span], key=lambda i: self.lengths[i])
            batches += [chunk[i: i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        for b in torch.randperm(len(batches), generator=self.generator).tolist():
            yield batches[b]
