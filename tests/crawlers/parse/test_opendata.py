"""parse_opendata_csv on every real file in ../shared/corpus/opendata/ and on variants written here."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

from crawlers.parse import ParseError
from crawlers.parse.opendata import (
    Dataset,
    OpenDataResult,
    UnknownDataset,
    csv_cell_for_export,
    parse_opendata_csv,
)


def _corpus_dir() -> Path:
    """../shared/corpus beside the checkout, else the workspace's (a CI clone may live elsewhere), or an override."""
    candidates = [os.environ.get("LIBRARY_TEST_CORPUS_DIR"), Path(__file__).resolve().parents[4] / "shared" / "corpus",
                  "/work/shared/corpus"]
    return next((Path(c) for c in candidates if c and Path(c).is_dir()), Path(str(candidates[1])))


CORPUS = _corpus_dir() / "opendata"

# file: (dataset, drafts, errors, encoding). Rows are CSV records after the header and any "#" lines; the
# "#LINK" files have two more "#" lines after "#property" than SOURCE.md's row counts leave out.
EXPECTED = {
    "yaizu_public_facility_utf8.csv": (Dataset.PUBLIC_FACILITY, 230, 0, "utf-8"),
    "yaizu_library_utf8bom.csv": (Dataset.PUBLIC_FACILITY, 11, 0, "utf-8"),
    "yaizu_aed_utf8.csv": (Dataset.AED, 82, 0, "utf-8"),
    "yaizu_public_toilet_utf8.csv": (Dataset.PUBLIC_TOILET, 112, 0, "utf-8"),
    "yaizu_tourism_sjis.csv": (Dataset.TOURISM, 217, 0, "cp932"),
    "yaizu_tourism_sjis_quoted.csv": (Dataset.TOURISM, 217, 0, "cp932"),
    "yaizu_suibousouko_sjis.csv": (Dataset.FLOOD_WAREHOUSE, 8, 0, "cp932"),
    "takamatsu_aed_link_sjis.csv": (Dataset.AED, 514, 0, "cp932"),
    "takamatsu_environmental_facilities_link_utf8bom.csv": (Dataset.PUBLIC_FACILITY, 4, 0, "utf-8"),
    "takamatsu_elderly_welfare_facility_utf8.csv": (Dataset.PUBLIC_FACILITY, 47, 0, "utf-8"),
    # One real data error: 2032-05-20 to 2023-05-21.
    "hamamatsu_event_en_headers_utf8bom.csv": (Dataset.EVENT, 2158, 1, "utf-8"),
    "reconstructed/yaizu_event_excerpt_from_index_utf8.csv": (Dataset.EVENT, 9, 0, "utf-8"),
}
# Importable with an organizer given (the source's organization or name): see the test below.
NOT_IMPORTABLE = {"fukui_convention_events_utf8bom.csv": "主催者の列"}

needs_corpus = pytest.mark.skipif(
    not CORPUS.is_dir(), reason=f"the open-data corpus is not at {CORPUS} (../shared/corpus/opendata)"
)


@functools.cache
def parsed(name: str) -> OpenDataResult:
    return parse_opendata_csv((CORPUS / name).read_bytes())


def by_id(result: OpenDataResult) -> dict[str, dict]:
    return {draft["external_id"]: draft for draft in result.drafts}


@needs_corpus
def test_every_corpus_file_is_covered():
    files = {str(path.relative_to(CORPUS)) for path in CORPUS.rglob("*.csv")}
    assert files == set(EXPECTED) | set(NOT_IMPORTABLE)


