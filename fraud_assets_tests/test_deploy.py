"""The deployment files read together, as a reviewer would: the image holds what the compose
services run and runs unprivileged, base images are pinned, nothing secret has a default, the
UIs are never published beyond loopback, each service uses its own database role, its own MinIO
user (scoped to its own prefixes) and its own MLflow login, MLflow requires a login, the app
shares no network with Dagster or MinIO, the image's runtime lock is the dev lock without the dev
tools and carries hashes the image checks, dagster.yaml's compute logs fit dagster-aws, and the
Helm values and NetworkPolicies set what docs/deploy.md promises. The decision service gets the
same treatment: its own role (append-only on decision_log, whose columns the init script and the
code must agree on), its own read-only MLflow login, networks to PostgreSQL and MLflow only, and on
Kubernetes probes, an autoscaler and its token secret. So do the stream consumers: a compose
profile of their own, their own role (the decision service's grants) and MLflow login, networks
to PostgreSQL, MLflow and the broker only, and on Kubernetes a liveness probe, a grace period,
their secret, and autoscaling on lag (KEDA or an HPA) that stops at the topic's partitions.

All static and fast, except the integration tests at the end: they run deploy/postgres-init.sh
on a throwaway PostgreSQL cluster, and deploy/mlflow-server.sh with its login on.
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
    host_ports: set[int]  # empty: Docker picks one; several: a range (one per replica)
    target: int


def _host_ports(value: object) -> set[int]:
    if value in (None, ""):
        return set()
    first, _, last = str(value).partition("-")
    return set(range(int(first), int(last or first) + 1))


def published_ports(spec: dict) -> list[Published]:
    out = []
    for port in spec.get("ports", []):
        if isinstance(port, dict):
            published = _host_ports(port.get("published"))
            out.append(Published(port.get("host_ip", ""), published, int(port["target"])))
            continue
        parts = str(port).split("/")[0].rsplit(":", 2)
        target = int(parts[-1])
        published = _host_ports(parts[-2]) if len(parts) >= 2 else set()
        host_ip = parts[0] if len(parts) == 3 else ""
        out.append(Published(host_ip, published, target))
    return out


def exposed_ui_ports(spec: dict) -> list[Published]:
    """UI ports (3000/5000, inside or on the host) published on something other than loopback."""
    return [
        p
        for p in published_ports(spec)
        if (p.target in UI_PORTS or p.host_ports & UI_PORTS) and p.host_ip not in LOOPBACK
    ]


def compose_default(value: str) -> str:
    """What Compose makes of `${VAR:-default}` with VAR unset: the default; else the value."""
    match = re.fullmatch(r"\$\{\w+:?-([^}]*)\}", value)
    return match.group(1) if match else value


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


def install_commands(image: Image) -> list[list[str]]:
    """Every package install the image's RUN lines make (pip, uv or python -m pip)."""
    commands = []
    for run in image.runs:
        for part in re.split(r"&&|;|\|\|", run):
            argv = shlex.split(part)
            if argv and argv[0] in ("pip", "pip3", "uv", "python", "python3") and "install" in argv:
                commands.append(argv)
    return commands


def test_the_image_installs_with_hash_checking(image: Image) -> None:
    commands = install_commands(image)
    locked = [c for c in commands if "requirements.runtime.lock" in c]
    project = [c for c in commands if "." in c[c.index("install") + 1 :]]
    assert locked and project, commands
    for command in locked:
        assert "--require-hashes" in command and "--no-deps" in command, command
        assert command[command.index("requirements.runtime.lock") - 1] in ("-r", "--requirement")
    for command in project:  # our own code, from the build context: no dependency resolution
        assert "--no-deps" in command, command
    others = [c for c in commands if c not in locked and c not in project]
    assert not others, f"installs without hash checking: {others}"


# -- what compose publishes, and its secrets --------------------------------------------------
def test_the_base_stack_publishes_neither_the_dagster_ui_nor_mlflow() -> None:
    for name, spec in compose()["services"].items():
        ui = [p for p in published_ports(spec) if p.target in UI_PORTS or p.host_ports & UI_PORTS]
        assert not ui, f"{name} publishes {ui}"
    assert published_ports(compose()["services"]["app"])[0].target == 7860


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_no_service_publishes_a_ui_port_beyond_loopback(name: str) -> None:
    exposed = {s: exposed_ui_ports(spec) for s, spec in compose(name)["services"].items()}
    assert not any(exposed.values()), exposed


def all_networks() -> dict[str, dict]:
    networks: dict[str, dict] = {}
    for name in COMPOSE_FILES:
        for network, spec in (compose(name).get("networks") or {}).items():
            networks[network] = {**networks.get(network, {}), **(spec or {})}
    return networks


def networks_of(spec: dict) -> set[str]:
    networks = spec.get("networks") or []
    return set(networks) if isinstance(networks, list) else set(networks)


def test_services_without_a_published_port_have_no_route_out() -> None:
    defined = all_networks()
    internal = {name for name, spec in defined.items() if spec.get("internal") is True}
    assert {"backend", "data"} <= internal
    members: dict[str, set[str]] = {network: set() for network in defined}
    for name, spec in all_services().items():
        networks = networks_of(spec)
        assert networks and networks <= set(defined), f"{name}: {networks}"
        for network in networks:
            members[network].add(name)
        if not published_ports(spec) and name != "code-location":  # runs call the API
            assert networks <= internal, f"{name} can reach outside: {networks}"
    # A network with a route out serves one service: its published port, or the code
    # location's calls to the transactions API. Nothing else rides along.
    shared = {n: m for n, m in members.items() if n not in internal and len(m) != 1}
    assert not shared, shared
    assert members["egress"] == {"code-location"}


def test_the_app_shares_no_network_with_dagster_or_minio() -> None:
    services = all_services()
    app = networks_of(services["app"])
    for other in ("webserver", "code-location", "daemon", "minio", "minio-setup", "ops-proxy"):
        common = app & networks_of(services[other])
        assert not common, f"the app shares {common} with {other}"
    for needed in ("postgres", "mlflow"):  # what it does talk to
        assert app & networks_of(services[needed]), f"the app cannot reach {needed}"


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


DECISION_COMMAND = ["python", "-m", "decision_api", "--host", "0.0.0.0", "--port", "8080"]


def test_the_decision_service_reaches_postgres_and_mlflow_only() -> None:
    services = all_services()
    internal = {n for n, spec in all_networks().items() if spec.get("internal") is True}
    decisions = networks_of(services["decision-api"])
    others = ("webserver", "code-location", "daemon", "minio", "minio-setup", "ops-proxy", "app")
    for other in others:
        common = decisions & networks_of(services[other])
        assert not common, f"the decision service shares {common} with {other}"
    for needed in ("postgres", "mlflow"):  # over an internal network
        assert decisions & networks_of(services[needed]) & internal, f"cannot reach {needed}"
    env = environment(services["decision-api"])
    assert re.search(r"@postgres:5432/warehouse$", env["FRAUD_DATABASE_URL"])
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    # no object storage: the model comes through the MLflow server
    assert not [k for k in env if k.startswith(("AWS_", "FRAUD_S3", "MLFLOW_S3"))], env


def test_the_decision_service_container_requires_its_tokens_and_publishes_on_loopback() -> None:
    spec = compose()["services"]["decision-api"]
    env = environment(spec)
    for variable in ("FRAUD_DECISION_CLIENTS", "FRAUD_DECISION_METRICS_TOKEN"):
        assert env[variable].startswith(f"${{{variable}:?"), variable
    assert spec["command"] == DECISION_COMMAND and "build" in spec
    assert "http://127.0.0.1:8080/healthz" in " ".join(spec["healthcheck"]["test"])
    ports = published_ports(spec)
    assert ports and all(p.target == 8080 for p in ports), ports
    assert all(compose_default(p.host_ip) in LOOPBACK for p in ports), "not loopback by default"
    replicas = spec["deploy"]["replicas"]
    assert replicas >= 2
    assert all(len(p.host_ports) >= replicas for p in ports), "a host port for each replica"
    limits = spec["deploy"]["resources"]["limits"]
    assert limits["cpus"] and limits["memory"]
    assert spec["cap_drop"] == ["ALL"]


