"""``.github/devenv.yml`` end to end: the real app on a socket, the GitHub emulator, the stand-in devpod.

The file is put on the PR's *base* commit (``pull_request.base.sha`` of the delivery, which the
emulator's copy of the PR shares, so that commands, which read the PR from the API, see the same
base) and the bot's behaviour is watched from outside: DevPod runs, check runs, comments.
"""

from __future__ import annotations

import re

from tests import payloads
from tests.observe import sticky

OWNER, REPO, NUMBER = "Codertocat", "Hello-World", payloads.PR_NUMBER
OPENED = payloads.pull_request("opened")["pull_request"]
BASE, HEAD = OPENED["base"]["sha"], OPENED["head"]["sha"]
NEW_BASE = "a1" * 20
PATH = ".github/devenv.yml"


def on_base(github, text: str, base: str = BASE) -> None:
    """``text`` as ``.github/devenv.yml`` at ``base``, which the emulator's PR now has as its base."""
    github.set_file(OWNER, REPO, PATH, text, ref=base)
    github.add_pull(OWNER, REPO, NUMBER, head_sha=HEAD, head_ref=OPENED["head"]["ref"], base_sha=base,
                    title=OPENED["title"])


def event(action: str, *, base: str = BASE, head_sha: str | None = None) -> dict:
    payload = payloads.pull_request(action, head_sha=head_sha)
    payload["pull_request"]["base"]["sha"] = base
    return payloads.validate("pull_request", payload)


def command(github, body: str, *, user: str) -> dict:
    comment = github.add_comment(OWNER, REPO, NUMBER, body, user=user)
    return payloads.pr_comment(body, user=user, comment_id=comment["id"])


def reactions(github, payload: dict) -> list[str]:
    return [r["content"] for r in github.reactions(OWNER, REPO, payload["comment"]["id"])]


