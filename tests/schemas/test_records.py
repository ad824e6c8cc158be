import json
from datetime import UTC, date, datetime, timedelta
from typing import Any, get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas import (
    ALLERGENS,
    JST,
    KIND_LABELS,
    KIND_MODELS,
    KINDS,
    MANDATORY_ALLERGENS,
    PROVENANCE_LABELS,
    SEARCHABLE_TEXT_FIELDS,
    SEVERITY_LABELS,
    STATUS_LABELS,
    FieldError,
    NoticeRecord,
    Provenance,
    RecordValidationError,
    Severity,
    Status,
    is_valid_gtin,
    record_to_dict,
    validate_record,
)

MINIMAL: dict[str, dict[str, Any]] = {
    "notice": {
        "kind": "notice",
        "title": "電気ケトル回収のお知らせ",
        "provenance": "maker",
        "maker": "山田電機",
        "product": "電気ケトル KT-100",
        "hazard": "電源部が発火するおそれがあります",
        "action": "使用を中止し、販売店へご連絡ください",
    },
    "product": {"kind": "product", "title": "国産大豆の豆腐", "provenance": "coop", "maker": "みどり食品"},
    "program": {
        "kind": "program",
        "title": "子育てサロン",
        "provenance": "npo",
        "organizer": "NPO法人ひだまり",
    },
    "facility": {"kind": "facility", "title": "中央公民館", "provenance": "government"},
    "contribution": {"kind": "contribution", "title": "公園のベンチが壊れています", "provenance": "citizen"},
    "shop": {"kind": "shop", "title": "さくら商店", "provenance": "shop"},
    "campaign": {"kind": "campaign", "title": "秋のポイント2倍", "provenance": "coop"},
    "page": {
        "kind": "page",
        "title": "ごみの出し方",
        "provenance": "government",
        "url": "https://www.city.example.jp/gomi/",
    },
    "faq": {"kind": "faq", "title": "粗大ごみはどう出せばよいですか", "provenance": "government"},
}

COMMON_FULL: dict[str, Any] = {
    "id": "rec:2026.11-001",
    "body": "本文です。\n詳しくはお問い合わせください。",
    "url": "https://example.jp/info?id=1#top",
    "source": "crawl:3",
    "external_id": "A-17",
    "organization": "みなと町役場",
    "region": "みなと町",
    "categories": ["living", "living.procedures"],
    "tags": ["お知らせ", "秋"],
    "published_at": "2026-11-01T09:30:00+09:00",
    "updated_at": "2026-11-02T00:00:00Z",
    "verified_at": "2026-11-03T12:00:00+09:00",
    "status": "pending",
}

FULL: dict[str, dict[str, Any]] = {
    "notice": {
        "jan_codes": ["4901234567894", "49012347"],
        "model_numbers": ["KT-100", "KT-100W"],
        "lot_numbers": ["2026A"],
        "severity": "critical",
        "urgent": True,
        "valid_until": "2027-03-31T23:59:59+09:00",
        "contact": "お客様相談室 0120-000-000",
    },
    "product": {"jan_code": "4006381333931", "allergens": ["大豆", "小麦"], "price_yen": 198},
    "program": {
        "starts_at": "2026-11-10T10:00:00+09:00",
        "ends_at": "2026-11-10T12:00:00+09:00",
        "place": "中央公民館 2階",
        "address": "みなと町1-2-3",
        "audience": "0〜3歳の子と保護者",
        "fee": "無料",
        "contact": "090-0000-0000",
        "application_deadline": "2026-11-05T17:00:00+09:00",
    },
    "facility": {
        "facility_type": "公民館",
        "address": "みなと町1-2-3",
        "phone": "0000-00-0000",
        "opening_hours": "9:00〜21:00",
        "latitude": 35.6812,
        "longitude": 139.7671,
    },
    "contribution": {"about_record_id": "rec:2026.11-002"},
    "shop": {
        "address": "みなと町2-3-4",
        "phone": "0000-11-1111",
        "opening_hours": "10:00〜19:00（水曜定休）",
        "shop_code": "S-042",
        "accepts_points": True,
    },
    "campaign": {
        "organizer": "みなと町商店会",
        "starts_at": "2026-11-01T00:00:00+09:00",
        "ends_at": "2026-11-30T23:59:59+09:00",
        "points_rule": "100円ごとに2ポイント",
        "shop_ids": ["shop-1", "shop-2"],
    },
    "page": {"site": "みなと町公式サイト", "fetched_at": "2026-11-04T03:00:00+09:00"},
    "faq": {},
}


