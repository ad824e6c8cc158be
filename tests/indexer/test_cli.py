"""The `library` command as a user runs it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from indexer.cli import main


@pytest.fixture()
def run(data_dir: Path):  # noqa: ANN201 - a small helper closure
    runner = CliRunner()

    def invoke(*args: str):  # noqa: ANN202
        return runner.invoke(main, list(args), catch_exceptions=False)

    return invoke


def test_init_with_demo_then_search_json_has_the_api_shape(run) -> None:  # noqa: ANN001
    result = run("init", "--demo")
    assert result.exit_code == 0, result.output
    assert "エラー 0 件" in result.output
    found = run("search", "モバイルバッテリー", "--json")
    assert found.exit_code == 0
    payload = json.loads(found.output)
    assert {"total", "took_ms", "hits", "facets"} <= payload.keys()
    assert payload["total"] >= 1
    assert {"id", "kind", "title", "url", "snippet", "score"} <= payload["hits"][0].keys()
    assert {"kind", "categories", "organization", "region", "provenance", "year"} <= payload["facets"].keys()
    again = run("init", "--demo")  # idempotent: the second load changes nothing
    assert "新規 0 件" in again.output and "エラー 0 件" in again.output


def test_import_reports_line_numbers_and_fails_when_a_line_fails(run, tmp_path: Path) -> None:  # noqa: ANN001
    good = {"id": "f1", "kind": "faq", "title": "粗大ごみの出し方", "provenance": "government"}
    bad = {"kind": "faq", "provenance": "government"}
    path = tmp_path / "records.jsonl"
    path.write_text("\ufeff" + json.dumps(good, ensure_ascii=False) + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
    result = run("import", str(path))
    assert result.exit_code == 1
    assert "新規 1 件" in result.output
    assert "2 行目: title: 必須項目です" in result.output
    assert "粗大ごみ" in run("search", "粗大").output


def test_import_refuses_a_non_utf8_file_clearly(run, tmp_path: Path) -> None:  # noqa: ANN001
    path = tmp_path / "sjis.jsonl"
    path.write_bytes('{"title": "お知らせ"}\n'.encode("cp932"))
    result = CliRunner().invoke(main, ["import", str(path)])
    assert result.exit_code == 1 and "UTF-8" in result.output


def test_search_options_are_validated_in_japanese(run) -> None:  # noqa: ANN001
    run("init")
    assert run("search", "x", "--size", "500").exit_code == 2
    result = CliRunner().invoke(main, ["search", "x", "--from", "昨日"])
    assert result.exit_code == 2 and "日付" in result.output


def test_reindex_and_stats(run) -> None:  # noqa: ANN001
    run("init", "--demo")
    reindexed = run("reindex", "--workers", "1")
    assert reindexed.exit_code == 0 and "件を索引しました" in reindexed.output
    stats = json.loads(run("stats", "--json").output)
    assert stats["records"] == stats["indexed"] > 40 and stats["outbox_pending"] == 0


def test_a_bad_setting_is_refused_with_a_clear_message(run, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("LIBRARY_SEARCH_ENGINE", "solr")
    result = CliRunner().invoke(main, ["stats"])
    assert result.exit_code == 1 and "LIBRARY_SEARCH_ENGINE" in result.output


def test_serve_starts_and_answers(data_dir: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "LIBRARY_DATA_DIR": str(data_dir)}
    server = subprocess.Popen(
        [sys.executable, "-m", "indexer.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/?q=%3Cscript%3E", timeout=5) as response:
                    page = response.read().decode()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        assert "社会ライブラリ" in page and "<script>" not in page
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize("text", ['"', "((", "OR", "-", "\x00", "電池 AND", "＂ＯＲ－", "a" * 10_240, "<script>alert(1)</script>"])
def test_hostile_queries_exit_cleanly(run, text: str) -> None:  # noqa: ANN001
    run("init")
    result = run("search", text, "--json")
    assert result.exit_code == 0
    assert json.loads(result.output)["total"] >= 0