# -- the stream consumers in compose -----------------------------------------------------------
STREAM_COMMAND = ["python", "-m", "decision_api", "consume"]


def seconds(duration: str | int) -> float:
    """A compose duration (`30s`, `1m30s`, `500ms`) in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|m|s)", str(duration))
    assert parts and "".join(n + u for n, u in parts) == str(duration), duration
    return sum(float(n) * units[u] for n, u in parts)


def ack_wait_default() -> float:
    from fraud_assets.settings import Settings

    return Settings.model_fields["stream_ack_wait_seconds"].default


def test_the_stream_consumer_reaches_postgres_mlflow_and_the_broker_only() -> None:
    services = all_services()
    defined = all_networks()
    internal = {n for n, spec in defined.items() if spec.get("internal") is True}
    consumer = networks_of(services["stream-consumer"])
    members = {
        network: {name for name, spec in services.items() if network in networks_of(spec)}
        for network in consumer
    }
    # no route out, no published port: whatever it reaches is on these networks
    assert consumer <= internal and not published_ports(services["stream-consumer"]), consumer
    data = networks_of(services["postgres"]) | networks_of(services["mlflow"])
    for network in consumer & data:  # PostgreSQL and MLflow, no other service
        assert members[network] == {"stream-consumer", "postgres", "mlflow"}, members[network]
    # the broker's side: a network it alone has here, under a fixed name the broker can join
    [broker] = consumer - data
    assert members[broker] == {"stream-consumer"}, members[broker]
    assert defined[broker].get("name"), "the broker cannot join a network without a fixed name"
    env = environment(services["stream-consumer"])
    assert re.search(r"^postgresql://fraud_stream:[^@]+@postgres:5432/warehouse$",
                     env["FRAUD_DATABASE_URL"])  # fmt: skip
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    # no object storage: the model comes through the MLflow server
    assert not [k for k in env if k.startswith(("AWS_", "FRAUD_S3", "MLFLOW_S3"))], env


def test_the_stream_consumer_is_an_optional_scaled_worker_that_stops_gracefully(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    base = compose()
    spec = base["services"]["stream-consumer"]
    assert spec["profiles"] == ["stream"]
    assert spec["command"] == STREAM_COMMAND and "build" in spec
    assert spec["cap_drop"] == ["ALL"]
    # The default stack needs no broker: only this service takes a stream setting, and none is
    # ${...:?} (Compose checks those in every service, its profile on or not).
    for name, other in base["services"].items():
        if name != "stream-consumer":
            assert not [k for k in environment(other) if k.startswith("FRAUD_STREAM_")], name
    assert not re.search(r"\$\{FRAUD_STREAM_\w*:?\?", json.dumps(base))
    env = environment(spec)
    assert env["FRAUD_STREAM_URL"] == "${FRAUD_STREAM_URL:-}"  # from .env; no default broker
    # ... so the worker is what refuses to run without one
    from decision_api.__main__ import main

    monkeypatch.setenv("FRAUD_STREAM_URL", "")
    assert main(["consume"]) == 2 and "FRAUD_STREAM_URL" in capsys.readouterr().err
    # healthy once its metrics answer, where the container's settings put them
    port = env["FRAUD_STREAM_METRICS_PORT"]
    assert env["FRAUD_STREAM_METRICS_HOST"] == "127.0.0.1"
    assert f"http://127.0.0.1:{port}/metrics" in " ".join(spec["healthcheck"]["test"])
    # replicas share the group; each is bounded
    assert spec["deploy"]["replicas"] >= 2
    limits = spec["deploy"]["resources"]["limits"]
    assert limits["cpus"] and limits["memory"]
    # SIGTERM finishes a batch, which must be done within the ack wait anyway: room to spare
    assert seconds(spec["stop_grace_period"]) >= 3 * ack_wait_default()
    assert spec["restart"] == "on-failure"  # a crash restarts it, a graceful stop (0) does not
    # its own read-only MLflow login
    import runpy

    helper = runpy.run_path(str(MLFLOW_USERS_SCRIPT))
    user = env["MLFLOW_TRACKING_USERNAME"]
    assert helper["USERS"][user] == "MLFLOW_STREAM_PASSWORD" and user != helper["MODEL_OWNER"]


# -- object storage: one MinIO user and policy per service ------------------------------------
MINIO_DIR = ROOT / "deploy" / "minio"
MINIO_SETUP = MINIO_DIR / "setup.sh"
MINIO_ROOT_VARIABLES = ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD")
S3_BUCKET = "fraud"


def minio_users() -> dict[str, str]:
    """user -> the variable holding its secret key, as deploy/minio/setup.sh creates them."""
    return dict(re.findall(r'^user_with_policy (\S+) "\$(\w+)"$', MINIO_SETUP.read_text(), re.M))


def minio_policy(user: str) -> dict:
    return json.loads((MINIO_DIR / f"{user}.json").read_text())


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def policy_allows(policy: dict, action: str, key: str) -> bool:
    """Whether the policy lets ``action`` touch object ``key`` of the bucket, or, for
    s3:ListBucket, list under the prefix ``key``. Only Allow statements with StringLike
    conditions on s3:prefix are understood (the test below insists there are no others)."""
    for statement in policy["Statement"]:
        if not any(fnmatch(action, a) for a in _listed(statement["Action"])):
            continue
        resources = _listed(statement["Resource"])
        if action == "s3:ListBucket":
            if f"arn:aws:s3:::{S3_BUCKET}" not in resources:
                continue
            condition = statement.get("Condition", {}).get("StringLike", {})
            prefixes = _listed(condition.get("s3:prefix", "*"))
            if any(fnmatch(key, p) for p in prefixes):
                return True
        elif any(fnmatch(f"arn:aws:s3:::{S3_BUCKET}/{key}", r) for r in resources):
            return True
    return False


def s3_services() -> dict[str, dict[str, str]]:
    """service -> its environment, for every service that holds S3 credentials."""
    return {
        name: environment(spec)
        for name, spec in all_services().items()
        if "AWS_ACCESS_KEY_ID" in environment(spec)
    }


def expected_s3_access() -> dict[str, dict[str, str]]:
    """MinIO user -> {key prefix: "rw" or "r"}, from the prefixes compose configures."""
    services = compose()["services"]
    code = environment(services["code-location"])
    logs = environment(services["webserver"])["DAGSTER_COMPUTE_LOGS_PREFIX"].strip("/") + "/"
    lake = code["FRAUD_S3_PREFIX"].strip("/") + "/"
    source = re.fullmatch(
        r"\$\{FRAUD_TRAINING_DATA_URL:-s3://fraud/(.+/)[^/]+\}", code["FRAUD_TRAINING_DATA_URL"]
    ).group(1)
    artifacts = environment(services["mlflow"])["MLFLOW_ARTIFACTS_DESTINATION"]
    artifacts = artifacts.removeprefix(f"s3://{S3_BUCKET}/").strip("/") + "/"
    return {
        "fraud-code-location": {lake: "rw", logs: "rw", source: "r"},
        "fraud-webserver": {logs: "r"},
        "fraud-daemon": {logs: "rw"},
        "fraud-mlflow": {artifacts: "rw"},
    }


def test_only_the_setup_job_uses_the_minio_root_user() -> None:
    for name, spec in all_services().items():
        text = json.dumps(spec)
        uses_root = [v for v in MINIO_ROOT_VARIABLES if v in text]
        if name in ("minio", "minio-setup"):
            assert uses_root == list(MINIO_ROOT_VARIABLES), name
        else:
            assert not uses_root, f"{name} uses the MinIO root login"
    setup = environment(all_services()["minio-setup"])
    assert setup["MC_HOST_minio"].startswith("http://${MINIO_ROOT_USER:?")


def test_each_service_has_its_own_minio_user_and_policy() -> None:
    users = minio_users()
    assert set(users) == set(expected_s3_access())
    assert {p.stem for p in MINIO_DIR.glob("*.json")} == set(users), "a policy without a user"
    holders = s3_services()
    assert set(holders) == {"code-location", "webserver", "daemon", "mlflow"}
    access_keys = [env["AWS_ACCESS_KEY_ID"] for env in holders.values()]
    assert len(set(access_keys)) == len(access_keys), f"shared S3 credentials: {access_keys}"
    setup_env = environment(all_services()["minio-setup"])
    script = MINIO_SETUP.read_text()
    for name, env in holders.items():
        user = env["AWS_ACCESS_KEY_ID"]
        assert user in users, f"{name}: {user} is not a user deploy/minio/setup.sh creates"
        variable = users[user]
        assert env["AWS_SECRET_ACCESS_KEY"].startswith(f"${{{variable}:?"), name
        assert setup_env[variable].startswith(f"${{{variable}:?"), f"setup lacks {variable}"
        assert f': "${{{variable}:?' in script, f"setup.sh does not require {variable}"
    assert environment(compose()["services"]["code-location"])["FRAUD_S3_BUCKET"] == S3_BUCKET
    assert f"BUCKET={S3_BUCKET}\n" in script


def test_minio_policies_grant_each_service_its_own_prefixes_only() -> None:
    probes = {"fraud/", "dagster/compute-logs/", "source/", "mlflow/", "other/", ""}
    for user, access in expected_s3_access().items():
        policy = minio_policy(user)
        for statement in policy["Statement"]:
            assert statement["Effect"] == "Allow", user  # no Deny to reason about
            assert set(statement.get("Condition", {})) <= {"StringLike"}, user
            assert not any("*" in a for a in _listed(statement["Action"])), user
        for prefix in probes | set(access):
            granted = access.get(prefix, "")
            key = f"{prefix}probe/part-0.parquet"
            assert policy_allows(policy, "s3:GetObject", key) is ("r" in granted), (user, key)
            for write in ("s3:PutObject", "s3:DeleteObject"):
                assert policy_allows(policy, write, key) is ("w" in granted), (user, write, key)
            listed = policy_allows(policy, "s3:ListBucket", f"{prefix}probe/")
            assert listed is bool(granted), (user, "list", prefix)
        assert not policy_allows(policy, "s3:ListBucket", ""), f"{user} lists the whole bucket"


def test_the_app_has_no_s3_access() -> None:
    app = environment(compose()["services"]["app"])
    s3 = [k for k in app if k.startswith(("AWS_", "FRAUD_S3_"))]
    assert not s3, f"the app holds S3 settings: {s3}"
    assert "MINIO" not in json.dumps(app)
    # It needs none: models come through the MLflow server, which proxies artifacts (the
    # integration test below sees a new experiment's artifacts under mlflow-artifacts:).
    mlflow = compose()["services"]["mlflow"]
    assert environment(mlflow)["MLFLOW_ARTIFACTS_DESTINATION"].startswith("s3://")
    assert "--serve-artifacts" in MLFLOW_SCRIPT.read_text()


@pytest.mark.parametrize(
    ("action", "key", "allowed"),
    [
        ("s3:GetObject", "logs/a.txt", True),
        ("s3:PutObject", "logs/a.txt", False),
        ("s3:GetObject", "logsx/a.txt", False),
        ("s3:ListBucket", "logs/2024/", True),
        ("s3:ListBucket", "other/", False),
    ],
)
def test_policy_check_reads_actions_resources_and_prefix_conditions(
    action: str, key: str, allowed: bool
) -> None:
    policy = {
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": [f"arn:aws:s3:::{S3_BUCKET}/logs/*"],
            },
            {
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": f"arn:aws:s3:::{S3_BUCKET}",
                "Condition": {"StringLike": {"s3:prefix": ["logs/*"]}},
            },
        ]
    }
    assert policy_allows(policy, action, key) is allowed


# -- MLflow: a login on every request, one per client -----------------------------------------
MLFLOW_SCRIPT = ROOT / "deploy" / "mlflow-server.sh"
MLFLOW_USERS_SCRIPT = ROOT / "deploy" / "mlflow-users.py"


def mlflow_users() -> dict[str, str]:
    """user -> the variable holding its password, as deploy/mlflow-users.py creates them."""
    import runpy

    return runpy.run_path(str(MLFLOW_USERS_SCRIPT))["USERS"]


def test_mlflow_runs_the_basic_auth_app_and_answers_named_hosts_only(image: Image) -> None:
    env = environment(compose()["services"]["mlflow"])
    script = MLFLOW_SCRIPT.read_text()
    assert env["MLFLOW_AUTH"] == "basic-auth"
    assert "args+=(--app-name basic-auth)" in script
    assert "MLFLOW_BASIC_AUTH_FAIL_CLOSED=true" in script
    for variable in (
        "MLFLOW_AUTH_ADMIN_USERNAME",
        "MLFLOW_AUTH_ADMIN_PASSWORD",
        "MLFLOW_FLASK_SERVER_SECRET_KEY",
    ):
        assert re.fullmatch(r"\$\{\w+:\?[^}]+\}", env[variable]), variable
    hosts = env["MLFLOW_ALLOWED_HOSTS"].split(",")
    assert "mlflow:5000" in hosts and not any("*" in h for h in hosts), hosts
    assert not re.search(r"MLFLOW_ALLOWED_HOSTS:-[^}]", script), "a default host list"
    assert not [line for line in script.splitlines() if "--allowed-hosts" in line and "*" in line]
    # what the auth app needs is in the image
    assert "flask-wtf" in lock_pins("requirements.runtime.lock")
    assert image_has(image, posixpath.join(image.workdir, "deploy", MLFLOW_USERS_SCRIPT.name))


def test_every_mlflow_client_has_its_own_login() -> None:
    users = mlflow_users()
    server = environment(compose()["services"]["mlflow"])
    clients = {
        name: environment(spec)
        for name, spec in all_services().items()
        if "MLFLOW_TRACKING_URI" in environment(spec)
    }
    assert {"code-location", "app", "decision-api", "stream-consumer"} <= set(clients)
    logins = [env.get("MLFLOW_TRACKING_USERNAME") for env in clients.values()]
    assert len(set(logins)) == len(logins), f"shared MLflow logins: {logins}"
    for name, env in clients.items():
        user = env.get("MLFLOW_TRACKING_USERNAME")
        assert user in users, f"{name}: {user!r} is not a user deploy/mlflow-users.py creates"
        variable = users[user]
        assert env["MLFLOW_TRACKING_PASSWORD"].startswith(f"${{{variable}:?"), name
        assert server[variable].startswith(f"${{{variable}:?"), f"MLflow lacks {variable}"
    assert server["MLFLOW_AUTH_ADMIN_USERNAME"] not in users


def test_the_decision_service_has_its_own_read_only_mlflow_login() -> None:
    import runpy

    helper = runpy.run_path(str(MLFLOW_USERS_SCRIPT))
    user = environment(compose()["services"]["decision-api"])["MLFLOW_TRACKING_USERNAME"]
    assert helper["USERS"][user] == "MLFLOW_DECISIONS_PASSWORD"
    # READ by default (the script's auth config), and it manages nothing: only the code
    # location is granted MANAGE on the registered model.
    assert user != helper["MODEL_OWNER"]
    assert "default_permission = READ" in MLFLOW_SCRIPT.read_text()


def test_mlflow_users_script_prepares_the_model_the_platform_trains() -> None:
    import runpy

    from fraud_assets.settings import Settings

    helper = runpy.run_path(str(MLFLOW_USERS_SCRIPT))
    default = Settings.model_fields["model_name"].default
    assert helper["DEFAULT_MODEL_NAME"] == default
    names = {
        environment(spec).get("FRAUD_MODEL_NAME", default)
        for name, spec in all_services().items()
        if name == "mlflow" or "MLFLOW_TRACKING_URI" in environment(spec)
    }
    assert names == {default}, f"the server prepares one model, the clients use {names}"
    code_location = environment(compose()["services"]["code-location"])
    assert helper["MODEL_OWNER"] == code_location["MLFLOW_TRACKING_USERNAME"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MLFLOW_ALLOWED_HOSTS": "*"}, "not '*'"),
        ({"MLFLOW_ALLOWED_HOSTS": "mlflow:5000, *"}, "not '*'"),
        ({"MLFLOW_AUTH": "none"}, "MLFLOW_AUTH must be basic-auth"),
        ({"MLFLOW_AUTH": "basic-auth"}, "MLFLOW_AUTH_ADMIN_USERNAME"),
    ],
)
def test_mlflow_script_refuses_a_wildcard_host_and_a_missing_login(
    env: dict[str, str], message: str
) -> None:
    base = {
        "PATH": os.environ.get("PATH", ""),
        "MLFLOW_BACKEND_STORE_URI": "postgresql+psycopg2://mlflow:x@127.0.0.1:9/mlflow",
        "MLFLOW_ARTIFACTS_DESTINATION": "s3://fraud/mlflow",
    }
    done = subprocess.run(
        ["bash", str(MLFLOW_SCRIPT)], env={**base, **env}, capture_output=True, text=True
    )
    assert done.returncode != 0 and message in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({}, "set MLFLOW_AUTH_ADMIN_USERNAME"),
        ({"short": True}, "shorter than 12"),
        ({"admin": "fraud-app"}, "may not be the client user"),
    ],
)
def test_mlflow_users_script_refuses_missing_short_or_clashing_logins(
    env: dict, problem: str
) -> None:
    import runpy

    wanted_logins = runpy.run_path(str(MLFLOW_USERS_SCRIPT))["wanted_logins"]
    values = {}
    if env:
        values = {variable: "p" * 12 for variable in mlflow_users().values()}
        values["MLFLOW_AUTH_ADMIN_USERNAME"] = env.get("admin", "ops-admin")
        values["MLFLOW_AUTH_ADMIN_PASSWORD"] = "p" * (11 if env.get("short") else 12)
    with pytest.raises(SystemExit, match=problem):
        wanted_logins(values)


def test_the_ops_proxy_puts_its_login_before_the_dagster_ui() -> None:
    caddy = (ROOT / "deploy" / "Caddyfile").read_text()
    dagster_site = re.search(r"^:3000 \{(.*?)^\}", caddy, re.S | re.M).group(1)
    assert "import login" in dagster_site and "reverse_proxy webserver:3000" in dagster_site
    # MLflow asks for its own login: a second basic auth on the same header could never pass.
    mlflow_site = re.search(r"^:5000 \{(.*?)^\}", caddy, re.S | re.M).group(1)
    assert "reverse_proxy mlflow:5000" in mlflow_site
    assert environment(compose()["services"]["mlflow"])["MLFLOW_AUTH"] == "basic-auth"


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
        "decision-api": {"fraud_decisions"},
        "stream-consumer": {"fraud_stream"},
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
        "SELECT, INSERT, UPDATE ON warehouse.analyst_labels",
        "SELECT, INSERT ON warehouse.analyst_verdicts",  # append-only: no UPDATE, no DELETE
    ]
    assert re.search(r"ALTER DEFAULT PRIVILEGES FOR ROLE fraud_writer[^;]*SELECT ON TABLES", sql)


DECIDING_ROLES = ("fraud_decisions", "fraud_stream")  # the decision service, the stream consumers


@pytest.mark.parametrize("role", DECIDING_ROLES)
def test_the_decision_role_reads_the_card_state_and_appends_to_decision_log_only(role: str) -> None:
    from fraud_assets.lib import card_state, decision_log, ingest

    sql = INIT_SCRIPT.read_text()
    grants = re.findall(rf"GRANT\s+([^;]*?)\s+TO\s+{role}\s*;", sql, re.S)
    grants = [" ".join(g.split()) for g in grants]
    reads = {card_state.PROFILES_TABLE, card_state.HISTORY_TABLE, card_state.META_TABLE}
    reads.add(ingest.LIVE_TABLE)
    selects = [g for g in grants if g.startswith("SELECT ON ")]
    assert len(selects) == 1
    assert set(re.findall(r"warehouse\.(\w+)", selects[0])) == reads
    assert sorted(set(grants) - set(selects)) == [
        "CONNECT ON DATABASE warehouse",  # no TEMPORARY: it inserts without a staging table
        f"SELECT, INSERT ON warehouse.{decision_log.LOG_TABLE}",  # append-only
        "USAGE ON SCHEMA warehouse",
    ]
    # no default privileges: a table the writer adds later stays closed to it
    assert not re.search(rf"DEFAULT PRIVILEGES[^;]*{role}", sql)
    assert reads | {decision_log.LOG_TABLE} <= set(init_script_tables())


class SchemaRecorder:
    """Stands in for a Warehouse: notes what each ``ensure_table`` call declares."""

    def __init__(self) -> None:
        self.tables: dict[str, tuple[dict, str, list[str]]] = {}

    def ensure_table(self, table, schema, key="trans_num", indexes=()) -> None:  # noqa: ANN001
        self.tables[table] = (dict(schema), key, list(indexes))

    def write(self, writes) -> dict[str, int]:  # noqa: ANN001
        return {w.table: 0 for w in writes}


def code_tables() -> dict[str, tuple[list[tuple[str, str]], str, set[str]]]:
    """table -> ([(column, SQL type)], key, indexed columns), as the platform's own warehouse
    code creates the tables the init script creates too (types from PostgresDialect)."""
    from types import SimpleNamespace

    import polars as pl

    from fraud_assets.lib import card_state, decision_log, feedback, ingest
    from fraud_assets.lib.features.profile import PROFILE_SCHEMA
    from fraud_assets.lib.schema import CARD_HISTORY_SCHEMA
    from fraud_assets.lib.warehouse import PostgresDialect

    recorder = SchemaRecorder()
    decision_log.ensure_log(recorder)
    ingest.ensure_tables(recorder)
    feedback.record_label(recorder, "t1", True, "ana")
    for uses_profiles, schema in ((True, PROFILE_SCHEMA), (False, CARD_HISTORY_SCHEMA)):
        fs = SimpleNamespace(uses_profiles=uses_profiles, version="probe")
        card_state.write_state(recorder, fs, pl.DataFrame(schema=schema))
    dialect = PostgresDialect("postgresql://unused/warehouse", "warehouse")
    return {
        table: ([(c, dialect.sql_type(t)) for c, t in schema.items()], key, set(indexes))
        for table, (schema, key, indexes) in recorder.tables.items()
    }


def init_script_tables() -> dict[str, tuple[list[tuple[str, str]], str, set[str]]]:
    """The same, for the tables deploy/postgres-init.sh creates in schema warehouse."""
    sql = INIT_SCRIPT.read_text()
    tables = {}
    for name, body in re.findall(
        r"CREATE TABLE IF NOT EXISTS warehouse\.(\w+) \((.*?)\n\);", sql, re.S
    ):
        columns, key = [], ""
        for line in (item.strip().rstrip(",") for item in body.strip().splitlines()):
            if line.startswith("PRIMARY KEY"):
                key = re.fullmatch(r"PRIMARY KEY \((\w+)\)", line).group(1)
            else:
                column, sql_type = line.split(None, 1)
                columns.append((column, sql_type))
        # only the key is NOT NULL, as Warehouse.ensure_table makes it
        assert [c for c, t in columns if t.endswith(" NOT NULL")] == [key], name
        columns = [(c, t.removesuffix(" NOT NULL")) for c, t in columns]
        indexes = set()
        for index, column in re.findall(
            rf"CREATE INDEX IF NOT EXISTS (\w+) ON warehouse\.{name} \((\w+)\);", sql
        ):
            assert index == f"{name}_{column}_idx", index  # ensure_table's name for it
            indexes.add(column)
        tables[name] = (columns, key, indexes)
    return tables


def test_the_decision_log_in_the_init_script_is_the_code_schema() -> None:
    from fraud_assets.lib.decision_log import DECISION_LOG_SCHEMA, LOG_TABLE

    columns, key, indexes = init_script_tables()[LOG_TABLE]
    assert [c for c, _ in columns] == list(DECISION_LOG_SCHEMA)
    assert init_script_tables()[LOG_TABLE] == code_tables()[LOG_TABLE]
    assert key == "trans_num" and indexes == {"batch_hour", "cc_num", "logged_at"}


@pytest.mark.parametrize("table", sorted(init_script_tables()))
def test_every_table_the_init_script_creates_is_the_code_schema(table: str) -> None:
    """Columns, types, key and indexes as the code would create them, so the writer's
    ensure_table finds each complete (and leaves it alone) and no column is missing."""
    assert init_script_tables()[table] == code_tables()[table]


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


def unhashed_requirements(text: str) -> list[str]:
    """Requirement lines (continuations joined, comments dropped) without a sha256 hash."""
    bad = []
    for line in re.sub(r"\\\n", " ", text).splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if line and not re.search(r"--hash=sha256:[0-9a-f]{64}(\s|$)", line):
            bad.append(" ".join(line.split()))
    return bad


def test_every_runtime_lock_pin_carries_a_hash() -> None:
    text = (ROOT / "requirements.runtime.lock").read_text()
    assert not unhashed_requirements(text)
    assert len(lock_pins("requirements.runtime.lock")) > 100  # the check saw the pins


@pytest.mark.parametrize(
    ("text", "flagged"),
    [
        ("a==1 \\\n    --hash=sha256:" + "0" * 64 + "\n    # via b\n", []),
        ("a==1\n    # via b\n", ["a==1"]),
        ("a==1 \\\n    --hash=md5:" + "0" * 32 + "\n", ["a==1 --hash=md5:" + "0" * 32]),
        ("-e .\n", ["-e ."]),
        ("# a==1\n", []),
    ],
)
def test_hash_check_flags_requirements_without_a_sha256(text: str, flagged: list[str]) -> None:
    assert unhashed_requirements(text) == flagged


def test_runtime_lock_is_what_make_lock_makes() -> None:
    header = (ROOT / "requirements.runtime.lock").read_text().splitlines()[1]
    command = header.lstrip("#").strip()
    assert f"$(BIN)/{command}" in (ROOT / "Makefile").read_text()
    assert "--generate-hashes" in command.split()


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


def test_helm_values_give_each_component_its_own_secrets(helm: dict) -> None:
    deployment = helm["dagster-user-deployments"]["deployments"][0]
    secrets = {
        "daemon": {s["name"] for s in helm["dagsterDaemon"]["envSecrets"]},
        "webserver": {s["name"] for s in helm["dagsterWebserver"]["envSecrets"]},
        "code location": {s["name"] for s in deployment["envSecrets"]},
    }
    for name, names in secrets.items():
        assert names, name
        for other, other_names in secrets.items():
            assert other == name or not names & other_names, f"{name} shares with {other}"
    env = {item["name"]: item.get("value") for item in deployment["env"]}
    assert env["MLFLOW_TRACKING_USERNAME"] in mlflow_users()
    assert env["FRAUD_S3_PREFIX"].strip("/") + "/" in expected_s3_access()["fraud-code-location"]


def network_policies() -> dict[str, dict]:
    path = ROOT / "deploy" / "helm" / "networkpolicy.yaml"
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert {d["kind"] for d in docs} == {"NetworkPolicy"}
    return {d["metadata"]["name"]: d["spec"] for d in docs}


#: Kafka, NATS, Redis, RabbitMQ: what an address outside the cluster may be reached on, besides
#: PostgreSQL's 5432.
BROKER_PORTS = frozenset({9092, 4222, 6379, 5672})
MLFLOW_POSTGRES_AND_DNS = {
    ("mlflow", frozenset({5000})),
    ("postgres", frozenset({5432})),
    ("dns", frozenset({53})),
}


def egress_peers(policy: dict) -> set[tuple[str, frozenset[int]]]:
    """(peer, ports) a policy lets its pods send to; AssertionError on any other peer."""
    assert "Egress" in policy["policyTypes"]
    reached = set()
    for rule in policy["egress"]:
        assert rule.get("to") and rule.get("ports"), f"an egress rule allows anything: {rule}"
        ports = frozenset(p["port"] for p in rule["ports"])
        for peer in rule["to"]:
            pods = peer.get("podSelector", {}).get("matchLabels")
            if (
                pods == {"app.kubernetes.io/name": "fraud-mlflow"}
                and "namespaceSelector" not in peer
            ):
                reached.add(("mlflow", ports))
            elif "ipBlock" in peer:
                assert peer["ipBlock"]["cidr"].endswith("/32"), peer  # one address, not a range
                if ports == {5432}:
                    reached.add(("postgres", ports))
                elif ports <= BROKER_PORTS:
                    reached.add(("broker", ports))
                else:
                    raise AssertionError(f"{policy['podSelector']} may reach {peer} on {ports}")
            elif pods == {"k8s-app": "kube-dns"}:
                reached.add(("dns", ports))
            else:
                raise AssertionError(f"{policy['podSelector']} may reach {peer}")
    return reached


def test_network_policy_lets_the_app_reach_mlflow_postgres_and_dns_only() -> None:
    policies = network_policies()
    app = policies["fraud-app"]
    assert app["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "fraud-app"}
    assert set(app["policyTypes"]) == {"Ingress", "Egress"}
    assert egress_peers(app) == MLFLOW_POSTGRES_AND_DNS
    assert [p["port"] for rule in app["ingress"] for p in rule["ports"]] == [7860]
    # MLflow takes requests from its clients only.
    mlflow = policies["fraud-mlflow"]
    sources = [
        peer["podSelector"]["matchLabels"] for rule in mlflow["ingress"] for peer in rule["from"]
    ]
    assert {"app.kubernetes.io/name": "fraud-app"} in sources
    assert {"component": "user-deployments"} in sources


# -- the decision service on Kubernetes -------------------------------------------------------
def decision_manifests() -> dict[str, dict]:
    path = ROOT / "deploy" / "helm" / "decision-api.yaml"
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    kinds = [d["kind"] for d in docs]
    assert len(set(kinds)) == len(kinds), kinds
    return {d["kind"]: d for d in docs}


DECISION_PODS = {"app.kubernetes.io/name": "fraud-decision-api"}


def test_the_decision_service_has_probes_an_autoscaler_and_its_token_secret(
    helm: dict, image: Image
) -> None:
    manifests = decision_manifests()
    assert set(manifests) == {
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }
    assert not secret_settings(list(manifests.values()))
    deployment = manifests["Deployment"]
    spec, pod = deployment["spec"], deployment["spec"]["template"]["spec"]
    assert spec["replicas"] >= 2
    assert spec["selector"]["matchLabels"] == DECISION_PODS
    assert spec["template"]["metadata"]["labels"] == DECISION_PODS
    [container] = pod["containers"]
    # the image the code location runs, and the command compose runs
    code = helm["dagster-user-deployments"]["deployments"][0]["image"]
    assert container["image"] == f"{code['repository']}:{code['tag']}"
    assert container["command"] == DECISION_COMMAND
    port = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert port == {"http": 8080}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) == {"cpu", "memory"}, kind
    # its secrets come from its own Secret (each key required), nothing from a literal
    env = {e["name"]: e for e in container["env"]}
    secret_refs = {
        name: e["valueFrom"]["secretKeyRef"] for name, e in env.items() if "valueFrom" in e
    }
    assert set(secret_refs) == {
        "FRAUD_DECISION_CLIENTS",
        "FRAUD_DECISION_METRICS_TOKEN",
        "FRAUD_DATABASE_URL",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_TRACKING_PASSWORD",
    }
    secrets = {ref["name"] for ref in secret_refs.values()}
    assert secrets == {"fraud-decision-api"}
    assert all(ref["key"] == name and not ref.get("optional") for name, ref in secret_refs.items())
    code_secrets = {
        s["name"] for s in helm["dagster-user-deployments"]["deployments"][0]["envSecrets"]
    }
    assert not secrets & code_secrets, "shares the code location's secret"
    assert env["MLFLOW_TRACKING_USERNAME"]["value"] == "fraud-decisions"
    assert env["MLFLOW_TRACKING_USERNAME"]["value"] in mlflow_users()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert str(pod["securityContext"]["runAsUser"]) == image.user.split(":")[0]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    # the Service and the disruption budget select these pods
    service = manifests["Service"]["spec"]
    assert service["selector"] == DECISION_PODS
    assert [(p["port"], p["targetPort"]) for p in service["ports"]] == [(8080, "http")]
    # CPU-based autoscaling from 2, and drains that never take the last replica
    hpa = manifests["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert hpa["minReplicas"] >= 2 and hpa["maxReplicas"] > hpa["minReplicas"]
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"]
    pdb = manifests["PodDisruptionBudget"]["spec"]
    assert pdb["selector"]["matchLabels"] == DECISION_PODS
    assert 1 <= pdb["minAvailable"] < hpa["minReplicas"]


def test_network_policy_lets_the_decision_service_reach_mlflow_postgres_and_dns_only() -> None:
    policies = network_policies()
    policy = policies["fraud-decision-api"]
    assert policy["podSelector"]["matchLabels"] == DECISION_PODS
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    assert egress_peers(policy) == MLFLOW_POSTGRES_AND_DNS
    for rule in policy["ingress"]:
        # never from everywhere: each rule names its sources
        assert rule.get("from") and all(peer for peer in rule["from"]), rule
        assert [p["port"] for p in rule["ports"]] == [8080]
    mlflow = policies["fraud-mlflow"]
    sources = [
        peer["podSelector"]["matchLabels"] for rule in mlflow["ingress"] for peer in rule["from"]
    ]
    assert DECISION_PODS in sources


# -- the stream consumers on Kubernetes ------------------------------------------------------
STREAM_FILES = ("stream-consumer.yaml", "stream-consumer-keda.yaml", "stream-consumer-hpa.yaml")
STREAM_PODS = {"app.kubernetes.io/name": "fraud-stream-consumer"}
PARTITIONS = "fraud-detection/input-topic-partitions"


def stream_kinds() -> dict[str, list[str]]:
    """file -> the kinds it holds."""
    helm_dir = ROOT / "deploy" / "helm"
    return {
        name: [d["kind"] for d in yaml.safe_load_all((helm_dir / name).read_text()) if d]
        for name in STREAM_FILES
    }


def stream_manifests() -> dict[str, dict]:
    """kind -> object, over the consumers' manifest and its two autoscaler files."""
    found: dict[str, dict] = {}
    for name in STREAM_FILES:
        for doc in yaml.safe_load_all((ROOT / "deploy" / "helm" / name).read_text()):
            if doc:
                assert doc["kind"] not in found, f"two {doc['kind']}s"
                found[doc["kind"]] = doc
    return found