def minimal(kind: str, **changes: Any) -> dict[str, Any]:
    return {**MINIMAL[kind], **changes}


def full(kind: str) -> dict[str, Any]:
    return {**MINIMAL[kind], **COMMON_FULL, **FULL[kind]}


def errors_of(data: Any) -> list[FieldError]:
    with pytest.raises(RecordValidationError) as caught:
        validate_record(data)
    return caught.value.errors


@pytest.mark.parametrize("kind", KINDS)
def test_minimal_record_of_each_kind(kind):
    record = validate_record(MINIMAL[kind])
    assert type(record) is KIND_MODELS[kind]
    assert record.kind == kind
    assert record.id is None
    assert record.status == "published"
    assert record.categories == [] and record.tags == []


@pytest.mark.parametrize("kind", KINDS)
def test_full_record_of_each_kind_round_trips(kind):
    record = validate_record(full(kind))
    data = record_to_dict(record)
    assert json.loads(json.dumps(data, ensure_ascii=False)) == data
    assert validate_record(data) == record
    assert record_to_dict(validate_record(data)) == data


@pytest.mark.parametrize("kind", KINDS)
def test_record_to_dict_keeps_every_field(kind):
    data = record_to_dict(validate_record(MINIMAL[kind]))
    assert list(data) == list(KIND_MODELS[kind].model_fields)
    assert data["id"] is None and data["url"] == MINIMAL[kind].get("url")


def test_record_to_dict_writes_datetimes_with_offset():
    data = record_to_dict(validate_record(full("program")))
    assert data["starts_at"] == "2026-11-10T10:00:00+09:00"
    assert data["updated_at"] == "2026-11-02T00:00:00Z"


def test_kind_tables_cover_every_kind():
    assert KINDS == tuple(KIND_LABELS) == tuple(SEARCHABLE_TEXT_FIELDS)
    assert len(KINDS) == 9
    assert set(PROVENANCE_LABELS) == set(get_args(Provenance))
    assert set(STATUS_LABELS) == set(get_args(Status))
    assert set(SEVERITY_LABELS) == set(get_args(Severity))
    assert KIND_LABELS["notice"] == "お知らせ・リコール"
    assert PROVENANCE_LABELS["npo"] == "NPO確認済み"


@pytest.mark.parametrize("kind", KINDS)
def test_searchable_fields_hold_text(kind):
    data = record_to_dict(validate_record(full(kind)))
    for name in SEARCHABLE_TEXT_FIELDS[kind]:
        value = data[name]
        assert isinstance(value, str) or (value and all(isinstance(item, str) for item in value)), name


ID_MESSAGE = "ID は英数字で始め、英数字と . _ : - だけを使って 128 文字以内にしてください"
DATETIME_MESSAGE = (
    "日付または日時を ISO 8601 形式で入力してください（例: 2026-11-01、2026-11-01T10:00:00+09:00）"
)
CHECK_DIGIT_MESSAGE = "JAN コードのチェックディジットが正しくありません"
GTIN_FORMAT_MESSAGE = "JAN コードは 8 桁または 13 桁の数字で入力してください"
URL_MESSAGE = "http または https の URL を入力してください"
PERIOD_MESSAGE = "終了日時は開始日時と同じかそれより後にしてください"

