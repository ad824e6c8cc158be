"""Search engines behind one protocol; `open_engine` picks one from the settings."""

from __future__ import annotations

from indexer.config import Settings
from indexer.engines.base import EngineError, EngineUnavailable, SearchEngine


def open_engine(settings: Settings) -> SearchEngine:
    if settings.search_engine == "tantivy":
        from indexer.engines.tantivy_engine import TantivyEngine

        return TantivyEngine(settings.index_dir)
    if settings.search_engine == "elasticsearch":
        if not settings.elasticsearch_url:
            raise EngineError("Elasticsearch を使うには ELASTICSEARCH_URL を設定してください")
        from indexer.engines.breaker import CircuitBreaker
        from indexer.engines.elasticsearch_engine import ElasticsearchEngine

        # Fail fast while the cluster is down instead of tying up a thread per search (T28).
        return CircuitBreaker(ElasticsearchEngine(settings.elasticsearch_url))
    raise EngineError(f"検索エンジン {settings.search_engine} はまだ使えません")


__all__ = ["EngineError", "EngineUnavailable", "SearchEngine", "open_engine"]
