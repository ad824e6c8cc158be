"""Password hashing and policy (T21, OWASP Password Storage Cheat Sheet, ASVS 6.2).

argon2id at OWASP's minimum parameters (19 MiB, 2 passes, 1 lane); a login with a hash made at older parameters
is rehashed. Passwords are NFKC-normalized first (NIST SP 800-63B 5.1.1.2), so one typed in full-width on a phone
and half-width on a PC is the same password; nothing is truncated (argon2 has no 72-byte limit).
"""

from __future__ import annotations

import unicodedata
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 12
MAX_LENGTH = 256  # a cap on work per login, far above any passphrase
COMMON_PASSWORD_COUNT = 3000

HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def normalize(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


def hash_password(password: str) -> str:
    return HASHER.hash(normalize(password))


@cache
def _dummy_hash() -> str:
    return HASHER.hash("not a password of anyone: equalizes the time of a login for an unknown account")


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when the password matches. With no hash (unknown account, invitation not accepted) a dummy hash is
    verified anyway, so the answer takes as long as for a real account (ASVS 6.3.8)."""
    try:
        return HASHER.verify(password_hash or _dummy_hash(), normalize(password)) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return HASHER.check_needs_rehash(password_hash)


@cache
def common_passwords() -> frozenset[str]:
    # zxcvbn's list is ranked by frequency in leaked password sets; its head is what attackers try first.
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"][:COMMON_PASSWORD_COUNT])


def password_problems(password: str, *, email: str = "", display_name: str = "") -> list[str]:
    """Why a new password is refused, in Japanese; empty when it is acceptable."""
    normalized = normalize(password)
    problems = []
    if len(normalized) < MIN_LENGTH:
        problems.append(f"パスワードは{MIN_LENGTH}文字以上にしてください。")
    if len(normalized) > MAX_LENGTH:
        problems.append(f"パスワードは{MAX_LENGTH}文字以内にしてください。")
    folded = normalized.casefold()
    if folded in common_passwords():
        problems.append("よく使われていて推測されやすいパスワードです。別のものにしてください。")
    personal = {value.casefold() for value in (email, email.partition("@")[0], display_name) if len(value) >= 4}
    if folded in personal:
        problems.append("メールアドレスや表示名と同じパスワードは使えません。")
    return problems
