"""Rendered comments and check-run texts, compared with golden files (UPDATE_GOLDEN=1 rewrites them)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from bot.environments import report
from bot.environments.journal import Action, EnvRecord, Op
from bot.environments.manager import EnvironmentManager
from bot.environments.states import Event, State
from bot.settings import config

GOLDEN = Path(__file__).with_name("golden")
AT = 1_795_000_000.0  # a fixed moment, so the files do not change with the clock


def settings(tmp_path, **extra) -> config.Settings:
    return config.load({"DEVENV_STATE_DIR": str(tmp_path), "DEVPOD_HOME": str(tmp_path / "dp"),
                        "DEVENV_NAMESPACE": "devenvs", **extra})


def where(tmp_path, **extra) -> report.Where:
    """What the texts need of the deployment's settings: no manager, no journal, no DevPod."""
    return report.Where.of(settings(tmp_path, **extra))


def manager(tmp_path, **extra) -> EnvironmentManager:
    """A whole (not started) manager, for tests of what it adds to the report (tests/test_links_e2e.py)."""
    loaded = settings(tmp_path, **extra)
    return EnvironmentManager(settings=loaded, github=None, auth=None, dp=loaded.devpod)


def record(**changes) -> EnvRecord:
    base = EnvRecord(ws_id="hello-world-pr2-4d960c", installation_id=1, owner="Codertocat", repo="Hello-World",
                     number=2, head_sha="ec26c3e57ca3a959ca5aad62de7213c562f8c821", head_ref="changes",
                     title="Update the README with new information", author="Codertocat")
    return dataclasses.replace(base, **changes)


SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
CASES = {
    "comment_running": record(state=State.RUNNING, env_sha=SHA,
                              last_action=Action("up", "Codertocat", AT, "succeeded")),
    "comment_behind": record(state=State.UPDATING, env_sha="1" * 40, phase="Cloning the repository",
                             last_action=Action("sync", "Codertocat", AT, "queued")),
    "comment_queued": record(state=State.QUEUED, queued_ahead=3, last_action=Action("up", "Codertocat", AT)),
    "comment_failed": record(state=State.FAILED, errors=["error creating pod: exceeded quota", "```injected fence```"],
                             last_action=Action("up", "@someone <b>", AT, "failed")),
    "comment_stopped": record(state=State.STOPPED, env_sha=SHA, last_action=Action("stop", "Codertocat", AT, "succeeded")),
    "comment_fork": record(note="This pull request comes from a fork, so it gets no environment automatically."),
    "comment_deleted": record(state=State.DELETED, last_action=Action("delete", "Codertocat", AT, "succeeded")),
    # where it started from (issue 15): a prebuilt image, or from scratch and why
    "comment_prebuilt": record(state=State.RUNNING, env_sha=SHA, last_action=Action("up", "Codertocat", AT, "succeeded"),
                               start={"prebuilt": True, "image": "ghcr.io/acme/prebuilds/codertocat/hello-world:"
                                      "devpod-0123456789abcdef0123456789abcdef", "sha": "2" * 40, "branch": "master",
                                      "why": None}),
    "comment_scratch_no_prebuild": record(state=State.RUNNING, env_sha=SHA,
                                          last_action=Action("up", "Codertocat", AT, "succeeded"),
                                          start={"prebuilt": False, "image": None, "sha": None, "branch": "master",
                                                 "why": "none"}),
    "comment_scratch_changed": record(state=State.RUNNING, env_sha=SHA,
                                      last_action=Action("up", "Codertocat", AT, "succeeded"),
                                      start={"prebuilt": False, "image": "r:devpod-1", "sha": "2" * 40,
                                             "branch": "master", "why": "differs"}),
}


