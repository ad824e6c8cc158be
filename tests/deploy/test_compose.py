"""docker-compose.yml: valid by the Compose Specification, healthy start order, persistent data, no secrets.

The schema is the Compose Specification's own compose-spec.json as vendored (with its SHA-256, checked by the
tool on load) in the check-jsonschema package from PyPI, used through its documented `--builtin-schema
vendor.compose-spec` option. Compose validates after interpolation, so the file is checked both as written and
as Compose would see it with the values of .env.example (secrets filled with throwaway values).
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from indexer.config import Settings

from .conftest import (
    APP_SERVICES,
    COMPOSE_FILE,
    DATA_SERVICES,
    ENV_EXAMPLE,
    ROOT,
    SECRET_NAME,
    MissingVariable,
    interpolate_tree,
    load_compose,
    missing,
    read_env_file,
    strings_in,
    variables_in,
)

REQUIRED_SECRETS = {"POSTGRES_PASSWORD", "ELASTIC_PASSWORD", "REDIS_PASSWORD", "LIBRARY_FLASK_SECRET_KEY"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def example_environment() -> dict[str, str]:
    """.env.example as an operator would fill it: every empty secret given a throwaway hex value."""
    values = read_env_file(ENV_EXAMPLE)
    return {name: value or f"{index:064x}" for index, (name, value) in enumerate(values.items(), start=1)}


@pytest.fixture(scope="module")
def interpolated(compose: dict[str, Any], example_environment: dict[str, str]) -> dict[str, Any]:
    return interpolate_tree(compose, example_environment)


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    try:
        importlib.metadata.version("check-jsonschema")
    except importlib.metadata.PackageNotFoundError:
        missing("check-jsonschema")
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment as a mapping, so keys can be checked"
    return {key: str(value) for key, value in env.items()}


# --- the Compose Specification ------------------------------------------------------------------------------


def test_the_file_is_valid_by_the_compose_specification() -> None:
    result = validate(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_file_is_valid_as_compose_sees_it_after_interpolation(
    interpolated: dict[str, Any], tmp_path: Path
) -> None:
    resolved = tmp_path / "compose.resolved.json"
    resolved.write_text(json.dumps(interpolated), encoding="utf-8")
    result = validate(resolved)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_broken_file(tmp_path: Path) -> None:
    """The validator is no rubber stamp: a misspelt healthcheck key and a bad restart policy are refused."""
    broken = load_compose()
    broken["services"]["web"]["healthcheck"]["intervall"] = "30s"
    broken["services"]["redis"]["restart"] = ["always"]
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken, allow_unicode=True), encoding="utf-8")
    result = validate(path)
    assert result.returncode != 0
    assert "intervall" in result.stdout + result.stderr


# --- services, images, start order --------------------------------------------------------------------------


def test_the_expected_services_exist(compose: dict[str, Any]) -> None:
    assert set(services(compose)) == {*DATA_SERVICES, *APP_SERVICES}


def test_every_image_has_an_explicit_tag_and_none_is_latest(interpolated: dict[str, Any]) -> None:
    for name, service in services(interpolated).items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest", f"{name}: {image}"


def test_the_app_services_run_one_image_built_from_this_repository(compose: dict[str, Any]) -> None:
    app = [services(compose)[name] for name in APP_SERVICES]
    assert len({service["image"] for service in app}) == 1
    assert all(service["build"] == {"context": ".", "dockerfile": "Dockerfile"} for service in app)
    assert (ROOT / "Dockerfile").is_file()


def test_each_app_service_runs_its_own_command(compose: dict[str, Any]) -> None:
    commands = {name: services(compose)[name]["command"] for name in APP_SERVICES}
    assert commands == {
        "web": ["gunicorn", "-c", "deploy/gunicorn.conf.py", "search_app:create_app()"],
        "worker": ["library", "worker"],
        "beat": ["library", "beat"],
    }
    assert (ROOT / "deploy" / "gunicorn.conf.py").is_file()


def _has_healthcheck(service: dict[str, Any]) -> bool:
    check = service.get("healthcheck") or {}
    return not check.get("disable", False) and bool(check.get("test"))


def test_every_service_is_healthchecked_or_waits_for_healthy_dependencies(compose: dict[str, Any]) -> None:
    all_services = services(compose)
    for name, service in all_services.items():
        if _has_healthcheck(service):
            continue
        depends = service.get("depends_on")
        assert isinstance(depends, dict) and depends, f"{name}: no healthcheck and no dependencies"
        for dependency, condition in depends.items():
            assert condition == {"condition": "service_healthy"}, f"{name} → {dependency}: {condition}"
            assert _has_healthcheck(all_services[dependency]), (
                f"{name} waits on {dependency}, which has no check"
            )


def test_app_services_start_only_after_the_store_and_broker_are_healthy(compose: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        depends = services(compose)[name]["depends_on"]
        for dependency in ("postgres", "redis"):
            assert depends[dependency] == {"condition": "service_healthy"}, name


def test_the_healthchecks_ask_the_right_questions(compose: dict[str, Any]) -> None:
    def test_of(name: str) -> str:
        test = services(compose)[name]["healthcheck"]["test"]
        return " ".join(test) if isinstance(test, list) else test

    assert "_cluster/health" in test_of("elasticsearch")
    assert "pg_isready" in test_of("postgres")
    assert "ping" in test_of("redis")
    assert "/healthz" in test_of("web") and "deploy/healthcheck.py" in test_of("web")


# --- configuration and secrets ------------------------------------------------------------------------------


def test_app_services_get_every_setting_the_app_reads(interpolated: dict[str, Any]) -> None:
    read_by_app = {name for name, _ in Settings.documented()} | {"LIBRARY_FLASK_SECRET_KEY"}
    for name in APP_SERVICES:
        env = environment_of(services(interpolated)[name])
        assert read_by_app <= set(env), f"{name} lacks {sorted(read_by_app - set(env))}"
        assert env["LIBRARY_SEARCH_ENGINE"] == "elasticsearch"
        assert env["LIBRARY_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert (
            env["ELASTICSEARCH_URL"].startswith("http://elastic:")
            and "@elasticsearch:9200" in env["ELASTICSEARCH_URL"]
        )
        assert (
            env["LIBRARY_BROKER_URL"].startswith("redis://:") and "@redis:6379/" in env["LIBRARY_BROKER_URL"]
        )
        assert env["LIBRARY_DATA_DIR"] == "/var/lib/library"


def test_the_app_settings_accept_the_composed_environment(
    interpolated: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What compose hands the containers is a configuration the app starts with (Settings.validate passes)."""
    env = environment_of(services(interpolated)["web"])
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings.from_env()
    assert settings.search_engine == "elasticsearch"
    assert (settings.database_url, settings.elasticsearch_url, settings.broker_url) == (
        env["LIBRARY_DATABASE_URL"],
        env["ELASTICSEARCH_URL"],
        env["LIBRARY_BROKER_URL"],
    )


