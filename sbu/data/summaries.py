"""How a summary's text is derived from the texts of its sources — one rule for the summaries a data set ships
(PubMedQA-L concept summaries) and for the successors memory repair re-derives from retained sources.

A summary names what it summarizes, how many sources it has, and quotes the first few of them in order; it holds
nothing that is not in its sources, so a successor derived from retained sources alone holds nothing forgotten.
"""

from __future__ import annotations

from collections.abc import Sequence

QUOTED_SOURCES = 3  # how many source sentences a summary quotes


def summary_text(title: str, source_texts: Sequence[str], quoted: int = QUOTED_SOURCES) -> str:
    """``"<title> (<n> sources): <first `quoted` texts>"``, e.g. ``"Concept summary for Apoptosis (4 sources): …"``."""
    texts = [t.strip() for t in source_texts if t and t.strip()]
    noun = "source" if len(texts) == 1 else "sources"
    return f"{title} ({len(texts)} {noun}): " + " ".join(texts[:quoted])
