"""The bundled demo data set (``library init --demo``) is valid and covers what the demo needs."""

import json
from datetime import datetime
from importlib import resources
from typing import Any

import pytest

from schemas import JST, KINDS, NoticeRecord, RecordBase, validate_record

DEMO_FILE = resources.files("indexer") / "demo" / "records.jsonl"


def _lines() -> list[str]:
    return DEMO_FILE.read_text(encoding="utf-8").splitlines()


def _raw_records() -> list[dict[str, Any]]:
    return [json.loads(line) for line in _lines()]


@pytest.fixture(scope="module")
def records() -> list[RecordBase]:
    return [validate_record(data) for data in _raw_records()]


def test_every_line_is_a_json_object_that_validates() -> None:
    lines = _lines()
    assert 40 <= len(lines) <= 60
    for number, line in enumerate(lines, start=1):
        assert line.strip(), f"{number} 行目が空です"
        data = json.loads(line)
        assert isinstance(data, dict), f"{number} 行目"
        validate_record(data)  # raises RecordValidationError with every problem


def test_ids_are_explicit_unique_and_from_the_demo_source(records: list[RecordBase]) -> None:
    ids = [record.id for record in records]
    assert all(ids), "every demo record needs a stable id"
    assert len(ids) == len(set(ids))
    assert all(record.source == "demo" for record in records)


def test_all_kinds_are_present(records: list[RecordBase]) -> None:
    assert {record.kind for record in records} == set(KINDS)


def test_references_point_at_demo_records(records: list[RecordBase]) -> None:
    by_id = {record.id: record for record in records}
    for record in records:
        for shop_id in getattr(record, "shop_ids", []):
            assert by_id[shop_id].kind == "shop", record.id
        about = getattr(record, "about_record_id", None)
        if about is not None:
            assert about in by_id, record.id


def test_urgent_notices_include_an_active_and_an_expired_one(records: list[RecordBase]) -> None:
    # The demo is dated to its writing (late 2026); a fixed day keeps this test from expiring with the data.
    now = datetime(2026, 12, 1, tzinfo=JST)
    urgent = [r for r in records if isinstance(r, NoticeRecord) and r.urgent and r.valid_until is not None]
    assert any(notice.valid_until > now for notice in urgent), "no active urgent notice"
    assert any(notice.valid_until < now for notice in urgent), "no expired urgent notice"
