"""The head's ``devenv`` check run tells the truth in every state, end to end (issue 13, item 1).

The real bot on a socket, the GitHub emulator (which validates every request against GitHub's
OpenAPI description: ≤ 3 actions, labels ≤ 20, descriptions ≤ 40 characters) and the stand-in
devpod.  Each table walks a pull request through commands, buttons and lifecycle events; after
each step the head's one check run must show the state (status, conclusion, title, buttons), and
the step must cost no more check-run writes than its stated budget.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests import payloads
from tests.observe import devenv_runs, sticky
from tests.test_approval import FIRST, FORK, SECOND, fork_pr
from tests.test_commands_e2e import check_run_event, command
from tests.test_links_e2e import links_environ  # noqa: F401  (the browser-links rig)

OWNER, REPO, NUMBER = "Codertocat", "Hello-World", payloads.PR_NUMBER
READY = ("completed", "success", "The environment is ready", ["Extend", "Stop", "Delete"])
STOPPED = ("completed", "neutral", "Stopped — nothing lost", ["Wake", "Extend", "Delete"])
DELETED = ("completed", "neutral", "Deleted", ["Create"])
DELETED_CLOSED = ("completed", "neutral", "Deleted", [])
WAITING = ("completed", "action_required", "Waiting for a maintainer's approval of this commit", ["Approve"])
FAILED = ("completed", "failure", "Creating the environment failed", ["Retry", "Recreate", "Delete"])


PACE = 10.0  # seconds between two writes of one check run that are not urgent (the default is 3)


@pytest.fixture
def environ(environ):
    """Writes paced as in production (the suite's default, 0, writes every phase): a state that is
    replaced within the interval is never written; a conclusion is written at once."""
    return {**environ, "DEVENV_PUBLISH_INTERVAL": str(PACE)}


@dataclasses.dataclass
class Step:
    name: str
    act: Callable[[Any, Any, Any], Awaitable[None]]
    shows: tuple[str, str, str, list[str]]
    budget: int  # check-run writes (creates and edits) this step may cost at most: a new check run is
    # created, started and concluded (3); an edited one restarted and concluded (2); a stop or delete
    # that ends within the pace shows only its end (1)


def check_writes(github) -> list:
    return [c for c in github.calls if c.method in ("POST", "PATCH") and "/check-runs" in c.path]


def press(github, identifier: str, *, user: str = "Codertocat") -> dict:
    """A click on a button of the head's check run: the delivery names that check run and its head."""
    [run] = devenv_runs(github)
    payload = check_run_event(github, identifier=identifier, user=user)
    payload["check_run"].update(id=run["id"], head_sha=run["head_sha"])
    return payload


def comment(body: str, user: str = "Codertocat") -> Callable[[Any, Any, Any], Awaitable[None]]:
    async def act(server, github, devpod) -> None:
        await server.deliver("issue_comment", command(github, body, user=user))
    return act


def button(identifier: str, user: str = "Codertocat") -> Callable[[Any, Any, Any], Awaitable[None]]:
    async def act(server, github, devpod) -> None:
        await server.deliver("check_run", press(github, identifier, user=user))
    return act


def event(action: str, **kwargs: Any) -> Callable[[Any, Any, Any], Awaitable[None]]:
    async def act(server, github, devpod) -> None:
        if action == "closed":
            github.add_pull(OWNER, REPO, NUMBER, head_sha=payloads.pull_request("opened")["pull_request"]["head"]["sha"],
                            state="closed")
        await server.deliver("pull_request", payloads.pull_request(action, **kwargs))
    return act


async def idle_for_three_hours(server, github, devpod) -> None:
    """The idle reaper's sweep, on a clock three hours ahead (the default idle stop is two)."""
    reaper = server.bot.reaper
    reaper.clock = lambda: time.time() + 3 * 3600
    assert reaper.sweep() == [("hello-world-pr2-4d960c", "stop")]


async def walk(server, github, devpod, steps: list[Step]) -> None:
    for step in steps:
        github.reset_calls()
        await step.act(server, github, devpod)
        await server.settle()
        runs = devenv_runs(github)
        assert len(runs) == 1, f"{step.name}: one check run per head, found {len(runs)}"
        [run] = runs
        shown = (run["status"], run["conclusion"], run["output"]["title"],
                 [a["label"] for a in run.get("actions") or []])
        assert shown == step.shows, f"after {step.name}"
        assert run["details_url"] == pr_page(server), f"{step.name}: Details opens the PR's environment page"
        spent = len(check_writes(github))
        assert spent <= step.budget, f"{step.name}: {spent} check-run writes, budget {step.budget}"
    github.assert_valid()


def pr_page(server) -> str:
    return f"{server.bot.settings.github_url}/{OWNER}/{REPO}/pull/{NUMBER}"


async def test_the_check_run_follows_a_trusted_pr_through_its_life(server, github, devpod):
    github.set_permission(OWNER, REPO, "Codertocat", "admin")
    await walk(server, github, devpod, [
        Step("opened", event("opened"), READY, 3),
        Step("/devenv stop", comment("/devenv stop"), STOPPED, 1),
        Step("Wake button", button("wake"), READY, 2),
        Step("idle stop", idle_for_three_hours, STOPPED, 1),
        Step("/devenv delete", comment("/devenv delete"), DELETED, 1),
        Step("Create button", button("create"), READY, 2),
        Step("converted to draft", event("converted_to_draft"), STOPPED, 1),
        Step("PR closed", event("closed"), DELETED_CLOSED, 1),
    ])
    assert len(devpod.calls("up")) == 3 and len(devpod.calls("stop")) == 3 and len(devpod.calls("delete")) == 2


async def test_a_failed_up_offers_retry_and_the_retry_edits_the_same_check_run(server, github, devpod):
    github.set_permission(OWNER, REPO, "Codertocat", "admin")
    devpod.inject(command="up", exit=1)
    await walk(server, github, devpod, [
        Step("opened, up fails", event("opened"), FAILED, 3),
        Step("Retry button", button("retry"), READY, 2),
    ])


async def test_an_untrusted_pr_waits_with_an_approve_button_that_pins_its_head(server, github, devpod):
    github.set_permission(OWNER, REPO, "maintainer", "write")

    async def fork_opened(server, github, devpod) -> None:
        await server.deliver("pull_request", fork_pr(github, FIRST, devpod))

    await walk(server, github, devpod, [
        Step("fork PR opened", fork_opened, WAITING, 1),
        Step("Approve pressed by the author", button("approve", user="stranger"), WAITING, 0),
        Step("Approve pressed by a writer", button("approve", user="maintainer"), READY, 2),
    ])
    record = server.bot.environments.records["hello-world-pr2-4d960c"]
    assert (record.approved_sha, record.approved_by, record.env_sha) == (FIRST, "maintainer", FIRST)
    assert len(devpod.calls("up")) == 1


async def test_an_approve_button_on_an_old_head_does_nothing(server, github, devpod):
    github.set_permission(OWNER, REPO, "maintainer", "write")
    await server.deliver("pull_request", fork_pr(github, FIRST, devpod))
    await server.settle()
    stale = press(github, "approve", user="maintainer")  # the button of FIRST's check run
    fork_pr(github, SECOND, devpod)  # the author pushes before the maintainer clicks
    await server.deliver("pull_request", payloads.pull_request("synchronize", head_sha=SECOND, fork=FORK,
                                                               author="stranger"))
    await server.settle()
    github.reset_calls()
    await server.deliver("check_run", stale)
    await server.settle()
    assert devpod.calls("up") == [] and check_writes(github) == []
    record = server.bot.environments.records["hello-world-pr2-4d960c"]
    assert record.approved_sha is None


async def test_with_browser_links_the_ready_check_run_opens_the_ide_and_a_stopped_one_the_pr(
        links_environ, github, kube, devpod):
    from bot.settings import config
    from tests.botserver import BotServer
    from tests.test_links_e2e import IDE

    srv = await BotServer(config.load(links_environ)).start()
    try:
        await srv.deliver("pull_request", payloads.pull_request("opened"))
        await srv.settle()
        [run] = devenv_runs(github)
        ide = run["details_url"]  # the comment's IDE link, which opens the workspace's folder
        assert ide.startswith(IDE) and f"[VS Code in the browser]({ide})" in run["output"]["summary"]
        assert ide in sticky(github)
        await srv.deliver("issue_comment", command(github, "/devenv stop"))
        await srv.settle()
        [run] = devenv_runs(github)
        assert run["output"]["title"] == "Stopped — nothing lost" and run["details_url"] == pr_page(srv)
    finally:
        await srv.stop()
