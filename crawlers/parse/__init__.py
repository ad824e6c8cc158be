"""Pure parsers: fetched or uploaded bytes in, record drafts out (DESIGN "crawlers", RELIABILITY T15, T16).

A draft is a plain dict shaped for ``schemas.validate_record`` without ``source``, ``provenance`` and ``id``,
which the pipeline adds. Datetimes in drafts are ISO 8601 strings with their offset, so drafts can cross a
Celery (JSON) boundary unchanged. Every parser raises only ``ParseError`` on input it cannot use.
"""

from crawlers.parse.errors import ParseError

__all__ = ["ParseError"]
