"""Rendered comments and check-run texts, compared with golden files (UPDATE_GOLDEN=1 rewrites them)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.environments.journal import Action, EnvRecord, Op
from bot.environments.manager import EnvironmentManager
from bot.settings import config

GOLDEN = Path(__file__).with_name("golden")
AT = 1_795_000_000.0  # a fixed moment, so the files do not change with the clock


def manager(tmp_path, **extra) -> EnvironmentManager:
    settings = config.load({"DEVENV_STATE_DIR": str(tmp_path), "DEVPOD_HOME": str(tmp_path / "dp"),
                            "DEVENV_NAMESPACE": "devenvs", **extra})
    return EnvironmentManager(settings=settings, github=None, auth=None, dp=settings.devpod)


def record(**changes) -> EnvRecord:
    base = EnvRecord(ws_id="hello-world-pr2-4d960c", installation_id=1, owner="Codertocat", repo="Hello-World",
                     number=2, head_sha="ec26c3e57ca3a959ca5aad62de7213c562f8c821", head_ref="changes",
                     title="Update the README with new information", author="Codertocat")
    for key, value in changes.items():
        setattr(base, key, value)
    return base


SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
CASES = {
    "comment_running": record(state="running", env_sha=SHA,
                              last_action=Action("up", "Codertocat", AT, "succeeded")),
    "comment_behind": record(state="updating", env_sha="1" * 40, phase="Cloning the repository",
                             last_action=Action("sync", "Codertocat", AT, "queued")),
    "comment_queued": record(state="queued", queued_ahead=3, last_action=Action("up", "Codertocat", AT)),
    "comment_failed": record(state="failed", errors=["error creating pod: exceeded quota", "```injected fence```"],
                             last_action=Action("up", "@someone <b>", AT, "failed")),
    "comment_stopped": record(state="stopped", env_sha=SHA, last_action=Action("stop", "Codertocat", AT, "succeeded")),
    "comment_fork": record(note="This pull request comes from a fork, so it gets no environment automatically."),
    "comment_deleted": record(state="deleted", last_action=Action("delete", "Codertocat", AT, "succeeded")),
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
    compare(name, manager(tmp_path, **(links if name == "comment_running" else {})).comment_body(CASES[name]))


def test_a_failed_check_run_matches_its_golden_file(tmp_path):
    rec = record(state="failed", errors=["error creating pod: exceeded quota"])
    summary, text = manager(tmp_path).check_texts(rec, Op("up", SHA, "Codertocat", AT))
    compare("check_failed", f"{summary}\n---\n{text}")


def test_a_succeeded_check_run_matches_its_golden_file(tmp_path):
    rec = record(state="running", env_sha=SHA)
    summary, text = manager(tmp_path).check_texts(rec, Op("up", SHA, "Codertocat", AT))
    assert text is None
    compare("check_success", summary)
