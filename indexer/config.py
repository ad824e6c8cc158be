"""Runtime settings, each declared once with its environment variable, default and meaning."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path


class ConfigError(ValueError):
    """A setting has a value the service cannot run with."""


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(metadata={"env": "LIBRARY_DATA_DIR", "help": "SQLite file and tantivy index live here"})
    database_url: str = field(
        metadata={"env": "LIBRARY_DATABASE_URL", "help": "SQLAlchemy URL; default: SQLite in the data directory"}
    )
    search_engine: str = field(metadata={"env": "LIBRARY_SEARCH_ENGINE", "help": "tantivy | elasticsearch"})
    elasticsearch_url: str | None = field(metadata={"env": "ELASTICSEARCH_URL", "help": "cluster URL"})
    broker_url: str | None = field(
        metadata={"env": "LIBRARY_BROKER_URL", "help": "Celery broker (redis://...); empty: run jobs in-process"}
    )

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        data_dir = Path(_env("LIBRARY_DATA_DIR", "data")).expanduser().resolve()
        values: dict[str, object] = {
            "data_dir": data_dir,
            "database_url": _env("LIBRARY_DATABASE_URL", f"sqlite:///{data_dir / 'library.db'}"),
            "search_engine": _env("LIBRARY_SEARCH_ENGINE", "tantivy").lower(),
            "elasticsearch_url": os.environ.get("ELASTICSEARCH_URL") or None,
            "broker_url": os.environ.get("LIBRARY_BROKER_URL") or None,
        }
        values.update(overrides)
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.search_engine not in ("tantivy", "elasticsearch"):
            raise ConfigError(
                f"LIBRARY_SEARCH_ENGINE={self.search_engine!r} は使えません（tantivy または elasticsearch）"
            )
        if self.search_engine == "elasticsearch" and not self.elasticsearch_url:
            raise ConfigError("LIBRARY_SEARCH_ENGINE=elasticsearch には ELASTICSEARCH_URL が必要です")

    @staticmethod
    def documented() -> list[tuple[str, str]]:
        """(environment variable, meaning) for every setting: the README's configuration table."""
        return [(f.metadata["env"], f.metadata["help"]) for f in fields(Settings)]
