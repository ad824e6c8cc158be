"""The one exception the parsers raise on input they cannot use."""

from __future__ import annotations


class ParseError(ValueError):
    """The document cannot become records. The message is Japanese and meant for a source operator."""