@needs_corpus
@pytest.mark.parametrize("name", EXPECTED)
def test_corpus_file_counts_and_kinds(name, assert_valid):
    dataset, drafts, errors, encoding = EXPECTED[name]
    result = parsed(name)
    assert (result.dataset, len(result.drafts), len(result.errors)) == (dataset, drafts, errors)
    assert result.kind == ("program" if dataset is Dataset.EVENT else "facility")
    assert result.encoding == encoding
    assert {draft["kind"] for draft in result.drafts} == {result.kind}
    assert len(by_id(result)) == drafts  # external ids are unique
    for draft in result.drafts:
        assert_valid(draft)
    # Decoding adds no U+FFFD; only the Hamamatsu file holds some itself (characters lost upstream, "輝き�W").
    in_file = (CORPUS / name).read_bytes().count("\ufffd".encode())
    assert sum(str(draft).count("\ufffd") for draft in result.drafts) <= in_file
    assert in_file == (51 if name.startswith("hamamatsu") else 0)


@needs_corpus
@pytest.mark.parametrize("name", NOT_IMPORTABLE)
def test_corpus_files_that_cannot_be_imported_say_why(name):
    with pytest.raises(ParseError, match=NOT_IMPORTABLE[name]):
        parsed(name)


@needs_corpus
def test_an_event_schedule_without_organizer_column_takes_the_given_organizer(assert_valid):
    name = "fukui_convention_events_utf8bom.csv"
    result = parse_opendata_csv((CORPUS / name).read_bytes(), organizer="ふくい観光コンベンション")
    assert (result.dataset, len(result.drafts), result.errors) == (Dataset.EVENT, 149, [])
    # 12 rows give only a month ("2026年6月頃開催予定"): kept undated, with the announced text in the body.
    undated = [draft for draft in result.drafts if "starts_at" not in draft]
    assert len(undated) == 12
    assert undated[0]["body"] == "日時: 2026年6月頃開催予定"
    assert {draft["organizer"] for draft in result.drafts} == {"ふくい観光コンベンション"}
    first = result.drafts[0]
    assert first["title"] == "第144回中部日本整形外科災害外科学会・学術集会"
    assert first["starts_at"] == "2025-04-03T00:00:00+09:00"
    assert first["place"].startswith("フェニックス・プラザ")
    for draft in result.drafts:
        assert_valid(draft)


@pytest.mark.parametrize(
    ("start", "end", "body"),
    [("2026年6月頃開催予定", "", "日時: 2026年6月頃開催予定"), ("2026年10月", "", "日時: 2026年10月"),
     ("10月下旬", "11月上旬", "日時: 10月下旬〜11月上旬"), ("未定", "", "日時: 未定")],
)
def test_a_roughly_announced_date_keeps_the_event_undated(start, end, body, assert_valid):
    csv_text = f"イベント名,開始日,終了日,主催者\n大会,{start},{end},協会\n"
    [draft] = parse_opendata_csv(csv_text.encode()).drafts
    assert ("starts_at" in draft, "ends_at" in draft, draft["body"]) == (False, False, body)
    assert_valid(draft)


@pytest.mark.parametrize("start", ["来週の日曜", "2026-02-30", "31/31/2026"])
def test_any_other_unreadable_date_is_the_rows_error(start):
    result = parse_opendata_csv(f"イベント名,開始日,主催者\n大会,{start},協会\n".encode())
    assert result.drafts == [] and "開始日" in result.errors[0].message


def test_a_row_organizer_wins_over_the_given_one():
    csv_text = "イベント名,開始日,主催者\n朝市,2026-05-01,港の会\n夕市,2026-05-02,\n"
    result = parse_opendata_csv(csv_text.encode(), organizer="焼津市")
    assert [draft["organizer"] for draft in result.drafts] == ["港の会", "焼津市"]
    with pytest.raises(ParseError, match="主催者の列"):
        parse_opendata_csv("イベント名,開始日\n朝市,2026-05-01\n".encode())
    with pytest.raises(ParseError, match="主催者の列"):  # a blank organizer is none
        parse_opendata_csv("イベント名,開始日\n朝市,2026-05-01\n".encode(), organizer=" ")


