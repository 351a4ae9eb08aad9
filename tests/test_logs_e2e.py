"""``/devenv logs [lines]`` end to end: the real bot on a socket, the GitHub emulator, the stand-in devpod and
the Kubernetes fake serving the workspace pod's log.  The reply holds both logs in collapsed blocks, masked,
bounded below GitHub's comment limit, and says why a log is missing instead of failing."""

from __future__ import annotations

import pytest

from bot.environments.logs import MAX_BODY
from bot.settings import config
from tests import payloads
from tests.botserver import BotServer
from tests.test_commands_e2e import command, reactions, replies
from tests.test_links_e2e import NS, OWNER, REPO, SETTINGS, WS, bot, links_environ, opened  # noqa: F401
from tests.test_repo_settings_e2e import on_base

POD = "devpod-default-he-1a2b3"  # DevPod names the pod after a random UID, never the workspace id (CONTRACT §5)
TOKEN = "ghp_" + "A1b2C3d4" * 5  # a GitHub token's shape: the masker's second net
GITHUB_LIMIT = 65536


def put_pod(kube, log: str, *, labels: dict | None = None) -> None:
    kube.put_object("pods", NS, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": POD, "labels": labels if labels is not None else {
            "devenv-bot.dev/workspace": WS, "devpod.sh/created": "true", "devpod.sh/workspace-uid": "default-he-1a2b3"}},
        "spec": {"containers": [{"name": "devpod", "image": "mcr.microsoft.com/devcontainers/base:ubuntu"},
                                {"name": "sidecar", "image": "busybox"}]}})
    kube.set_pod_log(NS, POD, log)
    kube.set_pod_log(NS, POD, "the sidecar's log, never shown\n", container="sidecar")


async def ask(srv, github, body: str, user: str = "octocat") -> str:
    payload = command(github, body, user=user)
    status, _ = await srv.deliver("issue_comment", payload)
    assert status == 202
    await srv.settle()
    [reply] = replies(github)
    return reply


async def test_a_reader_gets_the_end_of_both_logs_masked_in_collapsed_blocks(bot, github, kube, devpod):  # noqa: F811
    github.set_permission(OWNER, REPO, "octocat", "read")
    await opened(bot)
    put_pod(kube, "".join(f"app line {i}\n" for i in range(1, 21)) + f"GITHUB_TOKEN={TOKEN}\nAuthorization: Bearer "
            "s3cr3t-value-of-the-app\nlast app line\n")
    reply = await ask(bot, github, "/devenv logs 5")
    assert reply.startswith("@octocat, the end of this environment's logs (5 lines of each at most")
    operation, container = reply.split("<details>")[1:]
    assert "<summary>The last DevPod operation: <code>up</code>" in operation
    steps = operation.split("```text\n", 1)[1].split("\n```", 1)[0].splitlines()
    assert len(steps) == 5 and steps[-1] == f"[info] Run 'ssh {WS}.devpod' to ssh into the devcontainer"
    assert f"<summary>The workspace container's log (pod <code>{POD}</code>)</summary>" in container
    shown = container.split("```text\n", 1)[1].split("\n```", 1)[0].splitlines()
    assert shown == ["app line 19", "app line 20", "GITHUB_TOKEN=***", "Authorization: Bearer ***", "last app line"]
    assert TOKEN not in reply and "s3cr3t" not in reply and "sidecar" not in reply
    assert reply.count("</details>") == 2
    log_calls = [c for c in kube.calls if c.path.endswith(f"/pods/{POD}/log")]
    assert [c.query for c in log_calls] == [{"tailLines": "5", "limitBytes": str(1 << 20), "container": "devpod"}]
    kube.assert_valid()
    github.assert_valid()


async def test_the_devpod_output_is_masked_too(bot, github, kube, devpod):  # noqa: F811
    github.set_permission(OWNER, REPO, "octocat", "read")
    devpod.inject(command="up", stderr_lines=[{"level": "info", "message": f"cloning https://x:{TOKEN}@github.com/a/b"}])
    await opened(bot)
    reply = await ask(bot, github, "/devenv logs 500")
    assert "[info] cloning https://x:***@github.com/a/b" in reply and TOKEN not in reply


async def test_a_long_log_is_cut_from_the_top_to_fit_github_s_comment_limit(bot, github, kube):  # noqa: F811
    github.set_permission(OWNER, REPO, "octocat", "write")
    await opened(bot)
    put_pod(kube, "".join(f"{i:04d} " + "x" * 2000 + "\n" for i in range(500)) + "the newest line\n")
    reply = await ask(bot, github, "/devenv logs 500")
    assert len(reply) <= MAX_BODY < GITHUB_LIMIT
    container = reply.split("<details>")[2]
    assert "earlier lines cut to keep this reply within GitHub's comment size limit" in container
    assert container.split("```text\n", 1)[1].split("\n```", 1)[0].endswith("the newest line")  # top cut, not end
    assert "0499 " + "x" * 994 + "…" in container  # a long line is cut at 1,000 characters
    assert "0001 " not in container


async def test_without_a_pod_or_cluster_access_the_reply_says_so(bot, github, kube, server):  # noqa: F811
    github.set_permission(OWNER, REPO, "octocat", "read")
    await opened(bot)
    reply = await ask(bot, github, "/devenv logs")
    assert "No container log: no workspace pod is running" in reply
    assert "50 lines of each at most" in reply


async def test_a_bot_without_cluster_access_says_so(server, github):
    github.set_permission(OWNER, REPO, "octocat", "read")
    github.set_permission(OWNER, REPO, "Codertocat", "write")
    await server.deliver("pull_request", payloads.pull_request("opened"))
    await server.settle()
    reply = await ask(server, github, "/devenv logs 3")
    assert "No container log: the bot has no access to the cluster" in reply
    assert "<code>up</code>" in reply  # the DevPod side is still there


async def test_a_pr_without_an_environment_gets_a_short_answer(server, github):
    github.set_permission(OWNER, REPO, "octocat", "read")
    reply = await ask(server, github, "/devenv logs")
    assert reply == ("@octocat, this pull request has no environment, so there are no logs yet."
                     " Comment `/devenv up` to create one.\n")


@pytest.mark.parametrize("permission", ["read", "none"])
async def test_a_repository_that_asks_write_for_logs_refuses_a_stranger(links_environ, github, kube,  # noqa: F811
                                                                        permission):
    on_base(github, SETTINGS + "permissions:\n  logs: write\n")
    github.set_permission(OWNER, REPO, "stranger", permission)
    srv = await BotServer(config.load(links_environ)).start()
    try:
        await opened(srv)
        put_pod(kube, f"secret={TOKEN}\n")
        payload = command(github, "/devenv logs", user="stranger")
        await srv.deliver("issue_comment", payload)
        await srv.settle()
        [reply] = replies(github)
        assert reply.startswith(f"@stranger, `/devenv logs` needs **write** access to this repository; you have"
                                f" **{permission}**")
        assert reactions(github, payload) == ["confused"]
        assert not [c for c in kube.calls if "/pods" in c.path]  # nothing was read for them
    finally:
        await srv.stop()
