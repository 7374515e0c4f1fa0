"""Fault injection for the crash-safety tests: named points where a process can be killed for real.

``point(name)`` does nothing unless the environment variable ``SBU_FAULT`` names that point, in which case the
process sends itself SIGKILL there — no cleanup, no ``finally``, no flush: what a power cut or the OOM killer does.
The points sit at every state boundary of the forget protocol (:mod:`sbu.sync`) and inside the steps that write
(between the memory's two updates, between the renames of a store compaction). ``SBU_FAULT=name@N`` kills at the
N-th time the point is reached (1-based), for points inside loops.

``fail(name)`` is the other kind of fault: a back end that answers with an error. When ``SBU_FAIL`` names the point
(``name@N``: from its N-th call on) it raises :class:`InjectedFailure`, a :class:`~sbu.errors.StoreError`, as a
store refusing an update would. :meth:`sbu.memory.store.MemoryStore.update` has such a point (``store-update``), so
a forget can fail after its barrier and between its batches, and ``sbu resume`` must finish it.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

from sbu.errors import StoreError

_reached: Counter = Counter()


def _reached_at(variable: str, name: str) -> tuple[int, int] | None:
    """How often ``name`` was reached when ``variable`` (``name`` or ``name@N``) names it, and its N; else None."""
    target, _, nth = os.environ.get(variable, "").partition("@")
    if not target or target != name:
        return None
    _reached[variable + ":" + name] += 1
    return _reached[variable + ":" + name], int(nth) if nth else 1


def point(name: str) -> None:
    reached = _reached_at("SBU_FAULT", name)
    if reached is not None and reached[0] == reached[1]:
        os.kill(os.getpid(), signal.SIGKILL)


class InjectedFailure(StoreError):
    """A failure injected at a back-end boundary (``SBU_FAIL``)."""


def fail(name: str) -> None:
    reached = _reached_at("SBU_FAIL", name)
    if reached is not None and reached[0] >= reached[1]:
        raise InjectedFailure(f"the memory store refused update {reached[0]} (injected: "
                              f"SBU_FAIL={os.environ['SBU_FAIL']})")
