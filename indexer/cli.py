"""The `library` command: init, import, search, reindex, stats, serve."""

from __future__ import annotations

import html
import json
import os
import re
import sys
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from indexer.config import ConfigError, Settings
from indexer.engines.base import SORT_ORDERS, EngineError
from indexer.library import ImportReport, Library, open_jsonl
from indexer.search import Query, QueryError
from indexer.store import UnsafeStorageSettings
from schemas import JST

console = Console(stderr=True)
UPLOAD_READ_LIMIT = 20 * 1024 * 1024  # the largest upload cap (crawlers.uploads checks each type's own)
MARK = re.compile(r"</?mark>")


def _open_library() -> Library:
    try:
        return Library.open(Settings.from_env())
    except (ConfigError, UnsafeStorageSettings, EngineError) as exc:
        raise click.ClickException(str(exc)) from exc


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


@click.group(help="社会ライブラリ: 地域の知識ベースを検索・管理します。")
def main() -> None:
    pass


def _import_file(library: Library, path: Path, author: str, summary: str) -> ImportReport:
    with open_jsonl(path) as lines, _progress() as progress:
        task = progress.add_task(f"取り込み中 {path.name}", total=path.stat().st_size)
        return library.import_lines(
            lines, author=author, summary=summary, on_line=lambda size: progress.advance(task, size)
        )


def _print_report(report: ImportReport) -> None:
    click.echo(
        f"新規 {report.created} 件、更新 {report.updated} 件、変更なし {report.unchanged} 件、"
        f"エラー {len(report.errors)} 件"
    )
    for error in report.errors:
        click.echo(f"  {error.line} 行目: {error.reason}", err=True)


@main.command(help="データディレクトリとデータベースを用意します（--demo でデモデータも入れます）。")
@click.option("--demo", is_flag=True, help="同梱のデモデータを取り込む")
def init(demo: bool) -> None:
    library = _open_library()
    try:
        click.echo(f"データディレクトリ: {library.settings.data_dir}")
        click.echo(f"データベース: {library.store.dialect}、検索エンジン: {library.engine.name}")
        if demo:
            demo_file = resources.files("indexer") / "demo" / "records.jsonl"
            with resources.as_file(demo_file) as path:
                report = _import_file(library, path, author="demo", summary="デモデータの取り込み")
            _print_report(report)
            if report.errors:
                sys.exit(1)
        with library.store.session(readonly=True) as db:
            from indexer.accounts import list_accounts

            if not list_accounts(db):
                click.echo("編集や管理には管理者アカウントが要ります: library users invite EMAIL --name 名前")
    finally:
        library.close()


@main.command("import", help="ファイルを取り込みます。JSONL（1 行 1 レコード）はそのまま、CSV・JSON・HTML・PDF "
              "（と --provenance 付きの JSONL）はアップロードとして取り込みます。")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--author", default="import", show_default=True, help="改訂履歴に残す取り込み者（JSONL）")
@click.option("--summary", default=None, help="改訂履歴に残す理由（JSONL、省略時はファイル名）")
@click.option("--provenance", help="内容の責任者（アップロード）: government、npo、maker、coop、shop、citizen")
@click.option("--organization", help="発信元の組織名（アップロード）")
@click.option("--kind", default="page", show_default=True, help="HTML・PDF から作るレコードの種別")
@click.option("--url", help="HTML・PDF の元の URL（省略時は canonical リンク、なければライブラリ内のページ）")
def import_(file: Path, author: str, summary: str | None, provenance: str | None, organization: str | None,
            kind: str, url: str | None) -> None:
    if provenance or file.suffix.lower() not in (".jsonl", ".ndjson"):
        _import_upload(file, provenance=provenance, organization=organization, kind=kind, url=url)
        return
    library = _open_library()
    try:
        report = _import_file(library, file, author=author, summary=summary or f"{file.name} から取り込み")
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"{file} は UTF-8 のテキストではありません（{exc.start} バイト目）") from exc
    finally:
        library.close()
    _print_report(report)
    if report.errors:
        sys.exit(1)


