"""T21: argon2id at OWASP's parameters, rehash of old hashes, the password policy, and login timing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from argon2 import PasswordHasher, extract_parameters
from flask import Flask

from indexer.store import UserRow
from search_app import get_library
from search_app.auth import passwords
from search_app.auth.accounts import check_login
from search_app.auth.passwords import hash_password, password_problems, verify_password


def test_hashes_are_argon2id_at_owasp_parameters() -> None:
    encoded = hash_password("みなと市の図書館は駅の北口")
    parameters = extract_parameters(encoded)
    assert encoded.startswith("$argon2id$")
    assert parameters.memory_cost >= 19 * 1024 and parameters.time_cost >= 2


def test_werkzeugs_default_hash_is_not_accepted() -> None:
    from werkzeug.security import generate_password_hash

    assert not verify_password(generate_password_hash("みなと市の図書館は駅の北口"), "みなと市の図書館は駅の北口")


@pytest.mark.parametrize("password", [
    "a" * 64 + "b",  # long: nothing truncated
    "🌊🏮🌊🏮🌊🏮🌊🏮🌊🏮🌊🏮",  # emoji
    "ｍｉｎａｔｏ　ｌｉｂｒａｒｙ！",  # full-width
    "みなと市の図書館は駅の北口",
])
def test_long_emoji_and_full_width_passwords_are_accepted_whole(password: str) -> None:
    assert password_problems(password) == []
    encoded = hash_password(password)
    assert verify_password(encoded, password)
    assert not verify_password(encoded, password[:-1])


def test_full_and_half_width_are_one_password() -> None:
    assert verify_password(hash_password("ｍｉｎａｔｏ　ｌｉｂｒａｒｙ！"), "minato library!")


@pytest.mark.parametrize("password", ["1qaz2wsx3edc", "QWERTY123456", "ｑｗｅｒｔｙ１２３４５６", "leavemealone"])
def test_common_passwords_are_refused_in_any_case_or_width(password: str) -> None:
    assert any("推測されやすい" in problem for problem in password_problems(password))


def test_the_common_list_is_the_top_3000() -> None:
    common = passwords.common_passwords()
    assert len(common) >= 2900 and "password" in common and "iloveyou" in common


def test_short_and_personal_passwords_are_refused() -> None:
    assert password_problems("短い合言葉") == ["パスワードは12文字以上にしてください。"]
    assert any("メールアドレス" in p for p in password_problems("hanako.minato", email="hanako.minato@example.jp"))


def test_an_old_parameter_hash_is_rehashed_on_login(app: Flask, make_user: Callable[..., Any]) -> None:
    user = make_user("citizen")
    old = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash("みなと市の図書館は駅の北口")
    store = get_library(app).store
    with store.session() as db:
        db.get(UserRow, user.id).password_hash = old
    assert check_login(store, user.email, "みなと市の図書館は駅の北口").account is not None
    with store.session(readonly=True) as db:
        rehashed = db.get(UserRow, user.id).password_hash
    assert rehashed != old and extract_parameters(rehashed).memory_cost >= 19 * 1024


def test_lockout_after_five_failures_answers_429(app: Flask, make_user: Callable[..., Any], csrf_token: Any) -> None:
    user = make_user("editor")
    client = app.test_client()
    token = csrf_token(client, "/login")
    statuses = [
        client.post("/login", data={"email": user.email, "password": "まちがった合言葉です", "csrf_token": token}).status_code
        for _ in range(5)
    ]
    assert statuses == [200, 200, 200, 200, 429]
    # Even the right password waits until the lock ends; it says when.
    response = client.post("/login", data={"email": user.email, "password": "みなと市の図書館は駅の北口",
                                           "csrf_token": token})
    assert response.status_code == 429 and 0 < int(response.headers["Retry-After"]) <= 61


def test_an_unknown_account_costs_one_verification_too(app: Flask, make_user: Callable[..., Any],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """ASVS 6.3.8: a login for an unknown account verifies a dummy hash, so it takes as long as a real one (the
    timing itself is measured by benchmarks/login_timing.py, not asserted here)."""
    user = make_user("citizen")
    store = get_library(app).store
    calls: list[str] = []

    class CountingHasher(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> bool:
            calls.append(str(hash))
            return super().verify(hash, password)

    monkeypatch.setattr(passwords, "HASHER", CountingHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1))
    assert check_login(store, user.email, "まちがった合言葉です").account is None
    assert check_login(store, "nobody@example.jp", "まちがった合言葉です").account is None
    assert len(calls) == 2 and all(encoded.startswith("$argon2id$") for encoded in calls)


@pytest.mark.parametrize("guesses", [12])
def test_parallel_wrong_guesses_all_count(database_url: str, data_dir: Any, guesses: int) -> None:
    """T22: wrong guesses sent at once are each counted (no lost update under READ COMMITTED): the fifth locks the
    account, and every later one finds it locked."""
    from concurrent.futures import ThreadPoolExecutor

    from indexer.config import Settings
    from indexer.library import Library
    from search_app.auth.accounts import MAX_FAILED_LOGINS, create_user

    library = Library.open(Settings.from_env(data_dir=data_dir, database_url=database_url))
    try:
        with library.store.session() as db:
            email = create_user(db, email="guess@example.jp", display_name="試し", role="editor",
                                password="みなと市の図書館は駅の北口").email
        with ThreadPoolExecutor(max_workers=guesses) as pool:
            results = list(pool.map(lambda _: check_login(library.store, email, "まちがった合言葉です"), range(guesses)))
        plain_failures = [r for r in results if r.account is None and not r.locked_for]
        assert len(plain_failures) == MAX_FAILED_LOGINS - 1
        assert sum(1 for r in results if r.locked_for) == guesses - len(plain_failures)
        assert check_login(library.store, email, "みなと市の図書館は駅の北口").locked_for
    finally:
        library.close()


def test_every_stored_hash_is_argon2id_at_owasp_parameters(app: Flask, make_user: Callable[..., Any],
                                                           csrf_token: Any) -> None:
    """T21: whatever way an account got its password (registration form, invitation, the fixtures' create_user),
    the stored hash is argon2id with m >= 19 MiB and t >= 2."""
    from sqlalchemy import select

    client = app.test_client()
    client.post("/register", data={"csrf_token": csrf_token(client, "/register"), "email": "scan@example.jp",
                                   "display_name": "走査", "password": "みなと市の図書館は駅の北口",
                                   "password_confirm": "みなと市の図書館は駅の北口"})  # fmt: skip
    for role in ("citizen", "editor", "admin"):
        make_user(role)
    with get_library(app).store.session(readonly=True) as db:
        hashes = [h for h in db.scalars(select(UserRow.password_hash)) if h]
    assert len(hashes) >= 4
    for encoded in hashes:
        parameters = extract_parameters(encoded)
        assert encoded.startswith("$argon2id$")
        assert parameters.memory_cost >= 19 * 1024 and parameters.time_cost >= 2