@needs_corpus
def test_yaizu_public_facility_first_row():
    first = parsed("yaizu_public_facility_utf8.csv").drafts[0]
    assert first == {
        "kind": "facility",
        "title": "親子ふれあい広場",
        "body": "担当: 子育て支援課",
        "facility_type": "公共施設",
        "address": "焼津市本町5-6-1",
        "opening_hours": "【開館時間】9:00～17:00 【休館日】火曜日(火曜日が祝日の場合は翌日)、年末年始",
        "latitude": 34.86313333,
        "longitude": 138.320437,
        "organization": "焼津市",
        "region": "静岡県焼津市",
        "external_id": "222127:0000010001",
    }


@needs_corpus
def test_aed_rows_keep_the_installation_position():
    first = parsed("yaizu_aed_utf8.csv").drafts[0]
    assert (first["title"], first["latitude"], first["longitude"]) == ("市役所本館", 34.866918, 138.323171)
    assert first["body"] == "設置位置: ２階正面入口\n小児対応設備: 有\n担当: 管財課"
    assert first["facility_type"] == "AED設置場所"
    assert first["phone"] == "(054)626-1139"


@needs_corpus
def test_link_format_metadata_location_and_cp932():
    result = parsed("takamatsu_aed_link_sjis.csv")
    assert result.metadata["attribution_name"] == "高松市"
    assert result.metadata["license"] == "http://creativecommons.org/licenses/by/3.0/deed.ja"
    first = result.drafts[0]
    assert (first["title"], first["address"]) == ("健康増進施設サラマンダー", "高松市番町１丁目10-16")
    assert (first["latitude"], first["longitude"]) == (34.34092056, 134.04522972)  # one "location" cell
    assert (first["organization"], first["external_id"]) == ("高松市", "高松市:1")
    assert any("髙" in str(draft) for draft in result.drafts)  # cp932-only (IBM extension)


@needs_corpus
def test_property_header_with_english_keys():
    first = parsed("takamatsu_elderly_welfare_facility_utf8.csv").drafts[0]
    assert first["title"] == "特別養護老人ホーム\u3000シオンの丘ホーム"
    assert first["facility_type"] == "介護老人福祉施設（特別養護老人ホーム）"  # the row's "service"
    assert (first["phone"], first["url"]) == ("087-881-4531", "http://www.bokuyoukai.or.jp/qhm/sion/")
    assert first["opening_hours"] == "月火水木金土日 24時間対応"


@needs_corpus
def test_tourism_quoted_and_unquoted_exports_agree():
    plain, quoted = by_id(parsed("yaizu_tourism_sjis.csv")), by_id(parsed("yaizu_tourism_sjis_quoted.csv"))
    assert plain.keys() == quoted.keys()
    for key, draft in plain.items():
        # Only the time cells differ: the kintone export writes 09:30 where the other has 9:30.
        assert {k: v for k, v in draft.items() if k != "opening_hours"} == {
            k: v for k, v in quoted[key].items() if k != "opening_hours"}
    assert any("﨑" in str(draft) for draft in plain.values())


@needs_corpus
def test_revised_2024_toilet_columns():
    first = parsed("yaizu_public_toilet_utf8.csv").drafts[0]
    assert first["title"] == "ふるさとの川瀬戸川便益施設"
    assert first["address"] == "静岡県焼津市駅北5丁目2-11"  # 所在地_連結表記
    assert (first["latitude"], first["longitude"]) == (34.8760119, 138.3207625)
    assert first["external_id"] == "222127:1"  # 全国地方公共団体コード + ID
    assert first["facility_type"] == "公衆トイレ"


@needs_corpus
def test_non_standard_flood_warehouse_names():
    first = parsed("yaizu_suibousouko_sjis.csv").drafts[0]
    assert (first["title"], first["facility_type"]) == ("水防倉庫（中里）", "水防倉庫")


@needs_corpus
def test_library_file_as_library_dataset():
    result = parse_opendata_csv((CORPUS / "yaizu_library_utf8bom.csv").read_bytes(), dataset="library")
    assert result.dataset is Dataset.LIBRARY
    assert {draft["facility_type"] for draft in result.drafts} == {"図書館"}


