"""The analysts' login cannot be turned against them: a growing delay per address and per
(name, address) but never a lock, a capped decoy budget for unknown names, X-Forwarded-For
trusted only from configured proxies, sessions that expire, and a bounded rate limiter that
lives outside the web app. Fake clocks and sleeps keep the throttling tests instant."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import httpx
import pytest

from app_gradio import auth, guard
from app_gradio.login_throttle import LoginThrottle, address_context
from fraud_assets.lib.ratelimit import RateLimiter, client_address, trusted_networks
from fraud_assets.settings import Settings
from fraud_assets_tests.helpers.app import docs_entry

ROOT = Path(__file__).resolve().parents[2]
ATTACKER, ANALYST = "198.51.100.66", "203.0.113.7"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Sleeps(list):
    """A fake ``asyncio.sleep``: records each wait and moves the clock on by it."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)
        self.clock.now += seconds


def users_of(*names: str) -> auth.Users:
    entries = ",".join(docs_entry(name, f"pw-{name}") for name in names)
    return auth.Users(auth.parse_entries(auth.entries_from_env(entries)))


def attempts(check, name: str, password: str, address: str, n: int = 1) -> list[bool]:  # noqa: ANN001
    async def run() -> list[bool]:
        with address_context(address):
            return [await check(name, password) for _ in range(n)]

    return asyncio.run(run())


# --- the rate limiter: outside the web app, bounded ------------------------------------------


def test_the_limiter_needs_neither_gradio_nor_dagster() -> None:
    code = (
        "import sys, fraud_assets.lib.ratelimit; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'gradio', 'dagster'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    assert not (ROOT / "app_gradio" / "ratelimit.py").exists()


def test_buckets_never_exceed_the_cap() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=6, clock=clock, max_clients=100)
    sizes = []
    for i in range(5000):  # every bucket still draining: none may simply be forgotten for free
        limiter.acquire(f"ip:{i}")
        sizes.append(len(limiter))
    assert max(sizes) == 100


def test_the_least_recently_used_bucket_goes_first_and_comes_back_full() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=2, clock=clock, max_clients=3)
    for client in ("ann", "ann", "bob", "cat"):
        limiter.acquire(client)
    assert limiter.acquire("ann") > 0  # ann has spent her burst and is the most recent
    limiter.acquire("dan")  # the cap: bob, the least recently used, is forgotten
    assert limiter.acquire("ann") > 0  # ann's bucket survived
    assert [limiter.acquire("bob"), limiter.acquire("bob")] == [0.0, 0.0]  # bob starts full
    assert len(limiter) == 3


# --- the client's address ----------------------------------------------------------------------

PROXY = "10.0.0.5"


@pytest.mark.parametrize(
    ("trusted", "peer", "forwarded", "expected"),
    [
        ("", "203.0.113.7", "198.51.100.1", "203.0.113.7"),  # nothing configured: the peer
        (PROXY, "203.0.113.7", "198.51.100.1", "203.0.113.7"),  # not from the proxy: ignored
        (PROXY, PROXY, "198.51.100.1", "198.51.100.1"),  # from the proxy: its client
        (PROXY, PROXY, None, PROXY),  # the proxy itself, no header
        (PROXY, PROXY, " , ", PROXY),
        ("10.0.0.0/8", PROXY, "6.6.6.6, 198.51.100.1, 10.0.0.9", "198.51.100.1"),  # right-most
        ("10.0.0.0/8", PROXY, "10.0.0.8, 10.0.0.9", "10.0.0.8"),  # all trusted: the left-most
        (PROXY, f"::ffff:{PROXY}", "2001:db8::1", "2001:db8::1"),  # IPv4-mapped peer
        ("::1", "::1", "198.51.100.1:5555", "198.51.100.1"),  # a port dropped
        (PROXY, PROXY, "[2001:db8::2]:443", "2001:db8::2"),
        (PROXY, PROXY, "garbage, 198.51.100.1", "198.51.100.1"),  # a claim further left
        (PROXY, PROXY, "198.51.100.1, garbage", "unknown"),  # no address where the client's is
        (PROXY, None, "198.51.100.1", "unknown"),
        ("", "127.0.0.1", "198.51.100.1", "127.0.0.1"),  # loopback is no proxy unless said
    ],
)
def test_forwarded_for_is_trusted_only_from_configured_proxies(
    trusted: str, peer: str | None, forwarded: str | None, expected: str
) -> None:
    assert client_address(peer, forwarded, trusted_networks(trusted)) == expected