def _import_upload(file: Path, *, provenance: str | None, organization: str | None, kind: str,
                   url: str | None) -> None:
    """A file through the upload policy (crawlers.uploads): stored under its hash, read by an upload
    source's crawl run, its bad lines reported and its good ones kept."""
    from crawlers.pipeline import crawl as crawl_source
    from crawlers.uploads import UploadRefused, add_upload_source, public_url_from_env

    if not provenance:
        raise click.UsageError("CSV・JSON・HTML・PDF の取り込みには --provenance（内容の責任者）を指定してください")
    library = _open_library()
    try:
        with file.open("rb") as handle:
            content = handle.read(UPLOAD_READ_LIMIT + 1)
        try:
            source = add_upload_source(library.store, library.settings.data_dir, file.name, content,
                                       provenance=provenance, organization=organization, kind=kind, url=url,
                                       public_url=public_url_from_env())
        except UploadRefused as exc:
            raise click.ClickException(f"{file.name}: {exc}") from exc
        with _progress() as progress:
            summary = crawl_source(library, source.id, progress=_UnitProgress(progress, f"取り込み中 {file.name}"))
    finally:
        library.close()
    click.echo(f"{file.name}（取得元 {source.id}）: {summary.counts.text()}")
    for error in summary.errors:
        click.echo(f"  {error['message']}", err=True)
    if summary.counts.failed:
        sys.exit(1)


def _parse_date(value: str | None, end_of_day: bool = False) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} は日付（例: 2026-04-01）として読めません") from exc
    if len(value) == 10 and end_of_day:
        parsed = parsed.replace(hour=23, minute=59, second=59)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=JST)


def _plain(snippet_html: str) -> str:
    return html.unescape(MARK.sub("", snippet_html))


@main.command(help="検索します。語の並び、\"フレーズ\"、-除外、OR が使えます。")
@click.argument("query", default="")
@click.option("--json", "as_json", is_flag=True, help="検索 API と同じ JSON で出力")
@click.option("--kind", multiple=True, help="種別（notice, product, program …）")
@click.option("--category", multiple=True, help="分類 ID")
@click.option("--organization", multiple=True)
@click.option("--region", multiple=True)
@click.option("--provenance", multiple=True)
@click.option("--from", "date_from", help="公開日の開始（YYYY-MM-DD）")
@click.option("--to", "date_to", help="公開日の終了（YYYY-MM-DD）")
@click.option("--sort", type=click.Choice(SORT_ORDERS), default="relevance", show_default=True)
@click.option("--page", type=int, default=1, show_default=True)
@click.option("--size", type=int, default=10, show_default=True)
def search(query: str, as_json: bool, date_from: str | None, date_to: str | None, **filters: Any) -> None:
    request = Query(
        text=query,
        kind=tuple(filters["kind"]),
        category=tuple(filters["category"]),
        organization=tuple(filters["organization"]),
        region=tuple(filters["region"]),
        provenance=tuple(filters["provenance"]),
        date_from=_parse_date(date_from),
        date_to=_parse_date(date_to, end_of_day=True),
        sort=filters["sort"],
        page=filters["page"],
        size=filters["size"],
    )
    library = _open_library()
    try:
        results = library.search(request)
    except QueryError as exc:
        raise click.UsageError(str(exc)) from exc
    except EngineError as exc:
        raise click.ClickException(f"検索エンジンが応答しません: {exc}") from exc
    finally:
        library.close()
    if as_json:
        click.echo(json.dumps(results.to_json(), ensure_ascii=False, indent=2))
        return
    note = "（すべての語を含む結果がないため、いずれかの語を含む結果です）" if results.relaxed else ""
    click.echo(f"{results.total} 件（{results.took_ms:.1f} ms）{note}")
    for number, hit in enumerate(results.hits, start=(request.page - 1) * request.size + 1):
        click.echo(f"{number}. [{hit.kind}] {hit.title}  ({hit.id})")
        click.echo(f"   {_plain(hit.snippet)}")
        if hit.url:
            click.echo(f"   {hit.url}")


