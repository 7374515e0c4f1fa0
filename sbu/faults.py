"""Fault injection for the crash-safety tests: named points where a process can be killed for real.

``point(name)`` does nothing unless the environment variable ``SBU_FAULT`` names that point, in which case the
process sends itself SIGKILL there — no cleanup, no ``finally``, no flush: what a power cut or the OOM killer does.
The points sit at every state boundary of the forget protocol (:mod:`sbu.sync`) and inside the steps that write
(between the memory's two updates, between the renames of a store compaction). ``SBU_FAULT=name@N`` kills at the
N-th time the point is reached (1-based), for points inside loops.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

_reached: Counter = Counter()


def point(name: str) -> None:
    wanted = os.environ.get("SBU_FAULT")
    if not wanted:
        return
    target, _, nth = wanted.partition("@")
    if target != name:
        return
    _reached[name] += 1
    if _reached[name] == (int(nth) if nth else 1):
        os.kill(os.getpid(), signal.SIGKILL)
