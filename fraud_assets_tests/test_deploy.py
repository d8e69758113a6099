"""The deployment files read together, as a reviewer would: the image holds what the compose
services run and runs unprivileged, base images are pinned, nothing secret has a default, the
UIs are never published beyond loopback, each service uses its own database role, the image's
runtime lock is the dev lock without the dev tools, dagster.yaml's compute logs fit dagster-aws,
and the Helm values set what docs/deploy.md promises.

All static and fast, except the integration tests at the end: they run deploy/postgres-init.sh
on a throwaway PostgreSQL cluster and deploy/create-bucket.py against moto's S3 server.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatch
from importlib import metadata
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.ops.yml")
INIT_SCRIPT = ROOT / "deploy" / "postgres-init.sh"
UI_PORTS = {3000, 5000}  # the Dagster UI and MLflow: no login of their own
LOOPBACK = {"127.0.0.1", "::1", "[::1]", "localhost"}
SECRET_WORDS = ("PASSWORD", "SECRET", "KEY", "USERS", "HASH", "TOKEN")
DEV_TOOLS = {"pytest", "pytest-timeout", "moto", "ruff", "playwright", "check-jsonschema"}
SHELLS_AND_INTERPRETERS = {"bash", "sh", "python", "python3"}


# -- reading the Dockerfile ------------------------------------------------------------------
@dataclass
class Image:
    """What the final stage of a Dockerfile leaves: base images, user, workdir, env, copies."""

    bases: list[str] = field(default_factory=list)
    user: str | None = None
    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    copies: list[tuple[list[str], str]] = field(default_factory=list)  # (sources, abs dest)
    runs: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)


def _instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, args = line.partition(" ")
            out.append((word.upper(), args.strip()))
    return out


def _expand(value: str, env: dict[str, str]) -> str:
    return re.sub(
        r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: env.get(m.group(1), m.group(0)), value
    )


def _args(args: str) -> list[str]:
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def parse_dockerfile(text: str) -> Image:
    image = Image()
    for word, args in _instructions(text):
        if word == "FROM":
            bases = image.bases
            image = Image(bases=[*bases, next(t for t in args.split() if not t.startswith("--"))])
        elif word == "ENV":
            pairs = shlex.split(args)
            if pairs and "=" not in pairs[0]:  # legacy `ENV KEY value`
                pairs = [f"{pairs[0]}={' '.join(pairs[1:])}"]
            for pair in pairs:
                key, _, value = pair.partition("=")
                image.env[key] = _expand(value, image.env)
        elif word == "WORKDIR":
            image.workdir = posixpath.join(image.workdir, _expand(args, image.env))
        elif word == "USER":
            image.user = _expand(args, image.env)
        elif word in ("COPY", "ADD"):
            tokens = [t for t in _args(args) if not t.startswith("--")]
            dest = _expand(tokens[-1], image.env)
            if not dest.startswith("/"):
                dest = posixpath.join(image.workdir, dest) + ("/" if dest.endswith("/") else "")
            image.copies.append((tokens[:-1], dest))
        elif word == "RUN":
            image.runs.append(args)
        elif word == "CMD":
            image.cmd = [_expand(t, image.env) for t in _args(args)]
    return image


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [p.strip() for p in lines if p.strip() and not p.startswith("#")]


def is_dockerignored(relpath: str, patterns: list[str]) -> bool:
    parts = relpath.split("/")
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        # a pattern matches the path itself or any directory above it
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if fnmatch(prefix, pattern) or (bare != pattern and fnmatch(parts[i - 1], bare)):
                return True
    return False


def image_has(image: Image, path: str, patterns: list[str] | None = None) -> bool:
    """Whether ``path`` (absolute, in the image) comes from a COPY of a file in this repo."""
    patterns = dockerignore_patterns() if patterns is None else patterns
    path = posixpath.normpath(path)
    for sources, dest in image.copies:
        into_dir = dest.endswith("/") or len(sources) > 1
        base = posixpath.normpath(dest)
        for source in sources:
            local = ROOT / source
            if not local.exists() or is_dockerignored(source, patterns):
                continue
            if local.is_dir():
                if path == base:
                    return True
                if path.startswith(base + "/"):
                    rel = posixpath.relpath(path, base)
                    if (local / rel).exists() and not is_dockerignored(f"{source}/{rel}", patterns):
                        return True
            else:
                target = posixpath.join(base, local.name) if into_dir else base
                if path == target or target.startswith(path + "/"):
                    return True
    return False


@pytest.fixture(scope="module")
def image() -> Image:
    return parse_dockerfile((ROOT / "Dockerfile").read_text())


# -- reading the compose files ---------------------------------------------------------------
def compose(name: str = "docker-compose.yml") -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def all_services() -> dict[str, dict]:
    services: dict[str, dict] = {}
    for name in COMPOSE_FILES:
        for service, spec in compose(name)["services"].items():
            services[service] = {**services.get(service, {}), **spec}
    return services


def image_services() -> dict[str, dict]:
    """Services built from this repo's Dockerfile."""
    return {name: spec for name, spec in all_services().items() if "build" in spec}


