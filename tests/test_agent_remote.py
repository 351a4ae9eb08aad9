"""The remote side of an agent run: the fixed script, the stdin payload, the markers, the signal command."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import devpod
from bot.agent.remote import AgentPromptError, parse_marker, remote_script, signal_command, stdin_payload
from bot.devpod import DevPodSettings
from bot.settings.agent import AgentSettings

WS = "hello-world-pr1-abcdef"
KEY = "sk-ant-api03-" + "Zq9xW3vY7tU1sR5pO2nM8lK4jH6gF0dE"
PUSH_TOKEN = "ghs_" + "P1q2R3s4T5u6V7w8X9y0Z1a2B3c4D5e6F7g8"


def test_the_remote_script_is_fixed_text_with_no_secret_and_no_prompt():
    s = AgentSettings(api_key=KEY, command=("claude", "-p", "--output-format", "stream-json", "--verbose",
                                            "--append-system-prompt", "Don't push"))  # fmt: skip
    script = remote_script(s)
    assert KEY not in script
    assert script == remote_script(AgentSettings(api_key="sk-another-key", command=s.command))
    assert script.startswith("exec sh -c ")
    argv = devpod.ssh_command_argv(DevPodSettings(home=Path("/h")), WS, script)
    assert not any(KEY in a for a in argv)


def test_the_stdin_payload_is_a_header_an_empty_line_and_the_prompt_bytes():
    s = AgentSettings(api_key=KEY)
    prompt = "Fix it\n\nNAME=value\n$(touch pwned) é"
    data = stdin_payload(prompt, s, {"GH_TOKEN": PUSH_TOKEN})
    assert data == f"ANTHROPIC_API_KEY={KEY}\nGH_TOKEN={PUSH_TOKEN}\n\n".encode() + prompt.encode()
    assert stdin_payload("hi", AgentSettings()) == b"\nhi"  # no key: an empty header


def test_a_prompt_that_is_empty_or_too_long_is_refused_with_a_message_for_the_user():
    s = AgentSettings(api_key=KEY, max_prompt_bytes=10)
    with pytest.raises(AgentPromptError, match="empty"):
        stdin_payload(" \n", s)
    with pytest.raises(AgentPromptError, match="12 bytes long; the limit is 10"):
        stdin_payload("éééééé", s)


@pytest.mark.parametrize(
    "extra", [{"GH_TOKEN": "a\nb"}, {"PATH": "/x"}, {"IFS": "x"}, {"A B": "x"}, {"__DEVENV_X": "1"}]
)
def test_secrets_with_line_breaks_and_reserved_names_are_refused(extra):
    with pytest.raises(ValueError):
        stdin_payload("hi", AgentSettings(api_key=KEY), extra)


def test_markers_are_recognised_and_malformed_ones_ignored():
    assert parse_marker("__DEVENV_PID=4242") == ("pid", "4242")
    assert parse_marker("__DEVENV_RC=143\r") == ("rc", "143")
    assert parse_marker("__DEVENV_AGENT_MISSING=claude") == ("missing", "claude")
    assert parse_marker("__DEVENV_PID=1; rm -rf /") is None
    assert parse_marker("say __DEVENV_RC=0") is None


def test_the_signal_command_names_only_a_signal_and_a_pid():
    assert signal_command(4242, "INT") == "kill -s INT 4242"
    with pytest.raises(ValueError):
        signal_command(1, "KILL")
