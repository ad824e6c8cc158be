"""Citizens' contributions on both SQL backends: nothing pending is searchable, decisions are exclusive, an accepted
suggestion is an editor's revision with a per-field override."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from indexer import contributions
from indexer.config import Settings
from indexer.contributions import (
    AlreadyDecided,
    ContributionNotFound,
    NothingChanged,
    ReasonRequired,
    RecordChanged,
)
from indexer.library import Library
from indexer.search import Query
from indexer.store import ContributionRow, RecordOverrideRow, RecordRow, RevisionRow, UserRow, verify_chain
from schemas import RecordValidationError

# A word no demo or test record holds, so a hit can only be the contributed record.
WORD = "ひまわり子ども食堂"


def program(**fields: object) -> dict[str, object]:
    record: dict[str, object] = {
        "kind": "program",
        "title": f"{WORD}の開催",
        "body": "毎月第2土曜日に、だれでも参加できる食堂を開いています。",
        "organizer": "ひまわりの会",
        "place": "みなと公民館",
    }
    record.update(fields)
    return record


@pytest.fixture()
def library(database_url: str, data_dir: Path) -> Iterator[Library]:
    lib = Library.open(Settings.from_env(data_dir=data_dir, database_url=database_url))
    yield lib
    lib.close()


def make_user(library: Library, role: str, name: str) -> int:
    with library.store.session() as session:
        user = UserRow(email=f"{role}-{name}@example.jp", display_name=name, role=role)
        session.add(user)
        session.flush()
        return user.id


@pytest.fixture()
def citizen(library: Library) -> int:
    return make_user(library, "citizen", "市民A")


@pytest.fixture()
def editor(library: Library) -> int:
    return make_user(library, "editor", "編集者B")


def found(library: Library, text: str) -> list[str]:
    return [hit.id for hit in library.search(Query(text=text)).hits]


def record_count(library: Library) -> int:
    with library.store.session(readonly=True) as session:
        return len(session.scalars(select(RecordRow.id)).all())


def test_a_pending_contribution_is_stored_but_not_a_record_and_not_searchable(
    library: Library, citizen: int
) -> None:
    before = record_count(library)
    contribution = contributions.submit_record(
        library.store, citizen, program(), note="公民館の掲示で見ました"
    )
    library.drain()
    assert contribution.status == "pending"
    assert record_count(library) == before
    assert found(library, WORD) == []
    assert contributions.pending(library.store)[0].id == contribution.id


def test_provenance_and_identity_are_the_librarys_not_the_contributors(
    library: Library, citizen: int
) -> None:
    contribution = contributions.submit_record(
        library.store,
        citizen,
        program(
            provenance="government",
            id="stolen-id",
            source="crawl:1",
            status="retracted",
            verified_at="2026-01-01",
        ),
    )
    assert contribution.data["provenance"] == "citizen"
    assert contribution.data["id"] is None
    assert contribution.data["source"] is None
    assert contribution.data["status"] == "published"
    assert contribution.data["verified_at"] is None


def test_an_invalid_contribution_is_refused_with_japanese_field_messages(
    library: Library, citizen: int
) -> None:
    with pytest.raises(RecordValidationError) as raised:
        contributions.submit_record(
            library.store, citizen, {**program(title=""), "organizer": None} | {"fee": 3}
        )
    fields = {error.field: error.message for error in raised.value.errors}
    assert fields == {
        "title": "空欄にはできません",
        "organizer": "文字列で入力してください",
        "fee": "文字列で入力してください",
    }
    with pytest.raises(RecordValidationError) as raised:
        contributions.submit_record(library.store, citizen, {"kind": "program", "title": "催し"})
    assert {error.field: error.message for error in raised.value.errors} == {"organizer": "必須項目です"}
    with pytest.raises(RecordValidationError):
        contributions.submit_record(
            library.store, citizen, {"kind": "page", "title": "x", "url": "https://a.jp/"}
        )
    assert contributions.pending(library.store) == []


def test_accepting_makes_a_searchable_citizen_record_naming_both_people(
    library: Library, citizen: int, editor: int
) -> None:
    contribution = contributions.submit_record(library.store, citizen, program())
    decision = contributions.accept(library, contribution.id, editor_id=editor)
    assert found(library, WORD) == [decision.record_id]
    assert found(library, "ひまわりの会") == [decision.record_id]
    with library.store.session(readonly=True) as session:
        record = session.get(RecordRow, decision.record_id)
        assert record is not None and record.data["provenance"] == "citizen"
        revision = session.scalars(
            select(RevisionRow).where(RevisionRow.record_id == decision.record_id)
        ).one()
        assert f"user:{citizen}" in revision.author and f"user:{editor}" in revision.author
        assert "市民A" in revision.author and "編集者B" in revision.author
        assert verify_chain(session, decision.record_id)
    decided = contributions.get(library.store, contribution.id)
    assert decided is not None
    assert (decided.status, decided.decided_by, decided.record_id) == ("accepted", editor, decision.record_id)
    assert decided.resulting_revision == 1
    assert contributions.pending(library.store) == []


def test_a_rejection_keeps_the_reason_and_nothing_becomes_searchable(
    library: Library, citizen: int, editor: int
) -> None:
    contribution = contributions.submit_record(library.store, citizen, program())
    with pytest.raises(ReasonRequired):
        contributions.reject(library.store, contribution.id, editor_id=editor, reason="  \n ")
    reason = "同じ催しがすでに登録されています（みなと市の記録をご覧ください）。"
    contributions.reject(library.store, contribution.id, editor_id=editor, reason=reason)
    mine = contributions.of_contributor(library.store, citizen)
    assert [(item.status, item.reason) for item in mine] == [("rejected", reason)]
    library.drain()
    assert found(library, WORD) == []
    with pytest.raises(AlreadyDecided):
        contributions.accept(library, contribution.id, editor_id=editor)


def test_withdraw_only_ones_own_pending_contribution(library: Library, citizen: int, editor: int) -> None:
    other = make_user(library, "citizen", "市民C")
    contribution = contributions.submit_record(library.store, citizen, program())
    with pytest.raises(ContributionNotFound):
        contributions.withdraw(library.store, contribution.id, contributor_id=other)
    contributions.withdraw(library.store, contribution.id, contributor_id=citizen)
    assert contributions.get(library.store, contribution.id).status == "withdrawn"  # type: ignore[union-attr]
    with pytest.raises(AlreadyDecided):
        contributions.withdraw(library.store, contribution.id, contributor_id=citizen)
    with pytest.raises(AlreadyDecided):
        contributions.accept(library, contribution.id, editor_id=editor)


@pytest.mark.parametrize("second", ["accept", "reject"])
def test_two_editors_deciding_at_once_one_wins(
    library: Library, citizen: int, editor: int, second: str
) -> None:
    other_editor = make_user(library, "editor", "編集者D")
    contribution = contributions.submit_record(library.store, citizen, program())
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def decide(name: str, action: str, editor_id: int) -> None:
        barrier.wait()
        try:
            if action == "accept":
                contributions.accept(library, contribution.id, editor_id=editor_id)
            else:
                contributions.reject(library.store, contribution.id, editor_id=editor_id, reason="重複です")
            outcomes[name] = "won"
        except AlreadyDecided:
            outcomes[name] = "lost"

    threads = [
        threading.Thread(target=decide, args=("first", "accept", editor)),
        threading.Thread(target=decide, args=("second", second, other_editor)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes.values()) == ["lost", "won"]
    decided = contributions.get(library.store, contribution.id)
    assert decided is not None
    winner = editor if outcomes["first"] == "won" else other_editor
    assert decided.decided_by == winner
    # Exactly one record at most: the loser of two accepts made none.
    with library.store.session(readonly=True) as session:
        made = session.scalars(select(RecordRow.id).where(RecordRow.source == "contribution")).all()
    assert len(made) == (1 if decided.status == "accepted" else 0)


# --- suggested edits --------------------------------------------------------------------------------------------


@pytest.fixture()
def record_id(library: Library) -> str:
    return library.ingest(
        program(provenance="government", source="crawl:7", external_id="himawari"),
        author="crawl:7",
        summary="crawl",
    ).record_id


def test_a_suggestion_keeps_only_the_changed_fields(library: Library, citizen: int, record_id: str) -> None:
    current = library.get_record(record_id)
    assert current is not None
    proposed = {**current.data, "place": "みなと市民センター", "provenance": "citizen", "status": "retracted"}
    contribution = contributions.submit_edit(library.store, citizen, record_id, proposed, base_revision=1)
    assert contribution.data == {"place": "みなと市民センター"}
    assert (contribution.record_id, contribution.base_revision, contribution.kind) == (
        record_id,
        1,
        "program",
    )
    with pytest.raises(NothingChanged):
        contributions.submit_edit(library.store, citizen, record_id, dict(current.data), base_revision=1)
    with pytest.raises(RecordValidationError):
        contributions.submit_edit(library.store, citizen, record_id, {"organizer": ""}, base_revision=1)
    with pytest.raises(ContributionNotFound):
        contributions.submit_edit(library.store, citizen, "no-such-record", {"place": "x"}, base_revision=1)
    # Pending: the record and the index still say what they said.
    library.drain()
    assert library.get_record(record_id).data["place"] == "みなと公民館"  # type: ignore[union-attr]
    assert found(library, "市民センター") == []


def test_an_accepted_suggestion_is_a_revision_with_a_per_field_override(
    library: Library, citizen: int, editor: int, record_id: str
) -> None:
    contribution = contributions.submit_edit(
        library.store, citizen, record_id, {"place": "みなと市民センター"}, base_revision=1
    )
    decision = contributions.accept(library, contribution.id, editor_id=editor)
    assert (decision.record_id, decision.revision) == (record_id, 2)
    record = library.get_record(record_id)
    assert record is not None and record.data["place"] == "みなと市民センター"
    assert (
        record.data["provenance"] == "government"
    )  # a correction does not change who stands behind the record
    assert found(library, "市民センター") == [record_id]
    with library.store.session(readonly=True) as session:
        override = session.get(RecordOverrideRow, (record_id, "place"))
        assert (
            override is not None and override.value == "みなと市民センター" and override.editor_id == editor
        )
        assert (
            session.scalar(
                select(ContributionRow.resulting_revision).where(ContributionRow.id == contribution.id)
            )
            == 2
        )
        assert verify_chain(session, record_id)
    # A re-crawl keeps the correction.
    library.ingest(
        program(provenance="government", source="crawl:7", external_id="himawari"),
        author="crawl:7",
        summary="crawl",
    )
    assert library.get_record(record_id).data["place"] == "みなと市民センター"  # type: ignore[union-attr]


def test_a_record_changed_since_the_suggestion_needs_a_second_look(
    library: Library, citizen: int, editor: int, record_id: str
) -> None:
    contribution = contributions.submit_edit(
        library.store, citizen, record_id, {"fee": "300円"}, base_revision=1
    )
    library.ingest(
        program(
            provenance="government", source="crawl:7", external_id="himawari", body="会場が変わりました。"
        ),
        author="crawl:7",
        summary="crawl",
    )
    with pytest.raises(RecordChanged) as raised:
        contributions.accept(library, contribution.id, editor_id=editor)
    assert raised.value.current_revision == 2
    # Still pending: the editor is shown the difference and may accept onto the current revision.
    review = contributions.review(library.store, contributions.get(library.store, contribution.id))  # type: ignore[arg-type]
    assert review is not None and review.record_changed
    assert (review.base["body"], review.current["body"]) == (program()["body"], "会場が変わりました。")
    assert review.proposed["fee"] == "300円" and review.proposed["body"] == "会場が変わりました。"
    decision = contributions.accept(library, contribution.id, editor_id=editor, reviewed_revision=2)
    record = library.get_record(record_id)
    assert decision.revision == 3
    assert record is not None and (record.data["fee"], record.data["body"]) == (
        "300円",
        "会場が変わりました。",
    )


def test_a_suggestion_that_no_longer_fits_goes_back_to_the_queue(
    library: Library, citizen: int, editor: int, record_id: str
) -> None:
    contribution = contributions.submit_edit(
        library.store, citizen, record_id, {"starts_at": "2026-12-01 10:00"}, base_revision=1
    )
    # The record gains an end before the proposed start, so the merged record is invalid.
    library.ingest(
        program(
            provenance="government",
            source="crawl:7",
            external_id="himawari",
            starts_at="2026-11-01 10:00",
            ends_at="2026-11-01 12:00",
        ),
        author="crawl:7",
        summary="crawl",
    )
    with pytest.raises(RecordValidationError):
        contributions.accept(library, contribution.id, editor_id=editor, reviewed_revision=2)
    assert contributions.get(library.store, contribution.id).status == "pending"  # type: ignore[union-attr]
    contributions.reject(library.store, contribution.id, editor_id=editor, reason="日程が変わりました")


def test_accepting_a_suggestion_commits_the_decision_and_the_revision_together(
    library: Library, citizen: int, editor: int, record_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after the revision is written (here: recording the resulting revision) rolls both back: never an
    accepted suggestion without its revision, nor a revision whose suggestion still waits."""
    contribution = contributions.submit_edit(
        library.store, citizen, record_id, {"place": "みなと市民センター"}, base_revision=1
    )
    real_update = contributions.update
    calls = []

    def failing_update(table: object) -> object:
        calls.append(table)
        if calls.count(ContributionRow) == 2:  # the first claims the decision; the second follows the revision
            raise RuntimeError("the process dies here")
        return real_update(table)

    monkeypatch.setattr(contributions, "update", failing_update)
    with pytest.raises(RuntimeError):
        contributions.accept(library, contribution.id, editor_id=editor)
    monkeypatch.undo()
    assert calls.count(ContributionRow) == 2
    assert contributions.get(library.store, contribution.id).status == "pending"  # type: ignore[union-attr]
    assert library.get_record(record_id).revision == 1  # type: ignore[union-attr]
    decision = contributions.accept(library, contribution.id, editor_id=editor)
    assert decision.revision == 2