def test_the_stream_consumers_have_a_probe_a_grace_period_and_their_secret(
    helm: dict, image: Image
) -> None:
    manifests = stream_manifests()
    assert set(manifests) == {
        "Deployment",
        "PodDisruptionBudget",
        "ScaledObject",
        "HorizontalPodAutoscaler",
    }
    assert not secret_settings(list(manifests.values()))
    deployment = manifests["Deployment"]
    spec, pod = deployment["spec"], deployment["spec"]["template"]["spec"]
    assert spec["replicas"] >= 2
    assert spec["selector"]["matchLabels"] == STREAM_PODS
    assert spec["template"]["metadata"]["labels"] == STREAM_PODS
    [container] = pod["containers"]
    # the image the code location runs, and the command compose runs
    code = helm["dagster-user-deployments"]["deployments"][0]["image"]
    assert container["image"] == f"{code['repository']}:{code['tag']}"
    assert container["command"] == STREAM_COMMAND
    assert compose()["services"]["stream-consumer"]["command"] == STREAM_COMMAND
    # liveness (and start-up) on the metrics port, which the worker serves on the pod's address
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert list(ports) == ["metrics"]
    env = {e["name"]: e for e in container["env"]}
    assert env["FRAUD_STREAM_METRICS_PORT"]["value"] == str(ports["metrics"])
    assert env["FRAUD_STREAM_METRICS_HOST"]["value"] == "0.0.0.0"
    for probe in ("livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}, probe
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) == {"cpu", "memory"}, kind
    # SIGTERM finishes the batch in hand: room to spare beyond the ack wait
    assert pod["terminationGracePeriodSeconds"] >= 3 * ack_wait_default()
    # its secrets come from its own Secret (each key required), nothing from a literal
    secret_refs = {
        name: e["valueFrom"]["secretKeyRef"] for name, e in env.items() if "valueFrom" in e
    }
    assert set(secret_refs) == {
        "FRAUD_STREAM_URL",  # it may hold the broker's login
        "FRAUD_DATABASE_URL",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_TRACKING_PASSWORD",
    }
    secrets = {ref["name"] for ref in secret_refs.values()}
    assert secrets == {"fraud-stream-consumer"}
    assert all(ref["key"] == name and not ref.get("optional") for name, ref in secret_refs.items())
    others = {s["name"] for s in helm["dagster-user-deployments"]["deployments"][0]["envSecrets"]}
    others.add("fraud-decision-api")
    assert not secrets & others, "shares another component's secret"
    user = env["MLFLOW_TRACKING_USERNAME"]["value"]
    assert user in mlflow_users()
    assert user == environment(compose()["services"]["stream-consumer"])["MLFLOW_TRACKING_USERNAME"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert str(pod["securityContext"]["runAsUser"]) == image.user.split(":")[0]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    # drains that never take the last worker
    pdb = manifests["PodDisruptionBudget"]["spec"]
    assert pdb["selector"]["matchLabels"] == STREAM_PODS
    assert 1 <= pdb["minAvailable"] < spec["replicas"]


def test_the_stream_consumers_scale_on_lag_up_to_the_topics_partitions() -> None:
    from decision_api.consumer import StreamMetrics

    manifests = stream_manifests()
    deployment = manifests["Deployment"]
    partitions = int(deployment["metadata"]["annotations"][PARTITIONS])
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"]}
    # KEDA's Kafka scaler, on this group's lag on this topic, never past the partitions
    keda = manifests["ScaledObject"]
    assert keda["apiVersion"].startswith("keda.sh/")
    scaled = keda["spec"]
    assert scaled["scaleTargetRef"] == target
    [trigger] = scaled["triggers"]
    assert trigger["type"] == "kafka"
    kafka = trigger["metadata"]
    assert kafka["consumerGroup"] == env["FRAUD_STREAM_GROUP"]
    assert kafka["topic"] == env["FRAUD_STREAM_INPUT"]
    assert int(kafka["lagThreshold"]) > 0
    assert str(kafka.get("allowIdleConsumers", "false")).lower() == "false"
    assert 2 <= scaled["minReplicaCount"] < scaled["maxReplicaCount"] <= partitions
    # the alternative without KEDA: an HPA on the workers' own fraud_stream_lag
    hpa = manifests["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == target
    assert 2 <= hpa["minReplicas"] < hpa["maxReplicas"] <= partitions
    [metric] = hpa["metrics"]
    source = metric[metric["type"].lower()]
    assert metric["type"] in ("External", "Pods") and source["metric"]["name"] == "fraud_stream_lag"
    assert source["target"]["type"] == "AverageValue"
    assert "fraud_stream_lag" in {m.name for m in StreamMetrics().registry.collect()}
    # two autoscalers on one Deployment fight: each in a file of its own, applied alone
    kinds = stream_kinds()
    assert kinds["stream-consumer.yaml"] == ["Deployment", "PodDisruptionBudget"]
    assert kinds["stream-consumer-keda.yaml"] == ["ScaledObject"]
    assert kinds["stream-consumer-hpa.yaml"] == ["HorizontalPodAutoscaler"]
    # and what bounds them is what the docs tell operators to create
    docs = (ROOT / "docs" / "deploy.md").read_text()
    assert f"--partitions {partitions}" in docs


def test_network_policy_lets_the_stream_consumers_reach_broker_mlflow_postgres_dns_only() -> None:
    policies = network_policies()
    policy = policies["fraud-stream-consumer"]
    assert policy["podSelector"]["matchLabels"] == STREAM_PODS
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    peers = egress_peers(policy)
    broker = {(peer, ports) for peer, ports in peers if peer == "broker"}
    assert broker and peers - broker == MLFLOW_POSTGRES_AND_DNS
    # in: the metrics scraper only, on the metrics port
    [container] = stream_manifests()["Deployment"]["spec"]["template"]["spec"]["containers"]
    metrics = {p["name"]: p["containerPort"] for p in container["ports"]}["metrics"]
    assert policy["ingress"]
    for rule in policy["ingress"]:
        assert rule.get("from") and all(peer for peer in rule["from"]), rule
        assert [p["port"] for p in rule["ports"]] == [metrics]
    # MLflow lets them in; the app and the decision service still reach no broker
    mlflow = policies["fraud-mlflow"]
    sources = [
        peer["podSelector"]["matchLabels"] for rule in mlflow["ingress"] for peer in rule["from"]
    ]
    assert STREAM_PODS in sources
    for other in ("fraud-app", "fraud-decision-api"):
        assert egress_peers(policies[other]) == MLFLOW_POSTGRES_AND_DNS, other


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
        (["2999-3001:8080"], 1),
        ([{"target": 8080, "published": "4999-5000", "host_ip": "0.0.0.0"}], 1),
        ([{"target": 3000, "published": "3000", "host_ip": "${IP:-127.0.0.1}"}], 1),
        (["127.0.0.1:3000:3000", "127.0.0.1:5000:5000"], 0),
        (["7860:7860"], 0),
        (["8080-8081:8080"], 0),
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
    ("peer", "port", "reached"),
    [
        ({"ipBlock": {"cidr": "192.0.2.1/32"}}, 5432, "postgres"),
        ({"ipBlock": {"cidr": "192.0.2.1/32"}}, 9092, "broker"),
        ({"ipBlock": {"cidr": "192.0.2.1/32"}}, 443, None),  # anything else out there
        ({"ipBlock": {"cidr": "192.0.2.0/24"}}, 9092, None),  # a range, not an address
        ({"podSelector": {}}, 9092, None),  # every pod
    ],
)
def test_egress_check_names_postgres_and_the_broker_and_flags_the_rest(
    peer: dict, port: int, reached: str | None
) -> None:
    policy = {"podSelector": {}, "policyTypes": ["Egress"]}
    policy["egress"] = [{"to": [peer], "ports": [{"protocol": "TCP", "port": port}]}]
    if reached is None:
        with pytest.raises(AssertionError):
            egress_peers(policy)
    else:
        assert egress_peers(policy) == {(reached, frozenset({port}))}


@pytest.mark.parametrize(
    ("duration", "expected"), [("30s", 30), ("1m30s", 90), ("500ms", 0.5), ("2m", 120)]
)
def test_duration_check_reads_compose_durations(duration: str, expected: float) -> None:
    assert seconds(duration) == expected


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
    "fraud_decisions": "decisions-pw-5",
    "fraud_stream": "stream-pw-6",
}