@main.command(help="データベースから検索索引を作り直し、完成したら切り替えます。")
@click.option("--workers", type=int, default=None, help="解析に使うプロセス数（既定: CPU 数）")
def reindex(workers: int | None) -> None:
    library = _open_library()
    try:
        total = library.published_count()
        with _progress() as progress:
            task = progress.add_task("索引を再構築中", total=total)
            count = library.reindex(
                workers=workers or os.cpu_count() or 1, progress=lambda n: progress.advance(task, n)
            )
    except EngineError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        library.close()
    click.echo(f"{count} 件を索引しました。")


@main.command(help="レコード数と索引の状態を表示します。")
@click.option("--json", "as_json", is_flag=True)
def stats(as_json: bool) -> None:
    library = _open_library()
    try:
        figures = library.stats()
    finally:
        library.close()
    if as_json:
        click.echo(json.dumps(figures, ensure_ascii=False, indent=2))
        return
    click.echo(f"レコード: {figures['records']} 件（索引済み {figures['indexed']} 件、未反映 {figures['outbox_pending']} 件）")
    for kind, count in sorted(figures["by_kind"].items()):
        click.echo(f"  {kind}: {count}")
    click.echo(f"データベース: {figures['database']}、検索エンジン: {figures['engine']}")
    click.echo(f"データディレクトリ: {figures['data_dir']}")


@main.command(help="ウェブ画面を起動します。")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
def serve(host: str, port: int) -> None:
    from werkzeug.serving import run_simple

    from search_app import create_app
    from search_app.security import RequestHandler

    app = create_app()
    if not app.extensions["celery"].conf.broker_url:
        from indexer.tasks import start_embedded_beat

        # No broker, so no `library beat` is needed: this process runs the sources' schedules on a thread
        # of its own (one process per data directory), and their jobs on the app's job thread.
        start_embedded_beat(app)
    click.echo(f"http://{host}:{port}/ で待ち受けます（Ctrl+C で終了）")
    # Our handler drops the Server header's version detail, which Werkzeug's own server writes itself (T18).
    run_simple(host, port, app, threaded=True, use_reloader=False, request_handler=RequestHandler)


# --- sources, crawls and background work (issue 4) ---------------------------------------------------------
# The crawler, Celery and the web app are imported by the commands that use them, as in `serve`: they take
# seconds to import, which `search` and `import` should not pay.


@main.group(help="取得元（ウェブ・フィード・オープンデータ）を管理します。")
def sources() -> None:
    pass


@sources.command("add", help="取得元を追加します。web には開始 URL を複数指定できます。")
@click.argument("kind", type=click.Choice(["web", "feed", "opendata"]))
@click.argument("locations", nargs=-1, required=True, metavar="URL_OR_FILE...")
@click.option("--name", help="表示名（省略時は URL またはファイル）")
@click.option("--provenance", required=True, help="内容の責任者: government、npo、maker、coop、shop、citizen")
@click.option("--organization", help="発信元の組織名（レコードに付けます）")
@click.option("--include", multiple=True, help="辿る URL の正規表現（web、複数可）")
@click.option("--exclude", multiple=True, help="辿らない URL の正規表現（web、複数可）")
@click.option("--depth", type=click.IntRange(min=0), help="開始 URL からのリンクの深さ（web、既定 3）")
@click.option("--max-pages", type=click.IntRange(min=1), help="1 回の実行で辿る URL の上限（web、既定 500）")
@click.option("--schedule", help="定期実行: 間隔の秒数、cron 形式「分 時 日 月 曜日」、@hourly、@daily、@weekly")
@click.option("--dataset", help="オープンデータのデータセット（省略時は列見出しから判定）")
def sources_add(kind: str, locations: tuple[str, ...], **options: Any) -> None:
    from crawlers.sources import SourceError, add_source

    library = _open_library()
    try:
        row = add_source(library.store, kind, locations, **options)
    except SourceError as exc:
        raise click.UsageError(str(exc)) from exc
    finally:
        library.close()
    click.echo(f"取得元 {row.id} を追加しました: [{row.kind}] {row.name}")


