"""The embedded base model: a byte-level BPE tokenizer and a small GPT-2, trained from scratch on the cohort.

Read it like nanoGPT's ``train.py``: two config dataclasses, one training loop. The loop runs through
``accelerate`` (a no-op on one CPU, the route to many GPUs). Models are saved with ``save_pretrained`` and loaded
back with ``AutoModelForCausalLM`` / ``AutoTokenizer`` — :func:`load` takes any Hugging Face causal LM on disk, so
``model_name_or_path`` swaps the embedded model for a user's own. :func:`trained_model` caches by config hash.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from sbu.cache import cache_dir, config_hash
from sbu.data.schema import Corpus
from sbu.errors import ConfigError, DataFileError
from sbu.model.recipe import Example, Recipe, tokenizer_texts, training_examples

EOS = "<|endoftext|>"
PAD = "<pad>"
INFO_FILE = "sbu_model.json"


ACTIVATIONS = ("gelu_new", "gelu_pytorch_tanh")  # GPT-2's tanh GELU: as separate ops (its default), or fused


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 1024  # BPE vocabulary (small: the corpus is small, and names split into syllables)
    n_layer: int = 3  # 3 layers read as well as 4 here (0.91 vs 0.89 in context, 128 wide) and train 12 % faster
    n_embd: int = 96  # smoke, sized for CI: a step 0.63x as long as 128 wide; reads 0.89 with 320 reading patients
    n_head: int = 4
    n_positions: int = 256  # longest sequence: an open-book prompt with three facts fits in ~100 tokens
    dropout: float = 0.0  # GPT-2's residual, embedding and attention dropout (0: memorizes and reads faster here)
    activation: str = "gelu_pytorch_tanh"  # GPT-2's tanh GELU fused into one op ("gelu_new", its default: ~6 ops)

    def __post_init__(self):
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")


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
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr!r}")


@dataclass
class CausalLM:
    """A loaded model with its tokenizer, where it lives, and what we know of how it was made."""

    model: torch.nn.Module
    tokenizer: object
    path: Path
    info: dict


# -- tokenizer -------------------------------------------------------------------------------------------------
def train_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE tokenizer (GPT-2's scheme) learned from ``texts``, as a transformers tokenizer.

    Numbers are cut into pairs of digits before BPE, the first pair keeping the space before it (" 899015" →
    " 89" "90" "15"), and every pair is in the vocabulary: a number tokenizes the same way wherever it stands, and
    its first token is a word-like token, as a categorical answer's is. Measured here: with BPE's own cuts, with
    single digits, or with a bare space token before the digits, the model could not copy record numbers, ages or
    dates out of its context (≈ chance) while it copied allergies and cities.
    """
    from tokenizers import ByteLevelBPETokenizer, Regex, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(r" ?\d{1,2}"), behavior="isolated"),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    pairs = [f"{i:02d}" for i in range(100)]  # every pair, with and without a space, becomes a token
    every_pair = " ".join(pairs) + " " + "".join(pairs)
    bpe.train_from_iterator([*texts, *[every_pair] * 100], vocab_size=vocab_size, min_frequency=2,
                            special_tokens=[EOS, PAD], show_progress=False)
    return PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token=EOS, eos_token=EOS, pad_token=PAD)


# -- encoding --------------------------------------------------------------------------------------------------
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


