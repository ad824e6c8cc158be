"""Shop notices pushed through the API: latency, freshness and duplicates (issue 5; T26, T29).

    .venv/bin/python benchmarks/shop_notices.py                    # SQLite, 300 notices from 3 shops
    .venv/bin/python benchmarks/shop_notices.py --notices 1000
    .venv/bin/python benchmarks/shop_notices.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

A fresh library (the demo records) in a temporary directory, served in-process (Flask test client, no network).
Three shops push `--notices` notices in turn, every one sent twice (a client's retry), a third of them about a
recall another shop has already reported (the same JAN code). After each first POST returns, the notice must be
pinned by a search for its product, with no worker and no wait: the freshness of T29 ("searchable within 5 s") is
measured here as the share found at once. Prints the POST and retry latencies (p50, p95, p99), how many were
found at once, and the numbers of reports and notice records, which must equal the notices sent and the distinct
recalls. The rate limit is off (it is tested in tests/search_app/test_notices_api.py).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sqlalchemy import func, select

from indexer.config import Settings
from indexer.notices import SHOP_SOURCE
from indexer.store import NoticeReportRow, RecordRow, ShopRow
from schemas import is_valid_gtin
from search_app import create_app, get_library
from search_app.auth.policy import issue_api_key

DEMO_RECORDS = resources.files("indexer") / "demo" / "records.jsonl"
SHOPS = ("みなと商店", "北口ストア", "駅前ドラッグ")
KANA = "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワ"


def jan(number: int) -> str:
    stem = f"490{number:09d}"
    return next(stem + str(digit) for digit in range(10) if is_valid_gtin(stem + str(digit)))


def product_word(number: int) -> str:
    """A product name no other notice shares, so a search for it names one notice."""
    return "".join(KANA[(number // len(KANA) ** i) % len(KANA)] for i in range(3)) + "ケトル"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notices", type=int, default=300)
    parser.add_argument("--database-url", help="default: a SQLite file in the temporary directory")
    args = parser.parse_args()

    directory = Path(tempfile.mkdtemp(prefix="shop-notices-"))
    database_url = args.database_url or f"sqlite:///{directory / 'library.db'}"
    app = create_app({"LIBRARY_SETTINGS": Settings.from_env(data_dir=directory, database_url=database_url),
                      "TESTING": True, "RATELIMIT_ENABLED": False, "SEARCH_LOG": False})  # fmt: skip
    library = get_library(app)
    try:
        with DEMO_RECORDS.open(encoding="utf-8") as lines:
            library.import_lines(lines, author="benchmark", summary="demo records")
        keys = []
        with library.store.session() as db:
            for name in SHOPS:
                shop = ShopRow(name=name)
                db.add(shop)
                db.flush()
                keys.append({"Authorization": f"Bearer {issue_api_key(db, shop.id, label='bench')[1]}"})
        client = app.test_client()
        valid_until = (datetime.now(UTC) + timedelta(days=30)).isoformat()
        posts: list[float] = []
        retries: list[float] = []
        found_at_once = 0
        recalls: set[int] = set()
        started = time.perf_counter()
        for n in range(args.notices):
            # Every third notice repeats the recall of the one before, from the next shop.
            recall = n - 1 if n % 3 == 2 else n
            recalls.add(recall)
            body = {
                "shop_notice_id": f"bench-{n}", "maker": "みなと電機", "product": f"電気{product_word(recall)}",
                "jan_codes": [jan(recall)], "hazard": "取っ手が割れて熱湯がこぼれるおそれがあります。",
                "action": "使用を中止し、店頭で返品してください。", "severity": "high", "valid_until": valid_until,
            }  # fmt: skip
            headers = keys[n % len(keys)]
            t0 = time.perf_counter()
            response = client.post("/api/v1/notices", json=body, headers=headers)
            posts.append(time.perf_counter() - t0)
            assert response.status_code == 201, response.get_data(as_text=True)
            record_id = response.get_json()["record_id"]
            pinned = client.get("/api/v1/search", query_string={"q": product_word(recall)}).get_json()["pinned"]
            found_at_once += any(notice["id"] == record_id for notice in pinned)
            t0 = time.perf_counter()
            again = client.post("/api/v1/notices", json=body, headers=headers)
            retries.append(time.perf_counter() - t0)
            assert again.status_code == 200
        elapsed = time.perf_counter() - started
        with library.store.session(readonly=True) as db:
            reports = db.scalar(select(func.count()).select_from(NoticeReportRow))
            records = db.scalar(select(func.count()).select_from(RecordRow).where(RecordRow.source == SHOP_SOURCE))
    finally:
        library.close()
        shutil.rmtree(directory, ignore_errors=True)

    def ms(values: list[float]) -> str:
        return (f"p50 {statistics.median(values) * 1000:.1f} ms, p95 {percentile(values, 0.95) * 1000:.1f} ms, "
                f"p99 {percentile(values, 0.99) * 1000:.1f} ms")  # fmt: skip

    print(f"database: {library.store.dialect}; {args.notices} notices from {len(SHOPS)} shops, each sent twice")
    print(f"POST (new report, committed and indexed): {ms(posts)}")
    tenth = max(1, len(posts) // 10)
    print(f"  first tenth p50 {statistics.median(posts[:tenth]) * 1000:.1f} ms, "
          f"last tenth p50 {statistics.median(posts[-tenth:]) * 1000:.1f} ms")  # fmt: skip
    print(f"POST retry (same id, same body):          {ms(retries)}")
    print(f"pinned by a search right after its POST:  {found_at_once}/{args.notices}")
    print(f"reports: {reports} (sent: {args.notices}); notice records: {records} (distinct recalls: {len(recalls)})")
    print(f"wall time: {elapsed:.1f} s ({args.notices * 3 / elapsed:.0f} requests/s, searches included)")
    if found_at_once != args.notices or reports != args.notices or records != len(recalls):
        raise SystemExit("FAILED: a notice was not found at once, or reports/records do not add up")


if __name__ == "__main__":
    main()
