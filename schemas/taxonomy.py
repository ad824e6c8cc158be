"""The two-level category taxonomy (``taxonomy.json``): ASCII dotted ids with Japanese labels.

A record lists the categories it belongs to; choosing a child category implies nothing about its parent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from types import MappingProxyType
from typing import Any

_SEGMENT = r"[a-z][a-z0-9_]*"
_ID_RE = re.compile(rf"{_SEGMENT}(?:\.{_SEGMENT})?")


@dataclass(frozen=True, slots=True)
class Category:
    id: str
    label: str
    parent: str | None = None


class Taxonomy:
    """Categories in file order: each top-level category is followed by its children."""

    def __init__(self, categories: Iterable[Category]) -> None:
        by_id: dict[str, Category] = {}
        for category in categories:
            _check(category, by_id)
            by_id[category.id] = category
        self._by_id: Mapping[str, Category] = MappingProxyType(by_id)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Taxonomy:
        """From the file's shape: ``{"categories": [{"id", "label", "children": [{"id", "label"}]}]}``."""
        return cls(
            category
            for top in data["categories"]
            for category in (
                Category(top["id"], top["label"]),
                *(Category(child["id"], child["label"], top["id"]) for child in top.get("children", ())),
            )
        )

    def __contains__(self, category_id: object) -> bool:
        return category_id in self._by_id

    def __getitem__(self, category_id: str) -> Category:
        try:
            return self._by_id[category_id]
        except KeyError:
            raise KeyError(f"unknown category: {category_id!r}") from None

    def __iter__(self) -> Iterator[Category]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._by_id)

    @property
    def roots(self) -> tuple[Category, ...]:
        return tuple(c for c in self._by_id.values() if c.parent is None)

    def children(self, category_id: str) -> tuple[Category, ...]:
        self[category_id]  # unknown ids raise rather than look childless
        return tuple(c for c in self._by_id.values() if c.parent == category_id)


def _check(category: Category, seen: Mapping[str, Category]) -> None:
    if not _ID_RE.fullmatch(category.id):
        raise ValueError(f"category id must be one or two dotted lowercase ASCII segments: {category.id!r}")
    if category.id in seen:
        raise ValueError(f"duplicate category id: {category.id!r}")
    if not category.label.strip():
        raise ValueError(f"category {category.id!r} has no label")
    expected_parent = category.id.rpartition(".")[0] or None
    if category.parent != expected_parent:
        raise ValueError(f"category {category.id!r} must be listed under {expected_parent!r}")
    if expected_parent is not None and expected_parent not in seen:
        raise ValueError(f"category {category.id!r} comes before its parent {expected_parent!r}")


@cache
def load_taxonomy() -> Taxonomy:
    return Taxonomy.from_dict(json.loads(files(__package__).joinpath("taxonomy.json").read_text("utf-8")))


def is_category(category_id: str) -> bool:
    return category_id in load_taxonomy()


def category_label(category_id: str) -> str:
    """The Japanese label; ``KeyError`` for an unknown id."""
    return load_taxonomy()[category_id].label


def category_parent(category_id: str) -> str | None:
    """The parent's id, or None for a top-level category; ``KeyError`` for an unknown id."""
    return load_taxonomy()[category_id].parent


def all_category_ids() -> tuple[str, ...]:
    return load_taxonomy().ids
