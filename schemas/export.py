"""The JSON Schema of ``Record``; ``python -m schemas.export`` rewrites ``record.schema.json``."""

import json
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from .records import Record

SCHEMA_PATH = Path(__file__).with_name("record.schema.json")
SCHEMA_ID = "urn:social-library:schemas:record"


def record_json_schema() -> dict[str, Any]:
    """A JSON Schema 2020-12 document for a record of any kind, as ``record_to_dict`` writes it."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "社会ライブラリのレコード",
        **TypeAdapter(Record).json_schema(),
    }


def render_record_json_schema() -> str:
    return json.dumps(record_json_schema(), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    SCHEMA_PATH.write_text(render_record_json_schema(), encoding="utf-8")
    print(f"wrote {SCHEMA_PATH}")


if __name__ == "__main__":
    main()