def _pg_tool(name: str) -> str | None:
    from fraud_assets.testing.servers import _pg_bin

    return _pg_bin(name)


@pytest.fixture(scope="module")
def roles_cluster() -> Iterator[dict]:
    """A throwaway cluster (not a shared test server: the script makes fixed-name roles and
    databases) with password logins over TCP, after deploy/postgres-init.sh ran on it."""
    from fraud_assets.testing.servers import PG_HELP, free_port

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


# A table the writer creates after the init script ran (live_transactions is the script's now).
WRITER_TABLE = "warehouse.scored_transactions"
UPSERT = (
    "CREATE TEMP TABLE _incoming (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP;"
    " INSERT INTO _incoming VALUES {values};"
    " INSERT INTO {table} SELECT * FROM _incoming ON CONFLICT (trans_num) DO UPDATE SET {sets}"
)


def writer_creates_a_table(cluster: dict) -> None:
    """What the code location's warehouse writes do: schema and table if missing, index, upsert."""
    with connect(cluster, "fraud_writer", "warehouse") as conn, conn.transaction():
        conn.execute("CREATE SCHEMA IF NOT EXISTS warehouse")
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {WRITER_TABLE}"
            " (trans_num TEXT NOT NULL, amt DOUBLE PRECISION, PRIMARY KEY (trans_num))"
        )
        conn.execute(f"CREATE INDEX IF NOT EXISTS scored_amt_idx ON {WRITER_TABLE} (amt)")
        conn.execute(
            UPSERT.format(table=WRITER_TABLE, values="('t1', 12.5)", sets="amt = EXCLUDED.amt")
        )


