"""Validation errors as Japanese, per-field messages for editors, contributors and source operators."""

import re
from dataclasses import dataclass
from typing import get_args

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from pydantic_core.core_schema import ErrorType

_DATETIME = "日付または日時を ISO 8601 形式で入力してください（例: 2026-11-01、2026-11-01T10:00:00+09:00）"
_BOOL = "true または false で指定してください"
_INT = "整数で入力してください"
_FLOAT = "数値で入力してください"

# pydantic's own error types (bounds are only set on numbers, hence :g); custom validators raise
# PydanticCustomError with the Japanese text already, under type names pydantic does not use.
_MESSAGES: dict[str, str] = {
    "missing": "必須項目です",
    "extra_forbidden": "不明な項目です",
    "string_type": "文字列で入力してください",
    "string_too_short": "{min_length} 文字以上で入力してください",
    "string_too_long": "{max_length} 文字以内で入力してください",
    "string_unicode": "文字列として読めません",
    "list_type": "配列（リスト）で指定してください",
    "bool_type": _BOOL,
    "bool_parsing": _BOOL,
    "int_type": _INT,
    "int_parsing": _INT,
    "int_from_float": _INT,
    "int_parsing_size": "数値が大きすぎます",
    "float_type": _FLOAT,
    "float_parsing": _FLOAT,
    "finite_number": "有限の数値で入力してください",
    "greater_than": "{gt:g} より大きい値を入力してください",
    "greater_than_equal": "{ge:g} 以上の値を入力してください",
    "less_than": "{lt:g} より小さい値を入力してください",
    "less_than_equal": "{le:g} 以下の値を入力してください",
    "datetime_type": _DATETIME,
    "datetime_parsing": _DATETIME,
    "datetime_from_date_parsing": _DATETIME,
    "datetime_object_invalid": _DATETIME,
}
_PYDANTIC_TYPES = frozenset(get_args(ErrorType))


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    """Dotted path into the record, e.g. ``jan_codes.0``; empty when the record as a whole is wrong."""
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class RecordValidationError(ValueError):
    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(map(str, errors)))
        self.errors = errors


def field_errors(exc: ValidationError) -> list[FieldError]:
    return [FieldError(".".join(map(str, error["loc"])), _message(error)) for error in exc.errors()]


def _message(error: ErrorDetails) -> str:
    error_type, ctx = error["type"], error.get("ctx", {})
    if error_type == "string_too_short" and ctx.get("min_length") == 1:
        return "空欄にはできません"
    if error_type == "literal_error":
        # ctx["expected"] reads "'a', 'b' or 'c'"; list the values without the English "or".
        allowed = re.findall(r"'([^']*)'", ctx["expected"])
        if len(allowed) == 1:
            return f"{allowed[0]} を指定してください"
        return f"次のいずれかを指定してください: {', '.join(allowed)}"
    if error_type in _MESSAGES:
        return _MESSAGES[error_type].format(**ctx)
    if error_type in _PYDANTIC_TYPES:
        return f"値が正しくありません（{error['msg']}）"
    return error["msg"]
