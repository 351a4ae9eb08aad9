"""Slash commands and check-run buttons end to end: the real app on a socket, the emulator, the stand-in devpod."""

from __future__ import annotations

import asyncio

from tests import payloads

OWNER, REPO, NUMBER = "Codertocat", "Hello-World", payloads.PR_NUMBER
WS = "hello-world-pr2-4d960c"


def command(github, body: str, *, user: str = "Codertocat", **kwargs) -> dict:
    """A comment that exists in the emulator, and its ``issue_comment`` delivery."""
    comment = github.add_comment(OWNER, REPO, NUMBER, body, user=user)
    return payloads.pr_comment(body, user=user, comment_id=comment["id"], **kwargs)


def reactions(github, payload: dict) -> list[str]:
    return [r["content"] for r in github.reactions(OWNER, REPO, payload["comment"]["id"])]


def replies(github) -> list[str]:
    return [c["body"] for c in github.comments(OWNER, REPO, NUMBER)
            if c["user"]["type"] == "Bot" and "devenv-bot:sticky" not in c["body"]]


def writes(github) -> list:
    return [c for c in github.calls if c.method != "GET" and "/access_tokens" not in c.path]


def check_run_event(github, action: str = "requested_action", identifier: str | None = "recreate",
                    *, user: str = "Codertocat", pull_requests: bool = True) -> dict:
    """A ``check_run`` delivery about this app's ``devenv`` check run on PR 2, from GitHub's real example."""
    payload = payloads.example("check_run", "requested_action")
    payload["action"] = action
    if action == "requested_action":
        payload["requested_action"] = {"identifier": identifier}
    else:  # GitHub only offers "Re-run" on a completed check run
        del payload["requested_action"]
        payload["check_run"].update(status="completed", conclusion="failure", completed_at="2020-12-03T18:30:00Z")
        payload["check_run"]["check_suite"].update(status="completed", conclusion="failure")
    opened = payloads.pull_request("opened")
    payload["repository"] = opened["repository"]
    payload["installation"] = opened["installation"]
    payload.pop("organization", None)
    payload["sender"] = {**opened["sender"], "login": user}
    run = payload["check_run"]
    run["name"], run["external_id"], run["head_sha"] = "devenv", WS, opened["pull_request"]["head"]["sha"]
    run["app"]["id"] = github.app_id
    pr = run["pull_requests"][0]
    pr.update(url=f"{github.api_url}/repos/{OWNER}/{REPO}/pulls/{NUMBER}", number=NUMBER)
    run["pull_requests"] = [pr] if pull_requests else []
    return payloads.validate("check_run", payload)


async def open_pr(server, github) -> None:
    """The PR opened, its environment running; Codertocat (who will press buttons) may write."""
    github.set_permission(OWNER, REPO, "Codertocat", "write")
    await server.deliver("pull_request", payloads.pull_request("opened"))
    await server.settle()


async def test_a_writer_recreates_with_a_comment_and_sees_eyes_then_a_rocket(server, github, devpod):
    github.set_permission(OWNER, REPO, "octocat", "write")
    payload = command(github, "/devenv recreate", user="octocat")
    status, _ = await server.deliver("issue_comment", payload)
    await server.settle()
    assert status == 202
    [up] = devpod.calls("up")
    assert "--recreate=true" in up["argv"]
    assert reactions(github, payload) == ["eyes", "rocket"]
    assert github.check_runs(OWNER, REPO)[-1]["conclusion"] == "success"
    github.assert_valid()


async def test_a_failed_command_ends_with_a_confused_reaction(server, github, devpod):
    github.set_permission(OWNER, REPO, "octocat", "write")
    devpod.inject(command="up", exit=1)
    payload = command(github, "/devenv up", user="octocat")
    await server.deliver("issue_comment", payload)
    await server.settle()
    assert reactions(github, payload) == ["eyes", "confused"]


async def test_a_read_only_user_cannot_recreate(server, github, devpod):
    github.set_permission(OWNER, REPO, "reader", "read")
    payload = command(github, "/devenv recreate", user="reader")
    await server.deliver("issue_comment", payload)
    await server.settle()
    assert devpod.calls("up") == []
    [reply] = replies(github)
    assert "needs **write** access" in reply and "you have **read**" in reply
    assert reactions(github, payload) == ["confused"]
    assert github.calls_to("GET", r"/collaborators/reader/permission")


async def test_a_bots_comment_is_ignored(server, github, devpod):
    await server.deliver("issue_comment", command(github, "/devenv up", user="dependabot[bot]", user_type="Bot"))
    await server.settle()
    assert writes(github) == [] and devpod.calls("up") == []


async def test_an_edited_comment_is_ignored(server, github, devpod):
    github.set_permission(OWNER, REPO, "octocat", "write")
    payload = command(github, "/devenv up", user="octocat")
    payload["action"] = "edited"
    payload["changes"] = {"body": {"from": "hello"}}
    await server.deliver("issue_comment", payloads.validate("issue_comment", payload))
    await server.settle()
    assert writes(github) == [] and devpod.calls("up") == []


async def test_a_comment_on_a_plain_issue_is_ignored(server, github, devpod):
    number = github.add_issue(OWNER, REPO)
    comment = github.add_comment(OWNER, REPO, number, "/devenv up")
    await server.deliver("issue_comment", payloads.issue_comment("/devenv up", number=number, comment_id=comment["id"]))
    await server.settle()
    assert writes(github) == [] and devpod.calls("up") == []