def argv_of(spec: dict, image: Image) -> list[str]:
    def listed(value: object) -> list[str]:
        return list(value) if isinstance(value, list) else shlex.split(str(value))

    entry = listed(spec["entrypoint"]) if spec.get("entrypoint") else []
    command = listed(spec["command"]) if spec.get("command") else image.cmd
    return entry + command


def environment(spec: dict) -> dict[str, str]:
    env = spec.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {key: str(value) for key, value in env.items()}


def referenced_paths(argv: list[str]) -> list[str]:
    """Arguments that name a file or directory (not URLs, options, modules or hosts)."""
    paths = []
    for i, token in enumerate(argv):
        before = argv[i - 1] if i else ""
        if "://" in token or token.startswith("-") or before in ("-m", "--module-name"):
            continue
        named = before in ("-w", "--workspace", "-f", "--python-file")
        if named or "/" in token or token.endswith((".sh", ".py", ".yaml", ".yml")):
            paths.append(token)
    return paths


def referenced_modules(argv: list[str]) -> list[tuple[str, bool]]:
    """(module, run as a program) for `-m MODULE` arguments."""
    found = []
    for i, token in enumerate(argv[:-1]):
        if token in ("-m", "--module-name"):
            found.append((argv[i + 1], argv[0] in ("python", "python3")))
    return found


def mount_targets(spec: dict) -> list[str]:
    targets = []
    for volume in spec.get("volumes", []):
        if isinstance(volume, dict):
            targets.append(volume["target"])
        else:
            targets.append(volume.split(":")[1])
    return targets


@dataclass
class Published:
    host_ip: str
    published: int | None
    target: int


def published_ports(spec: dict) -> list[Published]:
    out = []
    for port in spec.get("ports", []):
        if isinstance(port, dict):
            published = port.get("published")
            out.append(
                Published(
                    port.get("host_ip", ""), int(published) if published else None, port["target"]
                )
            )
            continue
        parts = str(port).split("/")[0].rsplit(":", 2)
        target = int(parts[-1])
        published = int(parts[-2]) if len(parts) >= 2 and parts[-2] else None
        host_ip = parts[0] if len(parts) == 3 else ""
        out.append(Published(host_ip, published, target))
    return out


def exposed_ui_ports(spec: dict) -> list[Published]:
    """UI ports (3000/5000, inside or on the host) published on something other than loopback."""
    return [
        p
        for p in published_ports(spec)
        if (p.target in UI_PORTS or p.published in UI_PORTS) and p.host_ip not in LOOPBACK
    ]


def secret_fallbacks(text: str) -> list[str]:
    """Secret-looking variables that compose would fill in without a value: defaults
    (`${X:-a}`, `${X-a}`) or no required check at all (`${X}`, `$X`)."""
    bad = []
    for match in re.finditer(r"(?<!\$)\$(?:\{([A-Za-z_]\w*)([^}]*)\}|([A-Za-z_]\w*))", text):
        name, rest = match.group(1) or match.group(3), match.group(2) or ""
        if any(word in name.upper() for word in SECRET_WORDS) and not rest.startswith(":?"):
            bad.append(match.group(0))
    return bad


def required_variables(text: str) -> set[str]:
    return set(re.findall(r"(?<!\$)\$\{([A-Za-z_]\w*):\?", text))


def is_pinned(reference: str) -> bool:
    return re.fullmatch(r"[^\s@]+@sha256:[0-9a-f]{64}", reference) is not None


SECRET_SETTING = re.compile(r"password|secret|token|(access|api|private)_?key", re.I)


def is_secret_key(key: str) -> bool:
    return bool(SECRET_SETTING.search(key)) and not key.endswith("SecretName")


