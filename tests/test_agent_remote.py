"""The remote side of an agent run: the fixed script, the stdin payload, the markers, the signal command."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from bot import devpod
from bot.agent.remote import AgentPromptError, new_run_id, parse_marker, remote_script, signal_command, stdin_payload
from bot.devpod import DevPodSettings
from bot.settings.agent import AgentSettings

WS = "hello-world-pr1-abcdef"
KEY = "sk-ant-api03-" + "Zq9xW3vY7tU1sR5pO2nM8lK4jH6gF0dE"
RUN = "0123456789abcdef0123456789abcdef"
PUSH_TOKEN = "ghs_" + "P1q2R3s4T5u6V7w8X9y0Z1a2B3c4D5e6F7g8"


def test_the_remote_script_is_fixed_text_with_no_secret_and_no_prompt():
    s = AgentSettings(api_key=KEY, command=("claude", "-p", "--output-format", "stream-json", "--verbose",
                                            "--append-system-prompt", "Don't push"))  # fmt: skip
    script = remote_script(s, RUN)
    assert KEY not in script
    assert script == remote_script(AgentSettings(api_key="sk-another-key", command=s.command), RUN)
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


@pytest.mark.parametrize("bad", ["", "1234", "../../etc/passwd", "0123456789abcdef; rm -rf /", "ABCDEF0123456789"])
def test_only_a_run_id_the_bot_made_gets_into_a_script(bad):
    with pytest.raises(ValueError):
        signal_command(bad, "INT")
    with pytest.raises(ValueError):
        remote_script(AgentSettings(), bad)
    assert re.fullmatch(r"[0-9a-f]{32}", new_run_id()) and new_run_id() != new_run_id()


def _start_agent(run_id: str) -> tuple[subprocess.Popen, int]:
    """The remote script as ``devpod ssh`` runs it, with ``sleep`` for the agent; returns it and the agent's PID."""
    proc = subprocess.Popen(["sh", "-c", remote_script(AgentSettings(command=("sleep", "30")), run_id)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("\nthe prompt")
    proc.stdin.close()
    kind, pid = parse_marker(proc.stdout.readline()) or ("", "")
    assert kind == "pid"
    return proc, int(pid)


def _send(run_id: str, sig: str) -> str:
    return subprocess.run(["sh", "-c", signal_command(run_id, sig)], capture_output=True, text=True,  # type: ignore[arg-type]
                          check=True, timeout=10).stdout


def test_the_signal_reaches_the_run_it_names():
    proc, pid = _start_agent(RUN)
    try:
        assert _send(RUN, "TERM") == f"__DEVENV_SIGNALLED={pid}\n"
        assert proc.wait(timeout=10) == 0
        assert proc.stdout is not None and "__DEVENV_RC=143" in proc.stdout.read()
        assert not os.path.exists(f"/tmp/devenv-agent-{RUN}.pid")  # the script removes it when the agent ends
    finally:
        proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def test_a_signal_after_a_container_restart_does_not_hit_another_process():
    # A restarted container keeps /tmp (docker stop/start) but numbers PIDs afresh: the run's file may now
    # name someone else. Here the file names a process that is not the run (as PID reuse would).
    stranger = subprocess.Popen(["sleep", "30"])
    pid_file = f"/tmp/devenv-agent-{RUN}.pid"
    try:
        with open(pid_file, "w") as f:
            f.write(f"{stranger.pid}\n")
        assert _send(RUN, "KILL") == ""
        time.sleep(0.2)
        assert stranger.poll() is None  # a bare `kill -s KILL <pid>` would have killed it
    finally:
        os.unlink(pid_file)
        stranger.kill()
        stranger.wait()
    assert _send(RUN, "INT") == ""  # a fresh container without the file: nothing happens, no error