def test_the_web_service_sends_hsts(
    interpolated: dict[str, Any], data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """T18: HSTS in the production configuration. The app sits behind a TLS proxy and sees plain http, so only
    the setting turns the header on; the app built from the composed value must then send it."""
    env = environment_of(services(interpolated)["web"])
    assert env.get("LIBRARY_FLASK_HSTS") == "true"
    for name in ("worker", "beat"):
        assert "LIBRARY_FLASK_HSTS" not in environment_of(services(interpolated)[name]), "they serve no HTTP"

    from search_app import create_app, get_library
    from search_app.security import HSTS

    monkeypatch.setenv("LIBRARY_FLASK_HSTS", env["LIBRARY_FLASK_HSTS"])
    settings = Settings.from_env(data_dir=data_dir, database_url=f"sqlite:///{data_dir / 'library.db'}")
    app = create_app({"LIBRARY_SETTINGS": settings, "TESTING": True})
    try:
        assert app.test_client().get("/healthz").headers.get("Strict-Transport-Security") == HSTS
    finally:
        get_library(app).close()
    assert "max-age=31536000" in HSTS and "includeSubDomains" in HSTS


def test_secret_variables_are_required_and_have_no_default(compose: dict[str, Any]) -> None:
    seen: set[str] = set()
    for where, value in strings_in(compose):
        for name, op, _ in variables_in(value):
            if SECRET_NAME.search(name):
                seen.add(name)
                assert op == ":?", (
                    f"{where}: ${{{name}}} must be written ${{{name}:?…}} (required, no default)"
                )
    assert seen == REQUIRED_SECRETS


def test_no_secret_is_written_inline(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        for key, value in environment_of(service).items():
            if SECRET_NAME.search(key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]*\}", value), f"{name}.{key} is not taken from .env"
    # Credentials inside URLs: the password part is always a variable.
    userinfo = re.compile(r"://[^/@\s]*:(?P<password>[^@/\s]+)@")
    for where, value in strings_in(compose):
        for match in userinfo.finditer(value):
            assert match["password"].startswith("${"), f"{where}: inline password in {value!r}"


def test_compose_refuses_to_start_without_each_secret(
    compose: dict[str, Any], example_environment: dict[str, str]
) -> None:
    for secret in sorted(REQUIRED_SECRETS):
        environment = {key: value for key, value in example_environment.items() if key != secret}
        with pytest.raises(MissingVariable, match=secret):
            interpolate_tree(compose, environment)


def test_every_variable_is_documented_in_the_env_example(compose: dict[str, Any]) -> None:
    used = {name for _, value in strings_in(compose) for name, _, _ in variables_in(value)}
    documented = set(read_env_file(ENV_EXAMPLE))
    assert used - documented == set(), "used by docker-compose.yml but not in .env.example"
    assert documented - used == set(), "in .env.example but unused by docker-compose.yml"


def test_the_env_example_leaves_every_secret_empty() -> None:
    """An unedited copy must fail to start rather than run on a password published in this repository."""
    values = read_env_file(ENV_EXAMPLE)
    assert {name for name in values if SECRET_NAME.search(name)} == REQUIRED_SECRETS
    for name in REQUIRED_SECRETS:
        assert values[name] == "", name


def test_each_env_example_variable_has_a_comment() -> None:
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if line and not line.startswith("#") and "=" in line:
            above = [previous for previous in lines[:number] if previous.strip()]
            assert above and (above[-1].startswith("#") or "=" in above[-1]), f"{line} has no explanation"


# --- data: volumes and networks -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "path"),
    [
        ("postgres", "/var/lib/postgresql/data"),
        ("elasticsearch", "/usr/share/elasticsearch/data"),
        ("redis", "/data"),
        ("web", "/var/lib/library"),
        ("worker", "/var/lib/library"),
        ("beat", "/var/lib/library"),
    ],
)
def test_data_lives_in_named_volumes(compose: dict[str, Any], service: str, path: str) -> None:
    mounts = dict(reversed(entry.split(":", 1)) for entry in services(compose)[service]["volumes"])
    volume = mounts.get(path)
    assert volume, f"{service}: nothing mounted at {path}"
    assert not volume.startswith((".", "/")), f"{service}: {path} is a bind mount, not a named volume"
    declared = compose["volumes"][volume]
    assert not (declared or {}).get("external"), f"{volume}: compose must create it"


