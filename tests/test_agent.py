"""Agent runs: the settings, and whole runs through the stand-in devpod and stand-in claude.

The pieces have their own files: the remote script and stdin payload (``test_agent_remote``),
the stream parser on the real samples (``test_agent_stream``), the rolling view
(``test_agent_progress``)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from bot import devpod
from bot.agent.progress import Progress, render_progress
from bot.agent.remote import signal_command
from bot.agent.run import run_agent
from bot.agent.stream import Denial
from bot.devpod import DevPodSettings, Masker
from bot.settings import variables
from bot.settings.agent import AgentSettings
from tests.claude_samples import needs_samples
from tests.standin import DevPodStandIn

DEFAULT_AGENT_COMMAND = list(variables.AGENT_COMMAND.preset())

STANDIN_DIR = Path(__file__).parent / "standin"
WS = "hello-world-pr1-abcdef"
KEY = "sk-ant-api03-" + "Zq9xW3vY7tU1sR5pO2nM8lK4jH6gF0dE"
PUSH_TOKEN = "ghs_" + "P1q2R3s4T5u6V7w8X9y0Z1a2B3c4D5e6F7g8"

RUN = "0123456789abcdef0123456789abcdef"

pytestmark = needs_samples


def signals(standin: DevPodStandIn) -> list[str]:
    """The signals sent to the agent, in order (every ``devpod ssh`` after the run's own)."""
    commands = [c["argv"][c["argv"].index("--command") + 1] for c in standin.calls("ssh")[1:]]
    return [m.group(1) for m in (re.search(r"kill -s (\w+) ", c) for c in commands) if m]


# --------------------------------------------------------------------------- settings


def test_settings_from_an_empty_environment_use_the_defaults():
    s = AgentSettings.from_env({})
    assert list(s.command) == DEFAULT_AGENT_COMMAND
    assert DEFAULT_AGENT_COMMAND == ["claude", "-p", "--output-format", "stream-json", "--verbose"]
    assert (s.timeout, s.api_key, s.max_prompt_bytes, s.env_name) == (1800, None, 16000, "ANTHROPIC_API_KEY")


def test_settings_read_every_variable_and_prefer_the_bots_own_key():
    s = AgentSettings.from_env({
        "DEVENV_AGENT_COMMAND": "claude -p --output-format stream-json --verbose --model sonnet "
                                "--allowedTools 'Bash(git *)' --max-turns 30",
        "DEVENV_AGENT_TIMEOUT": "45m", "DEVENV_AGENT_API_KEY": KEY, "ANTHROPIC_API_KEY": "sk-other-key-123",
        "DEVENV_AGENT_MAX_PROMPT_BYTES": "8000", "DEVENV_AGENT_ENV_NAME": "CLAUDE_CODE_OAUTH_TOKEN",
        "DEVENV_AGENT_CANCEL_GRACE": "5",
    })  # fmt: skip
    assert s.command[-4:] == ("--allowedTools", "Bash(git *)", "--max-turns", "30")
    assert (s.timeout, s.api_key, s.max_prompt_bytes, s.env_name, s.interrupt_grace) == (
        2700, KEY, 8000, "CLAUDE_CODE_OAUTH_TOKEN", 5
    )
    assert AgentSettings.from_env({"ANTHROPIC_API_KEY": KEY}).api_key == KEY


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("DEVENV_AGENT_COMMAND", "claude -p --output-format stream-json"),  # stream-json needs --verbose
        ("DEVENV_AGENT_COMMAND", "claude -p --output-format json --verbose"),
        ("DEVENV_AGENT_COMMAND", "claude -p 'unbalanced"),
        ("DEVENV_AGENT_COMMAND", "$(evil) -p"),
        ("DEVENV_AGENT_COMMAND", f"claude -p --output-format stream-json --verbose --api-key {KEY}"),
        ("DEVENV_AGENT_TIMEOUT", "soon"),
        ("DEVENV_AGENT_MAX_PROMPT_BYTES", "0"),
        ("DEVENV_AGENT_ENV_NAME", "NOT A NAME"),
        ("DEVENV_AGENT_ENV_NAME", "PATH"),
    ],
)
def test_a_bad_setting_is_rejected_with_the_variable_name(var, value):
    with pytest.raises(ValueError, match=var):
        AgentSettings.from_env({var: value, "DEVENV_AGENT_API_KEY": KEY})