@pytest.mark.integration
def test_each_role_logs_in_with_its_own_password_and_holds_no_cluster_privilege(
    roles_cluster: dict,
) -> None:
    home = {"dagster": "dagster", "mlflow": "mlflow", "fraud_writer": "warehouse"}
    home["fraud_app"] = home["fraud_decisions"] = home["fraud_stream"] = "warehouse"
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
    writer_creates_a_table(roles_cluster)
    writer_creates_a_table(roles_cluster)  # a re-run is harmless
    with connect(roles_cluster, "fraud_writer", "warehouse") as conn:
        assert conn.execute(f"SELECT count(*) FROM {WRITER_TABLE}").fetchone() == (1,)


@pytest.mark.integration
def test_the_app_reads_the_warehouse_and_writes_only_analyst_labels(roles_cluster: dict) -> None:
    writer_creates_a_table(roles_cluster)  # created after the init script ran
    with connect(roles_cluster, "fraud_app", "warehouse") as conn:
        assert conn.execute(f"SELECT trans_num FROM {WRITER_TABLE}").fetchall() == [("t1",)]
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
        assert denied(conn, f"INSERT INTO {WRITER_TABLE} VALUES ('t2', 1.0)")
        assert denied(conn, f"UPDATE {WRITER_TABLE} SET amt = 0")
        assert denied(conn, "DELETE FROM warehouse.analyst_labels")
        with conn.transaction():  # every verdict is kept: added, never changed or removed
            conn.execute(
                "INSERT INTO warehouse.analyst_verdicts VALUES ('v1', 't1', 1, 'ana', now())"
            )
        assert denied(conn, "UPDATE warehouse.analyst_verdicts SET is_fraud = 0")
        assert denied(conn, "DELETE FROM warehouse.analyst_verdicts")
        assert denied(conn, "CREATE TABLE warehouse.app_table (id INT)")
        assert denied(conn, "CREATE TABLE public.app_table (id INT)")
        assert denied(conn, "CREATE SCHEMA app_schema")