def test_data_services_publish_no_ports_and_have_no_route_out(compose: dict[str, Any]) -> None:
    for name in DATA_SERVICES:
        service = services(compose)[name]
        assert "ports" not in service, name
        assert service["networks"] == ["backend"], name
    assert compose["networks"]["backend"]["internal"] is True


def test_only_web_publishes_a_port_on_loopback_by_default(interpolated: dict[str, Any]) -> None:
    published = {
        name: service["ports"] for name, service in services(interpolated).items() if "ports" in service
    }
    assert published == {"web": ["127.0.0.1:8000:8000"]}


def test_every_service_restarts_and_rotates_its_logs(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        assert service["restart"] == "unless-stopped", name
        assert service["logging"]["options"]["max-size"], name


def test_app_containers_drop_privileges(compose: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        service = services(compose)[name]
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name


# --- Elasticsearch ------------------------------------------------------------------------------------------


def test_elasticsearch_is_a_secured_single_node_with_a_locked_heap(interpolated: dict[str, Any]) -> None:
    service = services(interpolated)["elasticsearch"]
    env = environment_of(service)
    assert env["discovery.type"] == "single-node"
    assert env["xpack.security.enabled"] == "true"
    assert env["ELASTIC_PASSWORD"]
    heap = re.fullmatch(r"-Xms(\S+) -Xmx(\S+)", env["ES_JAVA_OPTS"])
    assert heap and heap[1] == heap[2], "Xms and Xmx equal: the heap never resizes"
    assert env["bootstrap.memory_lock"] == "true"
    assert service["ulimits"]["memlock"] == {"soft": -1, "hard": -1}


def test_the_cluster_major_version_matches_the_python_client(compose: dict[str, Any]) -> None:
    """A 9.x client refuses an 8.x cluster (and the other way round): the image tag follows the client."""
    image = services(compose)["elasticsearch"]["image"]
    assert image.startswith("docker.elastic.co/elasticsearch/elasticsearch:")
    server_major = image.rpartition(":")[2].split(".")[0]
    client_major = importlib.metadata.version("elasticsearch").split(".")[0]
    assert server_major == client_major, (
        f"cluster {image} vs client {importlib.metadata.version('elasticsearch')}"
    )
