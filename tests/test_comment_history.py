"""The sticky comment's history of actions (the last 10, newest first) and its tidy texts: a header row
that is not empty, a last action that agrees with the state line, every command in the Commands table,
and, while stopped, only the ways in that work."""

from __future__ import annotations

import json
import re

from bot.commands.verbs import VERBS
from bot.environments import report
from bot.environments.journal import HISTORY_SIZE, Action, EnvRecord, Journal, Op
from bot.environments.states import State
from tests.test_golden import AT, SHA, compare, record, where

GATEWAY = {"DEVENV_SSH_PORT": "2222", "DEVENV_SSH_HOST": "ssh.devenv.example.com"}
VERBS_IN_TURN = ["up", "stop", "up", "recreate", "reset", "sync", "stop", "up", "delete", "up", "recreate", "stop"]


def twelve_actions() -> EnvRecord:
    """A record that saw 12 commands, each asked (queued) and then ended, as the manager and executor set them."""
    rec = record(state=State.STOPPED, env_sha=SHA)
    for i, verb in enumerate(VERBS_IN_TURN):
        rec.last_action = Action(verb, f"user{i}", AT + 60 * i)
        rec.last_action = Action(verb, f"user{i}", AT + 60 * i + 30, "failed" if i % 5 == 4 else "succeeded")
    return rec


def history_rows(body: str) -> list[list[str]]:
    section = body.split("<summary>History", 1)[1].split("</details>", 1)[0]
    return [[cell.strip() for cell in line.strip("|").split("|")]
            for line in section.splitlines() if line.startswith("| 20")]


def test_twelve_actions_keep_the_last_ten_newest_first_each_with_its_outcome(tmp_path):
    rec = twelve_actions()
    assert len(rec.history) == HISTORY_SIZE == 10
    body = report.comment_body(rec, where(tmp_path))
    compare("comment_history", body)
    rows = history_rows(body)
    assert [who for _, who, _, _ in rows] == [f"user{i}" for i in range(11, 1, -1)]  # newest first; 0 and 1 dropped
    assert [what for _, _, what, _ in rows] == [f"`{v}`" for v in reversed(VERBS_IN_TURN[2:])]
    assert [outcome for *_, outcome in rows] == ["failed" if i % 5 == 4 else "succeeded" for i in range(11, 1, -1)]
    assert "(the last 10 actions, newest first)" in body


def test_requests_merged_into_one_operation_each_keep_their_asker_and_get_its_outcome():
    rec = record()
    rec.last_action = Action("up", "alice", AT)
    rec.last_action = Action("up", "bob", AT + 1)
    rec.last_action = Action("up", "alice", AT + 9, "succeeded")
    assert [(a.by, a.outcome) for a in rec.history] == [("bob", "succeeded"), ("alice", "succeeded")]


def test_an_old_journal_file_with_one_action_still_loads_with_it_as_its_history(tmp_path):
    journal = Journal(tmp_path)
    old = record(last_action=Action("up", "Codertocat", AT, "succeeded")).to_json()
    old.pop("history")  # written before the history was kept
    (journal.dir / "hello-world-pr2-4d960c.json").write_text(json.dumps(old))
    [loaded] = journal.load_all()
    assert loaded.history == [Action("up", "Codertocat", AT, "succeeded")]
    loaded.last_action = Action("stop", "octocat", AT + 5, "succeeded")
    journal.save(loaded)
    [again] = journal.load_all()
    assert [a.verb for a in again.history] == ["up", "stop"] and again.last_action == again.history[-1]


def test_while_creating_the_last_action_agrees_with_the_state_line(tmp_path):
    rec = record(state=State.CREATING, phase="Starting DevPod", op=Op("up", SHA, "Codertocat", AT))
    rec.last_action = Action("up", "Codertocat", AT)
    body = report.comment_body(rec, where(tmp_path))
    compare("comment_creating", body)
    assert "**State:** 🔨 Being created — Starting DevPod" in body
    assert "— in progress," in body and "queued" not in body


def test_no_table_renders_an_empty_header_row(tmp_path):
    for rec, extra in [(twelve_actions(), {}), (record(state=State.RUNNING, env_sha=SHA), GATEWAY)]:
        body = report.comment_body(rec, where(tmp_path, **extra))
        headers = [line for i, line in enumerate(body.splitlines()[1:]) if re.fullmatch(r"(\|---)+\|", line)]
        assert headers
        assert not re.search(r"^\|( *\|)+$", body, re.MULTILINE), body


def test_the_commands_table_lists_every_command(tmp_path):
    body = report.comment_body(record(), where(tmp_path))
    table = body.split("<summary>Commands</summary>", 1)[1]
    for verb in VERBS:
        assert f"| `/devenv {verb}" in table, verb
    for verb in ("approve", "agent run", "agent stop", "logs"):
        assert f"`/devenv {verb}" in table


def test_a_stopped_comment_lists_only_ways_in_that_work_when_stopped(tmp_path):
    body = report.comment_body(record(state=State.STOPPED, env_sha=SHA), where(tmp_path))
    assert "devpod ssh" not in body and "kubectl exec" not in body
    assert "| While stopped | none: comment `/devenv up` to wake it |" in body
    gateway = report.comment_body(record(state=State.STOPPED, env_sha=SHA), where(tmp_path, **GATEWAY))
    compare("comment_ssh_stopped", gateway)
    assert "connecting wakes it" in gateway and "For operators" not in gateway and "kubectl" not in gateway


def test_a_port_name_with_a_dash_is_refused_by_the_settings_with_a_clear_message():
    from bot.repo_settings.schema import SettingsError
    from bot.repo_settings.validate import parse_settings

    try:
        parse_settings("ports:\n  - {name: admin-api, port: 8080}\n")
    except SettingsError as exc:
        message = str(exc)
    else:
        raise AssertionError("admin-api was accepted, and would get no link")
    assert "ports[0].name: 'admin-api' may hold only lower-case letters and digits, starting with a letter; no -" in message
    assert "e.g. 'adminapi'" in message


def test_every_port_name_the_settings_accept_gets_its_link():
    from bot.cluster.workspace import exposed_workspace
    from bot.repo_settings.validate import parse_settings
    from bot.settings.exposure import ExposureSettings

    exposure = ExposureSettings.from_env({"DEVENV_PREVIEW_DOMAIN": "preview.example.com",
                                          "DEVENV_AUTH_URL": "http://bot:3000/auth/check",
                                          "DEVENV_BOT_SERVICE": "devenv-bot:3000",
                                          "DEVENV_AUTH_SIGNIN": "https://devenv.example.com/auth/login"})
    assert exposure is not None
    settings = parse_settings("ports:\n  - {name: web, port: 3000}\n  - {name: adminapi2, port: 8080}\n")
    ws = exposed_workspace(exposure, "hello-world-pr2-4d960c", None, {p.name: p.port for p in settings.ports})
    assert [name for name, _ in ws.ports] == ["code", "adminapi2", "web"]
