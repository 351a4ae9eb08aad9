"""Untrusted code (forks, authors without write) runs only at a commit a maintainer approved."""

from __future__ import annotations

import asyncio

import pytest

from bot import devpod as devpod_pkg
from bot.environments.journal import EnvRecord
from bot.environments.operations import CloneWatch, Operations, UnapprovedClone
from bot.settings import config
from tests import payloads
from tests.botserver import BotServer
from tests.eventually import eventually
from tests.observe import devenv_runs, sticky
from tests.test_commands_e2e import command, reactions

OWNER, REPO, NUMBER = "Codertocat", "Hello-World", payloads.PR_NUMBER
FORK = "stranger/Hello-World"
FIRST, SECOND = "a1" * 20, "b2" * 20
WS = "hello-world-pr2-4d960c"
PR_REF = f"refs/pull/{NUMBER}/head"


def fork_pr(github, head: str, devpod=None) -> dict:
    """The PR as the emulator serves it (what the bot fetches), as DevPod's clone finds it (``pull/N/head``
    on the base repository), and its webhook payload."""
    github.add_pull(OWNER, REPO, NUMBER, head_sha=head, head_repo=FORK, user="stranger")
    if devpod is not None:
        devpod.set_refs(f"{OWNER}/{REPO}", {PR_REF: head})
    return payloads.pull_request("opened", head_sha=head, fork=FORK, author="stranger")


async def test_a_fork_pr_waits_for_approval_then_runs_at_the_approved_commit(server, github, devpod):
    github.set_permission(OWNER, REPO, "maintainer", "write")
    await server.deliver("pull_request", fork_pr(github, FIRST, devpod))
    await server.settle()
    assert devpod.calls("up") == []
    assert "/devenv approve" in sticky(github) and "untrusted" in sticky(github)

    approval = command(github, "/devenv approve", user="maintainer")
    await server.deliver("issue_comment", approval)
    await server.settle()
    assert len(devpod.calls("up")) == 1
    [run] = devenv_runs(github)
    assert run["head_sha"] == FIRST and run["conclusion"] == "success"
    assert reactions(github, approval) == ["eyes", "rocket"]
    record = server.bot.environments.records["hello-world-pr2-4d960c"]
    assert (record.approved_sha, record.approved_by, record.env_sha) == (FIRST, "maintainer", FIRST)


async def test_a_push_by_the_fork_author_is_not_synced_until_re_approved(server, github, devpod):
    github.set_permission(OWNER, REPO, "maintainer", "write")
    await server.deliver("pull_request", fork_pr(github, FIRST, devpod))
    await server.deliver("issue_comment", command(github, "/devenv approve", user="maintainer"))
    await server.settle()

    fork_pr(github, SECOND, devpod)  # the author pushes
    push = payloads.pull_request("synchronize", head_sha=SECOND, fork=FORK, author="stranger")
    await server.deliver("pull_request", push)
    await server.settle()
    assert len(devpod.calls("up")) == 1  # still only the approved build
    body = sticky(github)
    assert "New commits arrived after `a1a1a1a`" in body and "not** updated" in body

    await server.deliver("issue_comment", command(github, "/devenv approve", user="maintainer"))
    await server.settle()
    ups = devpod.calls("up")
    assert len(ups) == 2 and "--reset=true" in ups[1]["argv"]
    assert server.bot.environments.records["hello-world-pr2-4d960c"].env_sha == SECOND


async def test_the_fork_author_cannot_approve_their_own_pr(server, github, devpod):
    await server.deliver("pull_request", fork_pr(github, FIRST))
    await server.settle()
    await server.deliver("issue_comment", command(github, "/devenv approve", user="stranger"))
    await server.settle()
    assert devpod.calls("up") == []


async def test_a_same_repo_pr_by_an_author_without_write_needs_approval_too(server, github, devpod):
    github.set_permission(OWNER, REPO, "visitor", "read")
    github.add_pull(OWNER, REPO, NUMBER, head_sha=FIRST, user="visitor")
    await server.deliver("pull_request", payloads.pull_request("opened", head_sha=FIRST, author="visitor"))
    await server.settle()
    assert devpod.calls("up") == []
    assert "untrusted" in sticky(github)


