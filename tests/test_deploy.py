"""The deployment files: compose.yaml, the nginx config, the Dockerfile and its entrypoint.

No Docker engine runs here, so nothing is built or started by Docker. What can be checked
is: compose.yaml against the Compose Specification's JSON schema, the shape the README
promises (replicas, health checks, one-shot migration, secrets from env files), nginx's
own `nginx -t` on the proxy config, hadolint and the image's invariants on the
Dockerfile, and the entrypoint's commands run for real on the locked runtime dependencies
alone (what `uv sync --frozen --no-dev` puts into the image) against the test stack.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings

from stack.profiles import PROJECT_ROOT
from tests.servers import free_port

COMPOSE = PROJECT_ROOT / "compose.yaml"
NGINX_CONF = PROJECT_ROOT / "deploy" / "nginx.conf"
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
VENV_BIN = Path(sys.executable).parent


def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)


# --- compose.yaml -------------------------------------------------------------------------


def check_compose(path: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema with the Compose Specification schema it vendors and keeps current."""
    validator = VENV_BIN / "check-jsonschema"
    return run([str(validator), "--builtin-schema", "vendor.compose-spec", str(path)])


def test_compose_file_follows_the_compose_specification() -> None:
    result = check_compose(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_compose_validator_rejects_a_wrong_file(tmp_path: Path) -> None:
    """The check above can fail: a misspelt key and a wrong type are errors."""
    text = COMPOSE.read_text()
    for wrong, error in (
        (text.replace("    healthcheck:\n", "    healthchek:\n", 1), "'healthchek' was unexpected"),
        (text.replace("replicas: 2", "replicas: [2]", 1), "is not of type"),
    ):
        assert wrong != text
        path = tmp_path / "compose.yaml"
        path.write_text(wrong)
        result = check_compose(path)
        assert result.returncode != 0, "an invalid compose file passed"
        assert error in result.stdout


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_two_web_replicas_behind_the_proxy_and_two_consumers(compose) -> None:
    services = compose["services"]
    assert services["web"]["deploy"]["replicas"] == 2
    assert services["consumer"]["deploy"]["replicas"] == 2
    assert services["web"]["command"] == ["web"]
    assert services["consumer"]["command"] == ["consumer"]
    # The proxy is the only way in; the app trusts exactly its one hop.
    published = [name for name, service in services.items() if service.get("ports")]
    assert sorted(published) == ["dev-kafka", "dev-postgres", "dev-valkey", "proxy"]
    for name in ("dev-kafka", "dev-postgres", "dev-valkey"):
        assert services[name]["profiles"] == ["dev"], "development ports only on request"
    assert services["web"]["environment"]["TRUSTED_PROXY_HOPS"] == "1"
    assert services["proxy"]["build"]["target"] == "proxy"
    assert "server web:8000;" in NGINX_CONF.read_text()


def test_migrations_run_once_before_the_app(compose) -> None:
    services = compose["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("web", "consumer"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["kafka"]["condition"] == "service_healthy"
        assert depends["valkey"]["condition"] == "service_healthy"


def test_every_service_of_the_deployment_has_a_health_check(compose) -> None:
    services = compose["services"]
    deployment = [name for name, s in services.items() if "profiles" not in s and name != "migrate"]
    assert sorted(deployment) == ["consumer", "kafka", "postgres", "proxy", "valkey", "web"]
    for name in deployment:
        assert services[name]["healthcheck"]["test"], name
    assert services["web"]["healthcheck"]["test"][-2:] == ["/app/deploy/probe.py", "web"]
    assert services["consumer"]["healthcheck"]["test"][-2:] == ["/app/deploy/probe.py", "consumer"]


def test_data_lives_in_named_volumes_and_secrets_in_env_files(compose) -> None:
    services = compose["services"]
    assert set(compose["volumes"]) == {"pg-data", "kafka-data"}
    assert services["postgres"]["volumes"] == ["pg-data:/var/lib/postgresql"]
    assert services["kafka"]["volumes"] == ["kafka-data:/var/lib/kafka/data"]
    for name in ("migrate", "web", "consumer"):
        assert services[name]["env_file"] == ["deploy/feedapp.env"]
    assert services["postgres"]["env_file"] == ["deploy/postgres.env"]
    # No secret is written into the file itself.
    secret = re.compile(r"PASSWORD|SECRET|KEY", re.IGNORECASE)
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if secret.search(key):
                pytest.fail(f"{name} sets {key}={value!r} in compose.yaml")
    # Each env file has its example, and the real ones are never committed.
    for env_file in ("feedapp.env", "postgres.env"):
        assert (PROJECT_ROOT / "deploy" / f"{env_file}.example").exists()
    assert "/deploy/*.env" in (PROJECT_ROOT / ".gitignore").read_text().splitlines()


def test_the_env_file_example_names_only_real_settings() -> None:
    """Every setting the deployment's example sets is one the app reads (no typos)."""
    example = (PROJECT_ROOT / "deploy" / "feedapp.env.example").read_text()
    names = re.findall(r"^([A-Z_]+)=", example, re.MULTILINE)
    known = (PROJECT_ROOT / "feedapp" / "settings.py").read_text()
    assert names
    for name in names:
        assert f'"{name}"' in known, f"{name} is not a setting"


# --- the nginx config ---------------------------------------------------------------------


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "")
    if not found:
        pytest.fail(
            "nginx is not installed: `apt-get install -y nginx-light` (CI's .ci/run does); "
            "the proxy config is checked with nginx's own `nginx -t`"
        )
    return found


def local_nginx_conf(tmp_path: Path, upstreams: list[str], listen: int | None = None) -> Path:
    """deploy/nginx.conf with compose's service name replaced by loopback addresses.

    `web` is resolved by Docker's DNS inside the compose network only; nginx resolves
    upstream names when it reads the file, so `nginx -t` needs names that resolve here.
    Nothing else changes.
    """
    text = NGINX_CONF.read_text()
    assert text.count("server web:8000;") == 1
    text = text.replace(
        "server web:8000;", "\n".join(f"server {address};" for address in upstreams)
    )
    if listen is not None:
        assert text.count("listen 80 default_server;") == 1
        text = text.replace("listen 80 default_server;", f"listen 127.0.0.1:{listen};")
    path = tmp_path / "nginx.conf"
    path.write_text(text)
    return path


def nginx_test(conf: Path) -> subprocess.CompletedProcess[str]:
    return run([nginx_binary(), "-t", "-q", "-p", f"{conf.parent}/", "-c", str(conf)])


def test_the_proxy_config_passes_nginx_t(tmp_path: Path) -> None:
    result = nginx_test(local_nginx_conf(tmp_path, ["127.0.0.1:8000"]))
    assert result.returncode == 0, result.stderr


def test_nginx_t_rejects_a_broken_config(tmp_path: Path) -> None:
    conf = local_nginx_conf(tmp_path, ["127.0.0.1:8000"])
    conf.write_text(conf.read_text().replace("proxy_buffering off;", "proxy_buffering maybe;", 1))
    assert nginx_test(conf).returncode != 0


def test_the_proxy_guards_against_slow_clients_and_streams_unbuffered() -> None:
    text = NGINX_CONF.read_text()
    for directive in ("client_header_timeout 10s;", "client_body_timeout 10s;", "send_timeout"):
        assert directive in text
    stream = re.search(r"location /api/vote/stream/ \{(.*?)\}", text, re.DOTALL)
    websocket = re.search(r"location /ws/ \{(.*?)\}", text, re.DOTALL)
    assert stream is not None and websocket is not None
    for block in (stream.group(1), websocket.group(1)):
        assert "proxy_buffering off;" in block
        assert "proxy_read_timeout 1h;" in block
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in text
    assert re.search(r"location = /api/metrics \{\s*return 404;", text)


# --- the Dockerfile -----------------------------------------------------------------------


def stages() -> dict[str, list[str]]:
    """The Dockerfile's instructions (continuation lines joined) per stage name."""
    lines = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text()).splitlines()
    found: dict[str, list[str]] = {}
    current = None
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+\S+(?:\s+AS\s+(\S+))?", line, re.IGNORECASE)
        if match:
            current = match.group(1) or f"stage{len(found)}"
            found[current] = []
        if current is not None:
            found[current].append(line)
    return found