@contextlib.contextmanager
def warehouse_as(cluster: dict, role: str) -> Iterator:
    """The platform's own Warehouse, logged in as ``role``."""
    from fraud_assets.lib.warehouse import Warehouse

    url = f"postgresql://{role}:{PASSWORDS[role]}@127.0.0.1:{cluster['port']}/warehouse"
    wh = Warehouse(url, schema="warehouse")
    try:
        yield wh
    finally:
        wh.dialect.close()


@pytest.mark.integration
@pytest.mark.parametrize("role", DECIDING_ROLES)
def test_the_decision_role_appends_to_decision_log_and_writes_nothing_else(
    roles_cluster: dict, role: str
) -> None:
    from types import SimpleNamespace

    import polars as pl

    from fraud_assets.lib import card_state, decision_log
    from fraud_assets.lib.schema import CARD_HISTORY_SCHEMA

    # The code location writes the card state into the tables the script made.
    with warehouse_as(roles_cluster, "fraud_writer") as writer:
        fs = SimpleNamespace(uses_profiles=False, version="probe")
        card_state.write_state(writer, fs, pl.DataFrame(schema=CARD_HISTORY_SCHEMA))
        written = card_state.state_version(writer)
    trans_num = f"d-{role}"
    row = {"trans_num": trans_num, "cc_num": "c1", "decided_by": "service", "client": "probe"}
    frame = pl.DataFrame([row], schema=decision_log.DECISION_LOG_SCHEMA)
    # What the service does, with its own code: start (ensure_log must need no DDL), read the
    # card state's version, log decisions, read one back.
    with warehouse_as(roles_cluster, role) as wh:
        decision_log.ensure_log(wh)
        assert written and card_state.state_version(wh) == written
        assert decision_log.record(wh, frame) == {trans_num}
        assert decision_log.record(wh, frame) == set()  # the first decision stands
        assert decision_log.read_logged(wh, [trans_num])["client"].to_list() == ["probe"]
    writer_creates_a_table(roles_cluster)  # a table it was never granted
    with connect(roles_cluster, role, "warehouse") as conn:
        for table in ("card_profiles", "card_history", "card_state_meta", "live_transactions"):
            conn.execute(f"SELECT count(*) FROM warehouse.{table}")
        log = "warehouse.decision_log"
        assert denied(conn, f"UPDATE {log} SET client = 'someone else'")
        assert denied(conn, f"DELETE FROM {log}")
        assert denied(conn, f"TRUNCATE {log}")
        assert denied(conn, "INSERT INTO warehouse.live_transactions (trans_num) VALUES ('x')")
        assert denied(conn, "INSERT INTO warehouse.card_state_meta (name) VALUES ('x')")
        assert denied(conn, "DELETE FROM warehouse.card_history")
        assert denied(conn, f"SELECT * FROM {WRITER_TABLE}")
        assert denied(conn, "SELECT * FROM warehouse.analyst_labels")
        assert denied(conn, "CREATE TABLE warehouse.decisions_table (id INT)")
        assert denied(conn, "CREATE TABLE public.decisions_table (id INT)")
        assert denied(conn, "CREATE TEMP TABLE decisions_staging (id INT)")
        assert denied(conn, "CREATE SCHEMA decisions_schema")
        assert denied(conn, f"ALTER TABLE {log} ADD COLUMN extra TEXT")


