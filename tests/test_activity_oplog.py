"""The last DevPod operation's output survives a restart (``/devenv logs``): a small file per workspace."""

from __future__ import annotations

import json
import stat

from bot.devpod import LogLine
from bot.environments.oplog import KEPT_LINES, OperationLogs
from tests import payloads
from tests.test_activity import Clock
from tests.test_commands_e2e import OWNER, REPO, command, replies
from tests.test_environments import WS, start


def test_the_output_is_written_while_it_runs_at_most_every_few_seconds_and_at_its_end(tmp_path):
    clock = Clock()
    logs = OperationLogs(clock, tmp_path / "oplogs", save_every=5)
    keep = logs.watch(WS, "up", lambda line: None)
    path = tmp_path / "oplogs" / f"{WS}.json"
    assert json.loads(path.read_text())["lines"] == []  # the new operation's file replaces the old one at once
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for i in range(KEPT_LINES + 20):
        keep(LogLine(f"step {i}", level="info"))
    assert json.loads(path.read_text())["lines"] == []  # within five seconds: not written again
    clock.now += 5
    keep(LogLine("later", level="info"))
    kept = json.loads(path.read_text())
    assert len(kept["lines"]) == KEPT_LINES and kept["lines"][-1] == "[info] later" and kept["total"] == KEPT_LINES + 21
    keep(LogLine("the end"))
    logs.save(WS)  # the operation's end
    again = OperationLogs(clock, tmp_path / "oplogs").last(WS)  # as after a restart
    assert again is not None and again.kind == "up" and list(again.lines)[-1] == "the end"
    assert again.total == KEPT_LINES + 22 and len(again.lines) == KEPT_LINES
    logs.forget(WS)
    assert not path.exists() and OperationLogs(clock, tmp_path / "oplogs").last(WS) is None


def test_a_file_that_cannot_be_read_is_ignored(tmp_path):
    (tmp_path / f"{WS}.json").write_text("{not json")
    assert OperationLogs(Clock(), tmp_path).last(WS) is None


async def test_logs_after_a_restart_still_show_the_last_operation(environ, repo, github, devpod):
    github.set_permission(OWNER, REPO, "octocat", "read")
    first = await start(environ)
    await first.deliver("pull_request", payloads.pull_request("opened"))
    await first.settle()
    await first.stop()
    second = await start(environ)
    try:
        status, _ = await second.deliver("issue_comment", command(github, "/devenv logs 3", user="octocat"))
        assert status == 202
        await second.settle()
        [reply] = replies(github)
        assert "<summary>The last DevPod operation: <code>up</code>" in reply
        assert f"[info] Run 'ssh {WS}.devpod' to ssh into the devcontainer" in reply
    finally:
        await second.stop()