@sources.command("list", help="取得元と、それぞれの最後の実行を表示します。")
def sources_list() -> None:
    from crawlers.pipeline import Counts
    from crawlers.sources import list_sources

    library = _open_library()
    try:
        overviews = list_sources(library.store)
    finally:
        library.close()
    if not overviews:
        click.echo("取得元はまだありません（library sources add で追加します）。")
    for overview in overviews:
        source, run = overview.source, overview.last_run
        state = "" if source.enabled else "（停止中）"
        click.echo(f"{source.id}. [{source.kind}] {source.name}{state}  {source.location}")
        click.echo(f"   提供: {source.provenance}  組織: {source.organization or '-'}  定期実行: {source.schedule or '-'}")
        if run is None:
            click.echo("   最後の実行: なし")
        else:
            started = run.started_at.astimezone(JST).strftime("%Y-%m-%d %H:%M")
            click.echo(f"   最後の実行: {run.id}（{started}、{run.status}） {Counts.of(run).text()}")


class _UnitProgress:
    """The pipeline's per-unit callback on a progress bar: one more unit done, ``pending`` still queued."""

    def __init__(self, progress: Progress, description: str) -> None:
        self._progress = progress
        self._task = progress.add_task(description, total=None)

    def __call__(self, _counts: object, pending: int) -> None:
        done = self._progress.tasks[self._task].completed + 1
        self._progress.update(self._task, completed=done, total=done + pending)


@main.command(help="取得元をクロールします（SOURCE_ID か --all）。中断された実行は続きから再開します。")
@click.argument("source_id", type=int, required=False)
@click.option("--all", "every", is_flag=True, help="有効なすべての取得元")
def crawl(source_id: int | None, every: bool) -> None:
    from crawlers.pipeline import SourceBusy, SourceNotFound, enabled_source_ids
    from crawlers.pipeline import crawl as crawl_source
    from indexer.store import RunStatus
    from indexer.tasks import build_crawl_fetcher

    if (source_id is None) == (not every):
        raise click.UsageError("SOURCE_ID か --all のどちらか一方を指定してください")
    try:
        # With a Redis broker, the same host leases as the workers': a crawl from here takes turns with theirs.
        fetcher = build_crawl_fetcher(Settings.from_env().broker_url)
    except ValueError as exc:  # a bad crawl setting (ConfigError is one too)
        raise click.ClickException(str(exc)) from exc
    library = _open_library()
    all_finished = True
    try:
        for one in enabled_source_ids(library) if every else [source_id]:
            with _progress() as progress:
                try:
                    summary = crawl_source(library, one, fetcher=fetcher,
                                           progress=_UnitProgress(progress, f"取得元 {one}"))
                except SourceNotFound:
                    click.echo(f"取得元 {one} はありません", err=True)
                    all_finished = False
                    continue
                except SourceBusy as exc:
                    click.echo(f"取得元 {one} は実行中です（実行 {exc.run_id}）", err=True)
                    continue
                except Exception as exc:  # noqa: BLE001 - recorded on the run; the other sources go on (T13)
                    click.echo(f"取得元 {one}: 中断しました: {exc}", err=True)
                    all_finished = False
                    continue
            resumed = f"（実行 {summary.resumed_from_id} の続き）" if summary.resumed_from_id else ""
            click.echo(f"取得元 {one}{resumed}: {summary.counts.text()}")
            for error in summary.errors[:10]:
                click.echo(f"  {error['url']}: [{error['rule']}] {error['message']}", err=True)
            all_finished &= summary.status == RunStatus.FINISHED
    finally:
        library.close()
    if not all_finished:
        sys.exit(1)


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
              help="Celery ワーカーを起動します（LIBRARY_BROKER_URL が必要）。残りの引数は celery worker に渡します。")
@click.pass_context
def worker(ctx: click.Context) -> None:
    from search_app import create_app

    celery_app = create_app().extensions["celery"]
    if not celery_app.conf.broker_url:
        raise click.ClickException(
            "LIBRARY_BROKER_URL が未設定です。ブローカーなしの構成では、ジョブも定期実行も library serve の "
            "プロセスの中で動きます。"
        )
    celery_app.worker_main(["worker", "--loglevel=INFO", *ctx.args])


@main.command(help="定期実行（取得元のクロール、索引への反映、お知らせの期限切れ）を動かします。"
              "ブローカーなしの構成では library serve も同じことをするので不要です。")
