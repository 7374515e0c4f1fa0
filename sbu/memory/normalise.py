"""The one text normaliser of the write barrier: what a blocked entry and a checked text are both reduced to.

A text is matched on what it says, not on how it is spelled. :func:`tokens` reduces it in this order:

1. HTML entities decoded and HTML tags dropped (``<em>Kalo</em>`` → ``Kalo``);
2. format characters removed (Unicode category Cf: zero-width spaces and joiners, soft hyphens, bidi marks);
3. NFKC (full-width and compatibility forms), then NFD with every combining mark dropped (diacritics folded, both
   precomposed and combining: ``Kälo`` → ``Kalo``);
4. look-alike letters of other scripts mapped to the Latin letter they imitate, a TR39-style skeleton built from
   the Unicode confusables table that ``confusable-homoglyphs`` ships (only non-ASCII *letters* whose table
   entry is one ASCII letter are mapped: Cyrillic ``а`` → ``a``, Greek ``ο`` → ``o``; digits and ASCII stay as
   they are, so ``1`` never becomes ``l``);
5. case folding (``ß`` → ``ss``);
6. possessives reduced (``Parta's``, ``Parta’s`` → ``Parta``);
7. split into runs of letters or digits: every other character — punctuation, markdown ``*_~```, dashes, slashes,
   white space — separates, and so does a change between letters and digits (``75mg`` → ``75 mg``).

:func:`normalize` joins the tokens with single spaces; it is idempotent. :func:`name_forms` lists the token
sequences under which a person's name is blocked (either order, initials, joined) and :func:`unique_forms` /
:func:`value_unique_forms` reduce record numbers and dates to one canonical digit string whatever their
separators or date format.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import unicodedata
from functools import cache
from importlib import resources

_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]{0,300})?/?>")  # <em>, </b>, <a href="…">; not <https://…>
_POSSESSIVE = re.compile(r"(?<=\w)['’ʼ‘`´](?:s\b)?")  # Parta's, Parta’s, Partas' → Parta
_TOKEN = re.compile(r"[^\W\d_]+|\d+")  # a run of letters, or a run of digits
_DIGIT_RUN = re.compile(r"\d+(?:[^\w]{1,3}\d+)*")  # digit groups joined by short separators: 12-34-56, 2024/03/05
MONTHS = {name: n for n, names in enumerate(
    [("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",), ("june", "jun"),
     ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"), ("october", "oct"),
     ("november", "nov"), ("december", "dec")], start=1) for name in names}
_ORDINAL = {"st", "nd", "rd", "th"}
MIN_UNIQUE_DIGITS = 5  # a number blocked whoever the note is about has at least this many digits (an age has 2)
MAX_NAME_TOKENS = 4  # names longer than this (a paper's title) are blocked only as written, in order


@cache
def skeleton_table() -> dict[int, str]:
    """Non-ASCII letters → the ASCII letter they are confusable with (from the Unicode confusables data shipped
    by ``confusable-homoglyphs``), as a ``str.translate`` table."""
    data = json.loads((resources.files("confusable_homoglyphs") / "confusables.json").read_text(encoding="utf-8"))
    table: dict[int, str] = {}
    for char, glyphs in data.items():
        if len(char) != 1 or char.isascii() or not unicodedata.category(char).startswith("L"):
            continue
        targets = {g["c"].lower() for g in glyphs if len(g["c"]) == 1 and g["c"].isascii() and g["c"].isalpha()}
        if len(targets) == 1:
            table[ord(char)] = targets.pop()
    return table


def fold(text: str) -> str:
    """Characters only (steps 1–5 of the module doc): no format characters, no diacritics, skeleton letters,
    case-folded."""
    text = _TAG.sub(" ", html.unescape(str(text)))
    if text.isascii():  # every step below leaves ASCII as it is, but case folding (most of memory's texts)
        return text.lower()
    text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    text = unicodedata.normalize("NFKC", text)
    text = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    table = skeleton_table()
    text = text.translate(table).casefold().translate(table)
    return unicodedata.normalize("NFC", text)


def tokens(text: str) -> list[str]:
    """The words of ``text`` after :func:`fold`, possessives reduced, split on everything but letters and digits."""
    return _TOKEN.findall(_POSSESSIVE.sub(" ", fold(text)))


def normalize(text: str) -> str:
    """:func:`tokens` joined by single spaces: the form every blocked entry and every checked n-gram is hashed in."""
    return " ".join(tokens(text))


def name_forms(name: str) -> set[str]:
    """The normalized token sequences a name is blocked as. For a name of 2–4 words (given names, then the
    surname): as written, surname first (also ``Surname, Given``), each given name with the surname, initials
    with the surname (either side), and joined into one word (``KaloParta``, ``PartaKalo``). A single word or a
    longer name (a title) is blocked as written, plus joined when short."""
    words = tokens(name)
    if not words:
        return set()
    forms = {" ".join(words)}
    if len(words) <= MAX_NAME_TOKENS:
        forms.add("".join(words))
    if 2 <= len(words) <= MAX_NAME_TOKENS and all(w.isalpha() for w in words):
        given, surname = words[:-1], words[-1]
        initials = [g[0] for g in given]
        forms |= {" ".join([surname, *given]), "".join([surname, *given]),
                  " ".join([*initials, surname]), " ".join([surname, *initials]), "".join(initials) + " " + surname}
        forms |= {f"{g} {surname}" for g in given} | {f"{surname} {g}" for g in given}
    return forms


def _date(y: int, m: int, d: int) -> str | None:
    try:
        return dt.date(y, m, d).strftime("%Y%m%d") if 1000 <= y <= 2999 else None
    except ValueError:
        return None


def _dates_of_groups(groups: list[str]) -> set[str]:
    """Every date three digit groups can be read as: year first (2024-03-05), or year last with the day and month
    either way round (05/03/2024, 03/05/2024)."""
    out = set()
    for i in range(len(groups) - 2):
        a, b, c = groups[i: i + 3]
        if len(a) == 4:
            out.add(_date(int(a), int(b), int(c)))
        if len(c) == 4:
            out |= {_date(int(c), int(b), int(a)), _date(int(c), int(a), int(b))}
    return out - {None}


def _dates_with_month_names(words: list[str]) -> set[str]:
    """``5 March 2024``, ``5th of March, 2024``, ``March 5 2024``, ``Mar 5th, 2024`` (words already tokenized)."""
    out = set()
    for i, w in enumerate(words):
        if w not in MONTHS:
            continue
        after = [x for x in words[i + 1: i + 4] if x not in _ORDINAL]
        before = [x for x in words[max(0, i - 4): i] if x not in _ORDINAL and x != "of"]
        year_after = next((x for x in after if x.isdigit() and len(x) == 4), None)
        if len(after) >= 2 and after[0].isdigit() and len(after[0]) <= 2 and after[1] == year_after:
            out.add(_date(int(year_after), MONTHS[w], int(after[0])))
        if before and before[-1].isdigit() and len(before[-1]) <= 2 and after and after[0] == year_after:
            out.add(_date(int(year_after), MONTHS[w], int(before[-1])))
    return out - {None}


def unique_forms(text: str) -> set[str]:
    """The canonical digit strings a text carries: every run of digit groups joined by short separators
    (``12-34-56``, ``12 34 56``, ``123.456``) as each of its contiguous concatenations, and every date it writes
    (ISO, day/month/year either way round, month names) as ``YYYYMMDD``. Only strings of at least
    :data:`MIN_UNIQUE_DIGITS` digits are kept."""
    folded = fold(text)
    out: set[str] = set()
    for run in _DIGIT_RUN.finditer(folded):
        groups = re.findall(r"\d+", run.group())
        for i in range(len(groups)):
            for j in range(i + 1, min(i + 8, len(groups)) + 1):
                out.add("".join(groups[i:j]))
        out |= _dates_of_groups(groups)
    out |= _dates_with_month_names(tokens(text))
    return {s for s in out if len(s) >= MIN_UNIQUE_DIGITS}


def value_unique_forms(value: str) -> set[str]:
    """The canonical forms under which a forgotten value is blocked whoever a note is about — only for a value that
    is a record number or a date (its words are digits only, or it reads as a date with a month name) of at least
    :data:`MIN_UNIQUE_DIGITS` digits; empty for anything else (a city, a dose, a marker: values others share)."""
    words = tokens(value)
    if not words:
        return set()
    if all(w.isdigit() for w in words):
        dates = _dates_of_groups(words) if len(words) == 3 else set()
        forms = dates or {"".join(words)}
    else:
        dates = _dates_with_month_names(words)
        forms = dates if dates and len(words) <= 5 else set()
    return {f for f in forms if len(f) >= MIN_UNIQUE_DIGITS}