async def test_an_approved_commit_that_moved_before_the_build_is_not_built(environ, repo, github, devpod):
    """DevPod clones the PR ref as it is when the build starts, so the bot re-checks the head first."""
    github.set_permission(OWNER, REPO, "maintainer", "write")
    github.add_pull(OWNER, REPO, 3, head_sha="c" * 40)
    srv = await BotServer(config.load({**environ, "DEVENV_MAX_CONCURRENT_OPS": "1"})).start()
    try:
        devpod.inject(command="up", sleep=1.0, times=1)
        # PR 3 (trusted) occupies the only DevPod slot...
        await srv.deliver("pull_request", payloads.pull_request("opened", number=3, head_sha="c" * 40))
        await srv.deliver("pull_request", fork_pr(github, FIRST))
        await eventually(lambda: devpod.calls("up"), what="the first up to start")
        # ...while the fork PR is approved at FIRST, then pushed to before its turn comes.
        await srv.deliver("issue_comment", command(github, "/devenv approve", user="maintainer"))
        await asyncio.sleep(0.3)
        fork_pr(github, SECOND)
        await srv.settle()
    finally:
        await srv.stop()
    assert len(devpod.calls("up")) == 1  # only PR 3 was built
    fork_run = [r for r in devenv_runs(github) if r["head_sha"] == FIRST]
    assert fork_run and fork_run[0]["conclusion"] == "action_required"


async def approved_then_pushed_during_the_clone(server, github, devpod) -> dict:
    """Approve the fork PR at FIRST; the author pushes SECOND after the bot's head check, while DevPod
    clones (the stand-in moves ``pull/N/head`` when it reaches "Clone repository")."""
    github.set_permission(OWNER, REPO, "maintainer", "write")
    await server.deliver("pull_request", fork_pr(github, FIRST, devpod))
    devpod.inject(command="up", phase="Clone repository", move_refs={f"{OWNER}/{REPO}": {PR_REF: SECOND}})
    approval = command(github, "/devenv approve", user="maintainer")
    await server.deliver("issue_comment", approval)
    await server.settle()
    return approval


async def test_a_push_between_the_head_check_and_the_clone_is_stopped_and_not_offered(server, github, devpod):
    approval = await approved_then_pushed_during_the_clone(server, github, devpod)
    assert devpod.faults() == [] and len(devpod.calls("up")) == 1  # the bot's check passed; DevPod cloned SECOND
    [run] = devenv_runs(github)
    assert run["conclusion"] == "failure"
    assert "another commit than the approved one" in run["output"]["title"]
    assert f"expected the approved commit {FIRST}, but DevPod checked out {SECOND}" in run["output"]["text"]
    assert devpod.calls("stop") and devpod.cluster(WS)["pod"] is None  # stopped: nothing of SECOND runs
    record = server.bot.environments.records[WS]
    assert record.env_sha is None and record.state == "stopped" and record.links == []
    body = sticky(github)
    assert "`b2b2b2b`, not the approved `a1a1a1a`" in body and "/devenv approve" in body
    assert reactions(github, approval) == ["eyes", "confused"]


async def test_after_a_wrong_clone_the_unapproved_commit_is_cloned_again_never_started(server, github, devpod):
    await approved_then_pushed_during_the_clone(server, github, devpod)
    fork_pr(github, FIRST, devpod)  # the head is FIRST again, the approved commit
    await server.deliver("issue_comment", command(github, "/devenv up", user="maintainer"))
    await server.settle()
    up = devpod.calls("up")[-1]
    assert "--reset=true" in up["argv"]  # the clone holding SECOND is thrown away, not woken
    assert devenv_runs(github)[-1]["conclusion"] == "success"
    assert server.bot.environments.records[WS].env_sha == FIRST


def clone_at(dp, ws_id: str, sha: str) -> None:
    """What ``git switch PR2`` leaves in DevPod's clone on the bot's host."""
    git_dir = devpod_pkg.content_dir(dp, ws_id) / ".git"
    (git_dir / "refs" / "heads").mkdir(parents=True)
    (git_dir / "HEAD").write_text("ref: refs/heads/PR2\n")
    (git_dir / "refs" / "heads" / "PR2").write_text(sha + "\n")


@pytest.mark.parametrize("cloned", [FIRST, SECOND])
def test_devpod_is_ended_right_after_cloning_an_unapproved_commit(tmp_path, cloned):
    """Checked when DevPod moves past cloning: before the container exists and any hook runs."""
    dp = devpod_pkg.DevPodSettings(home=tmp_path)
    record = EnvRecord(ws_id=WS, installation_id=1, owner=OWNER, repo=REPO, number=NUMBER, head_sha=FIRST,
                       trusted=False, approved_sha=FIRST)
    seen: list[str] = []
    watch = CloneWatch(Operations(dp, github_url="https://github.com"), record, "up",
                       lambda line: seen.append(line.message))
    for message in ("Clone repository", f"URL: https://github.com/{OWNER}/{REPO}", f"PR: pull/{NUMBER}/head"):
        watch(devpod_pkg.LogLine(message=message, level="info"))
    clone_at(dp, WS, cloned)
    after_clone = devpod_pkg.LogLine(message="Creating devcontainer...", level="info")
    if cloned == FIRST:
        watch(after_clone)
        assert seen[-1] == "Creating devcontainer..."
    else:
        with pytest.raises(UnapprovedClone) as raised:
            watch(after_clone)
        assert raised.value.sha == SECOND and len(seen) == 3