def test_the_api_key_is_not_in_the_settings_repr():
    assert KEY not in repr(AgentSettings(api_key=KEY))



# --------------------------------------------------------------------------- runs (stand-in devpod + claude)


@pytest.fixture
def standin(tmp_path: Path) -> DevPodStandIn:
    return DevPodStandIn(tmp_path / "devpod-home", provider_configured=True)


@pytest.fixture
def dp(standin: DevPodStandIn) -> DevPodSettings:
    s = DevPodSettings(home=standin.home, binary=str(standin.binary), path=f"{STANDIN_DIR}:{standin.search_path}",
                       kill_grace=0.5)  # fmt: skip
    devpod.prepare_dirs(s)
    return s


@pytest.fixture
async def workspace(dp: DevPodSettings, standin: DevPodStandIn) -> Path:
    argv = devpod.up_argv(dp, WS, "git:https://github.com/Codertocat/Hello-World@pull/1/head", ide="none")
    result = await devpod.run(argv, settings=dp, timeout=30, masker=Masker())
    assert result.ok, result.errors()
    return standin.container_dir(WS)


def quick(**kw) -> AgentSettings:
    return AgentSettings(**{"api_key": KEY, "interrupt_grace": 5.0, "term_grace": 2.0, "signal_timeout": 10.0, **kw})


def agent_call(container: Path) -> dict:
    return json.loads((container / ".agent-call.json").read_text())


