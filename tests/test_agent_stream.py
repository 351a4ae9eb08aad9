"""The stream-json parser, on every line of Claude Code's real samples."""

from __future__ import annotations

import json

import pytest

from bot.agent.stream import AgentEvent, Denial, ToolResult, ToolUse, parse_stream_line
from tests.claude_samples import SAMPLES, needs_samples, sample_lines

pytestmark = needs_samples

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
    assert tool.tool_uses == (ToolUse("toolu_mock01", "Bash", "echo hello-from-tool"),)
    assert result.kind == "user"
    assert result.tool_results == (ToolResult("toolu_mock01", "hello-from-tool", False),)
    assert final.final.result == last_text.texts[0] == "All done: the command printed hello-from-tool."
    assert (final.final.num_turns, final.final.total_cost_usd, final.final.duration_ms) == (2, 0.0016, 236)


def test_a_permission_denial_is_parsed_from_the_system_frame_and_the_result():
    events = [parse_stream_line(line) for line in sample_lines("b1.jsonl")]
    denied = [e for e in events if e.kind == "permission_denied"]
    assert len(denied) == 1 and denied[0].tool_name == "Bash" and "needs approval" in denied[0].text
    assert events[-1].final.permission_denials == (Denial("Bash", "touch made.txt", "toolu_mock01"),)
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
    def use(name: str, tool_input: dict) -> ToolUse:
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
    assert parse_stream_line("npm WARN deprecated") == AgentEvent("raw", text="npm WARN deprecated")
    assert parse_stream_line('{"truncated": ').kind == "raw"
    assert parse_stream_line("[1, 2]").kind == "raw"
    assert parse_stream_line('{"type": "rate_limit_event"}').kind == "other"