INVALID = [
    # (kind, changes, field, message)
    ("faq", {"title": None}, "title", "文字列で入力してください"),
    ("faq", {"title": "   "}, "title", "空欄にはできません"),
    ("faq", {"title": "あ" * 501}, "title", "500 文字以内で入力してください"),
    ("faq", {"body": "x" * 200_001}, "body", "200000 文字以内で入力してください"),
    ("faq", {"id": "-starts-with-dash"}, "id", ID_MESSAGE),
    ("faq", {"id": "a" * 129}, "id", ID_MESSAGE),
    ("faq", {"id": "id/with/slash"}, "id", ID_MESSAGE),
    (
        "faq",
        {"provenance": "blog"},
        "provenance",
        "次のいずれかを指定してください: maker, government, npo, coop, shop, citizen",
    ),
    (
        "faq",
        {"status": "draft"},
        "status",
        "次のいずれかを指定してください: published, pending, retracted, expired",
    ),
    ("faq", {"titel": "typo"}, "titel", "不明な項目です"),
    ("faq", {"categories": ["safety", "unknown.cat"]}, "categories.1", "不明なカテゴリです: unknown.cat"),
    ("faq", {"categories": "safety"}, "categories", "配列（リスト）で指定してください"),
    ("faq", {"tags": [1]}, "tags.0", "文字列で入力してください"),
    ("faq", {"published_at": "2026/11/01"}, "published_at", DATETIME_MESSAGE),
    ("faq", {"verified_at": "来週"}, "verified_at", DATETIME_MESSAGE),
    ("notice", {"maker": None}, "maker", "文字列で入力してください"),
    ("notice", {"hazard": ""}, "hazard", "空欄にはできません"),
    ("notice", {"jan_codes": ["4901234567890"]}, "jan_codes.0", CHECK_DIGIT_MESSAGE),
    ("notice", {"jan_codes": ["4901234567894", "123"]}, "jan_codes.1", GTIN_FORMAT_MESSAGE),
    ("notice", {"jan_codes": ["490123456789X"]}, "jan_codes.0", GTIN_FORMAT_MESSAGE),
    ("notice", {"model_numbers": [""]}, "model_numbers.0", "空欄にはできません"),
    ("notice", {"lot_numbers": ["Ｌ" * 101]}, "lot_numbers.0", "100 文字以内で入力してください"),
    ("faq", {"tags": ["t" * 101]}, "tags.0", "100 文字以内で入力してください"),
    (
        "notice",
        {"severity": "urgent"},
        "severity",
        "次のいずれかを指定してください: critical, high, medium, low",
    ),
    ("notice", {"urgent": "maybe"}, "urgent", "true または false で指定してください"),
    ("notice", {"valid_until": "soon"}, "valid_until", DATETIME_MESSAGE),
    ("notice", {"address": "みなと町"}, "address", "不明な項目です"),
    ("product", {"jan_code": "4006381333930"}, "jan_code", CHECK_DIGIT_MESSAGE),
    (
        "product",
        {"allergens": ["小麦", "ピーナッツ"]},
        "allergens.1",
        "アレルゲンは特定原材料など 28 品目の名称で入力してください: ピーナッツ",
    ),
    ("product", {"price_yen": -1}, "price_yen", "0 以上の値を入力してください"),
    ("product", {"price_yen": "百円"}, "price_yen", "整数で入力してください"),
    ("product", {"price_yen": 9.5}, "price_yen", "整数で入力してください"),
    ("program", {"organizer": " "}, "organizer", "空欄にはできません"),
    ("program", {"starts_at": "2026-11-10T10:00", "ends_at": "2026-11-10T09:59"}, "ends_at", PERIOD_MESSAGE),
    ("facility", {"latitude": 90.5}, "latitude", "90 以下の値を入力してください"),
    ("facility", {"longitude": -180.1}, "longitude", "-180 以上の値を入力してください"),
    ("facility", {"latitude": "北緯35度"}, "latitude", "数値で入力してください"),
    ("facility", {"latitude": float("nan")}, "latitude", "有限の数値で入力してください"),
    ("contribution", {"provenance": "npo"}, "provenance", "citizen を指定してください"),
    ("shop", {"accepts_points": "はい"}, "accepts_points", "true または false で指定してください"),
    ("campaign", {"starts_at": "2026-12-01", "ends_at": "2026-11-30"}, "ends_at", PERIOD_MESSAGE),
    ("campaign", {"shop_ids": ["ok-1", "not ok"]}, "shop_ids.1", ID_MESSAGE),
    ("page", {"url": ""}, "url", URL_MESSAGE),
    ("page", {"url": None}, "url", "文字列で入力してください"),
    ("page", {"site": "x" * 501}, "site", "500 文字以内で入力してください"),
]


@pytest.mark.parametrize(
    ("kind", "changes", "field", "message"), INVALID, ids=[f"{case[0]}-{case[2]}" for case in INVALID]
)
def test_invalid_field_has_japanese_message(kind, changes, field, message):
    assert FieldError(field, message) in errors_of(minimal(kind, **changes))


@pytest.mark.parametrize("kind", KINDS)
def test_required_fields_are_reported_missing(kind):
    fields = KIND_MODELS[kind].model_fields
    required = {name for name, info in fields.items() if info.is_required() and name != "kind"}
    errors = errors_of({"kind": kind})
    assert {error.field for error in errors} == required  # page: url; contribution: provenance (citizen)
    assert {error.message for error in errors} == {"必須項目です"}