def secret_settings(node: object, path: str = "") -> list[str]:
    """Paths in a values tree where a secret-named setting holds a literal value; an env list
    item counts by its `name`. Names of Kubernetes secrets (`...SecretName`) are fine."""
    found = []
    if isinstance(node, dict):
        if {"name", "value"} <= set(node) and SECRET_SETTING.search(str(node["name"])):
            found += [f"{path}.{node['name']}"] if node["value"] else []
        for key, value in node.items():
            if isinstance(value, dict | list):
                found += secret_settings(value, f"{path}.{key}")
            elif isinstance(value, str) and value and is_secret_key(key):
                found.append(f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += secret_settings(value, f"{path}[{i}]")
    return found


# -- reading the init script and locks -------------------------------------------------------
def role_passwords() -> dict[str, str]:
    """role -> the environment variable holding its password, as deploy/postgres-init.sh has it."""
    script = INIT_SCRIPT.read_text()
    variables = dict(re.findall(r"\\getenv (\w+) (\w+)", script))
    roles = re.findall(r"ALTER ROLE (\w+) WITH LOGIN[^;]*PASSWORD :'(\w+)'", script, re.S)
    return {role: variables[psql_var] for role, psql_var in roles}


def lock_pins(name: str) -> dict[str, str]:
    text = (ROOT / name).read_text()
    return {k.lower(): v for k, v in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", text, re.M)}


def lock_vias(name: str) -> dict[str, set[str]]:
    """package -> what the lock says it is there for (`# via` lines)."""
    vias: dict[str, set[str]] = {}
    current = None
    for line in (ROOT / name).read_text().splitlines():
        pin = re.match(r"^([A-Za-z0-9_.-]+)==", line)
        if pin:
            current = pin.group(1).lower()
            vias[current] = set()
        elif current and line.strip().startswith("#"):
            item = line.strip().lstrip("#").strip().removeprefix("via").strip()
            if item:
                vias[current].add(item)
    return vias


def requirement_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~\[;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


# -- the image and what compose runs in it ---------------------------------------------------
def test_every_file_a_compose_command_runs_is_in_the_image(image: Image) -> None:
    missing = []
    runs = {name: argv_of(spec, image) for name, spec in image_services().items()}
    runs["(image CMD)"] = image.cmd
    for name, argv in runs.items():
        spec = image_services().get(name, {})
        env = {**image.env, **environment(spec)}
        workdir = spec.get("working_dir") or image.workdir
        mounted = mount_targets(spec)
        for path in referenced_paths(argv):
            where = posixpath.join(workdir, _expand(path, env))
            if any(where == t or where.startswith(t.rstrip("/") + "/") for t in mounted):
                continue
            if not image_has(image, where):
                missing.append(f"{name}: {path}")
    assert not missing, f"compose runs files the image does not contain: {missing}"
    assert runs["mlflow"] == ["bash", "deploy/mlflow-server.sh"]  # the path the check covered


def test_every_module_a_compose_command_runs_is_in_the_image(image: Image) -> None:
    missing = []
    checked = 0
    for name, spec in image_services().items():
        for module, as_program in referenced_modules(argv_of(spec, image)):
            stem = posixpath.join(image.workdir, *module.split("."))
            candidates = [f"{stem}/__main__.py"] if as_program else []
            candidates += [f"{stem}.py"] if as_program else [f"{stem}.py", f"{stem}/__init__.py"]
            checked += 1
            if not any(image_has(image, c) for c in candidates):
                missing.append(f"{name}: -m {module}")
    assert checked >= 2 and not missing, missing


def test_every_program_a_compose_command_runs_comes_from_the_runtime_lock(image: Image) -> None:
    scripts = {ep.name: ep for ep in metadata.entry_points(group="console_scripts")}
    runtime = lock_pins("requirements.runtime.lock")
    programs = {argv_of(spec, image)[0] for spec in image_services().values()} | {image.cmd[0]}
    for path in ("deploy/mlflow-server.sh",):
        programs |= set(re.findall(r"^\s*exec (\S+)", (ROOT / path).read_text(), re.M))
    unlocked = []
    for program in sorted(programs - SHELLS_AND_INTERPRETERS):
        entry_point = scripts.get(program)
        dist = requirement_name(entry_point.dist.name) if entry_point and entry_point.dist else None
        if dist not in runtime:
            unlocked.append(f"{program} ({dist or 'no installed package provides it'})")
    assert not unlocked, unlocked


def test_every_host_file_compose_mounts_exists() -> None:
    missing = []
    for name, spec in all_services().items():
        for volume in spec.get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
            if source.startswith((".", "/")) and not (ROOT / source).exists():
                missing.append(f"{name}: {source}")
    assert not missing, missing


def test_image_runs_as_an_unprivileged_user(image: Image) -> None:
    assert image.user, "the final stage sets no USER, so it runs as root"
    user = image.user.split(":")[0]
    assert user not in ("root", "0"), image.user
    # what the services write is the user's; numeric, so Kubernetes can check runAsNonRoot
    assert user.isdigit()
    chowns = " ".join(run for run in image.runs if "chown" in run)
    assert "$DAGSTER_HOME" in chowns and "$FRAUD_DATA_DIR" in chowns


def test_every_base_image_is_pinned_by_digest(image: Image) -> None:
    references = list(image.bases)
    for spec in all_services().values():
        if "image" in spec:
            references.append(spec["image"])
    assert len(references) >= 4
    unpinned = [ref for ref in references if not is_pinned(ref)]
    assert not unpinned, f"not pinned by digest: {unpinned}"


def test_image_installs_the_runtime_lock_and_never_the_dev_lock(image: Image) -> None:
    copied = [source for sources, _ in image.copies for source in sources]
    assert "requirements.runtime.lock" in copied and "requirements.lock" not in copied
    assert any("-r requirements.runtime.lock" in run for run in image.runs)
    patterns = dockerignore_patterns()
    assert is_dockerignored("requirements.lock", patterns)  # not even in the build context
    assert is_dockerignored(".env", patterns)
    ignored = [source for source in copied if is_dockerignored(source, patterns)]
    assert not ignored, f".dockerignore drops files the Dockerfile copies: {ignored}"


# -- what compose publishes, and its secrets --------------------------------------------------
def test_the_base_stack_publishes_neither_the_dagster_ui_nor_mlflow() -> None:
    for name, spec in compose()["services"].items():
        ui = [p for p in published_ports(spec) if p.target in UI_PORTS or p.published in UI_PORTS]
        assert not ui, f"{name} publishes {ui}"
    assert published_ports(compose()["services"]["app"])[0].target == 7860


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_no_service_publishes_a_ui_port_beyond_loopback(name: str) -> None:
    exposed = {s: exposed_ui_ports(spec) for s, spec in compose(name)["services"].items()}
    assert not any(exposed.values()), exposed


def test_services_without_a_published_port_have_no_route_out() -> None:
    base = compose()
    assert base["networks"]["backend"]["internal"] is True
    for name, spec in all_services().items():
        networks = spec.get("networks", [])
        assert "backend" in networks, f"{name} is not on the internal network"
        if not published_ports(spec) and name != "code-location":  # runs call the API
            assert networks == ["backend"], f"{name} can reach outside: {networks}"


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_no_secret_has_a_default(name: str) -> None:
    text = json.dumps(compose(name))  # what compose interpolates: values, not comments
    assert not secret_fallbacks(text)
    assert required_variables(text), "no required variable at all: the check saw nothing"


def test_env_example_lists_every_variable_compose_requires_and_no_secret_value() -> None:
    example = dict(
        line.partition("=")[::2]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    required = set().union(*(required_variables(json.dumps(compose(n))) for n in COMPOSE_FILES))
    assert required - set(example) == set()
    filled = [k for k in required if example[k] and any(w in k for w in SECRET_WORDS)]
    assert not filled, f".env.example gives secrets a value: {filled}"


def test_the_app_container_requires_its_logins() -> None:
    app = environment(compose()["services"]["app"])
    assert app["FRAUD_APP_USERS"].startswith("${FRAUD_APP_USERS:?")
    assert app["GRADIO_SERVER_NAME"] == "0.0.0.0"


# -- database roles ---------------------------------------------------------------------------
def database_users(spec: dict) -> dict[str, str]:
    """user -> the password expression each of the service's connection settings uses."""
    env = environment(spec)
    users = {}
    if "DAGSTER_PG_USERNAME" in env:
        users[env["DAGSTER_PG_USERNAME"]] = env["DAGSTER_PG_PASSWORD"]
    for value in env.values():
        for user, password in re.findall(r"postgres(?:ql)?(?:\+\w+)?://([^:@/]+):([^@]*)@", value):
            users[user] = password
    return users


def test_each_service_connects_to_postgres_with_its_own_role() -> None:
    services = compose()["services"]
    superuser = environment(services["postgres"]).get("POSTGRES_USER", "postgres")
    passwords = role_passwords()
    used = {name: database_users(spec) for name, spec in services.items() if name != "postgres"}
    assert {name: set(users) for name, users in used.items() if users} == {
        "mlflow": {"mlflow"},
        "code-location": {"dagster", "fraud_writer"},
        "webserver": {"dagster"},
        "daemon": {"dagster"},
        "app": {"fraud_app"},
    }
    for name, users in used.items():
        for user, password in users.items():
            assert user != superuser and user in passwords, f"{name} connects as {user}"
            assert password.startswith(f"${{{passwords[user]}:?"), (name, user, password)
    # the superuser's password goes to the database container and nowhere else
    for name, spec in all_services().items():
        if name != "postgres":
            assert "POSTGRES_PASSWORD" not in json.dumps(spec), name
    postgres_env = environment(services["postgres"])
    assert set(passwords.values()) <= set(postgres_env), "init script variables not passed"


def test_the_app_role_is_granted_writes_on_analyst_labels_only() -> None:
    sql = INIT_SCRIPT.read_text()
    grants = re.findall(r"GRANT\s+([^;]*?)\s+TO\s+fraud_app\s*;", sql, re.S)
    writes = [g for g in grants if re.search(r"INSERT|UPDATE|DELETE|TRUNCATE|CREATE", g)]
    assert [" ".join(g.split()) for g in writes] == [
        "SELECT, INSERT, UPDATE ON warehouse.analyst_labels"
    ]
    assert re.search(r"ALTER DEFAULT PRIVILEGES FOR ROLE fraud_writer[^;]*SELECT ON TABLES", sql)


# -- locks ------------------------------------------------------------------------------------
def test_runtime_lock_holds_no_dev_tool() -> None:
    runtime = lock_pins("requirements.runtime.lock")
    assert DEV_TOOLS & set(runtime) == set()
    # The rest of the dev extra may be present only as a runtime package's own dependency:
    # gradio itself requires gradio-client.
    vias = lock_vias("requirements.runtime.lock")
    for requirement in pyproject()["project"]["optional-dependencies"]["dev"]:
        name = requirement_name(requirement)
        assert "fraud-assets (pyproject.toml)" not in vias.get(name, set()), name


def test_runtime_lock_agrees_with_the_dev_lock() -> None:
    dev, runtime = lock_pins("requirements.lock"), lock_pins("requirements.runtime.lock")
    differing = {k: (dev[k], runtime[k]) for k in set(dev) & set(runtime) if dev[k] != runtime[k]}
    assert not differing
    wanted = {requirement_name(r) for r in pyproject()["project"]["dependencies"]}
    wanted |= {requirement_name(r) for r in pyproject()["project"]["optional-dependencies"]["k8s"]}
    assert wanted - set(runtime) == set()


def test_runtime_lock_is_what_make_lock_makes() -> None:
    header = (ROOT / "requirements.runtime.lock").read_text().splitlines()[1]
    command = header.lstrip("#").strip()
    assert f"$(BIN)/{command}" in (ROOT / "Makefile").read_text()


# -- dagster.yaml's compute logs --------------------------------------------------------------
def compute_logs_section() -> dict:
    return yaml.safe_load((ROOT / "dagster.yaml").read_text())["compute_logs"]


def test_dagster_yaml_is_a_valid_instance_config() -> None:
    from dagster._core.instance.config import dagster_instance_config

    config, _ = dagster_instance_config(str(ROOT))
    assert config["compute_logs"]["class"] == "S3ComputeLogManager"


def test_compute_logs_config_fits_dagster_aws_s3_compute_log_manager() -> None:
    import importlib

    from dagster._config import validate_config

    section = compute_logs_section()
    manager = getattr(importlib.import_module(section["module"]), section["class"])
    result = validate_config(manager.config_type(), section["config"])
    assert result.success, result.errors
    # bucket, prefix and endpoint come from the environment, never from the file
    for key in ("bucket", "prefix", "endpoint_url"):
        assert set(section["config"][key]) == {"env"}, key


def test_compute_logs_manager_loads_from_the_environment(monkeypatch) -> None:  # noqa: ANN001
    from dagster._serdes import ConfigurableClassData

    for name, value in {
        "DAGSTER_COMPUTE_LOGS_BUCKET": "logs",
        "DAGSTER_COMPUTE_LOGS_PREFIX": "dagster/compute-logs",
        "DAGSTER_COMPUTE_LOGS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    section = compute_logs_section()
    data = ConfigurableClassData(section["module"], section["class"], yaml.dump(section["config"]))
    manager = data.rehydrate()  # builds a boto3 client; sends nothing
    assert type(manager).__name__ == "S3ComputeLogManager"
    assert manager._s3_bucket == "logs" and manager._s3_prefix == "dagster/compute-logs"
    assert manager._s3_session.meta.endpoint_url == "http://127.0.0.1:9"
    assert manager.upload_interval == 30


# -- Helm values ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def helm() -> dict:
    return yaml.safe_load((ROOT / "deploy" / "helm" / "values.yaml").read_text())


def test_helm_values_launch_runs_as_kubernetes_jobs_with_s3_compute_logs(helm: dict) -> None:
    from dagster_aws.s3.compute_log_manager import S3ComputeLogManager

    assert helm["runLauncher"]["type"] == "K8sRunLauncher"
    assert "k8sRunLauncher" in helm["runLauncher"]["config"]
    logs = helm["computeLogManager"]
    assert logs["type"] == "S3ComputeLogManager"
    config = logs["config"]["s3ComputeLogManager"]
    assert config["bucket"]
    snake = {re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), k) for k in config}
    assert snake <= set(S3ComputeLogManager.config_type()), snake


def test_helm_values_use_an_external_postgres_with_the_password_from_a_secret(helm: dict) -> None:
    assert helm["postgresql"]["enabled"] is False
    assert helm["postgresql"]["postgresqlHost"]
    assert helm["postgresql"]["postgresqlUsername"] == "dagster"
    assert "dagster" in role_passwords()
    assert "postgresqlPassword" not in helm["postgresql"]
    assert helm["generatePostgresqlPasswordSecret"] is False
    assert helm["global"]["postgresqlSecretName"]


def test_helm_values_serve_this_code_location_from_this_image(helm: dict, image: Image) -> None:
    deployments = helm["dagster-user-deployments"]["deployments"]
    assert helm["dagster-user-deployments"]["enabled"] is True and len(deployments) == 1
    deployment = deployments[0]
    args = deployment.get("codeServerArgs") or deployment.get("dagsterApiGrpcArgs")
    assert args == ["-m", pyproject()["tool"]["dagster"]["module_name"]]
    assert image_has(image, posixpath.join(image.workdir, *args[1].split(".")) + ".py")
    assert deployment["envSecrets"] and deployment["includeConfigInLaunchedRuns"]["enabled"]
    security = deployment["podSecurityContext"]
    assert security["runAsNonRoot"] is True
    assert str(security["runAsUser"]) == image.user.split(":")[0]


def test_helm_values_hold_no_secret_and_match_dagster_yaml_limits(helm: dict) -> None:
    assert not secret_settings(helm)
    instance = yaml.safe_load((ROOT / "dagster.yaml").read_text())["concurrency"]
    runs = helm["concurrency"]["runs"]
    assert runs["maxConcurrentRuns"] == instance["runs"]["max_concurrent_runs"]
    assert runs["tagConcurrencyLimits"] == instance["runs"]["tag_concurrency_limits"]
    assert helm["concurrency"]["pools"]["defaultLimit"] == instance["pools"]["default_limit"]


# -- the checks above catch what they claim to ------------------------------------------------
@pytest.mark.parametrize(
    ("text", "flagged"),
    [
        ("P: ${DB_PASSWORD:-fraud}", ["${DB_PASSWORD:-fraud}"]),
        ("P: ${AWS_SECRET_ACCESS_KEY-x}", ["${AWS_SECRET_ACCESS_KEY-x}"]),
        ("U: ${FRAUD_APP_USERS}", ["${FRAUD_APP_USERS}"]),
        ("U: $OPS_PASSWORD_HASH", ["$OPS_PASSWORD_HASH"]),
        ("P: ${DB_PASSWORD:?set it}", []),
        ("U: ${TRANSACTIONS_API_URL:-https://x}", []),
        ("literal: $${MINIO_ROOT_PASSWORD}", []),
    ],
)
def test_secret_check_flags_defaults_and_unchecked_secrets(text: str, flagged: list[str]) -> None:
    assert secret_fallbacks(text) == flagged


@pytest.mark.parametrize(
    ("ports", "exposed"),
    [
        (["3000:3000"], 1),
        (["0.0.0.0:5000:5000"], 1),
        (["8080:3000"], 1),
        ([{"target": 5000, "published": 5000}], 1),
        (["127.0.0.1:3000:3000", "127.0.0.1:5000:5000"], 0),
        (["7860:7860"], 0),
    ],
)
def test_port_check_flags_ui_ports_beyond_loopback(ports: list, exposed: int) -> None:
    assert len(exposed_ui_ports({"ports": ports})) == exposed


@pytest.mark.parametrize(
    ("reference", "pinned"),
    [
        ("postgres:16", False),
        ("python:3.11-slim", False),
        ("minio/minio", False),
        ("postgres:16.14@sha256:" + "a" * 64, True),
        ("python@sha256:" + "0" * 63, False),
    ],
)
def test_digest_check_accepts_only_full_digests(reference: str, pinned: bool) -> None:
    assert is_pinned(reference) is pinned


@pytest.mark.parametrize(
    ("values", "leaks"),
    [
        ({"postgresql": {"postgresqlPassword": "test"}}, [".postgresql.postgresqlPassword"]),
        (
            {"env": [{"name": "AWS_SECRET_ACCESS_KEY", "value": "x"}]},
            [".env[0].AWS_SECRET_ACCESS_KEY"],
        ),
        ({"global": {"postgresqlSecretName": "dagster-postgresql-secret"}}, []),
        ({"envSecrets": [{"name": "fraud-env"}], "tags": [{"key": "k", "value": "v"}]}, []),
    ],
)
def test_helm_secret_check_flags_literal_secrets(values: dict, leaks: list[str]) -> None:
    assert secret_settings(values) == leaks


def test_image_check_flags_what_the_dockerfile_does_not_copy() -> None:
    partial = parse_dockerfile(
        "FROM python@sha256:" + "0" * 64 + "\nWORKDIR /app\nCOPY fraud_assets ./fraud_assets\n"
    )
    assert image_has(partial, "/app/fraud_assets/definitions.py", patterns=[])
    assert not image_has(partial, "/app/deploy/mlflow-server.sh", patterns=[])
    assert not image_has(partial, "/app/fraud_assets/no_such_module.py", patterns=[])
    assert partial.user is None  # and so the unprivileged-user test would fail on it


# -- integration: the init script on a real PostgreSQL ---------------------------------------
PASSWORDS = {
    "dagster": "dagster-pw-1",
    "mlflow": "mlflow-pw-2",
    "fraud_writer": "writer-pw-3",
    "fraud_app": "app-pw-4",
}


def _pg_tool(name: str) -> str | None:
    from fraud_assets_tests.servers import _pg_bin

    return _pg_bin(name)


@pytest.fixture(scope="module")
def roles_cluster() -> Iterator[dict]:
    """A throwaway cluster (not a shared test server: the script makes fixed-name roles and
    databases) with password logins over TCP, after deploy/postgres-init.sh ran on it."""
    from fraud_assets_tests.servers import PG_HELP, free_port

    initdb, pg_ctl, psql = _pg_tool("initdb"), _pg_tool("pg_ctl"), _pg_tool("psql")
    if not (initdb and pg_ctl and psql):
        pytest.fail(f"needs the PostgreSQL server binaries and psql. {PG_HELP}")
    root = Path(tempfile.mkdtemp(prefix="fraud-roles-"))
    as_pg: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(root, "postgres", "postgres")
        as_pg = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    data = root / "data"
    subprocess.run(
        [*as_pg, initdb, "-D", str(data), "-U", "postgres", "-E", "UTF8"]
        + ["--auth-local=trust", "--auth-host=scram-sha-256"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {root} -c fsync=off -c listen_addresses=127.0.0.1"
    subprocess.run(
        [*as_pg, pg_ctl, "-D", str(data), "-w", "-l", str(root / "log"), "-o", options, "start"],
        check=True,
        capture_output=True,
    )
    cluster = {"socket": str(root), "port": port, "psql": psql}
    try:
        run_init_script(cluster)
        yield cluster
    finally:
        subprocess.run(
            [*as_pg, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)


def run_init_script(cluster: dict) -> subprocess.CompletedProcess:
    assert set(role_passwords()) == set(PASSWORDS)
    variables = {role_passwords()[role]: password for role, password in PASSWORDS.items()}
    env = {
        **os.environ,
        **variables,
        "PATH": f"{Path(cluster['psql']).parent}:{os.environ.get('PATH', '')}",
        "PGHOST": cluster["socket"],
        "PGPORT": str(cluster["port"]),
        "POSTGRES_USER": "postgres",
        "POSTGRES_DB": "postgres",
    }
    return subprocess.run(
        ["bash", str(INIT_SCRIPT)], env=env, check=True, capture_output=True, text=True
    )


@contextlib.contextmanager
def connect(cluster: dict, role: str, dbname: str, password: str | None = None) -> Iterator:
    import psycopg

    with psycopg.connect(
        host="127.0.0.1",
        port=cluster["port"],
        user=role,
        password=PASSWORDS[role] if password is None else password,
        dbname=dbname,
        connect_timeout=5,
        autocommit=True,
    ) as conn:
        yield conn


def can_connect(cluster: dict, role: str, dbname: str, password: str | None = None) -> bool:
    import psycopg

    try:
        with connect(cluster, role, dbname, password):
            return True
    except psycopg.OperationalError:
        return False


def denied(conn, statement: str) -> bool:  # noqa: ANN001
    import psycopg

    try:
        conn.execute(statement)
    except psycopg.errors.InsufficientPrivilege:
        return True
    return False


LIVE_TABLE = "warehouse.live_transactions"
UPSERT = (
    "CREATE TEMP TABLE _incoming (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP;"
    " INSERT INTO _incoming VALUES {values};"
    " INSERT INTO {table} SELECT * FROM _incoming ON CONFLICT (trans_num) DO UPDATE SET {sets}"
)


def writer_creates_live_transactions(cluster: dict) -> None:
    """What the code location's warehouse writes do: schema and table if missing, index, upsert."""
    with connect(cluster, "fraud_writer", "warehouse") as conn, conn.transaction():
        conn.execute("CREATE SCHEMA IF NOT EXISTS warehouse")
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {LIVE_TABLE}"
            " (trans_num TEXT NOT NULL, amt DOUBLE PRECISION, PRIMARY KEY (trans_num))"
        )
        conn.execute(f"CREATE INDEX IF NOT EXISTS live_amt_idx ON {LIVE_TABLE} (amt)")
        conn.execute(
            UPSERT.format(table=LIVE_TABLE, values="('t1', 12.5)", sets="amt = EXCLUDED.amt")
        )


@pytest.mark.integration
def test_each_role_logs_in_with_its_own_password_and_holds_no_cluster_privilege(
    roles_cluster: dict,
) -> None:
    home = {"dagster": "dagster", "mlflow": "mlflow", "fraud_writer": "warehouse"}
    home["fraud_app"] = "warehouse"
    for role, dbname in home.items():
        assert can_connect(roles_cluster, role, dbname), role
        assert not can_connect(roles_cluster, role, dbname, password="wrong"), role
        for other in {"dagster", "mlflow", "warehouse", "postgres"} - {dbname}:
            assert not can_connect(roles_cluster, role, other), f"{role} reaches {other}"
    with connect(roles_cluster, "dagster", "dagster") as conn:
        flags = conn.execute(
            "SELECT rolname, rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication"
            " FROM pg_roles WHERE rolname = ANY(%s)",
            (list(PASSWORDS),),
        ).fetchall()
    assert sorted(flags) == sorted((role, False) for role in PASSWORDS)


@pytest.mark.integration
def test_dagster_and_mlflow_may_create_their_schemas_in_their_own_database(
    roles_cluster: dict,
) -> None:
    for role in ("dagster", "mlflow"):
        with connect(roles_cluster, role, role) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS migration_probe (id INT)")
            conn.execute("DROP TABLE migration_probe")


@pytest.mark.integration
def test_the_writer_creates_and_upserts_warehouse_tables(roles_cluster: dict) -> None:
    writer_creates_live_transactions(roles_cluster)
    writer_creates_live_transactions(roles_cluster)  # a re-run is harmless
    with connect(roles_cluster, "fraud_writer", "warehouse") as conn:
        assert conn.execute(f"SELECT count(*) FROM {LIVE_TABLE}").fetchone() == (1,)


@pytest.mark.integration
def test_the_app_reads_the_warehouse_and_writes_only_analyst_labels(roles_cluster: dict) -> None:
    writer_creates_live_transactions(roles_cluster)  # created after the init script ran
    with connect(roles_cluster, "fraud_app", "warehouse") as conn:
        assert conn.execute(f"SELECT trans_num FROM {LIVE_TABLE}").fetchall() == [("t1",)]
        for verdict in (1, 0):  # marking again replaces the verdict
            with conn.transaction():
                conn.execute(
                    UPSERT.format(
                        table="warehouse.analyst_labels",
                        values=f"('t1', {verdict}, 'ana', now()::timestamp)",
                        sets="is_fraud = EXCLUDED.is_fraud, labelled_at = EXCLUDED.labelled_at",
                    )
                )
        labels = conn.execute("SELECT trans_num, is_fraud FROM warehouse.analyst_labels")
        assert labels.fetchall() == [("t1", 0)]
        assert denied(conn, f"INSERT INTO {LIVE_TABLE} VALUES ('t2', 1.0)")
        assert denied(conn, f"UPDATE {LIVE_TABLE} SET amt = 0")
        assert denied(conn, "DELETE FROM warehouse.analyst_labels")
        assert denied(conn, "CREATE TABLE warehouse.app_table (id INT)")
        assert denied(conn, "CREATE TABLE public.app_table (id INT)")
        assert denied(conn, "CREATE SCHEMA app_schema")


@pytest.mark.integration
def test_the_init_script_can_run_again_without_losing_data(roles_cluster: dict) -> None:
    writer_creates_live_transactions(roles_cluster)
    run_init_script(roles_cluster)
    with connect(roles_cluster, "fraud_app", "warehouse") as conn:
        assert conn.execute(f"SELECT count(*) FROM {LIVE_TABLE}").fetchone() == (1,)


# -- integration: the bucket set-up on a real S3 API -----------------------------------------
def create_bucket(endpoint: str, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    script = str(ROOT / "deploy" / "create-bucket.py")
    return subprocess.run(
        [sys.executable, script, *args], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.integration
def test_bucket_script_creates_the_bucket_once_and_waits_for_nothing_forever(
    monkeypatch,  # noqa: ANN001
) -> None:
    import boto3

    from fraud_assets_tests.servers import free_port, moto_s3

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    with moto_s3("existing") as url:
        first = create_bucket(url, "fraud")
        second = create_bucket(url, "fraud")
        s3 = boto3.client(
            "s3",
            endpoint_url=url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert first.returncode == 0 and "created bucket fraud" in first.stdout
    assert second.returncode == 0 and "created" not in second.stdout
    assert buckets == {"existing", "fraud"}
    nobody = create_bucket(f"http://127.0.0.1:{free_port()}", "fraud", "--timeout", "2")
    assert nobody.returncode == 1 and "did not answer" in nobody.stderr