def compare(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.md"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"{path} is missing: run with UPDATE_GOLDEN=1 once and review it"
    assert text == path.read_text()


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_sticky_comment_matches_its_golden_file(name, tmp_path):
    links = {"DEVENV_PREVIEW_DOMAIN": "preview.example.com", "DEVENV_AUTH_URL": "http://bot:3000/auth/check",
             "DEVENV_BOT_SERVICE": "devenv-bot:3000", "DEVENV_PUBLIC_URL": "https://devenv.example.com"}
    compare(name, report.comment_body(CASES[name], where(tmp_path, **(links if name == "comment_running" else {}))))


def test_a_failed_check_run_matches_its_golden_file(tmp_path):
    rec = record(state=State.FAILED, errors=["error creating pod: exceeded quota"])
    summary, text = report.check_texts(rec, Op("up", SHA, "Codertocat", AT), where(tmp_path))
    compare("check_failed", f"{summary}\n---\n{text}")


def test_a_clone_failure_check_run_names_the_cause(tmp_path):
    """DevPod logs the cause at info before a generic fatal (CONTRACT §9); the summary names it."""
    rec = record(state=State.FAILED, errors=["clone repository: exit status 128",
                                             "run agent command: Process exited with status 1"])
    summary, text = report.check_texts(rec, Op("up", SHA, "Codertocat", AT), where(tmp_path))
    compare("check_failed_clone", f"{summary}\n---\n{text}")
    assert "**Likely cause:** cloning the repository" in summary


def test_a_succeeded_check_run_matches_its_golden_file(tmp_path):
    rec = record(state=State.RUNNING, env_sha=SHA)
    summary, text = report.check_texts(rec, Op("up", SHA, "Codertocat", AT), where(tmp_path))
    assert text is None
    compare("check_success", summary)


# The short texts of the report, as a table: every word comes from templates/environment_words.j2.
UP, SYNC = Op("up", SHA, "Codertocat", AT), Op("sync", SHA, "Codertocat", AT, resumed=True)


@pytest.mark.parametrize(("text", "expected"), [
    (lambda: report.queued_title(UP), "Creating the environment: queued"),
    (lambda: report.title(SYNC), "Updating the environment to the new head (resumed after a bot restart)"),
    (lambda: report.phase_title(UP, "Cloning the repository"), "Creating the environment: Cloning the repository"),
    (lambda: report.position_title(3), "Queued, 3 ahead"),
    (lambda: report.position_title(0), "Queued, next in line"),
    (lambda: report.conclusion_title("up", "success"), "The environment is ready"),
    (lambda: report.conclusion_title("stop", "success"), "Stopped — nothing lost"),
    (lambda: report.conclusion_title("delete", "success"), "Deleted"),
    (lambda: report.conclusion_title("status", "success"), "Done"),
    (lambda: report.conclusion_title("delete", "failure"), "Deleting the environment failed"),
    (lambda: report.conclusion_title("up", "timed_out"), "Creating the environment timed out"),
    (lambda: report.outcome_title("sync", "action_required", Event.SYNC_BLOCKED),
     "Not updated: local changes in the environment"),
    (lambda: report.outcome_title("up", "action_required", Event.HEAD_MOVED_NO_ENV),
     "Waiting for a maintainer's approval of this commit"),
    (lambda: report.dropped_title("superseded by a delete"), "Cancelled: superseded by a delete"),
    (lambda: report.timed_out_error(1800.0), "DevPod did not finish within 1800 seconds."),
], ids=lambda v: v if isinstance(v, str) else "")
def test_the_check_run_titles(text, expected):
    assert text() == expected


@pytest.mark.parametrize(("state", "conclusion", "labels"), [
    (State.FAILED, "failure", ["Retry", "Recreate", "Delete"]),
    (State.RUNNING, "timed_out", ["Retry", "Recreate", "Delete"]),
    (State.RUNNING, "success", ["Extend", "Stop", "Delete"]),
    (State.STOPPED, "success", ["Wake", "Extend", "Delete"]),
    (State.NONE, "action_required", ["Retry"]),
])
def test_the_check_run_buttons_follow_the_state_and_the_conclusion(state, conclusion, labels):
    assert [b["label"] for b in report.buttons(record(state=state), conclusion)] == labels


def test_the_paused_note_names_the_approved_commit_once_there_is_one(tmp_path):
    assert "`ec26c3e` was approved" in report.paused_note(record(approved_sha=SHA), where(tmp_path))
    assert "gets no environment until a maintainer" in report.paused_note(record(), where(tmp_path))
