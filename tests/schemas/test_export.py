import json

import pytest

from schemas import KIND_MODELS, KINDS, all_category_ids
from schemas.export import SCHEMA_PATH, record_json_schema, render_record_json_schema


def test_committed_schema_file_matches_the_models():
    # If this fails, run `python -m schemas.export` and commit the file.
    assert SCHEMA_PATH.read_text(encoding="utf-8") == render_record_json_schema()
    assert json.loads(SCHEMA_PATH.read_text(encoding="utf-8")) == record_json_schema()


def test_schema_document_header():
    schema = record_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] and schema["title"]
    assert schema["discriminator"]["propertyName"] == "kind"
    assert set(schema["discriminator"]["mapping"]) == set(KINDS)
    assert len(schema["oneOf"]) == len(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_describes_exactly_its_fields(kind):
    definition = record_json_schema()["$defs"][KIND_MODELS[kind].__name__]
    assert definition["additionalProperties"] is False
    assert definition["properties"]["kind"]["const"] == kind
    assert "kind" in definition["required"]
    assert set(definition["properties"]) == set(KIND_MODELS[kind].model_fields)


def test_schema_carries_the_checks_that_have_no_pydantic_constraint():
    definitions = record_json_schema()["$defs"]
    notice, product = definitions["NoticeRecord"]["properties"], definitions["ProductRecord"]["properties"]
    assert notice["categories"]["items"]["enum"] == list(all_category_ids())
    assert notice["jan_codes"]["items"]["pattern"] == "^(?:[0-9]{8}|[0-9]{13})$"
    assert len(product["allergens"]["items"]["enum"]) == 28
    assert definitions["PageRecord"]["properties"]["url"]["format"] == "uri"