async def test_a_run_streams_progress_and_ends_with_the_final_message(dp, workspace):
    seen: list[tuple[int, int, bool]] = []

    async def on_progress(p: Progress) -> None:
        seen.append((p.events, p.tool_calls, p.final is not None))

    result = await run_agent(dp, WS, "Say hello", settings=quick(), masker=Masker(), on_progress=on_progress)
    assert result.outcome == "success" and result.ok and result.exit_code == 0 and result.ssh_exit_code == 0
    assert result.final_message == "All done: the command printed hello-from-tool."
    assert [s[0] for s in seen] == [1, 2, 3, 4, 5, 6] and seen[-1] == (6, 1, True)
    assert result.progress.info["cwd"] == str(workspace)  # it ran in the container's workspace folder
    assert (workspace / ".agent-prompt").read_bytes() == b"Say hello"
    call = agent_call(workspace)
    assert call["argv"] == DEFAULT_AGENT_COMMAND[1:]
    assert call["api_key_sha256"] == hashlib.sha256(KEY.encode()).hexdigest()
    assert call["sigint_inherited"] == "not ignored"  # a foreground child, not a `&` job: a cancel can reach it
    assert {"DISABLE_AUTOUPDATER", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"} <= set(call["env_names"])
    assert ("IS_SANDBOX" in call["env_names"]) == (os.geteuid() == 0)


async def test_permission_denials_are_listed_and_edited_files_are_reported(dp, workspace):
    result = await run_agent(dp, WS, "#scenario:denied\nmake a file", settings=quick(), masker=Masker())
    assert result.outcome == "success"
    assert result.permission_denials == [Denial("Bash", "touch made.txt", "toolu_mock01")]
    result = await run_agent(dp, WS, "#scenario:edit", settings=quick(), masker=Masker())
    assert result.progress.files_touched == ["src/app.py", "NOTES.md"]
    assert [d.tool_name for d in result.permission_denials] == ["MultiEdit"]
    assert "`src/app.py`, `NOTES.md`" in render_progress(result.progress)


@pytest.mark.parametrize(
    ("prompt", "key", "message"),
    [
        ("#scenario:max-turns", KEY, "Reached maximum number of turns (1)"),
        ("#scenario:refused", KEY, "API Error: Connection refused"),
        ("anything", None, "Not logged in"),  # no key: the real CLI's "subtype: success, is_error: true"
    ],
    ids=["max-turns", "connection-refused", "no-key"],
)
async def test_an_error_result_is_a_failure_whatever_its_subtype(dp, workspace, prompt, key, message):
    result = await run_agent(dp, WS, prompt, settings=quick(api_key=key), masker=Masker())
    assert result.outcome == "failure" and result.exit_code == 1
    assert result.final_message.startswith(message)


async def test_a_crashing_agent_fails_with_its_output_in_the_tail(dp, workspace):
    result = await run_agent(dp, WS, "#scenario:crash", settings=quick(), masker=Masker())
    assert result.outcome == "failure" and result.exit_code == 134
    assert result.final_message == "The agent exited with code 134 without a final result."
    assert "RuntimeError: the agent crashed" in result.tail


async def test_non_json_output_and_a_flood_are_kept_bounded(dp, workspace):
    result = await run_agent(dp, WS, "#scenario:garbage", settings=quick(), masker=Masker())
    assert result.outcome == "success" and result.tail[0] == "not json {line 0"
    result = await run_agent(dp, WS, "#scenario:flood", settings=quick(max_tail_lines=10), masker=Masker())
    assert result.outcome == "success" and result.progress.tool_calls == 1
    assert len(result.tail) == 10 and all(len(line) <= 1000 for line in result.tail)


async def test_cancel_sends_sigint_to_the_agent_which_ends_cleanly(dp, workspace, standin):
    cancel = asyncio.Event()

    def on_progress(p: Progress) -> None:
        if p.tool_calls:  # the long tool run has started
            cancel.set()

    result = await run_agent(
        dp, WS, "#scenario:hang", settings=quick(), masker=Masker(), cancel=cancel, on_progress=on_progress,
        run_id=RUN,
    )
    assert result.outcome == "cancelled" and result.exit_code == 0
    assert result.progress.final is not None and result.progress.final.terminal_reason == "aborted_tools"
    assert "[Request interrupted by user for tool use]" in [a.text for a in result.progress.recent]
    kills = [c["argv"][c["argv"].index("--command") + 1] for c in standin.calls("ssh")[1:]]
    assert kills == [signal_command(RUN, "INT")]  # the run by its id, never a bare PID
    assert not Path(f"/tmp/devenv-agent-{RUN}.pid").exists()  # the script cleaned up after the agent


async def test_an_agent_that_ignores_sigint_is_terminated_without_a_result(dp, workspace, standin):
    cancel = asyncio.Event()
    result = await run_agent(
        dp, WS, "#scenario:stubborn", settings=quick(interrupt_grace=0.3), masker=Masker(), cancel=cancel,
        on_progress=lambda p: cancel.set() if p.tool_calls else None,
    )  # fmt: skip
    assert result.outcome == "cancelled" and result.exit_code == 143 and result.progress.final is None
    assert signals(standin) == ["INT", "TERM"]


async def test_the_time_limit_stops_the_agent_as_timed_out(dp, workspace):
    result = await run_agent(dp, WS, "#scenario:hang", settings=quick(timeout=1.0), masker=Masker())
    assert result.outcome == "timed_out" and result.exit_code == 0
    assert result.final_message == "The agent did not finish within 1 s and was stopped."
    assert result.progress.final is not None and result.progress.final.terminal_reason == "aborted_tools"


async def test_cancelling_the_caller_interrupts_the_remote_agent(dp, workspace, standin):
    started = asyncio.Event()
    task = asyncio.ensure_future(run_agent(
        dp, WS, "#scenario:hang", settings=quick(), masker=Masker(),
        on_progress=lambda p: started.set() if p.tool_calls else None,
    ))  # fmt: skip
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert signals(standin) == ["INT"]


async def test_a_missing_agent_is_reported_with_how_to_install_it(dp, workspace):
    bare = DevPodSettings(home=dp.home, binary=dp.binary, path=f"{Path(sys.executable).parent}:/usr/bin:/bin")
    result = await run_agent(bare, WS, "hi", settings=quick(), masker=Masker())
    assert result.outcome == "missing_agent" and result.exit_code == 127
    assert "`claude`" in result.final_message
    assert "ghcr.io/anthropics/devcontainer-features/claude-code:1" in result.final_message
    assert "npm install -g @anthropic-ai/claude-code" in result.final_message and "Node.js 22" in result.final_message


async def test_a_missing_workspace_fails_with_devpods_error(dp, standin):
    result = await run_agent(dp, WS, "hi", settings=quick(), masker=Masker())
    assert result.outcome == "failure" and result.exit_code is None and result.ssh_exit_code == 1
    assert result.final_message == "The connection to the environment failed (devpod ssh exited with 1)."
    assert any("doesn't exist" in line for line in result.tail)


async def test_the_secrets_reach_the_agent_but_never_argv_or_any_output(dp, workspace, standin):
    result = await run_agent(
        dp, WS, "#scenario:leak", settings=quick(), masker=Masker(), extra_env={"GH_TOKEN": PUSH_TOKEN}
    )
    call = agent_call(workspace)
    assert call["api_key_sha256"] == hashlib.sha256(KEY.encode()).hexdigest()
    assert {"ANTHROPIC_API_KEY", "GH_TOKEN"} <= set(call["env_names"])
    recorded = (standin.home / "standin-calls.jsonl").read_text()
    assert KEY not in recorded and PUSH_TOKEN not in recorded and "GH_TOKEN" not in recorded
    shown = json.dumps([result.final_message, result.tail, list(map(str, result.progress.recent)),
                        render_progress(result.progress)])  # fmt: skip
    assert KEY not in shown and "key on stdout: ***" in result.tail and "key on stderr: ***" in result.tail
    assert "The key is ***" in [a.text for a in result.progress.recent]


async def test_a_failing_progress_callback_does_not_stop_the_run(dp, workspace, caplog):
    def broken(p: Progress) -> None:
        raise RuntimeError("check run update failed")

    result = await run_agent(dp, WS, "hi", settings=quick(), masker=Masker(), on_progress=broken)
    assert result.outcome == "success"
    assert "agent progress callback failed" in caplog.text


DANGEROUS = [
    "$(touch pwned)", "`touch pwned`", "; touch pwned", "' ; touch pwned; '", '" ; touch pwned #', "\n", "\r\n",
    "\\", "$HOME", "${IFS}", "|| touch pwned", "&& touch pwned", "\n\n", "ANTHROPIC_API_KEY=stolen\n", "%s%n",
    "\u2028", "é", "🙂", "__DEVENV_RC=0\n", "\t", " ",
]  # fmt: skip
PROMPTS = (
    st.lists(
        st.one_of(st.sampled_from(DANGEROUS), st.text(alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=300)),
        min_size=1, max_size=25,
    )
    .map("".join)
    .filter(lambda s: s.strip() and not s.startswith("#scenario:") and len(s.encode()) <= 16000)
)  # fmt: skip


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prompt=PROMPTS)
async def test_any_prompt_reaches_the_agent_byte_for_byte_and_no_shell_interprets_it(dp, workspace, prompt):
    for leftover in workspace.glob(".agent-*"):
        leftover.unlink()
    result = await run_agent(dp, WS, prompt, settings=quick(), masker=Masker())
    assert result.outcome == "success"
    assert (workspace / ".agent-prompt").read_bytes() == prompt.encode("utf-8")
    assert not list(workspace.parent.parent.rglob("pwned"))


async def test_the_runner_survives_a_remote_command_that_never_reads_its_stdin(dp, workspace):
    argv = devpod.ssh_command_argv(dp, WS, "echo done")
    result = await devpod.run(argv, settings=dp, timeout=30, masker=Masker(), stdin_data=b"x" * (4 << 20))
    assert result.ok and result.stdout == "done"