@needs_corpus
def test_hamamatsu_english_headers():
    result = parsed("hamamatsu_event_en_headers_utf8bom.csv")
    first = result.drafts[0]
    assert first == {
        "kind": "program",
        "title": "行政相談委員による行政相談",
        "body": "申込方法: 申込不要\n当日、直接会場へ",  # a quoted cell over three lines
        "organizer": "浜松市",
        "starts_at": "2023-04-20T09:00:00+09:00",
        "ends_at": "2023-04-20T12:00:00+09:00",
        "place": "中区役所",
        "address": "浜松市中区元城町103-2",
        "contact": "中区区民生活課 (053)457-2121",
        "url": "https://www.soumu.go.jp/main_sosiki/hyouka/soudan_n/index.html",
        "organization": "浜松市",
        "region": "浜松市",
        "tags": ["そうだん"],
        "published_at": "2022-03-28T00:00:00+09:00",
        "updated_at": "2022-05-30T00:00:00+09:00",
        "external_id": "浜松市:1",
    }
    [error] = result.errors
    assert (error.row, error.line) == (1377, 9118)
    assert "終了日時" in error.message
    # "2023-6-30(金曜日)": a weekday after the date
    assert any(draft.get("application_deadline") == "2023-06-30T23:59:00+09:00" for draft in result.drafts)


@needs_corpus
def test_reconstructed_yaizu_event_excerpt():
    events = by_id(parsed("reconstructed/yaizu_event_excerpt_from_index_utf8.csv"))
    sign_language = events["222127:18268"]
    # 0:00–0:00 is a spreadsheet's empty time: the event runs from its first day to the end of its last.
    assert (sign_language["starts_at"], sign_language["ends_at"]) == ("2026-04-02T00:00:00+09:00",
                                                                       "2027-03-18T23:59:00+09:00")
    assert sign_language["url"] == "https://www.city.yaizu.lg.jp/event/info-00016.html"  # コンテンツURL
    assert sign_language["tags"] == ["ろう者", "言語", "手話奉仕員養成講座"]
    jelly = events["222127:20920"]
    keys = ("title", "starts_at", "ends_at", "place", "address", "audience", "fee", "contact", "organizer")
    assert {key: jelly[key] for key in keys} == {
        "title": "フルーツゼリー作り",
        "starts_at": "2026-09-12T09:30:00+09:00",
        "ends_at": "2026-09-12T12:00:00+09:00",
        "place": "大井川地域交流センター調理室",
        "address": "静岡県焼津市宗高900番地",
        "audience": "こども向け",
        "fee": "1,000円（当日支払い）",
        "contact": "大井川地域交流センター 054-622-3111",
        "organizer": "焼津市",  # 主催者 is empty: the municipality
    }


# --- variants written here -----------------------------------------------------------------------------

FACILITY_CSV = (
    "都道府県コード又は市区町村コード,NO,都道府県名,市区町村名,名称,住所,方書,緯度,経度,電話番号,内線番号,"
    "利用可能曜日,開始時間,終了時間,利用可能日時特記事項,説明,URL\n"
    '222127,001,静岡県,焼津市,中央公民館,焼津市本町1-1,2階,34.86,138.32,054-000-0000,12,月火水木金,9:00,'
    '17:00,祝日を除く,"地域の学習の場です。\n会議室があります。",https://example.jp/kominkan\n'
)


def test_bom_no_bom_and_cp932_read_alike():
    variants = [FACILITY_CSV.encode(), b"\xef\xbb\xbf" + FACILITY_CSV.encode(), FACILITY_CSV.encode("cp932"),
                FACILITY_CSV.replace("\n", "\r\n").encode("cp932")]
    results = [parse_opendata_csv(content) for content in variants]
    assert [result.encoding for result in results] == ["utf-8", "utf-8", "cp932", "cp932"]
    assert all(result.drafts == results[0].drafts for result in results)
    assert results[0].drafts == [{
        "kind": "facility",
        "title": "中央公民館",
        "body": "地域の学習の場です。\n会議室があります。",
        "facility_type": "公共施設",
        "address": "焼津市本町1-1 2階",
        "phone": "054-000-0000 （内線 12）",
        "opening_hours": "月火水木金 9:00～17:00 祝日を除く",
        "latitude": 34.86,
        "longitude": 138.32,
        "url": "https://example.jp/kominkan",
        "organization": "焼津市",
        "region": "静岡県焼津市",
        "external_id": "222127:001",
    }]


