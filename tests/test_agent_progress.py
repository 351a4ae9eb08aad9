"""The rolling view of a run: what it counts and keeps, and how it renders within its byte budget."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from bot.agent.progress import Progress, render_progress
from bot.agent.stream import AgentEvent, FinalResult, ToolUse, parse_stream_line
from tests.claude_samples import needs_samples, sample_lines

pytestmark = needs_samples


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
    p.final = FinalResult(is_error=False, subtype="success", result="```\n@here done\n```")
    text = render_progress(p, status="Finished")
    assert text.startswith("**Finished** · 1 tool call · 0 files changed")
    assert "**Not allowed:**\n- Bash: `touch made.txt`" in text
    assert "@octocat" not in text and "<img" not in text and "#1" not in text
    assert "````text\n```\n@here done\n```\n````" in text  # fenced with a longer fence, verbatim


@given(st.lists(st.text(max_size=400), max_size=30), st.text(max_size=5000), st.integers(300, 6000))
def test_rendered_progress_never_exceeds_its_byte_limit(texts, final, limit):
    p = Progress()
    for t in texts:
        p.feed(AgentEvent("assistant", texts=(t,)))
        p.feed(AgentEvent("assistant", tool_uses=(ToolUse("t", "Edit", t, (t or "f",)),)))
    p.final = FinalResult(is_error=True, subtype="success", result=final or None)
    assert len(render_progress(p, status="Failed", limit_bytes=limit).encode()) <= limit