def test_every_problem_is_reported_and_joined():
    with pytest.raises(RecordValidationError) as caught:
        validate_record(minimal("notice", title="", severity="x", jan_codes=["123"]))
    assert str(caught.value) == (
        "title: 空欄にはできません; jan_codes.0: JAN コードは 8 桁または 13 桁の数字で入力してください; "
        "severity: 次のいずれかを指定してください: critical, high, medium, low"
    )
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([], FieldError("", "レコードはオブジェクト（キーと値の組）で指定してください")),
        ("notice", FieldError("", "レコードはオブジェクト（キーと値の組）で指定してください")),
        ({"title": "種別なし"}, FieldError("kind", "必須項目です")),
        (
            {"kind": "recall", "title": "x"},
            FieldError(
                "kind",
                "不明な種別です: recall"
                "（notice, product, program, facility, contribution, shop, campaign, page, faq のいずれか）",
            ),
        ),
        (
            {"kind": ["notice"]},
            FieldError("kind", "不明な種別です: ['notice']（" + ", ".join(KINDS) + " のいずれか）"),
        ),
    ],
)
def test_shape_and_kind_problems_give_one_error(data, expected):
    assert errors_of(data) == [expected]


def test_field_error_without_field_prints_message_only():
    assert str(FieldError("", "全体の問題")) == "全体の問題"
    assert str(FieldError("tags.0", "問題")) == "tags.0: 問題"


# --- normalization ---


def test_text_is_stripped_and_blank_optional_fields_become_none():
    record = validate_record(
        minimal("program", title="  子育てサロン\u3000", place="", address="   ", url="", id="", contact="\n")
    )
    assert record.title == "子育てサロン"
    assert record.place is None and record.address is None and record.url is None
    assert record.id is None and record.contact is None


def test_tags_are_nfkc_normalized_stripped_and_deduplicated():
    record = validate_record(minimal("faq", tags=[" ﾘｻｲｸﾙ ", "", "リサイクル", "ＥＣＯ", "\u3000", "ECO"]))
    assert record.tags == ["リサイクル", "ECO"]


def test_categories_are_deduplicated_in_order():
    record = validate_record(minimal("faq", categories=["safety.recall", "safety", "safety.recall"]))
    assert record.categories == ["safety.recall", "safety"]


def test_codes_accept_full_width_input():
    record = validate_record(
        minimal(
            "notice",
            jan_codes=["４９０１２３４５６７８９４", "4901234567894"],
            model_numbers=["ＫＴ－１００"],
        )
    )
    assert record.jan_codes == ["4901234567894"]
    assert record.model_numbers == ["KT-100"]
    assert validate_record(minimal("product", jan_code="７３５１３５３７")).jan_code == "73513537"


def test_allergens_accept_half_width_katakana():
    record = validate_record(minimal("product", allergens=["ｷｳｲﾌﾙｰﾂ", "卵", "キウイフルーツ"]))
    assert record.allergens == ["キウイフルーツ", "卵"]


def test_all_28_allergens_are_accepted():
    assert len(ALLERGENS) == len(set(ALLERGENS)) == 28
    assert set(MANDATORY_ALLERGENS) == {"えび", "かに", "くるみ", "小麦", "そば", "卵", "乳", "落花生"}
    assert validate_record(minimal("product", allergens=list(ALLERGENS))).allergens == list(ALLERGENS)


def test_contribution_may_be_about_another_record():
    record = validate_record(minimal("contribution", about_record_id="rec-1"))
    assert record.provenance == "citizen" and record.about_record_id == "rec-1"


def test_program_may_end_when_it_starts():
    record = validate_record(minimal("program", starts_at="2026-11-10T10:00", ends_at="2026-11-10T10:00"))
    assert record.ends_at == record.starts_at
    assert validate_record(minimal("program", ends_at="2026-11-10")).starts_at is None


def test_validation_applies_to_assignment():
    record = validate_record(MINIMAL["faq"])
    record.published_at = datetime(2026, 11, 1, 10)
    assert record.published_at.utcoffset() == timedelta(hours=9)
    with pytest.raises(ValidationError):
        record.url = "javascript:alert(1)"


# --- GTIN / JAN ---


@pytest.mark.parametrize("code", ["4006381333931", "4901234567894", "73513537", "49012347", "0000000000000"])
def test_valid_gtins(code):
    assert is_valid_gtin(code)


@pytest.mark.parametrize(
    "code",
    [
        "4006381333930",
        "73513536",
        "400638133393",
        "40063813339311",
        "",
        "４００６３８１３３３９３１",
        "4006-381333931",
    ],
)
def test_invalid_gtins(code):
    assert not is_valid_gtin(code)


