"""The sticky comment and check run when the SSH gateway is on: the ``ssh`` line, a ``~/.ssh/config``
block, VS Code and JetBrains links, and the bot-host lines folded into an operators' section."""

from __future__ import annotations

from bot.environments import report
from bot.environments.journal import Op
from tests.test_golden import AT, CASES, SHA, compare, where

GATEWAY = {"DEVENV_SSH_PORT": "2222", "DEVENV_SSH_HOST": "ssh.devenv.example.com"}
WS = "hello-world-pr2-4d960c"


def test_the_sticky_comment_with_the_gateway_matches_its_golden_file(tmp_path):
    body = report.comment_body(CASES["comment_running"], where(tmp_path, **GATEWAY))
    compare("comment_ssh", body)
    assert f"| SSH | `ssh -p 2222 LOGIN+{WS}@ssh.devenv.example.com` — people with write access" in body
    assert f"Host {WS}\n  HostName ssh.devenv.example.com\n  Port 2222\n  User LOGIN+{WS}\n" in body
    assert f"`vscode://vscode-remote/ssh-remote+{WS}/workspaces/{WS}`" in body
    operators = body.split("<summary>For operators</summary>", 1)[1]
    assert f"`devpod ssh {WS}`" in operators and "kubectl exec" in operators  # folded away, not gone


def test_without_the_gateway_the_comment_keeps_the_bot_host_lines_in_the_open(tmp_path):
    body = report.comment_body(CASES["comment_running"], where(tmp_path))
    assert "| SSH from the bot's host |" in body and "For operators" not in body and "LOGIN+" not in body


def test_a_port_mapped_by_a_load_balancer_is_the_one_shown_and_22_is_left_out(tmp_path):
    mapped = report.comment_body(CASES["comment_running"], where(tmp_path, **GATEWAY, DEVENV_SSH_PUBLIC_PORT="22"))
    assert f"`ssh LOGIN+{WS}@ssh.devenv.example.com`" in mapped


def test_the_running_check_run_names_the_gateway(tmp_path):
    summary, _ = report.check_texts(CASES["comment_running"], Op("up", SHA, "Codertocat", AT), where(tmp_path, **GATEWAY))
    assert f"Get in with `ssh -p 2222 LOGIN+{WS}@ssh.devenv.example.com`" in summary
    assert "bot's host" not in summary