def beat() -> None:
    import threading

    from indexer.tasks import run_embedded_beat
    from search_app import create_app

    celery_app = create_app().extensions["celery"]
    if celery_app.conf.broker_url:
        celery_app.start(["beat", "--loglevel=INFO"])
        return
    click.echo("ブローカーなし: 予定のジョブをこのプロセスで実行します（Ctrl+C で終了）")
    try:
        run_embedded_beat(celery_app, threading.Event(), on_wait=lambda: click.echo(
            "このデータディレクトリの定期実行は別のプロセス（library serve など）が担当しています。"
            "そのプロセスが終わると引き継ぎます。"))
    except KeyboardInterrupt:
        pass


@main.command(help="データベース・検索エンジン・ブローカー・索引の件数を点検します（終了コード 0: 正常、1: 警告、2: 異常）。")
@click.option("--json", "as_json", is_flag=True, help="JSON で出力")
def doctor(as_json: bool) -> None:
    from indexer.doctor import run_doctor

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        click.echo(f"設定が正しくありません: {exc}", err=True)
        sys.exit(2)
    report = run_doctor(settings)
    click.echo(report.dumps() if as_json else report.render())
    sys.exit(report.exit_code)


@main.group(help="検索ログ（検索語・条件・件数・所要時間）を管理します。")
def searchlog() -> None:
    pass


@searchlog.command("purge", help="保存期間（LIBRARY_SEARCH_LOG_RETENTION_DAYS、既定 90 日）を過ぎた検索ログを削除します。")
@click.option("--days", type=click.IntRange(min=1), help="この日数より古い行を削除（既定: 保存期間の設定）")
def searchlog_purge(days: int | None) -> None:
    from indexer.store.searchlog import purge_search_log, retention_days

    try:
        days = days or retention_days()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    library = _open_library()
    try:
        deleted = purge_search_log(library.store, days=days)
    finally:
        library.close()
    click.echo(f"{days} 日より古い検索ログを {deleted} 件削除しました")


@main.group(help="アカウントを管理します（最初の管理者はここで招待します。以降はウェブの管理画面から）。")
def users() -> None:
    pass


ROLE_CHOICES = ("admin", "editor", "shop", "citizen")


@users.command("invite", help="アカウントを作り、パスワード設定用の招待リンク（7 日間・1 回限り）を表示します。")
@click.argument("email")
@click.option("--name", "display_name", required=True, help="表示名")
@click.option("--role", type=click.Choice(ROLE_CHOICES), default="admin", show_default=True, help="役割")
@click.option("--base-url", default="http://127.0.0.1:8000", show_default=True, help="ウェブ画面の URL")
def users_invite(email: str, display_name: str, role: str, base_url: str) -> None:
    from indexer.accounts import create_account, find_by_email, invitation_path, issue_invitation

    if "@" not in email:
        raise click.ClickException("メールアドレスを正しく指定してください。")
    library = _open_library()
    try:
        with library.store.session() as db:
            row = find_by_email(db, email)
            if row is None:
                row = create_account(db, email=email, display_name=display_name, role=role)
            elif row.role != role:
                raise click.ClickException(f"{row.email} はすでに役割 {row.role} で登録されています。")
            token = issue_invitation(row)
    finally:
        library.close()
    click.echo(f"{email} の招待リンク（7 日間有効・1 回限り。この画面でだけ表示されます）:")
    click.echo(base_url.rstrip("/") + invitation_path(token))


@users.command("list", help="アカウントの一覧を表示します。")
def users_list() -> None:
    from indexer.accounts import list_accounts

    library = _open_library()
    try:
        with library.store.session(readonly=True) as db:
            accounts = list_accounts(db)
    finally:
        library.close()
    if not accounts:
        click.echo("アカウントはまだありません。`library users invite EMAIL --name 名前` で管理者を招待してください。")
    for account in accounts:
        state = "停止中" if account["disabled"] else ("招待中" if account["invited"] else "有効")
        click.echo(f"{account['id']:>4}  {account['role']:<8} {state:<4} {account['email']}  {account['display_name']}")


if __name__ == "__main__":
    main()
