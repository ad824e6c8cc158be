"""Plain-text helpers shared by the parsers, and the record schema's length limits (schemas/records.py)."""

from __future__ import annotations

import re

LINE_MAX = 500  # title and the other one-line fields
PARAGRAPH_MAX = 5000  # contact and the other paragraph fields
BODY_MAX = 200_000

_SPACES = re.compile(r"[ \t\f\v\r\u00a0\u200b]+")


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tidy(text: str) -> str:
    """Runs of spaces collapsed, lines stripped, empty lines dropped. Ideographic spaces inside a line are
    kept: they are part of how Japanese text is written."""
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def one_line(text: str) -> str:
    """``tidy`` text with its lines joined by spaces."""
    return " ".join(tidy(text).split("\n"))
