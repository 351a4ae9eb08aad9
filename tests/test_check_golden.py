"""The whole ``devenv`` check run of every state, compared with golden files (UPDATE_GOLDEN=1 rewrites them).

Each file shows one write as GitHub gets it: status, conclusion, title, Details link, buttons, then
the summary and text.  ``tests/test_check_runs_e2e.py`` drives the same states end to end.
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.environments import report
from bot.environments.journal import Op
from bot.environments.states import State
from tests.test_golden import AT, SHA, compare, record, where

UP, STOP, DELETE = (Op(kind, SHA, "Codertocat", AT) for kind in ("up", "stop", "delete"))
IDE = "https://code-hello-world-pr2-4d960c.preview.example.com/"
LINKS = [{"name": "code", "url": IDE, "permission": "write"}]


def shown(run: dict[str, Any]) -> str:
    buttons = " | ".join(f"{a['label']} ({a['identifier']}: {a['description']})" for a in run["actions"] or [])
    head = (f"status: {run['status']}\nconclusion: {run['conclusion']}\ntitle: {run['output']['title']}\n"
            f"details_url: {run['details_url']}\nbuttons: {buttons or '-'}\n---\n{run['output']['summary']}")
    return head + (f"\n---\n{run['output']['text']}" if run["output"].get("text") else "")


CASES = {
    "check_run_running": (record(state=State.RUNNING, env_sha=SHA, links=LINKS), UP, "success"),
    "check_run_stopped": (record(state=State.STOPPED, env_sha=SHA), STOP, "success"),
    "check_run_deleted": (record(state=State.DELETED), DELETE, "success"),
    "check_run_deleted_closed": (record(state=State.DELETED, closed=True), DELETE, "success"),
    "check_run_failed": (record(state=State.FAILED, errors=["error creating pod: exceeded quota"]), UP, "failure"),
    "check_run_timed_out": (record(state=State.FAILED, errors=["DevPod did not finish within 1800 seconds."]),
                            UP, "timed_out"),
    "check_run_prebuilt": (record(state=State.RUNNING, env_sha=SHA, start={
        "prebuilt": True, "image": "ghcr.io/acme/prebuilds/codertocat/hello-world:devpod-0123456789abcdef",
        "sha": "2" * 40, "branch": "master", "why": None}), UP, "success"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_check_run_state_matches_its_golden_file(name, tmp_path):
    rec, op, conclusion = CASES[name]
    run = report.check_run(rec, op, where(tmp_path), status="completed", conclusion=conclusion,
                           title=report.conclusion_title(op.kind, conclusion))
    compare(name, shown(run))


def test_the_cancelled_check_run_matches_its_golden_file(tmp_path):
    rec = record(state=State.FAILED)
    run = report.check_run(rec, UP, where(tmp_path), status="completed", conclusion="cancelled",
                           title=report.fixed_title("cancelled"), summary=report.cancelled_summary())
    compare("check_run_cancelled", shown(run))


def test_the_waiting_check_run_matches_its_golden_file(tmp_path):
    rec = record(trusted=False, note=None)
    compare("check_run_waiting", shown(report.waiting_check_run(rec, where(tmp_path))))


def test_a_running_check_run_opens_the_ide_and_says_where_it_is(tmp_path):
    run = report.check_run(record(state=State.RUNNING, links=LINKS), UP, where(tmp_path), status="completed",
                           conclusion="success", title="The environment is ready")
    assert run["details_url"] == IDE and f"]({IDE})" in run["output"]["summary"]
    without_links = report.check_run(record(state=State.RUNNING), UP, where(tmp_path), status="completed",
                                     conclusion="success", title="The environment is ready")
    assert without_links["details_url"] == "https://github.com/Codertocat/Hello-World/pull/2"


def test_an_approve_button_is_offered_only_on_the_head_it_would_pin(tmp_path):
    waiting = record(trusted=False, head_sha="b" * 40)
    on_head = report.check_run(waiting, Op("up", "b" * 40, "x", AT), where(tmp_path), status="completed",
                               conclusion="action_required", title="t")
    old_head = report.check_run(waiting, UP, where(tmp_path), status="completed", conclusion="action_required",
                                title="t")
    assert [a["identifier"] for a in on_head["actions"]] == ["approve"] and old_head["actions"] == []
    approved = record(trusted=False, approved_sha=SHA)  # its head is the approved commit: nothing to approve
    assert "approve" not in [a["identifier"] for a in report.buttons(approved, "action_required")]


def test_every_button_fits_githubs_limits():
    """≤ 3 actions per run; label ≤ 20, description ≤ 40, identifier ≤ 20 characters (the API's schema)."""
    for identifier, (label, description) in report.words().buttons.items():
        assert len(identifier) <= 20 and len(label) <= 20 and len(description) <= 40, identifier
    for state in State:
        for conclusion in ("success", "neutral", "failure", "timed_out", "cancelled", "action_required"):
            assert len(report.buttons(record(state=state, trusted=False), conclusion)) <= 3
