"""Agent runs: settings, the remote script and stdin payload, the stream parser on the real
samples, the rolling view, and whole runs through the stand-in devpod and stand-in claude."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from bot.agent import runner as agent
from bot.agent.runner import AgentPromptError, AgentSettings, Progress, parse_stream_line
from bot.devpod import driver as devpod
from bot.devpod.driver import DevPodSettings, Masker
from tests.standin import DevPodStandIn

STANDIN_DIR = Path(__file__).parent / "standin"
SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "links-agent" / "claude-stream-samples"
WS = "hello-world-pr1-abcdef"
KEY = "sk-ant-api03-" + "Zq9xW3vY7tU1sR5pO2nM8lK4jH6gF0dE"
PUSH_TOKEN = "ghs_" + "P1q2R3s4T5u6V7w8X9y0Z1a2B3c4D5e6F7g8"

pytestmark = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"no Claude Code stream samples at {SAMPLES}")


def sample_lines(name: str) -> list[str]:
    return [line for line in (SAMPLES / name).read_text().splitlines() if line.strip()]


# --------------------------------------------------------------------------- settings


def test_settings_from_an_empty_environment_use_the_defaults():
    s = AgentSettings.from_env({})
    assert list(s.command) == agent.DEFAULT_AGENT_COMMAND
    assert agent.DEFAULT_AGENT_COMMAND == ["claude", "-p", "--output-format", "stream-json", "--verbose"]
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


# --------------------------------------------------------------------------- the remote side


def test_the_remote_script_is_fixed_text_with_no_secret_and_no_prompt():
    s = AgentSettings(api_key=KEY, command=("claude", "-p", "--output-format", "stream-json", "--verbose",
                                            "--append-system-prompt", "Don't push"))  # fmt: skip
    script = agent.remote_script(s)
    assert KEY not in script
    assert script == agent.remote_script(AgentSettings(api_key="sk-another-key", command=s.command))
    assert script.startswith("exec sh -c ")
    argv = devpod.ssh_command_argv(DevPodSettings(home=Path("/h")), WS, script)
    assert not any(KEY in a for a in argv)


def test_the_stdin_payload_is_a_header_an_empty_line_and_the_prompt_bytes():
    s = AgentSettings(api_key=KEY)
    prompt = "Fix it\n\nNAME=value\n$(touch pwned) é"
    data = agent.stdin_payload(prompt, s, {"GH_TOKEN": PUSH_TOKEN})
    assert data == f"ANTHROPIC_API_KEY={KEY}\nGH_TOKEN={PUSH_TOKEN}\n\n".encode() + prompt.encode()
    assert agent.stdin_payload("hi", AgentSettings()) == b"\nhi"  # no key: an empty header


def test_a_prompt_that_is_empty_or_too_long_is_refused_with_a_message_for_the_user():
    s = AgentSettings(api_key=KEY, max_prompt_bytes=10)
    with pytest.raises(AgentPromptError, match="empty"):
        agent.stdin_payload(" \n", s)
    with pytest.raises(AgentPromptError, match="12 bytes long; the limit is 10"):
        agent.stdin_payload("éééééé", s)


@pytest.mark.parametrize(
    "extra", [{"GH_TOKEN": "a\nb"}, {"PATH": "/x"}, {"IFS": "x"}, {"A B": "x"}, {"__DEVENV_X": "1"}]
)
def test_secrets_with_line_breaks_and_reserved_names_are_refused(extra):
    with pytest.raises(ValueError):
        agent.stdin_payload("hi", AgentSettings(api_key=KEY), extra)


def test_markers_are_recognised_and_malformed_ones_ignored():
    assert agent.parse_marker("__DEVENV_PID=4242") == ("pid", "4242")
    assert agent.parse_marker("__DEVENV_RC=143\r") == ("rc", "143")
    assert agent.parse_marker("__DEVENV_AGENT_MISSING=claude") == ("missing", "claude")
    assert agent.parse_marker("__DEVENV_PID=1; rm -rf /") is None
    assert agent.parse_marker("say __DEVENV_RC=0") is None


def test_the_signal_command_names_only_a_signal_and_a_pid():
    assert agent.signal_command(4242, "INT") == "kill -s INT 4242"
    with pytest.raises(ValueError):
        agent.signal_command(1, "KILL")


# --------------------------------------------------------------------------- the stream parser

#: sample → (first kind, final ok, final subtype, terminal reason); None: no result line.
EXPECTED = {
    "a1.jsonl": ("init", True, "success", "completed"),
    "a2.jsonl": ("init", False, "error_max_turns", "max_turns"),
    "b1.jsonl": ("init", True, "success", "completed"),
    "c_INT.jsonl": ("init", False, "error_during_execution", "aborted_tools"),
    "c_TERM.jsonl": ("init", None, None, None),
    "cc-mock-tool.jsonl": ("init", True, "success", "completed"),
    "cc-nokey-stream.jsonl": ("init", False, "success", "api_error"),
    "d1.jsonl": ("init", True, "success", "completed"),
    "e1.json": ("result", True, "success", "completed"),
    "f1.jsonl": ("init", False, "success", "api_error"),
}


def test_every_sample_file_is_covered():
    assert sorted(p.name for p in SAMPLES.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_line_of_the_real_samples_parses(name):
    first_kind, ok, subtype, reason = EXPECTED[name]
    events = [parse_stream_line(line) for line in sample_lines(name)]
    assert all(e is not None and e.kind not in ("raw", "other") for e in events)
    assert events[0].kind == first_kind
    results = [e.final for e in events if e.kind == "result"]
    if ok is None:
        assert results == []
        return
    assert len(results) == 1 and events[-1].kind == "result"
    final = results[0]
    assert (final.ok, final.subtype, final.terminal_reason) == (ok, subtype, reason)
    assert final.num_turns is not None and final.total_cost_usd is not None and final.duration_ms is not None


def test_init_assistant_text_tool_use_and_tool_result_are_parsed():
    init, text, tool, result, last_text, final = (parse_stream_line(line) for line in sample_lines("a1.jsonl"))
    assert init.kind == "init" and init.info["model"] == "claude-opus-5-5"
    assert init.info["claude_code_version"] == "2.1.332" and init.info["apiKeySource"] == "ANTHROPIC_API_KEY"
    assert text.kind == "assistant" and text.texts == ("I will run a command.",) and not text.tool_uses
    assert tool.tool_uses == (agent.ToolUse("toolu_mock01", "Bash", "echo hello-from-tool"),)
    assert result.kind == "user"
    assert result.tool_results == (agent.ToolResult("toolu_mock01", "hello-from-tool", False),)
    assert final.final.result == last_text.texts[0] == "All done: the command printed hello-from-tool."
    assert (final.final.num_turns, final.final.total_cost_usd, final.final.duration_ms) == (2, 0.0016, 236)


def test_a_permission_denial_is_parsed_from_the_system_frame_and_the_result():
    events = [parse_stream_line(line) for line in sample_lines("b1.jsonl")]
    denied = [e for e in events if e.kind == "permission_denied"]
    assert len(denied) == 1 and denied[0].tool_name == "Bash" and "needs approval" in denied[0].text
    assert events[-1].final.permission_denials == (agent.Denial("Bash", "touch made.txt", "toolu_mock01"),)
    assert events[-1].final.ok  # a denial does not fail the run (FACTS §D)


def test_api_errors_come_back_as_subtype_success_but_are_errors():
    for name, error in [("cc-nokey-stream.jsonl", "authentication_failed"), ("f1.jsonl", "server_error")]:
        events = [parse_stream_line(line) for line in sample_lines(name)]
        assert events[1].error == error
        final = events[-1].final
        assert final.subtype == "success" and final.is_error and not final.ok
    assert events[-1].final.api_error == "connection_failed"
    assert events[-1].final.message.startswith("API Error: Connection refused")


def test_the_interrupted_run_says_so_in_a_user_text_frame():
    events = [parse_stream_line(line) for line in sample_lines("c_INT.jsonl")]
    assert ("[Request interrupted by user for tool use]",) in [e.texts for e in events if e.kind == "user"]
    assert {e.subtype for e in events if e.kind == "system"} == {"task_started", "task_notification"}


def test_file_writing_tools_report_the_files_they_touch():
    def use(name: str, tool_input: dict) -> agent.ToolUse:
        frame = {"type": "assistant", "message": {"content": [{"type": "tool_use", "id": "t", "name": name,
                                                                  "input": tool_input}]}}  # fmt: skip
        return parse_stream_line(json.dumps(frame)).tool_uses[0]

    assert use("Edit", {"file_path": "/w/a.py", "old_string": "x", "new_string": "y"}).files == ("/w/a.py",)
    assert use("MultiEdit", {"file_path": "/w/b.py", "edits": []}).files == ("/w/b.py",)
    assert use("Write", {"file_path": "/w/c.md", "content": "..."}).summary == "/w/c.md"
    assert use("NotebookEdit", {"notebook_path": "/w/n.ipynb", "new_source": ""}).files == ("/w/n.ipynb",)
    assert use("Read", {"file_path": "/w/a.py"}).files == ()
    assert use("Grep", {"pattern": "TODO", "path": "src"}).summary == "src"
    assert use("Bash", {"command": "git status\n  && ls", "description": "look"}).summary == "git status && ls"


def test_non_json_lines_are_raw_and_blank_lines_are_ignored():
    assert parse_stream_line("   ") is None
    assert parse_stream_line("npm WARN deprecated") == agent.AgentEvent("raw", text="npm WARN deprecated")
    assert parse_stream_line('{"truncated": ').kind == "raw"
    assert parse_stream_line("[1, 2]").kind == "raw"
    assert parse_stream_line('{"type": "rate_limit_event"}').kind == "other"


# --------------------------------------------------------------------------- the rolling view


def feed(progress: Progress, name: str) -> Progress:
    for line in sample_lines(name):
        event = parse_stream_line(line)
        if event is not None:
            progress.feed(event)
    return progress


def test_progress_counts_tool_calls_and_keeps_the_final_result():
    p = feed(Progress(), "a1.jsonl")
    assert p.tool_calls == 1 and p.final is not None and p.final.ok
    assert [a.kind for a in p.recent] == ["say", "tool", "ok", "say"]
    assert p.info["cwd"] == "/tmp/ccwork"


def test_only_files_whose_edit_succeeded_count_as_touched():
    p = Progress()
    p.feed(parse_stream_line(json.dumps({"type": "system", "subtype": "init", "cwd": "/w"})))
    for i, (name, path, ok) in enumerate([("Edit", "/w/a.py", True), ("Write", "/etc/x", False),
                                          ("Edit", "/w/a.py", True), ("Write", "/w/b.md", True)]):  # fmt: skip
        use = {"type": "tool_use", "id": f"t{i}", "name": name, "input": {"file_path": path}}
        res = {"type": "tool_result", "tool_use_id": f"t{i}", "content": "ok", "is_error": not ok}
        p.feed(parse_stream_line(json.dumps({"type": "assistant", "message": {"content": [use]}})))
        p.feed(parse_stream_line(json.dumps({"type": "user", "message": {"content": [res]}})))
    assert p.files_touched == ["a.py", "b.md"] and p.tool_calls == 4


def test_the_rolling_view_and_the_tail_are_bounded():
    p = Progress(max_messages=3, max_tail_lines=5)
    for i in range(50):
        p.feed(parse_stream_line(json.dumps({"type": "assistant", "message": {"content": [
            {"type": "text", "text": f"step {i} " + "x" * 5000}]}})))  # fmt: skip
        p.feed(parse_stream_line(f"raw line {i} " + "y" * 5000))
    assert len(p.recent) == 3 and p.recent[-1].text.startswith("step 49") and len(p.recent[-1].text) <= 300
    assert len(p.tail) == 5 and p.tail[-1].startswith("raw line 49") and all(len(t) <= 1000 for t in p.tail)


def test_render_progress_escapes_what_the_agent_wrote_and_lists_denials():
    p = feed(Progress(), "b1.jsonl")
    p.feed(parse_stream_line(json.dumps({"type": "assistant", "message": {"content": [
        {"type": "text", "text": "ping @octocat <img src=x> #1"}]}})))  # fmt: skip
    p.final = agent.FinalResult(is_error=False, subtype="success", result="```\n@here done\n```")
    text = agent.render_progress(p, status="Finished")
    assert text.startswith("**Finished** · 1 tool call · 0 files changed")
    assert "**Not allowed:**\n- Bash: `touch made.txt`" in text
    assert "@octocat" not in text and "<img" not in text and "#1" not in text
    assert "````text\n```\n@here done\n```\n````" in text  # fenced with a longer fence, verbatim


@given(st.lists(st.text(max_size=400), max_size=30), st.text(max_size=5000), st.integers(300, 6000))
def test_rendered_progress_never_exceeds_its_byte_limit(texts, final, limit):
    p = Progress()
    for t in texts:
        p.feed(agent.AgentEvent("assistant", texts=(t,)))
        p.feed(agent.AgentEvent("assistant", tool_uses=(agent.ToolUse("t", "Edit", t, (t or "f",)),)))
    p.final = agent.FinalResult(is_error=True, subtype="success", result=final or None)
    assert len(agent.render_progress(p, status="Failed", limit_bytes=limit).encode()) <= limit


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

    result = await agent.run_agent(dp, WS, "Say hello", settings=quick(), masker=Masker(), on_progress=on_progress)
    assert result.outcome == "success" and result.ok and result.exit_code == 0 and result.ssh_exit_code == 0
    assert result.final_message == "All done: the command printed hello-from-tool."
    assert [s[0] for s in seen] == [1, 2, 3, 4, 5, 6] and seen[-1] == (6, 1, True)
    assert result.progress.info["cwd"] == str(workspace)  # it ran in the container's workspace folder
    assert (workspace / ".agent-prompt").read_bytes() == b"Say hello"
    call = agent_call(workspace)
    assert call["argv"] == agent.DEFAULT_AGENT_COMMAND[1:]
    assert call["api_key_sha256"] == hashlib.sha256(KEY.encode()).hexdigest()
    assert call["sigint_inherited"] == "not ignored"  # a foreground child, not a `&` job: a cancel can reach it
    assert {"DISABLE_AUTOUPDATER", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"} <= set(call["env_names"])
    assert ("IS_SANDBOX" in call["env_names"]) == (os.geteuid() == 0)


async def test_permission_denials_are_listed_and_edited_files_are_reported(dp, workspace):
    result = await agent.run_agent(dp, WS, "#scenario:denied\nmake a file", settings=quick(), masker=Masker())
    assert result.outcome == "success"
    assert result.permission_denials == [agent.Denial("Bash", "touch made.txt", "toolu_mock01")]
    result = await agent.run_agent(dp, WS, "#scenario:edit", settings=quick(), masker=Masker())
    assert result.progress.files_touched == ["src/app.py", "NOTES.md"]
    assert [d.tool_name for d in result.permission_denials] == ["MultiEdit"]
    assert "`src/app.py`, `NOTES.md`" in agent.render_progress(result.progress)


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
    result = await agent.run_agent(dp, WS, prompt, settings=quick(api_key=key), masker=Masker())
    assert result.outcome == "failure" and result.exit_code == 1
    assert result.final_message.startswith(message)


async def test_a_crashing_agent_fails_with_its_output_in_the_tail(dp, workspace):
    result = await agent.run_agent(dp, WS, "#scenario:crash", settings=quick(), masker=Masker())
    assert result.outcome == "failure" and result.exit_code == 134
    assert result.final_message == "The agent exited with code 134 without a final result."
    assert "RuntimeError: the agent crashed" in result.tail


async def test_non_json_output_and_a_flood_are_kept_bounded(dp, workspace):
    result = await agent.run_agent(dp, WS, "#scenario:garbage", settings=quick(), masker=Masker())
    assert result.outcome == "success" and result.tail[0] == "not json {line 0"
    result = await agent.run_agent(dp, WS, "#scenario:flood", settings=quick(max_tail_lines=10), masker=Masker())
    assert result.outcome == "success" and result.progress.tool_calls == 1
    assert len(result.tail) == 10 and all(len(line) <= 1000 for line in result.tail)


async def test_cancel_sends_sigint_to_the_agent_which_ends_cleanly(dp, workspace, standin):
    cancel = asyncio.Event()

    def on_progress(p: Progress) -> None:
        if p.tool_calls:  # the long tool run has started
            cancel.set()

    result = await agent.run_agent(
        dp, WS, "#scenario:hang", settings=quick(), masker=Masker(), cancel=cancel, on_progress=on_progress
    )
    assert result.outcome == "cancelled" and result.exit_code == 0
    assert result.progress.final is not None and result.progress.final.terminal_reason == "aborted_tools"
    assert "[Request interrupted by user for tool use]" in [a.text for a in result.progress.recent]
    kills = [c["argv"][c["argv"].index("--command") + 1] for c in standin.calls("ssh")[1:]]
    assert kills == [f"kill -s INT {agent_call(workspace)['pid']}"]


async def test_an_agent_that_ignores_sigint_is_terminated_without_a_result(dp, workspace, standin):
    cancel = asyncio.Event()
    result = await agent.run_agent(
        dp, WS, "#scenario:stubborn", settings=quick(interrupt_grace=0.3), masker=Masker(), cancel=cancel,
        on_progress=lambda p: cancel.set() if p.tool_calls else None,
    )  # fmt: skip
    assert result.outcome == "cancelled" and result.exit_code == 143 and result.progress.final is None
    kills = [c["argv"][c["argv"].index("--command") + 1].split()[2] for c in standin.calls("ssh")[1:]]
    assert kills == ["INT", "TERM"]


async def test_the_time_limit_stops_the_agent_as_timed_out(dp, workspace):
    result = await agent.run_agent(dp, WS, "#scenario:hang", settings=quick(timeout=1.0), masker=Masker())
    assert result.outcome == "timed_out" and result.exit_code == 0
    assert result.final_message == "The agent did not finish within 1 s and was stopped."
    assert result.progress.final is not None and result.progress.final.terminal_reason == "aborted_tools"


async def test_cancelling_the_caller_interrupts_the_remote_agent(dp, workspace, standin):
    started = asyncio.Event()
    task = asyncio.ensure_future(agent.run_agent(
        dp, WS, "#scenario:hang", settings=quick(), masker=Masker(),
        on_progress=lambda p: started.set() if p.tool_calls else None,
    ))  # fmt: skip
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [c["argv"][c["argv"].index("--command") + 1].split()[:3] for c in standin.calls("ssh")[1:]] == [
        ["kill", "-s", "INT"]
    ]


async def test_a_missing_agent_is_reported_with_how_to_install_it(dp, workspace):
    bare = DevPodSettings(home=dp.home, binary=dp.binary, path=f"{Path(sys.executable).parent}:/usr/bin:/bin")
    result = await agent.run_agent(bare, WS, "hi", settings=quick(), masker=Masker())
    assert result.outcome == "missing_agent" and result.exit_code == 127
    assert "`claude`" in result.final_message
    assert "ghcr.io/anthropics/devcontainer-features/claude-code:1" in result.final_message
    assert "npm install -g @anthropic-ai/claude-code" in result.final_message and "Node.js 22" in result.final_message


async def test_a_missing_workspace_fails_with_devpods_error(dp, standin):
    result = await agent.run_agent(dp, WS, "hi", settings=quick(), masker=Masker())
    assert result.outcome == "failure" and result.exit_code is None and result.ssh_exit_code == 1
    assert result.final_message == "The connection to the environment failed (devpod ssh exited with 1)."
    assert any("doesn't exist" in line for line in result.tail)


async def test_the_secrets_reach_the_agent_but_never_argv_or_any_output(dp, workspace, standin):
    result = await agent.run_agent(
        dp, WS, "#scenario:leak", settings=quick(), masker=Masker(), extra_env={"GH_TOKEN": PUSH_TOKEN}
    )
    call = agent_call(workspace)
    assert call["api_key_sha256"] == hashlib.sha256(KEY.encode()).hexdigest()
    assert {"ANTHROPIC_API_KEY", "GH_TOKEN"} <= set(call["env_names"])
    recorded = (standin.home / "standin-calls.jsonl").read_text()
    assert KEY not in recorded and PUSH_TOKEN not in recorded and "GH_TOKEN" not in recorded
    shown = json.dumps([result.final_message, result.tail, list(map(str, result.progress.recent)),
                        agent.render_progress(result.progress)])  # fmt: skip
    assert KEY not in shown and "key on stdout: ***" in result.tail and "key on stderr: ***" in result.tail
    assert "The key is ***" in [a.text for a in result.progress.recent]


async def test_a_failing_progress_callback_does_not_stop_the_run(dp, workspace, caplog):
    def broken(p: Progress) -> None:
        raise RuntimeError("check run update failed")

    result = await agent.run_agent(dp, WS, "hi", settings=quick(), masker=Masker(), on_progress=broken)
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
    result = await agent.run_agent(dp, WS, prompt, settings=quick(), masker=Masker())
    assert result.outcome == "success"
    assert (workspace / ".agent-prompt").read_bytes() == prompt.encode("utf-8")
    assert not list(workspace.parent.parent.rglob("pwned"))


async def test_the_runner_survives_a_remote_command_that_never_reads_its_stdin(dp, workspace):
    argv = devpod.ssh_command_argv(dp, WS, "echo done")
    result = await devpod.run(argv, settings=dp, timeout=30, masker=Masker(), stdin_data=b"x" * (4 << 20))
    assert result.ok and result.stdout == "done"
