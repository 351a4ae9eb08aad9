"""The gateway's pure parts: the user-name grammar and the failure rate limits (no sockets)."""

from __future__ import annotations

import re

import pytest

from bot.gateway.guard import FailureGuard
from bot.gateway.names import Target, is_bot, parse_user, ssh_command

WS = "hello-world-pr2-4d960c"


@pytest.mark.parametrize(("name", "expected"), [
    (f"octocat+{WS}", Target("octocat", WS)),
    (f"Mona-Lisa+{WS}", Target("Mona-Lisa", WS)),
    (f"dependabot[bot]+{WS}", Target("dependabot[bot]", WS)),
])
def test_a_login_and_a_workspace_split_at_the_plus(name, expected):
    assert parse_user(name) == expected


@pytest.mark.parametrize(("name", "why"), [
    (WS, f"say who you are: ssh -p <port> <your GitHub login>+{WS}@<host>"),
    ("root", "say who you are: ssh -p <port> <your GitHub login>+root@<host>"),
    (f"-bad+{WS}", "'-bad' is not a GitHub login"),
    (f"two--hyphens+{WS}", "'two--hyphens' is not a GitHub login"),
    (f"{'a' * 40}+{WS}", f"'{'a' * 40}' is not a GitHub login"),
    ("octocat+Upper-Case", "'Upper-Case' is not a workspace name (the PR comment shows it)"),
    ("octocat+a+b", "'a+b' is not a workspace name (the PR comment shows it)"),
    ("octocat+" + "a" * 49, f"'{'a' * 49}' is not a workspace name (the PR comment shows it)"),
    ("oct/cat", "the user name must be <your GitHub login>+<workspace>"),
])
def test_names_that_say_nothing_clear_get_a_reason(name, why):
    assert parse_user(name) == why


def test_bots_are_recognised_by_their_suffix():
    assert is_bot("dependabot[bot]") and is_bot("Renovate[BOT]") and not is_bot("robot")


def test_the_ssh_line_leaves_out_the_default_port():
    assert ssh_command("ssh.example.com", 2222, WS, "mona") == f"ssh -p 2222 mona+{WS}@ssh.example.com"
    assert ssh_command("ssh.example.com", 22, WS) == f"ssh LOGIN+{WS}@ssh.example.com"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failures_block_an_address_and_a_login_until_they_age_out():
    clock = Clock()
    guard = FailureGuard(limit=3, window=60, clock=clock)
    for _ in range(3):
        assert guard.blocked("10.0.0.1", "mona") is None
        guard.failed("10.0.0.1", "mona")
    assert "from your address" in guard.blocked("10.0.0.1", "someone-else")
    assert "for Mona" in guard.blocked("10.0.0.2", "Mona")  # logins compare case-insensitively
    assert guard.blocked("10.0.0.2", "someone-else") is None
    clock.now += 61
    assert guard.blocked("10.0.0.1", "mona") is None


def test_the_guard_forgets_the_stalest_entry_rather_than_grow():
    guard = FailureGuard(limit=1, window=60, maxsize=4, clock=Clock())
    for i in range(10):
        guard.failed(f"10.0.0.{i}", None)
    assert len(guard._failures) <= 4
    assert guard.blocked("10.0.0.9", None) is not None


def test_the_operations_guide_lists_the_gateway_metrics():
    from pathlib import Path

    from prometheus_client import CollectorRegistry

    from bot.core.metrics import Metrics
    from bot.gateway.service import GatewayMetrics

    guide = (Path(__file__).parents[1] / "docs" / "operations.md").read_text()
    rows = {line.split("`")[1]: line for line in guide.splitlines() if line.startswith("| `devenv_ssh")}
    metrics = Metrics()
    GatewayMetrics(metrics)
    assert isinstance(metrics.registry, CollectorRegistry)
    names = {m.name + ("_total" if m.type == "counter" else "") for m in metrics.registry.collect()
             if m.name.startswith("devenv_ssh")}
    assert names == set(rows) == {"devenv_ssh_auth_total", "devenv_ssh_sessions_active", "devenv_ssh_sessions_total",
                                  "devenv_ssh_session_seconds"}
    assert all(f"`{outcome}`" in rows["devenv_ssh_auth_total"] for outcome in ("allowed", "refused", "unavailable"))


def test_a_connection_that_gets_in_takes_back_only_its_own_failure():
    guard = FailureGuard(limit=2, window=60, clock=Clock())
    guard.failed("10.0.0.1", "mona")
    guard.failed("10.0.0.1", "mona")
    guard.forgive("10.0.0.1", "mona")
    assert guard.blocked("10.0.0.1", "mona") is None
    guard.failed("10.0.0.1", "mona")
    assert guard.blocked("10.0.0.1", "mona") is not None


@pytest.mark.parametrize(("extra", "problem"), [
    ({"DEVENV_SSH_PORT": "2222"}, "DEVENV_SSH_HOST (the host name reviewers ssh to) is needed with DEVENV_SSH_PORT"),
    ({"DEVENV_SSH_PORT": "2222", "DEVENV_SSH_HOST": "ssh.example.com", "DEVENV_SSH_PERMISSION": "read"},
     "DEVENV_SSH_PERMISSION='read' is too low"),
])
def test_the_gateway_settings_say_what_is_missing(tmp_path, extra, problem):
    from bot.settings import config

    with pytest.raises(config.ConfigError, match=re.escape(problem)):
        config.load({"DEVENV_STATE_DIR": str(tmp_path), **extra})


def test_the_gateway_is_off_unless_its_port_is_set_and_maps_a_public_port(tmp_path):
    from bot.settings import config

    assert config.load({"DEVENV_STATE_DIR": str(tmp_path)}).gateway is None
    on = config.load({"DEVENV_STATE_DIR": str(tmp_path), "DEVENV_SSH_PORT": "2222", "DEVENV_SSH_HOST": "ssh.example.com",
                      "DEVENV_SSH_PUBLIC_PORT": "22"}).gateway
    assert (on.port, on.public_port, on.host, on.permission) == (2222, 22, "ssh.example.com", "write")


async def test_the_cli_prints_the_host_key_fingerprint_the_gateway_will_serve(tmp_path):
    from bot.gateway import keys
    from tests.test_cli import run

    status, out = await run({"DEVENV_STATE_DIR": str(tmp_path)}, tmp_path, "ssh-host-key")
    assert status == 0, out
    assert out.strip().startswith("SHA256:") and out.strip() == keys.fingerprint(keys.host_key(tmp_path))