def collate(batch: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, (x, y) in enumerate(batch):
        ids[row, : len(x)] = torch.tensor(x)
        labels[row, : len(y)] = torch.tensor(y)
        mask[row, : len(x)] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def random_batches(encoded: list, batch_size: int, pad_id: int, generator: torch.Generator):
    """Endless random batches (a fresh permutation per pass, full batches only); ``index`` holds each row's
    position in ``encoded``."""
    size = min(batch_size, len(encoded))
    while True:
        order = torch.randperm(len(encoded), generator=generator).tolist()
        for start in range(0, len(order) - size + 1, size):  # the rest waits for the next pass
            chosen = order[start: start + size]
            yield {**collate([encoded[i] for i in chosen], pad_id), "index": torch.tensor(chosen)}


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


# -- training --------------------------------------------------------------------------------------------------
def train(epochs: list[list[Example]], tokenizer, model_config: ModelConfig, train_config: TrainConfig,
          progress: bool = True, desc: str = "train base model"):
    """Train a GPT-2 from scratch, one list of examples per epoch; return the model and the per-epoch mean loss."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm import tqdm  # text bars: tqdm.auto would want ipywidgets, whose comm traffic stalls nbval
    from transformers import GPT2Config, GPT2LMHeadModel, get_cosine_schedule_with_warmup

    set_seed(train_config.seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=model_config.n_positions,
                        n_embd=model_config.n_embd, n_layer=model_config.n_layer, n_head=model_config.n_head,
                        resid_pdrop=model_config.dropout, embd_pdrop=model_config.dropout,
                        attn_pdrop=model_config.dropout, activation_function=model_config.activation,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id)
    model = GPT2LMHeadModel(config)
    loaders = []
    for e, examples in enumerate(epochs):
        encoded = encode_all(tokenizer, examples)
        too_long = max(len(ids) for ids, _ in encoded)
        if too_long > model_config.n_positions:
            raise ConfigError(f"an example has {too_long} tokens, more than n_positions={model_config.n_positions}")
        sampler = LengthGroupedBatches([len(ids) for ids, _ in encoded], train_config.batch_size,
                                       train_config.seed * 1000 + e)
        loaders.append(torch.utils.data.DataLoader(encoded, batch_sampler=sampler,
                                                   collate_fn=lambda b: collate(b, tokenizer.pad_token_id)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=train_config.lr, weight_decay=train_config.weight_decay)
    steps = sum(len(loader) for loader in loaders)
    scheduler = get_cosine_schedule_with_warmup(optimizer, int(train_config.warmup_share * steps), steps)
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


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def corpus_fingerprint(corpus: Corpus) -> str:
    """Hash of the corpus content a model is trained on (facts, QA, splits), for the cache key."""
    h = hashlib.sha256()
    for rec in (*corpus.facts, *corpus.qa):
        h.update(json.dumps(asdict(rec), sort_keys=True).encode())
    h.update(json.dumps(corpus.splits, sort_keys=True).encode())
    return h.hexdigest()[:16]


def trained_model(corpus: Corpus, model_config: ModelConfig | None = None, train_config: TrainConfig | None = None,
                  exclude: str | None = None, progress: bool = True, cache: Path | None = None) -> CausalLM:
    """The base model (``exclude=None``) or the retrain gold standard (``exclude="forget05"``…), trained once
    and then loaded from the cache, keyed by the hash of corpus, configs and ``exclude``."""
    model_config = model_config or ModelConfig()
    train_config = train_config or TrainConfig()
    name, key_obj, tokenizer, first = _cache_key(corpus, model_config, train_config, exclude)
    path = (cache or cache_dir() / "models") / name
    if (path / INFO_FILE).is_file():
        return load(path)
    with _training_lock(path):  # a process training this same model now: wait for it, then load what it stored
        if (path / INFO_FILE).is_file():
            return load(path)
        epochs = [first] + [training_examples(corpus, train_config.recipe, exclude, train_config.seed, epoch)
                            for epoch in range(1, train_config.epochs)]
        start = time.perf_counter()
        desc = "train " + ("base model" if exclude is None else f"retrain model (without {exclude})")
        model, losses = train(epochs, tokenizer, model_config, train_config, progress, desc=desc)
        info = {**key_obj, "name": name, "n_examples_per_epoch": len(epochs[0]), "epoch_loss": losses,
                "train_seconds": time.perf_counter() - start,
                "n_parameters": sum(p.numel() for p in model.parameters()),
                "torch_threads": torch.get_num_threads()}  # the weights are bit-identical only for the same count
        _store(model, tokenizer, info, path)
    return CausalLM(model, tokenizer, path, info)


def cache_name(corpus: Corpus, model_config: ModelConfig, train_config: TrainConfig,
               exclude: str | None = None) -> str:
    """The name of the model's cache entry (``base-<hash>`` or ``retrain-<split>-<hash>``), without training."""
    return _cache_key(corpus, model_config, train_config, exclude)[0]


def _cache_key(corpus, model_config, train_config, exclude):
    tokenizer = train_tokenizer(tokenizer_texts(corpus), model_config.vocab_size)
    first = training_examples(corpus, train_config.recipe, exclude, train_config.seed, epoch=0)
    model = asdict(model_config)
    if model["activation"] == "gelu_new":  # GPT-2's default, before the field existed: those entries keep their key
        del model["activation"]
    # Hashes of the examples and of the tokenizer catch code changes that no config shows (a prompt format).
    key_obj = {"corpus": corpus_fingerprint(corpus), "model": model, "train": asdict(train_config),
               "exclude": exclude, "examples": _sha([asdict(x) for x in first]),
               "tokenizer": _sha(tokenizer.backend_tokenizer.to_str())}
    name = f"{'base' if exclude is None else 'retrain-' + exclude}-{config_hash(key_obj)}"
    return name, key_obj, tokenizer, first


@contextmanager
def _training_lock(path: Path):
    """An exclusive lock on ``<entry>.lock`` beside a cache entry while it is trained: runs side by side that need
    the same model (``sbu batch --workers``, tests in parallel) train it once, the others wait and load it. The
    kernel drops the lock when its holder dies, so a killed run never blocks the next one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _store(model, tokenizer, info: dict, path: Path) -> None:
    """Write a cache entry so that it appears whole or not at all: into a temporary folder of this process, then
    renamed into place. :func:`trained_model` stores under :func:`_training_lock`, so on one machine only one
    process writes an entry; should two still finish the same entry (a lock the file system does not honour), the
    first keeps it and the other's model, the same training, is used as it is and not written again."""
    tmp = path.with_name(f"{path.name}.partial-{os.getpid()}")
    for stale in path.parent.glob(f"{path.name}.partial-*"):
        if stale == tmp or not _process_alive(stale.name.rsplit("-", 1)[-1]):
            shutil.rmtree(stale, ignore_errors=True)  # ours from before, or left by a run that was killed
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / INFO_FILE).write_text(json.dumps(info, indent=1))
    if (path / INFO_FILE).is_file():  # another run finished the same model first
        shutil.rmtree(tmp, ignore_errors=True)
        return
    shutil.rmtree(path, ignore_errors=True)  # a torn entry (no info file) from a run that was killed
    try:
        tmp.rename(path)
    except OSError:  # another run renamed its entry into place just now
        shutil.rmtree(tmp, ignore_errors=True)


