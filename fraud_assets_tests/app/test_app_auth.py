"""The web app's logins: entries, verification, the ``users`` command, and the fail-closed
start (no Gradio server needed, except to show that ``launch`` refuses before binding)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from app_gradio import auth
from app_gradio.auth import InsecureStartup, PasswordHash, Users, UsersError
from fraud_assets.settings import Settings
from fraud_assets_tests.helpers.app import FAST, docs_entry

ROOT = Path(__file__).resolve().parents[2]


def settings(**values: object) -> Settings:
    """Settings as the app would read them, from these values only (no .env, no environment)."""
    base = {"app_users": None, "app_users_file": None, "app_allow_anonymous": False}
    return Settings(_env_file=None, **(base | values))


def test_an_entry_verifies_its_password_and_nothing_else() -> None:
    hashed = auth.hash_password("correct horse", FAST)
    assert hashed.verify("correct horse")
    assert not hashed.verify("correct horse ") and not hashed.verify("")
    assert PasswordHash.parse(hashed.encode()) == hashed


def test_entries_made_with_the_standard_library_are_accepted() -> None:
    users = Users(auth.parse_entries(auth.entries_from_env(docs_entry("alice", "s3cret!"))))
    assert users.names == ["alice"]
    assert users.verify("alice", "s3cret!")
    assert not users.verify("alice", "s3cret")
    assert not users.verify("bob", "s3cret!") and not users.verify("alice", "")


def test_several_analysts_from_the_variable_and_the_file(tmp_path: Path) -> None:
    users_file = tmp_path / "users.txt"
    users_file.write_text(
        "# analysts of the fraud team\n"
        f"{docs_entry('carol', 'pw-carol')}\n"
        "\n"
        f"   {docs_entry('dave', 'pw-dave')}   # on call\n"
    )
    env = ",".join([docs_entry("alice", "pw-alice"), docs_entry("bob", "pw-bob")])
    users = auth.load_users(settings(app_users=env, app_users_file=users_file))
    assert users.names == ["alice", "bob", "carol", "dave"]
    assert all(users.verify(n, f"pw-{n}") for n in users.names)
    assert not users.verify("alice", "pw-bob")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("alice", "expected name:pbkdf2_sha256"),
        ("alice:bcrypt$12$abc$def", "must look like pbkdf2_sha256$iterations"),
        ("alice:pbkdf2_sha256$many$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==", "positive whole"),
        ("alice:pbkdf2_sha256$1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA==", "padded) base64"),
        ("alice:pbkdf2_sha256$1000$c2-sd_NhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==", "padded) base64"),
        ("alice:pbkdf2_sha256$1000$c2FsdHNhbHQ=$aGFzaA==", "at least 16"),
        ("al ice:pbkdf2_sha256$1000$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==", "without spaces"),
    ],
)
def test_a_malformed_entry_is_named_without_its_hash(text: str, message: str) -> None:
    with pytest.raises(UsersError, match=re.escape(message)) as info:
        auth.parse_entries(auth.entries_from_env(f"{docs_entry('zed', 'pw')},{text}"))
    assert "FRAUD_APP_USERS entry 2" in str(info.value)
    hashed = text.partition(":")[2]
    assert not hashed or hashed not in str(info.value)


def test_a_name_given_twice_and_a_missing_file_are_refused(tmp_path: Path) -> None:
    twice = ",".join([docs_entry("ann", "a"), docs_entry("ann", "b")])
    with pytest.raises(UsersError, match="user 'ann' is given twice"):
        auth.load_users(settings(app_users=twice))
    with pytest.raises(UsersError, match="FRAUD_APP_USERS_FILE .*cannot read it"):
        auth.load_users(settings(app_users_file=tmp_path / "nope.txt"))


def test_hashes_never_show_in_reprs_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    entry = docs_entry("alice", "pw", iterations=10)  # weak: the app warns about it
    hashed = entry.split(":", 1)[1]
    users = Users(auth.parse_entries(auth.entries_from_env(entry)))
    asyncio.run(auth.gradio_auth(users)("alice", "wrong"))
    shown = repr(users) + repr(PasswordHash.parse(hashed)) + caplog.text
    assert "alice" in shown and "iterations" in shown
    assert not any(part in shown for part in hashed.split("$")[2:])


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"])
def test_loopback_may_serve_without_a_login(host: str) -> None:
    assert auth.is_loopback(host)
    assert auth.login_policy(settings(app_server_name=host)) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "fraud.example.com", ""])
def test_beyond_loopback_without_a_login_the_app_refuses_to_start(host: str) -> None:
    with pytest.raises(InsecureStartup) as info:
        auth.login_policy(settings(app_server_name=host), host)
    for variable in (
        "GRADIO_SERVER_NAME",
        "FRAUD_APP_USERS",
        "FRAUD_APP_USERS_FILE",
        "FRAUD_APP_ALLOW_ANONYMOUS",
    ):
        assert variable in str(info.value)


def test_serving_beyond_loopback_needs_logins_or_an_explicit_anonymous() -> None:
    entry = docs_entry("alice", "pw")
    users = auth.login_policy(settings(app_server_name="0.0.0.0", app_users=entry))
    assert users is not None and users.names == ["alice"]
    anon = settings(app_server_name="0.0.0.0", app_allow_anonymous=True)
    assert auth.login_policy(anon) is None
    # Logins, once configured, are required on loopback too.
    assert auth.login_policy(settings(app_server_name="127.0.0.1", app_users=entry)) is not None


def run_module(*args: str, stdin: str = "", env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_the_users_command_prints_an_entry_the_app_accepts() -> None:
    out = run_module("app_gradio.users", "hash", "alice", "--iterations", "2000", stdin="pw 1\n")
    assert out.returncode == 0, out.stderr
    entry = out.stdout.strip()
    assert entry.startswith("alice:pbkdf2_sha256$2000$") and "pw 1" not in entry
    users = Users(auth.parse_entries(auth.entries_from_env(entry)))
    assert users.verify("alice", "pw 1") and not users.verify("alice", "pw 1\n")


def test_the_users_command_helps_and_refuses_bad_input() -> None:
    helped = run_module("app_gradio.users", "hash", "--help")
    assert helped.returncode == 0
    assert "FRAUD_APP_USERS" in helped.stdout and "stdin" in helped.stdout
    assert run_module("app_gradio.users", "--help").returncode == 0
    bad_name = run_module("app_gradio.users", "hash", "a:b", stdin="pw\n")
    assert bad_name.returncode == 2 and "user name" in bad_name.stderr
    empty = run_module("app_gradio.users", "hash", "alice", stdin="\n")
    assert empty.returncode == 2 and "empty" in empty.stderr


def test_python_m_app_gradio_refuses_to_serve_everyone_anonymously(tmp_path: Path) -> None:
    env = {
        "GRADIO_SERVER_NAME": "0.0.0.0",
        "FRAUD_APP_USERS": "",
        "FRAUD_APP_USERS_FILE": "",
        "FRAUD_APP_ALLOW_ANONYMOUS": "",
        "FRAUD_DATA_DIR": str(tmp_path),
    }
    out = run_module("app_gradio", env=env)
    assert out.returncode == 2
    assert "refusing to serve on GRADIO_SERVER_NAME=0.0.0.0" in out.stderr
    assert "FRAUD_APP_ALLOW_ANONYMOUS=true" in out.stderr and "Traceback" not in out.stderr


def test_launch_refuses_before_binding(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import gradio as gr

    from app_gradio.app import launch

    for name in ("FRAUD_APP_USERS", "FRAUD_APP_USERS_FILE", "FRAUD_APP_ALLOW_ANONYMOUS"):
        monkeypatch.delenv(name, raising=False)
    with gr.Blocks() as app:
        gr.Markdown("never served")
    with pytest.raises(InsecureStartup):
        launch(app, server_name="0.0.0.0", prevent_thread_lock=True, quiet=True)
    assert not app.is_running