def _reference_check_digit(body: str) -> int:
    # GS1: from the right of the body, odd positions weigh 3, even positions 1.
    weighted = sum(int(d) * w for d, w in zip(reversed(body), [3, 1] * 7, strict=False))
    return -weighted % 10


GTIN_BODIES = st.sampled_from([7, 12]).flatmap(lambda n: st.text("0123456789", min_size=n, max_size=n))


@given(GTIN_BODIES, st.integers(1, 9))
def test_only_the_right_check_digit_passes(body, shift):
    check = _reference_check_digit(body)
    assert is_valid_gtin(f"{body}{check}")
    assert not is_valid_gtin(f"{body}{(check + shift) % 10}")


# --- URLs ---


@pytest.mark.parametrize(
    ("url", "stored"),
    [
        ("https://example.jp/", "https://example.jp/"),
        ("http://example.jp:8080/path?q=1#frag", "http://example.jp:8080/path?q=1#frag"),
        ("HTTPS://Example.jp/Path", "https://Example.jp/Path"),
        ("https://ja.wikipedia.org/wiki/東京", "https://ja.wikipedia.org/wiki/東京"),
        ("https://[2001:db8::1]/", "https://[2001:db8::1]/"),
        ("  https://example.jp/a  ", "https://example.jp/a"),
    ],
)
def test_http_urls_are_accepted(url, stored):
    assert validate_record(minimal("faq", url=url)).url == stored


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "file:///etc/passwd",
        "ftp://example.jp/file",
        "mailto:info@example.jp",
        "/relative/path",
        "relative/path",
        "//example.jp/no-scheme",
        "https://",
        "http:///path-only",
        "https://example.jp:99999/",
        "https://[::1/",
    ],
)
def test_other_urls_are_rejected(url):
    assert errors_of(minimal("faq", url=url)) == [FieldError("url", URL_MESSAGE)]


@pytest.mark.parametrize("url", ["https://exa mple.jp/", "https://example.jp/a\tb", "https://example.jp/\nx"])
def test_urls_with_whitespace_are_rejected(url):
    assert errors_of(minimal("faq", url=url)) == [FieldError("url", "URL に空白や制御文字は使えません")]


def test_url_length_is_capped():
    url = "https://example.jp/" + "a" * (2048 - len("https://example.jp/"))
    assert validate_record(minimal("faq", url=url)).url == url
    assert errors_of(minimal("faq", url=url + "a")) == [FieldError("url", "2048 文字以内で入力してください")]


# --- dates are Japan time unless they say otherwise ---


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=JST)),
        ("2026-11-01T10:30", datetime(2026, 11, 1, 10, 30, tzinfo=JST)),
        ("2026-11-01 10:30:00", datetime(2026, 11, 1, 10, 30, tzinfo=JST)),
        (date(2026, 11, 1), datetime(2026, 11, 1, tzinfo=JST)),
        (datetime(2026, 11, 1, 10, 30), datetime(2026, 11, 1, 10, 30, tzinfo=JST)),
    ],
)
def test_naive_dates_are_japan_time(value, expected):
    published_at = validate_record(minimal("faq", published_at=value)).published_at
    assert published_at == expected
    assert published_at.utcoffset() == timedelta(hours=9)


def test_plain_date_is_midnight_in_tokyo():
    data = record_to_dict(validate_record(minimal("faq", published_at="2026-11-01")))
    assert data["published_at"] == "2026-11-01T00:00:00+09:00"


def test_aware_datetimes_keep_their_offset():
    published_at = validate_record(minimal("faq", published_at="2026-11-01T01:00:00Z")).published_at
    assert published_at.utcoffset() == timedelta(0)
    assert published_at == datetime(2026, 11, 1, 10, tzinfo=JST)


def test_every_datetime_field_is_aware():
    record = validate_record(
        minimal(
            "notice",
            published_at="2026-11-01",
            updated_at="2026-11-02",
            verified_at="2026-11-03",
            valid_until="2027-01-01",
        )
    )
    for value in (record.published_at, record.updated_at, record.verified_at, record.valid_until):
        assert value.tzinfo is not None and value.utcoffset() == timedelta(hours=9)


def test_models_can_be_built_directly():
    record = NoticeRecord(**{**MINIMAL["notice"], "published_at": datetime(2026, 11, 1, tzinfo=UTC)})
    assert validate_record(record_to_dict(record)) == record
