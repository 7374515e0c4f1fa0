"""One look for every figure: a colour and a marker per condition, arm, unlearning method and model, the same in
every figure function, notebook and document, and one way to save a figure (PNG at 200 dpi, and SVG).

A name is looked up as the tables spell it: ``parameter-only (npo)`` looks like ``npo``, notebook 03's
``parameter-only`` (SRA) like ``sra``, ``retrain + closure`` like ``retrain``, and the base model like ``none``
(nothing unlearned). SBU's ablations are shades of SBU's green, each with its own marker. A name not listed gets a
colour and a marker from its own hash, so it too looks the same in every figure."""

from __future__ import annotations

import io
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from sbu.files import write_atomic

DPI = 200  # PNG resolution of every saved figure
SVG_COMMENT = re.compile(rb"<!--.*?-->", re.S)  # matplotlib repeats each drawn text in a comment beside its glyphs


@dataclass(frozen=True)
class Look:
    """How one condition is drawn: its colour (hex) and its matplotlib marker."""

    colour: str
    marker: str


# seaborn's "colorblind" palette where it is dark enough on white, darker shades where it is not
LOOKS: dict[str, Look] = {
    "none": Look("#949494", "X"),
    "memory-only": Look("#0173b2", "s"),
    "sra": Look("#de8f05", "^"),
    "sra, calibrated": Look("#9c6300", ">"),
    "grad_ascent": Look("#b8a200", "d"),
    "grad_diff": Look("#ca9161", "<"),
    "npo": Look("#cc78bc", "v"),
    "simnpo": Look("#e377c2", "P"),
    "me": Look("#56b4e9", "h"),
    "idk_nll": Look("#d55e00", "p"),
    "sbu": Look("#029e73", "o"),
    "retrain": Look("#222222", "*"),
    "sbu − barrier": Look("#004d38", "D"),
    "sbu − obligation": Look("#6b8e23", "s"),
    "sbu − verify rounds": Look("#2bbf8f", "H"),
    "sbu − repair": Look("#86d4b4", "8"),
    "sbu, prior uniform": Look("#117a65", "d"),
    "sbu, prior random_model": Look("#5c9e31", "p"),
    "sbu, τ = 0.5": Look("#a5d46a", "P"),
    "sbu, τ = 4": Look("#1d6f42", "X"),
}
ALIASES = {"base": "none", "parameter-only": "sra", "retrain + closure": "retrain"}
FALLBACK_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#7f7f7f", "#bcbd22",
                    "#17becf", "#393b79")
FALLBACK_MARKERS = "os^vDPX<>h"

# reference lines: the retrain model's value is dotted in the retrain colour, a threshold (ε, a target) dashed
REFERENCE = {"color": LOOKS["retrain"].colour, "linestyle": ":", "linewidth": 1.2}
THRESHOLD = {"color": "#555555", "linestyle": "--", "linewidth": 1.0}


def key(name: str) -> str:
    """The palette entry a table's name is drawn with."""
    name = str(name).strip().lower()
    if name.startswith("parameter-only (") and name.endswith(")"):
        name = name[len("parameter-only ("):-1]
    return ALIASES.get(name, name)


def look(name: str) -> Look:
    """The colour and marker of a condition, arm, method or model (see the module's docstring)."""
    found = LOOKS.get(key(name))
    if found is not None:
        return found
    h = zlib.crc32(key(name).encode())
    return Look(FALLBACK_COLOURS[h % len(FALLBACK_COLOURS)], FALLBACK_MARKERS[h // 7 % len(FALLBACK_MARKERS)])


def colours(names: Iterable[str]) -> dict[str, str]:
    """``{name: colour}`` for seaborn's ``palette``."""
    return {n: look(n).colour for n in names}


def markers(names: Iterable[str]) -> dict[str, str]:
    """``{name: marker}`` for seaborn's ``markers``."""
    return {n: look(n).marker for n in names}


def round_ticks(ax: Axes, rounds: Iterable[int]) -> None:
    """Integer ticks on a rounds axis: one per round drawn."""
    ticks = sorted({int(r) for r in rounds})
    ax.set_xticks(ticks, [str(t) for t in ticks])
    if len(ticks) == 1:
        ax.set_xlim(ticks[0] - 0.5, ticks[0] + 0.5)


def seeds_phrase(n: int) -> str:
    """What a figure's numbers are: a mean ± 95 % CI only over two seeds or more."""
    return f"mean ± 95 % CI over {n} seeds" if n >= 2 else "one seed"


def figure_of(drawn) -> Figure:
    """The matplotlib Figure of a Figure, an Axes or a seaborn grid."""
    return drawn if isinstance(drawn, Figure) else drawn.figure


def save(drawn, folder: str | Path, name: str) -> list[Path]:
    """Write a figure (or an Axes' figure, or a seaborn grid's) as ``folder/name.png`` (DPI) and ``.svg``, each
    whole or not at all, readable by all. The SVG draws text as glyph outlines and keeps no comments, so, like the
    PNG, it holds no text a leak scan could find. Returns the two paths."""
    figure = figure_of(drawn)
    paths = []
    for ext in ("png", "svg"):
        buffer = io.BytesIO()
        with matplotlib.rc_context({"svg.fonttype": "path"}):
            figure.savefig(buffer, format=ext, dpi=DPI, bbox_inches="tight",
                           metadata={"Date": None} if ext == "svg" else None)
        data = SVG_COMMENT.sub(b"", buffer.getvalue()) if ext == "svg" else buffer.getvalue()
        path = Path(folder) / f"{name}.{ext}"
        write_atomic(path, data, mode=0o644)  # readable like any result file (mkstemp makes 0600)
        paths.append(path)
    return paths