def test_header_variants_full_width_look_alikes_and_spaces():
    header = " 都道府県コ―ド又は市区町村コード , ＮＯ ,名称,住所,緯度,経度,料金（基本）,説明＿英語\n"
    result = parse_opendata_csv((header + "222127,7,港の見える丘,焼津市,34.8,138.3,無料,Hill\n").encode())
    assert result.dataset is Dataset.TOURISM
    assert result.drafts[0]["external_id"] == "222127:7"
    assert result.drafts[0]["body"] == "料金: 無料"


EVENT_HEADER = (
    "市区町村名,NO,イベント名,開始日,開始時間,終了日,終了時間,場所名称,対象,料金(基本),主催者,URL\n"
)


@pytest.mark.parametrize(
    ("cells", "starts_at", "ends_at"),
    [
        ("2026/4/1,9:00,2026/4/1,12:00", "2026-04-01T09:00:00+09:00", "2026-04-01T12:00:00+09:00"),
        ("2026-04-01,9時,,15時30分", "2026-04-01T09:00:00+09:00", "2026-04-01T15:30:00+09:00"),
        ("令和8年4月1日,午後1時半,令和8年4月3日,", "2026-04-01T13:30:00+09:00", "2026-04-03T23:59:00+09:00"),
        ("２０２６／４／１,１０：００,,", "2026-04-01T10:00:00+09:00", None),
        ("2026/4/1,18:00,,24:00", "2026-04-01T18:00:00+09:00", "2026-04-02T00:00:00+09:00"),
        (",,,", None, None),
    ],
)
def test_event_dates_and_times(cells, starts_at, ends_at, assert_valid):
    row = f"焼津市,1,講座,{cells},公民館,市民,無料,,https://example.jp/e\n"
    draft = parse_opendata_csv((EVENT_HEADER + row).encode()).drafts[0]
    assert (draft.get("starts_at"), draft.get("ends_at")) == (starts_at, ends_at)
    assert (draft["organizer"], draft["audience"], draft["fee"]) == ("焼津市", "市民", "無料")
    assert_valid(draft)


def test_bad_rows_are_errors_with_numbers_and_the_rest_parses():
    rows = [
        "焼津市,1,良い講座,2026/4/1,10:00,,,公民館,,,市民団体A,\n",
        "焼津市,2,,2026/4/1,10:00,,,公民館,,,,\n",  # no title
        "焼津市,3,日付の誤り,2026/13/45,10:00,,,公民館,,,,\n",
        # A bad time; the row starts on line 5 and the next one on line 7.
        '焼津市,4,"複数行の\n説明のある行の後",2026/4/2,10時過ぎ,,,公民館,,,,\n',
        "焼津市,5,逆転,2026/4/5,10:00,2026/4/1,,公民館,,,,\n",
        "焼津市,1,番号の重複,2026/4/6,,,,公民館,,,,\n",
        "焼津市,6,列が多い,2026/4/6,,,,公民館,,,,,余分\n",
        "焼津市,7,URL は http だけ,2026/4/7,,,,公民館,,,,javascript:alert(1)\n",
    ]
    result = parse_opendata_csv((EVENT_HEADER + "".join(rows)).encode())
    numbers = [(error.row, error.line) for error in result.errors]
    assert numbers == [(2, 3), (3, 4), (4, 5), (5, 7), (6, 8), (7, 9)]
    messages = [error.message for error in result.errors]
    assert "イベント名が空です" in messages[0]
    assert "開始日「2026/13/45」" in messages[1]
    assert "開始時間「10時過ぎ」" in messages[2]
    assert "終了日時" in messages[3]
    assert "重複" in messages[4]
    assert "列があります" in messages[5]
    assert str(result.errors[0]) == "2 件目（3 行目）: イベント名が空です"
    assert [draft["title"] for draft in result.drafts] == ["良い講座", "URL は http だけ"]
    assert result.drafts[0]["organizer"] == "市民団体A"
    assert "url" not in result.drafts[1]