def _process_alive(pid: str) -> bool:
    """Whether a process with this id runs on this machine (a foreign or garbled suffix counts as dead)."""
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def load(model_name_or_path: str | Path) -> CausalLM:
    """Load any causal LM saved with ``save_pretrained`` (ours or a user's) from a local path."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(model_name_or_path)
    if not path.is_dir():
        raise DataFileError(f"no model at {str(path)!r}: give a folder written by save_pretrained "
                            "(nothing is downloaded at run time)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
        vocab = getattr(model.config, "vocab_size", None)
        if len(tokenizer) < 2 or (vocab and len(tokenizer) > vocab):  # transformers makes an empty one silently
            raise ValueError(f"no usable tokenizer: {len(tokenizer)} tokens for a model of {vocab}")
        info_file = path / INFO_FILE
        info = json.loads(info_file.read_text()) if info_file.is_file() else {"name": path.name}
    except Exception as err:  # missing, truncated or garbled files raise whatever their reader raises
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise DataFileError(f"the model folder {str(path)!r} cannot be loaded ({first}); it must hold a causal LM "
                            "and its tokenizer written by save_pretrained") from err
    model.eval()
    return CausalLM(model, tokenizer, path, info)


def models_trained_on(corpus: Corpus, patients, cache: Path | None = None) -> list[Path]:
    """The cached models of this corpus whose training data held any of ``patients`` (the base model, and any
    retrain model whose excluded split does not cover them): what a forget request cannot unlearn from a cache,
    only delete (``sbu forget --purge-caches``)."""
    folder = cache or cache_dir() / "models"
    fingerprint, wanted = corpus_fingerprint(corpus), set(patients) & {f.about for f in corpus.facts}
    found = []
    for path in sorted(p for p in folder.glob("*") if (p / INFO_FILE).is_file()):
        info = json.loads((path / INFO_FILE).read_text())
        if info.get("corpus") != fingerprint:
            continue
        excluded = set(corpus.splits.get(info["exclude"], [])) if info.get("exclude") else set()
        if wanted - excluded:
            found.append(path)
    return found