def shown(markdown_text: str) -> str:
    """The text as GitHub renders it: backslash escapes and zero-width joiners removed."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown_text).replace("\u200d", "")


def replies(github) -> list[str]:
    return [c["body"] for c in github.comments(OWNER, REPO, NUMBER)
            if c["user"]["type"] == "Bot" and "devenv-bot:sticky" not in c["body"]]


def option(argv: list[str], name: str) -> str | None:
    """The value of ``--provider-option NAME=value`` in a devpod argv."""
    for flag, value in zip(argv, argv[1:]):
        if flag == "--provider-option" and value.startswith(name + "="):
            return value[len(name) + 1:]
    for item in argv:
        if item.startswith(f"--provider-option={name}="):
            return item.split("=", 2)[2]
    return None


async def test_auto_create_false_starts_nothing_on_open_until_a_writer_comments_up(server, github, devpod):
    on_base(github, "auto_create: false\n")
    github.set_permission(OWNER, REPO, "octocat", "write")
    status, _ = await server.deliver("pull_request", event("opened"))
    await server.settle()
    assert status == 202
    assert devpod.calls("up") == []
    assert github.check_runs(OWNER, REPO) == []
    assert [c for c in github.comments(OWNER, REPO, NUMBER) if "devenv-bot:sticky" in c["body"]] == []
    payload = command(github, "/devenv up", user="octocat")
    await server.deliver("issue_comment", payload)
    await server.settle()
    assert len(devpod.calls("up")) == 1
    assert reactions(github, payload) == ["eyes", "rocket"]
    assert github.check_runs(OWNER, REPO)[-1]["conclusion"] == "success"
    github.assert_valid()


async def test_on_push_ignore_leaves_the_environment_alone_after_a_push(server, github, devpod):
    on_base(github, "on_push: ignore\n")
    await server.deliver("pull_request", event("opened"))
    await server.settle()
    await server.deliver("pull_request", event("synchronize", head_sha="b" * 40))
    await server.settle()
    assert len(devpod.calls("up")) == 1 and devpod.calls("ssh") == []
    body = sticky(github)
    assert "🟢 Running" in body and "the PR head is `bbbbbbb` (not applied yet)" in body


async def test_on_push_recreate_rebuilds_the_container_after_a_push(server, github, devpod):
    on_base(github, "on_push: recreate\n")
    await server.deliver("pull_request", event("opened"))
    await server.settle()
    await server.deliver("pull_request", event("synchronize", head_sha="c" * 40))
    await server.settle()
    ups = devpod.calls("up")
    assert len(ups) == 2
    assert "--recreate=true" in ups[1]["argv"] and "--reset=true" not in ups[1]["argv"]
    assert devpod.calls("ssh") == []  # no look for local changes: a recreate does not ask
    assert github.check_runs(OWNER, REPO)[-1]["head_sha"] == "c" * 40


async def test_ide_none_and_the_devcontainer_path_reach_devpod_up(server, github, devpod):
    on_base(github, "ide: none\ndevcontainer_path: .devcontainer/python/devcontainer.json\n")
    await server.deliver("pull_request", event("opened"))
    await server.settle()
    [up] = devpod.calls("up")
    argv = up["argv"]
    assert argv[argv.index("--ide") + 1] == "none"
    assert argv[argv.index("--devcontainer-path") + 1] == ".devcontainer/python/devcontainer.json"


async def test_resources_reach_devpods_provider_option(server, github, devpod):
    on_base(github, "resources:\n  requests: {cpu: 500m, memory: 1Gi}\n  limits: {cpu: 2, memory: 4Gi}\n")
    await server.deliver("pull_request", event("opened"))
    await server.settle()
    [up] = devpod.calls("up")
    assert option(up["argv"], "RESOURCES") == "requests.cpu=500m,requests.memory=1Gi,limits.cpu=2,limits.memory=4Gi"


async def test_without_resources_no_resources_option_is_passed(server, github, devpod):
    await server.deliver("pull_request", event("opened"))
    await server.settle()
    [up] = devpod.calls("up")
    assert option(up["argv"], "RESOURCES") is None
    argv = up["argv"]
    assert argv[argv.index("--ide") + 1] == "openvscode" and "--devcontainer-path" not in argv


async def test_status_raised_to_write_refuses_a_reader(server, github, devpod):
    on_base(github, "permissions:\n  status: write\n")
    github.set_permission(OWNER, REPO, "reader", "read")
    payload = command(github, "/devenv status", user="reader")
    await server.deliver("issue_comment", payload)
    await server.settle()
    assert devpod.calls("status") == []
    [reply] = replies(github)
    assert "needs **write** access" in reply and "you have **read**" in reply
    assert reactions(github, payload) == ["confused"]


async def test_with_status_left_at_its_default_a_reader_may_ask_for_the_status(server, github, devpod):
    on_base(github, "auto_create: true\n")
    github.set_permission(OWNER, REPO, "reader", "read")
    payload = command(github, "/devenv status", user="reader")
    await server.deliver("issue_comment", payload)
    await server.settle()
    assert replies(github) == []
    assert reactions(github, payload)[0] == "eyes"
    assert len(devpod.calls("status")) == 1


async def test_a_file_on_the_pr_head_is_ignored(server, github, devpod):
    github.set_file(OWNER, REPO, PATH, "auto_create: false\n", ref=HEAD)
    github.set_file(OWNER, REPO, PATH, "auto_create: false\n", ref=OPENED["head"]["ref"])
    await server.deliver("pull_request", event("opened"))
    await server.settle()
    assert len(devpod.calls("up")) == 1
    reads = github.calls_to("GET", r"/contents/")
    assert reads and all(c.query.get("ref") == BASE for c in reads)


async def test_a_broken_file_is_explained_on_the_pr_and_the_defaults_apply(server, github, devpod):
    on_base(github, "auto_create: false\non_push: rebuild\nauto-create: true\n")
    await server.deliver("pull_request", event("opened"))
    await server.settle()
    assert len(devpod.calls("up")) == 1  # auto_create: false was not applied: every setting is the default
    body = shown(sticky(github))
    assert f"`{PATH}` has problems" in body
    assert "- on_push: 'rebuild' is not one of sync, recreate, ignore" in body
    assert "- auto-create: is not a setting; did you mean auto_create?" in body
    assert f"`{BASE[:7]}`" in body  # where the file was read from
    assert github.check_runs(OWNER, REPO)[-1]["conclusion"] == "success"


async def test_fixing_the_file_on_a_new_base_clears_the_message_on_the_next_event(server, github, devpod):
    on_base(github, "on_push: rebuild\n")
    await server.deliver("pull_request", event("opened"))
    await server.settle()
    assert "'rebuild' is not one of" in shown(sticky(github))
    on_base(github, "on_push: recreate\n", base=NEW_BASE)
    await server.deliver("pull_request", event("synchronize", base=NEW_BASE, head_sha="d" * 40))
    await server.settle()
    body = shown(sticky(github))
    assert "has a problem" not in body and "'rebuild'" not in body and PATH not in body
    ups = devpod.calls("up")
    assert len(ups) == 2 and "--recreate=true" in ups[1]["argv"]  # the fixed file applies at once
    assert len([c for c in github.comments(OWNER, REPO, NUMBER) if "devenv-bot:sticky" in c["body"]]) == 1

