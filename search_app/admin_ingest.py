"""Admin pages of ingestion (issue 4): the sources and their crawl runs, and the upload form.

* ``/admin/sources`` (admin): list, add, enable and disable sources; "crawl now" hands the crawl to the job
  runner (Celery, or the in-process job thread) and returns at once: a request never runs or waits for a
  crawl (DESIGN §5). The recent runs show start, end, counts and errors; a running one its progress.
* ``/admin/uploads`` (editors): a CSV, JSON, JSONL, HTML or PDF file becomes an upload source under the upload
  policy of ``crawlers.uploads`` (type by magic bytes, generated names, one record namespace; T23), read by a
  background crawl run whose per-line errors the page then shows. The body is capped by the app's
  MAX_CONTENT_LENGTH; larger files go through ``library import``.

Every state change is audited. Sources added here are URLs only: a server-side file path from a form would
let the page read files of the server.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select
from werkzeug.wrappers import Response

from crawlers.parse.upload import DOCUMENT_KINDS
from crawlers.pipeline import Counts
from crawlers.sources import PROVENANCES, SourceError, add_source, list_sources
from crawlers.uploads import UploadRefused, add_upload_source, public_url_from_env
from indexer.store import CrawlFrontierRow, CrawlRunRow, RunStatus, SourceKind, SourceRow, UnitState
from indexer.tasks import get_jobs
from schemas import JST
from search_app.auth.audit import audit
from search_app.auth.policy import ADMIN, EDITORS, access

bp = Blueprint("admin_ingest", __name__, url_prefix="/admin")

CRAWL_TASK = "library.crawl_source"
RECENT_RUNS = 30
RECENT_UPLOADS = 30
SOURCE_KIND_LABELS = {"web": "ウェブサイト", "feed": "フィード（RSS・Atom）", "opendata": "オープンデータ（CSV）",
                      "upload": "アップロード"}
RUN_STATUS_LABELS = {"running": "実行中", "finished": "完了", "failed": "失敗", "interrupted": "中断"}
FORM_KINDS = ("web", "feed", "opendata")  # uploads come through /admin/uploads


def _library() -> Any:
    return current_app.extensions["library"]


def _local(moment: Any) -> str:
    return moment.astimezone(JST).strftime("%Y-%m-%d %H:%M:%S") if moment else "—"


@bp.app_template_filter("jst")
def _jst_filter(moment: Any) -> str:
    return _local(moment)


def _progress(session: Any, run_ids: list[int]) -> dict[int, tuple[int, int]]:
    """(units done, units known) of running runs, from their frontier."""
    if not run_ids:
        return {}
    rows = session.execute(select(CrawlFrontierRow.run_id, CrawlFrontierRow.state, func.count())
                           .where(CrawlFrontierRow.run_id.in_(run_ids))
                           .group_by(CrawlFrontierRow.run_id, CrawlFrontierRow.state))
    totals: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for run_id, state, count in rows:
        totals[run_id][1] += count
        if state != UnitState.PENDING.value:
            totals[run_id][0] += count
    return {run_id: (done, known) for run_id, (done, known) in totals.items()}


def _run_view(run: CrawlRunRow, progress: dict[int, tuple[int, int]]) -> dict[str, Any]:
    return {
        "id": run.id, "source_id": run.source_id, "status": run.status,
        "status_label": RUN_STATUS_LABELS.get(run.status, run.status),
        "started": _local(run.started_at), "finished": _local(run.finished_at),
        "summary": Counts.of(run).text(), "failed": run.failed,
        "errors": [error.get("message", "") for error in run.errors or []],
        "progress": progress.get(run.id) if run.status == RunStatus.RUNNING else None,
        "resumed_from_id": run.resumed_from_id,
    }


# --- sources and crawl runs ------------------------------------------------------------------------------------


def _sources_page(status: int = 200, **context: Any) -> tuple[str, int]:
    store = _library().store
    overviews = list_sources(store)
    with store.session(readonly=True) as session:
        runs = list(session.scalars(select(CrawlRunRow).order_by(CrawlRunRow.id.desc()).limit(RECENT_RUNS)))
        progress = _progress(session, [run.id for run in runs if run.status == RunStatus.RUNNING])
    names = {overview.source.id: overview.source.name for overview in overviews}
    return render_template(
        "admin/sources.html", overviews=overviews, runs=[_run_view(run, progress) for run in runs], names=names,
        kinds=FORM_KINDS, kind_labels=SOURCE_KIND_LABELS, status_labels=RUN_STATUS_LABELS, provenances=PROVENANCES,
        form=context.pop("form", {}), **context,
    ), status


@bp.get("/sources")
@access(ADMIN)
def sources() -> tuple[str, int]:
    return _sources_page()


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace("\r", "\n").split("\n") if line.strip()]


def _optional_int(value: str, label: str, errors: list[str]) -> int | None:
    if not value.strip():
        return None
    try:
        return int(value)
    except ValueError:
        errors.append(f"{label}は整数で入力してください。")
        return None


@bp.post("/sources")
@access(ADMIN)
def add() -> Response | tuple[str, int]:
    form = request.form
    kind = form.get("kind", "")
    locations = _lines(form.get("locations", ""))
    errors: list[str] = []
    if kind not in FORM_KINDS:
        errors.append("種類を選んでください。")
    if any("://" not in location for location in locations):
        errors.append("URL は http:// または https:// から書いてください（ファイルは「アップロード」から取り込みます）。")
    depth = _optional_int(form.get("depth", ""), "リンクの深さ", errors)
    max_pages = _optional_int(form.get("max_pages", ""), "ページ数の上限", errors)
    if not errors:
        try:
            row = add_source(
                _library().store, kind, locations, provenance=form.get("provenance", ""),
                name=form.get("name", "").strip() or None, organization=form.get("organization", "").strip() or None,
                include=_lines(form.get("include", "")) if kind == "web" else (),
                exclude=_lines(form.get("exclude", "")) if kind == "web" else (),
                depth=depth if kind == "web" else None, max_pages=max_pages if kind == "web" else None,
                schedule=form.get("schedule", "").strip() or None,
                dataset=(form.get("dataset", "").strip() or None) if kind == "opendata" else None,
            )
        except SourceError as exc:
            errors.append(str(exc))
    if errors:
        return _sources_page(400, errors=errors, form=form)
    audit("source.add", f"source:{row.id}", kind=row.kind, location=row.location)
    flash(f"取得元「{row.name}」を追加しました。")
    return redirect(url_for("admin_ingest.sources"), code=303)


def _set_enabled(source_id: int, enabled: bool) -> Response:
    with _library().store.session() as session:
        row = session.get(SourceRow, source_id)
        if row is None:
            abort(404)
        row.enabled = enabled
        name = row.name
    audit("source.enable" if enabled else "source.disable", f"source:{source_id}")
    flash(f"取得元「{name}」を{'有効' if enabled else '停止'}にしました。")
    return redirect(url_for("admin_ingest.sources"), code=303)


@bp.post("/sources/<int:source_id>/enable")
@access(ADMIN)
def enable(source_id: int) -> Response:
    return _set_enabled(source_id, True)


@bp.post("/sources/<int:source_id>/disable")
@access(ADMIN)
def disable(source_id: int) -> Response:
    return _set_enabled(source_id, False)


@bp.post("/sources/<int:source_id>/crawl")
@access(ADMIN)
def crawl_now(source_id: int) -> Response:
    with _library().store.session(readonly=True) as session:
        row = session.get(SourceRow, source_id)
        if row is None:
            abort(404)
        name = row.name
    # Handed to the job runner: the response does not wait for the crawl, which may take minutes.
    get_jobs(current_app).submit(CRAWL_TASK, source_id)
    audit("source.crawl", f"source:{source_id}")
    flash(f"取得元「{name}」の取得を始めました。進み具合は下の「最近の実行」に表示されます。")
    return redirect(url_for("admin_ingest.sources"), code=303)


# --- uploads ---------------------------------------------------------------------------------------------------


def _uploads_page(status: int = 200, **context: Any) -> tuple[str, int]:
    store = _library().store
    with store.session(readonly=True) as session:
        sources = list(session.scalars(select(SourceRow).where(SourceRow.kind == SourceKind.UPLOAD.value)
                                       .order_by(SourceRow.updated_at.desc(), SourceRow.id.desc())
                                       .limit(RECENT_UPLOADS)))
        latest = select(func.max(CrawlRunRow.id)).where(
            CrawlRunRow.source_id.in_([source.id for source in sources])).group_by(CrawlRunRow.source_id)
        runs = {run.source_id: run for run in session.scalars(select(CrawlRunRow).where(CrawlRunRow.id.in_(latest)))}
        progress = _progress(session, [run.id for run in runs.values() if run.status == RunStatus.RUNNING])
    uploads = [{"source": source, "run": _run_view(runs[source.id], progress) if source.id in runs else None}
               for source in sources]
    return render_template("admin/uploads.html", uploads=uploads, provenances=PROVENANCES, kinds=DOCUMENT_KINDS,
                           form=context.pop("form", {}), **context), status


@bp.get("/uploads")
@access(*EDITORS)
def uploads() -> tuple[str, int]:
    return _uploads_page()


@bp.post("/uploads")
@access(*EDITORS)
def upload() -> Response | tuple[str, int]:
    form = request.form
    file = request.files.get("file")
    if file is None or not file.filename:
        return _uploads_page(400, errors=["ファイルを選んでください。"], form=form)
    content = file.read()  # within MAX_CONTENT_LENGTH: Werkzeug refused a larger body with 413
    try:
        source = add_upload_source(
            _library().store, _library().settings.data_dir, file.filename, content,
            provenance=form.get("provenance", ""), organization=form.get("organization", "").strip() or None,
            kind=form.get("kind", "page"), url=form.get("url", "").strip() or None,
            public_url=public_url_from_env(default=request.url_root),
        )
    except UploadRefused as exc:
        audit("upload.refused", file.filename[:200], outcome="failed", reason=str(exc))
        return _uploads_page(400, errors=[str(exc)], form=form)
    get_jobs(current_app).submit(CRAWL_TASK, source.id)
    audit("upload.add", f"source:{source.id}", name=source.name, type=source.options["type"], size=len(content),
          sha256=source.options["sha256"])
    flash(f"「{source.name}」を受け付けました。取り込みの結果は下の一覧に表示されます。")
    return redirect(url_for("admin_ingest.uploads"), code=303)


@bp.post("/uploads/<int:source_id>/retry")
@access(*EDITORS)
def retry_upload(source_id: int) -> Response:
    with _library().store.session(readonly=True) as session:
        row = session.get(SourceRow, source_id)
        if row is None or row.kind != SourceKind.UPLOAD.value:
            abort(404)
        name = row.name
    get_jobs(current_app).submit(CRAWL_TASK, source_id)
    audit("upload.retry", f"source:{source_id}")
    flash(f"「{name}」をもう一度取り込みます。")
    return redirect(url_for("admin_ingest.uploads"), code=303)