def test_malformed_proxy_or_session_settings_stop_the_app_before_it_starts() -> None:
    settings = Settings(_env_file=None, app_trusted_proxies="10.0.0.1, 10.0.0.0/33")
    with pytest.raises(ValueError, match=r"FRAUD_APP_TRUSTED_PROXIES: '10.0.0.0/33' is not"):
        guard.app_kwargs(settings)
    with pytest.raises(ValueError, match="app_session_hours"):
        Settings(_env_file=None, app_session_hours=0)
    kwargs = guard.app_kwargs(Settings(_env_file=None, app_trusted_proxies="10.0.0.0/8"))
    assert [m.cls for m in kwargs["middleware"]] == [guard.RequestGuard]


# --- login throttling ----------------------------------------------------------------------------


def test_wrong_passwords_from_elsewhere_never_lock_out_the_analyst() -> None:
    clock = Clock()
    sleeps = Sleeps(clock)
    check = auth.gradio_auth(users_of("alice"), LoginThrottle(clock=clock), sleep=sleeps)
    for i in range(300):  # a distributed guessing run against her name
        attempts(check, "alice", f"guess-{i}", f"198.51.100.{i % 100}")
    assert max(sleeps) <= 4.0  # the name's own delay: global, small, capped
    sleeps.clear()
    assert attempts(check, "alice", "pw-alice", ANALYST, n=3) == [True] * 3
    assert sum(sleeps) <= 3 * 4.0


def test_failures_from_one_address_wait_longer_and_longer_up_to_a_minute() -> None:
    clock = Clock()
    sleeps = Sleeps(clock)
    check = auth.gradio_auth(users_of("alice"), LoginThrottle(clock=clock), sleep=sleeps)
    assert attempts(check, "alice", "wrong", ATTACKER, n=12) == [False] * 12
    assert [round(s) for s in sleeps] == [1, 2, 4, 8, 16, 32, 60, 60]  # after 4 free attempts
    clock.now += 3600  # quiet: the failures are forgiven
    sleeps.clear()
    assert attempts(check, "alice", "wrong", ATTACKER, n=4) == [False] * 4
    assert sleeps == []


def test_a_success_clears_the_name_and_address() -> None:
    clock = Clock()
    sleeps = Sleeps(clock)
    check = auth.gradio_auth(users_of("alice"), LoginThrottle(clock=clock), sleep=sleeps)
    attempts(check, "alice", "typo", ANALYST, n=5)
    assert attempts(check, "alice", "pw-alice", ANALYST) == [True]
    assert [round(s) for s in sleeps] == [1, 2]
    sleeps.clear()
    assert attempts(check, "alice", "typo", ANALYST, n=4) == [False] * 4
    assert sleeps == []  # her count starts again


def test_attempts_sent_together_cannot_multiply_an_addresses_checks() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    for _ in range(10):
        throttle.failed("alice", ATTACKER)
    assert [throttle.reserve("alice", ATTACKER) for _ in range(3)] == [60.0, None, None]
    assert throttle.reserve("alice", ANALYST) == 0.0  # her own address is not held up
    clock.now += 60
    assert throttle.reserve("alice", ATTACKER) == pytest.approx(60.0)  # a turn each minute


def test_an_ipv6_client_counts_as_its_64() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    for i in range(1, 12):  # a fresh address of one /64 for each name
        throttle.failed(f"name{i}", f"2001:db8:0:1::{i:x}")
    assert throttle.reserve("name99", "2001:db8:0:1::ffff") == pytest.approx(1.0)
    assert throttle.reserve("name99", "2001:db8:0:2::1") == 0.0


def test_the_throttle_keeps_a_bounded_number_of_keys() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock, max_keys=50)
    for i in range(3000):
        throttle.failed(f"name-{i}" + "x" * (i % 200), f"198.51.{i // 256 % 256}.{i % 256}")
        throttle.reserve(f"name-{i}", ATTACKER)
    assert max(len(throttle.pair), len(throttle.address), len(throttle.name)) == 50


def test_throttling_logs_name_only_for_known_analysts_and_never_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    check = auth.gradio_auth(users_of("alice"), LoginThrottle(clock=clock), sleep=Sleeps(clock))
    attempts(check, "alice", "hunter2-secret", ATTACKER, n=6)
    attempts(check, "mallory-probe", "hunter2-secret", ATTACKER, n=6)
    assert "login for 'alice' from 198.51.100.66 waits" in caplog.text
    assert "login for an unknown name from 198.51.100.66 waits" in caplog.text
    assert "hunter2" not in caplog.text and "mallory" not in caplog.text