@pytest.mark.integration
def test_the_init_script_can_run_again_without_losing_data(roles_cluster: dict) -> None:
    writer_creates_a_table(roles_cluster)
    with connect(roles_cluster, "fraud_writer", "warehouse") as conn:
        conn.execute(
            "INSERT INTO warehouse.decision_log (trans_num) VALUES ('kept') ON CONFLICT DO NOTHING"
        )
    run_init_script(roles_cluster)
    with connect(roles_cluster, "fraud_app", "warehouse") as conn:
        assert conn.execute(f"SELECT count(*) FROM {WRITER_TABLE}").fetchone() == (1,)
    with connect(roles_cluster, "fraud_decisions", "warehouse") as conn:
        kept = "SELECT count(*) FROM warehouse.decision_log WHERE trans_num = 'kept'"
        assert conn.execute(kept).fetchone() == (1,)


# -- integration: the MLflow server with its login on ----------------------------------------
@pytest.mark.integration
def test_mlflow_server_with_login_refuses_anonymous_requests(
    pg_url: str,
    tmp_path: Path,
    monkeypatch,  # noqa: ANN001
) -> None:
    """deploy/mlflow-server.sh with MLFLOW_AUTH=basic-auth, as compose runs it (users and
    permissions in the backend store's database, named hosts only), on loopback."""
    pytest.importorskip(
        "flask_wtf", reason="MLflow's basic-auth app needs Flask-WTF (mlflow[auth])"
    )
    import requests

    from fraud_assets.lib import registry
    from fraud_assets.testing.servers import free_port, fresh_database, mlflow_server

    passwords = {user: f"{user}-password" for user in mlflow_users()}
    port = free_port()
    env = {
        "MLFLOW_AUTH": "basic-auth",
        "MLFLOW_AUTH_ADMIN_USERNAME": "ops-admin",
        "MLFLOW_AUTH_ADMIN_PASSWORD": "ops-admin-password",
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "csrf-signing-key-for-tests",
        "MLFLOW_ALLOWED_HOSTS": f"127.0.0.1:{port}",
        **{mlflow_users()[user]: password for user, password in passwords.items()},
    }
    app = ("fraud-app", passwords["fraud-app"])
    code = ("fraud-code-location", passwords["fraud-code-location"])
    admin = pg_url.rsplit("/", 1)[0] + "/postgres"
    with (
        fresh_database(admin, "mlflow_auth") as db,
        mlflow_server(db, str(tmp_path / "artifacts"), env, port=port) as url,
    ):
        api = f"{url}/api/2.0/mlflow"
        search = {"url": f"{api}/experiments/search", "params": {"max_results": 1}, "timeout": 30}
        assert requests.get(**search).status_code == 401
        assert requests.get(**search, auth=("fraud-app", "not-the-password")).status_code == 401
        assert requests.get(**search, auth=app).status_code == 200
        for path in ("/", "/api/2.0/mlflow-artifacts/artifacts", "/graphql"):  # UI, artifacts
            assert requests.get(url + path, timeout=30).status_code == 401, path
        # The code location creates (and so manages) the experiment; the app only reads it.
        created = requests.post(
            f"{api}/experiments/create", json={"name": "probe"}, auth=code, timeout=30
        )
        assert created.status_code == 200, created.text
        experiment = created.json()["experiment_id"]
        got = requests.get(
            f"{api}/experiments/get", params={"experiment_id": experiment}, auth=app, timeout=30
        )
        # artifacts go through the server: clients need no S3 credentials
        assert got.json()["experiment"]["artifact_location"].startswith("mlflow-artifacts:")
        renamed = requests.post(
            f"{api}/experiments/update",
            json={"experiment_id": experiment, "new_name": "taken-over"},
            auth=app,
            timeout=30,
        )
        assert renamed.status_code == 403
        # The registered model exists from the start, managed by the code location alone.
        tag = {"name": "fraud_rf", "key": "probe", "value": "1"}
        set_tag = f"{api}/registered-models/set-tag"
        assert requests.post(set_tag, json=tag, auth=code, timeout=30).status_code == 200
        assert requests.post(set_tag, json=tag, auth=app, timeout=30).status_code == 403
        # A Host header outside MLFLOW_ALLOWED_HOSTS is refused, login or not.
        foreign = requests.get(**search, auth=app, headers={"Host": f"evil.example:{port}"})
        assert foreign.status_code == 403
        # The platform's own light look-up sends the login from the environment.
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", app[0])
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", app[1])
        assert registry.champion_pointer(url, "fraud_rf") is None  # "no champion", not an error
        monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
        with pytest.raises(registry.RegistryUnavailable):
            registry.champion_pointer(url, "fraud_rf")