async def test_help_lists_what_a_reader_may_run_and_what_needs_write(server, github):
    github.set_permission(OWNER, REPO, "reader", "read")
    await server.deliver("issue_comment", command(github, "/devenv help", user="reader"))
    await server.settle()
    [reply] = replies(github)
    allowed, refused = reply.split("These need more access than you have:")
    assert "`/devenv status`" in allowed and "`/devenv help`" in allowed and "`/devenv up`" not in allowed
    for verb in ("up", "recreate", "reset", "stop", "delete", 'agent run "<prompt>"', "agent stop", "extend"):
        assert f"`/devenv {verb}`: " in refused
    assert refused.count("Needs write access.") == 9  # the agent verbs are in tests/test_agent_e2e.py


async def test_an_unknown_verb_gets_a_did_you_mean_reply(server, github, devpod):
    payload = command(github, "/devenv rebuild")
    await server.deliver("issue_comment", payload)
    await server.settle()
    [reply] = replies(github)
    assert "Did you mean `/devenv recreate`?" in reply
    assert reactions(github, payload) == ["confused"] and devpod.calls("up") == []


async def test_a_writer_starts_an_environment_for_a_fork_pr(server, github, devpod):
    github.set_permission(OWNER, REPO, "octocat", "write")
    await server.deliver("pull_request", payloads.pull_request("opened", fork="stranger/Hello-World"))
    await server.settle()
    assert devpod.calls("up") == []
    await server.deliver("issue_comment", command(github, "/devenv up", user="stranger"))
    await server.settle()
    assert devpod.calls("up") == []
    await server.deliver("issue_comment", command(github, "/devenv up", user="octocat"))
    await server.settle()
    assert len(devpod.calls("up")) == 1


async def test_the_recreate_button_pressed_by_a_writer_recreates(server, github, devpod):
    await open_pr(server, github)
    status, _ = await server.deliver("check_run", check_run_event(github, identifier="recreate"))
    await server.settle()
    assert status == 202
    ups = devpod.calls("up")
    assert len(ups) == 2 and "--recreate=true" in ups[1]["argv"]


async def test_the_recreate_button_pressed_by_a_reader_does_nothing(server, github, devpod):
    await open_pr(server, github)
    github.set_permission(OWNER, REPO, "reader", "read")
    github.reset_calls()
    await server.deliver("check_run", check_run_event(github, identifier="recreate", user="reader"))
    await server.settle()
    assert len(devpod.calls("up")) == 1 and writes(github) == []


async def test_retry_without_pull_requests_finds_the_pr_by_workspace_and_repeats_the_last_action(
        server, github, devpod):
    await open_pr(server, github)
    await server.deliver("check_run", check_run_event(github, identifier="retry", pull_requests=False))
    await server.settle()
    ups = devpod.calls("up")
    assert len(ups) == 2 and "--recreate=true" not in ups[1]["argv"]


async def test_re_running_the_check_runs_up_again(server, github, devpod):
    await open_pr(server, github)
    await server.deliver("check_run", check_run_event(github, "rerequested", None))
    await server.settle()
    assert len(devpod.calls("up")) == 2


async def test_another_apps_check_run_is_ignored(server, github, devpod):
    await open_pr(server, github)
    payload = check_run_event(github)
    payload["check_run"]["app"]["id"] = github.app_id + 1
    await server.deliver("check_run", payload)
    await server.settle()
    assert len(devpod.calls("up")) == 1


async def test_a_warm_command_costs_few_github_calls_before_its_check_run_is_queued(server, github, devpod):
    github.set_permission(OWNER, REPO, "octocat", "write")
    await server.deliver("issue_comment", command(github, "/devenv up", user="octocat"))
    await server.settle()
    github.reset_calls()
    payload = command(github, "/devenv recreate", user="octocat")
    await server.deliver("issue_comment", payload)
    await server.settle()
    calls = [c for c in github.calls if "/access_tokens" not in c.path]
    # the head's check run (made by the up) is edited to queued, not made again
    queued = next(i for i, c in enumerate(calls) if c.method in ("POST", "PATCH") and "/check-runs" in c.path)
    before = [f"{c.method} {c.path}" for c in calls[: queued + 1]]
    print("calls up to the queued check run:", before)
    assert len(before) <= 6, before
    assert github.calls_to("GET", r"/collaborators/octocat/permission") == []  # cached from the first command
    assert reactions(github, payload) == ["eyes", "rocket"]


async def test_two_writers_asking_for_the_same_thing_at_once_both_get_an_answer(server, github, devpod):
    github.set_permission(OWNER, REPO, "octocat", "write")
    github.set_permission(OWNER, REPO, "hubot", "write")
    devpod.inject(command="up", sleep=0.8)
    first = command(github, "/devenv up", user="octocat")
    await server.deliver("issue_comment", first)
    for _ in range(100):  # wait until the first up runs
        if devpod.calls("up"):
            break
        await asyncio.sleep(0.05)
    second = command(github, "/devenv up", user="hubot")
    await server.deliver("issue_comment", second)
    await server.settle()
    assert len(devpod.calls("up")) == 1  # the duplicate was merged into the running up
    assert reactions(github, first) == ["eyes", "rocket"]
    assert reactions(github, second) == ["eyes", "rocket"]