def test_unknown_names_cost_no_hashing_beyond_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    users = users_of("alice")
    hashed: list[int] = []
    real = hashlib.pbkdf2_hmac
    monkeypatch.setattr(hashlib, "pbkdf2_hmac", lambda *a: hashed.append(1) or real(*a))
    clock = Clock()
    sleeps = Sleeps(clock)
    decoys = RateLimiter(3, clock=clock)  # three decoy hashes a minute
    check = auth.gradio_auth(users, LoginThrottle(clock=clock), decoys, sleep=sleeps)
    refused = [attempts(check, f"nobody-{i}", "pw", f"198.51.100.{i}")[0] for i in range(20)]
    assert not any(refused)
    assert len(hashed) == 3  # the budget, then no hashing at all
    assert len(sleeps) == 17 and all(0 < s < 1 for s in sleeps)  # about a check's time each
    assert attempts(check, "alice", "pw-alice", ANALYST) == [True]  # known names still hash
    clock.now += 20  # a third of a minute: one decoy hash more
    attempts(check, "nobody-x", "pw", ATTACKER, n=2)
    assert len(hashed) == 5


# --- sessions ----------------------------------------------------------------------------------


def test_sessions_end_at_their_age_whether_presented_or_not() -> None:
    clock = Clock()
    sessions = guard.Sessions(100.0, clock=clock)
    tokens = {"t-alice": "alice"}
    sessions.started("t-alice")
    clock.now += 50
    tokens["t-bob"] = "bob"  # issued unseen: counts from the first sweep that finds it
    sessions.enforce(tokens, {"t-alice"})
    clock.now += 50
    sessions.enforce(tokens, {"t-alice"})
    assert tokens == {"t-bob": "bob"}
    clock.now += 50  # bob never comes back: the sweep ends his session anyway
    sessions.enforce(tokens, set())
    assert tokens == {} and len(sessions) == 0


def peer(request: gr.Request) -> str:
    """The request's client, as ``views.client_key`` counts an anonymous caller."""
    return request.client.host


@contextlib.contextmanager
def launched(trusted_proxies: str, session_seconds: float) -> Iterator[str]:
    """A tiny app with one analyst, launched as deployments launch it, on loopback."""
    from app_gradio.app import launch
    from fraud_assets.testing.servers import free_port

    with gr.Blocks(analytics_enabled=False) as demo:
        gr.api(peer, api_name="peer")
    port = free_port()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FRAUD_APP_TRUSTED_PROXIES", trusted_proxies)
        mp.setenv("FRAUD_APP_SESSION_HOURS", str(session_seconds / 3600))
        check = auth.gradio_auth(users_of("alice"))
        launch(
            demo,
            server_name="127.0.0.1",
            server_port=port,
            prevent_thread_lock=True,
            quiet=True,
            auth=check,
        )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        demo.close()


@contextlib.contextmanager
def logged_in(url: str, forwarded_for: str) -> Iterator[httpx.Client]:
    """A client that failed once, then logged in as alice."""
    headers = {"X-Forwarded-For": forwarded_for}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        client.post("/login", data={"username": "alice", "password": "nope"})
        assert client.post("/login", data={"username": "alice", "password": "pw-alice"}).is_success
        yield client


def called_peer(client: httpx.Client) -> str:
    event = client.post("/gradio_api/call/peer", json={"data": []}).json()["event_id"]
    stream = client.get(f"/gradio_api/call/peer/{event}").text
    return json.loads(stream.split("data:", 1)[1].strip())[0]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("trusted", "seen"), [("", "127.0.0.1"), ("127.0.0.1", "192.0.2.44")], ids=["direct", "proxy"]
)
def test_the_launched_app_trusts_forwarded_for_only_from_configured_proxies(
    trusted: str, seen: str, caplog: pytest.LogCaptureFixture
) -> None:
    with launched(trusted, session_seconds=3600) as url, logged_in(url, "192.0.2.44") as client:
        assert called_peer(client) == seen  # what client_key and the rate limiter count
    assert f"failed login for 'alice' from {seen}" in caplog.text  # what the throttle counts


@pytest.mark.integration
def test_a_session_expires() -> None:
    with launched("", session_seconds=0.6) as url, logged_in(url, ANALYST) as client:
        assert client.get("/gradio_api/user").json() == "alice"
        assert client.get("/config").status_code == 200
        time.sleep(0.7)
        assert client.get("/gradio_api/user").json() is None
        assert client.get("/config").status_code == 401  # logged out: sign in again
        assert client.post("/login", data={"username": "alice", "password": "pw-alice"}).is_success
        assert client.get("/gradio_api/user").json() == "alice"
