"""The cross-process model cache: the base and retrain models trained once, stored whole or not at all, keyed by
the hash of corpus, configs and the split left out; processes that need a model another is training wait for it.

The smoke defaults' two models ship with the package (``sbu/model/weights/``, about 2 MB each), so a first run
copies them instead of training for minutes; their folder names are cache keys, so any change to the corpus, the
configs, the tokenizer or the training examples misses them and trains afresh. A test trains the base model from
scratch and checks it against the shipped one (``tests/test_smoke_models.py``). A user's pretrained model gets
its own entries, ``base-ft-<hash>`` and ``retrain-<split>-ft-<hash>`` (:func:`finetuned_model`)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import torch

from sbu.cache import cache_dir, config_hash
from sbu.data.schema import Corpus
from sbu.model.finetune import FinetuneConfig, finetune
from sbu.model.network import INFO_FILE, CausalLM, ModelConfig, load
from sbu.model.recipe import tokenizer_texts, training_examples
from sbu.model.tokenizer import train_tokenizer
from sbu.model.training import TrainConfig, train


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def corpus_fingerprint(corpus: Corpus) -> str:
    """Hash of the corpus content a model is trained on (facts, QA, splits), for the cache key."""
    h = hashlib.sha256()
    for rec in (*corpus.facts, *corpus.qa):
        h.update(json.dumps(asdict(rec), sort_keys=True).encode())
    h.update(json.dumps(corpus.splits, sort_keys=True).encode())
    return h.hexdigest()[:16]


SHIPPED = Path(__file__).parent / "weights"  # <cache name>/: the smoke defaults' models, as training made them


def trained_model(corpus: Corpus, model_config: ModelConfig | None = None, train_config: TrainConfig | None = None,
                  exclude: str | None = None, progress: bool = True, cache: Path | None = None,
                  shipped: bool = True) -> CausalLM:
    """The base model (``exclude=None``) or the retrain gold standard (``exclude="forget05"``…), trained once
    and then loaded from the cache, keyed by the hash of corpus, configs and ``exclude``. A model shipped with
    the package under the same key is copied instead of trained, unless ``shipped`` is false."""
    model_config = model_config or ModelConfig()
    train_config = train_config or TrainConfig()
    name, key_obj, tokenizer, first = _cache_key(corpus, model_config, train_config, exclude)
    path = (cache or cache_dir() / "models") / name
    if (path / INFO_FILE).is_file():
        return load(path)
    with _training_lock(path):  # a process training this same model now: wait for it, then load what it stored
        if (path / INFO_FILE).is_file():
            return load(path)
        if shipped and (SHIPPED / name / INFO_FILE).is_file():
            _store_copy(SHIPPED / name, path)
            return load(path)
        epochs = [first] + [training_examples(corpus, train_config.recipe, exclude, train_config.seed, epoch)
                            for epoch in range(1, train_config.epochs)]
        start = time.perf_counter()
        desc = "train " + ("base model" if exclude is None else f"retrain model (without {exclude})")
        model, losses = train(epochs, tokenizer, model_config, train_config, progress, desc=desc)
        info = {**key_obj, "name": name, "n_examples_per_epoch": len(epochs[0]), "epoch_loss": losses,
                "train_seconds": time.perf_counter() - start,
                "n_parameters": sum(p.numel() for p in model.parameters()),
                # the weights are bit-identical only for the same thread count and kind of CPU kernels
                "torch_threads": torch.get_num_threads(), "cpu_capability": torch.backends.cpu.get_cpu_capability()}
        _store(model, tokenizer, info, path)
    return CausalLM(model, tokenizer, path, info)



def finetuned_model(pretrained: str | Path, corpus: Corpus, config: FinetuneConfig | None = None,
                    exclude: str | None = None, progress: bool = True, cache: Path | None = None) -> CausalLM:
    """A user's pretrained model (a ``save_pretrained`` folder) fine-tuned on the cohort's training mix
    (``exclude=None``: the base model) or on it without split ``exclude`` (the retrain gold standard), once, then
    loaded from the cache — keyed by the hash of the folder's files, ``config`` and the corpus, so that another
    model, recipe or cohort is another entry. Bad input (no folder, no tokenizer, not a causal LM, an example
    longer than its context) is a clear error before any step, and nothing is written."""
    config = config or FinetuneConfig()
    first = training_examples(corpus, config.recipe, exclude, config.seed, epoch=0)
    key_obj = {"pretrained": folder_fingerprint(Path(pretrained)), "finetune": asdict(config),
               "corpus": corpus_fingerprint(corpus), "exclude": exclude, "examples": _sha([asdict(x) for x in first])}
    name = f"{'base' if exclude is None else 'retrain-' + exclude}-ft-{config_hash(key_obj)}"
    path = (cache or cache_dir() / "models") / name
    if (path / INFO_FILE).is_file():
        return load(path)
    source = load(pretrained)  # not before: a cached entry needs no pretrained weights in memory
    with _training_lock(path):
        if (path / INFO_FILE).is_file():
            return load(path)
        epochs = [first] + [training_examples(corpus, config.recipe, exclude, config.seed, epoch)
                            for epoch in range(1, config.epochs)]
        start = time.perf_counter()
        desc = f"fine-tune {Path(pretrained).name} " + ("(base)" if exclude is None else f"(retrain without {exclude})")
        model, losses = finetune(source, epochs, config, progress, desc)
        info = {**key_obj, "name": name, "pretrained_path": str(Path(pretrained).resolve()),
                "n_examples_per_epoch": len(first), "epoch_loss": losses, "train_seconds": time.perf_counter() - start,
                "n_parameters": sum(p.numel() for p in model.parameters()), "torch_threads": torch.get_num_threads()}
        _store(model, source.tokenizer, info, path)
    return CausalLM(model, source.tokenizer, path, info)


def folder_fingerprint(folder: Path) -> str:
    """SHA-256 over a model folder's files (names and contents, in name order): another checkpoint, another key."""
    h = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(file.relative_to(folder)).encode() + b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]

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


def _store_copy(source: Path, path: Path) -> None:
    """Copy a shipped model into the cache, whole or not at all (see :func:`_store`)."""
    _store_with(lambda tmp: shutil.copytree(source, tmp), path)


def _store(model, tokenizer, info: dict, path: Path) -> None:
    """Write a cache entry so that it appears whole or not at all: into a temporary folder of this process, then
    renamed into place. :func:`trained_model` stores under :func:`_training_lock`, so on one machine only one
    process writes an entry; should two still finish the same entry (a lock the file system does not honour), the
    first keeps it and the other's model, the same training, is used as it is and not written again."""

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=1))

    _store_with(write, path)


def _store_with(write, path: Path) -> None:
    tmp = path.with_name(f"{path.name}.partial-{os.getpid()}")
    for stale in path.parent.glob(f"{path.name}.partial-*"):
        if stale == tmp or not _process_alive(stale.name.rsplit("-", 1)[-1]):
            shutil.rmtree(stale, ignore_errors=True)  # ours from before, or left by a run that was killed
    write(tmp)
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
