"""No plaintext of forgotten data in anything we write: a scanner for files, and redaction for what a notebook
shows.

:func:`scan` reads every file under the given paths (store directories, journals, standing obligations,
certificates, logs, results, executed notebooks, caches; hidden files too, such as a temporary file a crash left) as
bytes and counts whole-word occurrences of each forgotten string — the forgotten entities' names and every value
of theirs that no retained record also holds (:func:`sbu.eval.exposure.forgotten_strings`). Its table names a hit
by the file and a short hash of the string, never by the string itself, so a scan report is safe to share. Strings
are also looked for in the escaped form JSON gives non-ASCII text (notebooks and metrics are JSON).

An on-disk store's RocksDB info logs (``LOG``, ``LOG.old.*``) start every line with a microsecond timestamp and a
thread id: a six-digit record number turns up there by chance about once in a hundred scans, so those line prefixes
are left out; the rest of each line is scanned like any file.

:func:`redact` is what a notebook wraps around a display that shows data before it is forgotten: the teaching
point survives (the row, its kind, its place in the graph), the plaintext does not reach the executed notebook.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

MARK = "▇▇▇"
MIN_LENGTH = 4
_ROCKSDB_LOG = re.compile(r"LOG(?:\.old\.\d+)?")
_LOG_PREFIX = re.compile(r"^\d{4}/\d{2}/\d{2}-\d{2}:\d{2}:\d{2}\.\d+ \d+ ", re.MULTILINE)


def secret_id(secret: str) -> str:
    """A short, stable label for a forgotten string (SHA-256 prefix), to report without repeating it."""
    return hashlib.sha256(secret.encode()).hexdigest()[:10]


def _forms(secret: str) -> tuple[str, ...]:
    """A string as written plainly, and as JSON writes it (non-ASCII escaped, or quotes and backslashes only)."""
    return secret, json.dumps(secret, ensure_ascii=True)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]


def _pattern(forms) -> re.Pattern:
    alternatives = "|".join(re.escape(f) for f in sorted(set(forms), key=len, reverse=True) if f)
    return re.compile(rf"(?<![0-9A-Za-z])(?:{alternatives})(?![0-9A-Za-z])")


def _files(paths: Iterable[str | Path]) -> list[Path]:
    found = []
    for path in map(Path, paths):
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink()))
    return found


def scan(paths: Iterable[str | Path], secrets: Sequence[str], min_length: int = MIN_LENGTH) -> pd.DataFrame:
    """One row per (file, forgotten string) found: ``file``, ``secret`` (its :func:`secret_id`) and ``hits``.
    An empty table is the pass. Strings shorter than ``min_length`` (an age such as 69) cannot be told from any
    other number in a file and are left out; memory exposure and the barrier still check them. Files are read as
    bytes (UTF-8, undecodable bytes skipped), so binary stores and model files are scanned too; plaintext inside
    a compressed block would not be seen (RocksDB may compress SST files)."""
    secrets = [s for s in dict.fromkeys(secrets) if len(s) >= min_length]
    rows = []
    if not secrets:
        return pd.DataFrame(rows, columns=["file", "secret", "hits"])
    by_form = {}
    for s in secrets:
        for form in _forms(s):
            by_form.setdefault(form, s)
    pattern = _pattern(by_form)
    for file in _files(paths):
        text = _text(file)
        counts: dict[str, int] = {}
        for match in pattern.finditer(text):
            secret = by_form.get(match.group(0), match.group(0))
            counts[secret] = counts.get(secret, 0) + 1
        rows += [(str(file), secret_id(s), n) for s, n in counts.items()]
    return pd.DataFrame(rows, columns=["file", "secret", "hits"])


def _text(file: Path) -> str:
    """A file's text as scanned: its bytes as UTF-8 (undecodable bytes skipped), a RocksDB info log without the
    timestamp and thread id that begin its lines."""
    text = file.read_bytes().decode("utf-8", errors="ignore")
    if _ROCKSDB_LOG.fullmatch(file.name) and (file.parent / "CURRENT").is_file():
        text = _LOG_PREFIX.sub("", text)
    return text


def files_scanned(paths: Iterable[str | Path]) -> int:
    """How many files :func:`scan` reads under ``paths`` (to report next to its result)."""
    return len(_files(paths))


def redact(shown, secrets: Sequence[str], mark: str = MARK):
    """``shown`` with every whole-word occurrence of a forgotten string replaced by ``mark``: a string, a
    DataFrame or Series (text cells), or a list/tuple of strings. Anything else comes back unchanged."""
    secrets = [s for s in dict.fromkeys(secrets) if s]
    if not secrets:
        return shown
    pattern = _pattern(secrets)

    def text(value):
        return pattern.sub(mark, value) if isinstance(value, str) else value

    if isinstance(shown, str):
        return text(shown)
    if isinstance(shown, pd.DataFrame):
        return shown.map(text)
    if isinstance(shown, pd.Series):
        return shown.map(text)
    if isinstance(shown, list | tuple):
        return type(shown)(text(v) for v in shown)
    return shown