def test_hadolint_finds_nothing() -> None:
    result = run([str(VENV_BIN / "hadolint"), str(DOCKERFILE)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_is_built_in_stages_and_runs_as_a_user_without_build_tools() -> None:
    found = stages()
    assert list(found)[-1] == "runtime", "the default target must be the app"
    build = " ".join(found["build"])
    assert "uv sync --frozen --no-dev" in build
    assert "UV_COMPILE_BYTECODE=1" in build
    assert "compileall" in build
    runtime = found["runtime"]
    users = [line.split()[1] for line in runtime if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert users[-1].split(":")[0].isdigit(), "numeric, so runAsNonRoot can verify it"
    text = " ".join(runtime)
    for tool in ("apt-get", "apk ", "gcc", "build-essential", "/uv ", "pip install"):
        assert tool not in text, f"{tool!r} in the final stage"
    assert 'ENTRYPOINT ["/app/deploy/entrypoint.sh"]' in runtime
    assert 'CMD ["web"]' in runtime
    # The runtime stage takes only the build stage's result.
    copies = [line for line in runtime if line.startswith("COPY")]
    assert copies == ["COPY --from=build /app /app"]


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` (relative) out of the build context."""
    ignored = False
    for pattern in (PROJECT_ROOT / ".dockerignore").read_text().splitlines():
        pattern = pattern.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes):
            ignored = not negate
    return ignored


def test_the_build_context_holds_the_app_and_no_secrets_or_dev_state() -> None:
    needed = [
        "pyproject.toml",
        "uv.lock",
        "manage.py",
        "deploy/entrypoint.sh",
        "deploy/probe.py",
        "deploy/nginx.conf",
        "db/migrations",
        "db/queries/votes.sql",
        "feedapp/settings.py",
    ]
    needed += [f"{app}/__init__.py" for app in ("accounts", "db", "polls", "realtime", "votes")]
    for path in needed:
        assert (PROJECT_ROOT / path).exists(), path
        assert not dockerignored(path), f"{path} is excluded from the image"
    for path in (".env", "deploy/feedapp.env", ".stack/dev", ".venv/bin", ".git", "tests/x.py"):
        assert dockerignored(path), f"{path} would be sent to the build"


# --- the entrypoint on the runtime dependencies alone -------------------------------------


def uv_binary() -> str:
    found = shutil.which("uv") or str(PROJECT_ROOT / ".tools" / "bin" / "uv")
    assert Path(found).exists(), "uv not found (make install bootstraps it)"
    return found


@pytest.fixture(scope="module")
def runtime_env(tmp_path_factory) -> Path:
    """A virtual environment with the runtime dependencies alone, as the image has them."""
    venv = tmp_path_factory.mktemp("runtime") / "venv"
    result = run(
        [uv_binary(), "sync", "--frozen", "--no-dev", "--no-install-project"],
        cwd=PROJECT_ROOT,
        env={
            **os.environ,
            "UV_PROJECT_ENVIRONMENT": str(venv),
            "UV_LINK_MODE": os.environ.get("UV_LINK_MODE", "hardlink"),
            "UV_PYTHON": sys.executable,
        },
    )
    assert result.returncode == 0, result.stderr
    return venv


def production_env(venv: Path, **extra: str) -> dict[str, str]:
    """What the image's ENV and deploy/feedapp.env give the app, aimed at the test stack."""
    base = {key: os.environ[key] for key in ("HOME", "LANG") if key in os.environ}
    return {
        **base,
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "PYTHONDONTWRITEBYTECODE": "1",
        "DJANGO_SETTINGS_MODULE": "feedapp.settings",
        "FEEDAPP_MODE": "production",
        "FEEDAPP_ENV_FILE": "/nonexistent",
        "FEEDAPP_ALLOWED_ORIGINS": "http://127.0.0.1",
        "DJANGO_SECRET_KEY": "s" * 50,
        "JWT_SECRET_KEY": "j" * 50,
        "DATABASE_URL": settings.DATABASE_URL,
        "VALKEY_URL": settings.VALKEY_URL,
        "KAFKA_BOOTSTRAP_SERVERS": ",".join(settings.KAFKA_BOOTSTRAP_SERVERS),
        "KAFKA_VOTE_TOPIC": settings.KAFKA_VOTE_TOPIC,
        "KAFKA_VOTE_TOPIC_PARTITIONS": str(settings.KAFKA_VOTE_TOPIC_PARTITIONS),
        **extra,
    }


ENTRYPOINT = str(PROJECT_ROOT / "deploy" / "entrypoint.sh")


def test_the_migrate_command_applies_migrations_with_runtime_dependencies_only(
    runtime_env: Path,
) -> None:
    result = run([ENTRYPOINT, "migrate"], cwd=PROJECT_ROOT, env=production_env(runtime_env))
    assert result.returncode == 0, result.stdout + result.stderr
    status = run(
        [ENTRYPOINT, "python", "manage.py", "dbmate", "status"],
        cwd=PROJECT_ROOT,
        env=production_env(runtime_env),
    )
    assert "Pending: 0" in status.stdout, status.stdout + status.stderr


def test_the_web_command_serves_and_its_probe_reports_ready(runtime_env: Path, tmp_path) -> None:
    port = free_port()
    env = production_env(
        runtime_env,
        WEB_HOST="127.0.0.1",
        WEB_PORT=str(port),
        WEB_WORKERS="2",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
    )
    probe = [str(runtime_env / "bin" / "python"), str(PROJECT_ROOT / "deploy" / "probe.py"), "web"]
    # Nothing listens yet: the probe says unhealthy.
    assert run(probe, env=env).returncode == 1
    log = (tmp_path / "web.log").open("w")
    server = subprocess.Popen(
        [ENTRYPOINT, "web"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while run(probe, env=env).returncode != 0:
            assert server.poll() is None, (tmp_path / "web.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "web.log").read_text()
            time.sleep(0.5)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        code = server.wait(timeout=60)
        log.close()
    # uvicorn's graceful shutdown, ended by SIGTERM as `docker stop` sends it.
    assert code == 0, (tmp_path / "web.log").read_text()


def test_the_builds_collectstatic_step_runs_on_the_runtime_dependencies(
    runtime_env: Path, tmp_path: Path
) -> None:
    """The Dockerfile's collectstatic, with exactly the settings it passes (placeholders,
    production mode), collects the admin's files."""
    build = " ".join(stages()["build"])
    step = re.search(r"&& ((?:[A-Z_]+=\S+\s+)+)\.venv/bin/python manage\.py collectstatic", build)
    assert step is not None, "the build stage collects static files"
    assigned = dict(item.split("=", 1) for item in step.group(1).split())
    assert assigned["FEEDAPP_MODE"] == "production"
    assigned["STATIC_ROOT"] = str(tmp_path / "static")
    result = run(
        [str(runtime_env / "bin" / "python"), "manage.py", "collectstatic", "--noinput"],
        cwd=PROJECT_ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "FEEDAPP_ENV_FILE": "/nonexistent",
            "DJANGO_SETTINGS_MODULE": "feedapp.settings",
            **assigned,
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "static" / "admin" / "css" / "base.css").exists()