@pytest.mark.parametrize(
    ("latitude", "longitude", "message"),
    [("95.1", "138.3", "緯度 95.1 が範囲外"), ("34.8", "東経138", "経度「東経138」を数値"),
     ("34.8", "", "片方"), ("nan", "138", "範囲外"), ("34.8", "inf", "範囲外")],
)
def test_coordinates_are_validated(latitude, longitude, message):
    csv_text = f"名称,住所,緯度,経度\n公園,焼津市,{latitude},{longitude}\n広場,焼津市,34.8,138.3\n"
    result = parse_opendata_csv(csv_text.encode())
    assert message in result.errors[0].message
    assert [draft["title"] for draft in result.drafts] == ["広場"]


def test_rows_without_a_number_get_a_stable_content_key():
    csv_text = "名称,住所\n公園,焼津市1\n広場,焼津市2\n"
    first, second = parse_opendata_csv(csv_text.encode()).drafts
    assert first["external_id"].startswith("public_facility-")
    assert first["external_id"] != second["external_id"]
    reordered = parse_opendata_csv("名称,住所\n広場,焼津市2\n公園,焼津市1\n".encode()).drafts
    assert {draft["external_id"] for draft in reordered} == {first["external_id"], second["external_id"]}


def test_long_cells_are_clipped_to_the_schema(assert_valid):
    csv_text = f"名称,住所,利用可能日時特記事項\n{'名' * 600},{'所' * 600},{'時' * 600}\n"
    [draft] = parse_opendata_csv(csv_text.encode()).drafts
    assert len(draft["title"]) == len(draft["address"]) == len(draft["opening_hours"]) == 500
    assert_valid(draft)


def test_dataset_override_and_unknown_names():
    csv_text = "名称,住所\n焼津図書館,焼津市\n".encode()
    for name in ("図書館一覧", "LIBRARY", "図書館"):
        assert parse_opendata_csv(csv_text, dataset=name).drafts[0]["facility_type"] == "図書館"
    assert parse_opendata_csv(csv_text, dataset="ＡＥＤ設置場所").dataset is Dataset.AED
    with pytest.raises(ParseError, match="わかりません"):
        parse_opendata_csv(csv_text, dataset="天気")


@pytest.mark.parametrize(
    ("content", "error", "match"),
    [
        (b"kind,title\nfaq,Q\n", UnknownDataset, "判別できません"),
        (b"#LINK\n#lang,ja\n", ParseError, "見出し"),
        (b"", ParseError, "見出し"),
        ("イベント名,開始日\n祭り,2026/4/1\n".encode(), ParseError, "主催者の列"),
    ],
)
def test_files_that_are_not_a_dataset(content, error, match):
    with pytest.raises(error, match=match):
        parse_opendata_csv(content)


def test_event_organizer_from_link_attribution():
    csv_text = "#LINK\n#attribution_name,高松市\n#property,イベント名,開始日\n1,祭り,2026/4/1\n"
    [draft] = parse_opendata_csv(csv_text.encode()).drafts
    assert (draft["organizer"], draft["external_id"]) == ("高松市", "高松市:1")


@pytest.mark.parametrize(
    ("cell", "exported"),
    [("=HYPERLINK(\"http://evil\")", "'=HYPERLINK(\"http://evil\")"), ("+81-54", "'+81-54"),
     ("-1+2", "'-1+2"), ("@SUM(A1)", "'@SUM(A1)"), ("\t=1", "'\t=1"), ("\r=1", "'\r=1"),
     ("焼津市", "焼津市"), ("", ""),
     ("a=b", "a=b"), ("＝１", "＝１")],
)
def test_csv_cells_exported_to_editors_are_not_formulas(cell, exported):
    assert csv_cell_for_export(cell) == exported
