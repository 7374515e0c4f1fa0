"""Where expensive artifacts (trained models) are cached, keyed by the hash of the config that made them."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

CACHE_VERSION = 1  # bump when a change to the code makes older cached artifacts wrong


def cache_dir() -> Path:
    """``$SBU_CACHE`` if set, else ``~/.cache/sbu``."""
    return Path(os.environ.get("SBU_CACHE") or Path.home() / ".cache" / "sbu")


def config_hash(obj) -> str:
    """A short, stable hash of a JSON-serializable config (key order does not matter)."""
    blob = json.dumps({"v": CACHE_VERSION, "config": obj}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
