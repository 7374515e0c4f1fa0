"""Checks of user-given settings, each a one-line :class:`~sbu.errors.ConfigError` naming the setting and the value
(a ``bool`` is never taken for a number, and NaN never passes a range)."""

from __future__ import annotations

import math

from sbu.errors import ConfigError


def integer(name: str, value, least: int | None = None, most: int | None = None) -> int:
    """``value`` if it is an integer in [least, most] (either end may be open)."""
    if isinstance(value, bool) or not isinstance(value, int) or (least is not None and value < least) or (
            most is not None and value > most):
        raise ConfigError(f"{name} must be an integer{_range(least, most)}, got {value!r}")
    return value


def number(name: str, value, least: float | None = None, most: float | None = None, *, positive: bool = False,
           below: float | None = None) -> float:
    """``value`` if it is a finite number in [least, most] (``positive``: > 0; ``below``: < that bound)."""
    ok = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
    ok = ok and (least is None or value >= least) and (most is None or value <= most)
    ok = ok and (not positive or value > 0) and (below is None or value < below)
    if not ok:
        bounds = "a positive" if positive else "a"
        extra = f" below {below}" if below is not None else ""
        raise ConfigError(f"{name} must be {bounds} finite number{_range(least, most)}{extra}, got {value!r}")
    return value


def share(name: str, value) -> float:
    """``value`` if it is a share in [0, 1]."""
    return number(name, value, 0, 1)


def flag(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return value


def choice(name: str, value, allowed) -> str:
    """``value`` if it is one of ``allowed``."""
    allowed = tuple(allowed)
    if not isinstance(value, str) or value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(map(str, allowed))}, got {value!r}")
    return value


def _range(least, most) -> str:
    if least is not None and most is not None:
        return f" in [{least:_}, {most:_}]" if isinstance(least, int) and isinstance(most, int) else \
            f" in [{least}, {most}]"
    if least is not None:
        return f" ≥ {least}"
    if most is not None:
        return f" ≤ {most}"
    return ""
