"""Prebuilds end to end (issue 15): the real app on a socket, the GitHub emulator, the stand-in ``devpod``
whose ``build`` pushes to a registry directory and whose ``up --prebuild-repository`` takes the fast path
when ``<repository>:<hash>`` is there.

The repository's files per commit are the stand-in's ``standin-tree.json``: a Dockerfile-based devcontainer
at the base branch's commits and at the PR head, equal unless a test changes the PR's Dockerfile.
"""

from __future__ import annotations

import base64
import copy
import json

import pytest

from bot.devpod import workspace_id
from bot.settings import config
from tests import payloads
from tests.botserver import BotServer, bot_environ
from tests.observe import sticky

OWNER, REPO, NUMBER = "Codertocat", "Hello-World", payloads.PR_NUMBER
OPENED = payloads.pull_request("opened")["pull_request"]
BASE, HEAD = OPENED["base"]["sha"], OPENED["head"]["sha"]
REGISTRY = "registry.example/devenv"
IMAGES = f"{REGISTRY}/codertocat/hello-world"
CONFIG = json.dumps({"name": "app", "build": {"dockerfile": "Dockerfile"}})
DOCKERFILE = "FROM debian:12\nRUN apt-get update && apt-get install -y build-essential\n"
#: What the registry asks of a pusher (the deployment's Secret holds it; nothing else may ever show it).
REGISTRY_AUTH = "robot$prebuilds:s3cr3t-registry-password-4242"


def devcontainer(dockerfile: str = DOCKERFILE, **more: str) -> dict[str, str]:
    return {".devcontainer/devcontainer.json": CONFIG, ".devcontainer/Dockerfile": dockerfile, **more}


def set_tree(devpod, trees: dict[str, dict[str, str]]) -> None:
    """The repository's files at each commit, and the refs the stand-in clones from."""
    path = devpod.home / "standin-tree.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    known.setdefault(f"{OWNER}/{REPO}", {}).update(trees)
    path.write_text(json.dumps(known))
    (devpod.home / "standin-refs.json").write_text(json.dumps({f"{OWNER}/{REPO}": {
        f"refs/pull/{NUMBER}/head": HEAD, "refs/heads/master": BASE}}))


def push(sha: str, *, changed: tuple[str, ...] = (".devcontainer/Dockerfile",), created: bool = False) -> dict:
    """A push of one commit to master, as GitHub sends it (validated against its schema)."""
    payload = _master_push()
    payload["after"], payload["created"], payload["forced"] = sha, created, False
    commit = copy.deepcopy(payload["commits"][0])
    commit.update(id=sha, added=[], removed=[], modified=list(changed))
    payload["commits"], payload["head_commit"] = [commit], commit
    return payloads.validate("push", payload)


def _master_push() -> dict:
    for group in payloads._examples():
        if group["name"] == "push":
            for candidate in group["examples"]:
                if candidate.get("ref") == "refs/heads/master" and "installation" in candidate:
                    return copy.deepcopy(candidate)
    raise LookupError("no push to master among GitHub's examples")


def pr_event(action: str) -> dict:
    return payloads.validate("pull_request", payloads.pull_request(action))


def prebuild_runs(github) -> list[dict]:
    return [r for r in github.check_runs(OWNER, REPO) if r["name"] == "devenv prebuild"]


def images(devpod) -> list[str]:
    registry = devpod.home / "standin-registry"
    return sorted(json.loads(p.read_text())["ref"] for p in registry.iterdir() if not p.name.startswith(".")) \
        if registry.is_dir() else []


@pytest.fixture
def environ(github, tmp_path, devpod):
    """Prebuilds on, with the registry's login mounted as the deployment's Secret would be."""
    secret_dir = tmp_path / "registry-secret"
    secret_dir.mkdir()
    auth = base64.b64encode(REGISTRY_AUTH.encode()).decode()
    (secret_dir / "config.json").write_text(json.dumps({"auths": {"registry.example": {"auth": auth}}}))
    return bot_environ(github, tmp_path / "state", **devpod.env(), DEVENV_PREBUILD_REPOSITORY=REGISTRY,
                       DEVENV_PREBUILD_DOCKER_CONFIG=str(secret_dir), DEVENV_PREBUILD_DOCKER_HOST="tcp://localhost:2375")


@pytest.fixture
async def server(environ, repo, devpod):
    set_tree(devpod, {BASE: devcontainer(), HEAD: devcontainer(**{"src/app.py": "print('hi')\n"})})
    srv = await BotServer(config.load(environ)).start()
    yield srv
    await srv.stop()


async def settle(server) -> None:
    await server.settle()
    assert server.bot.prebuilds is not None
    await server.bot.prebuilds.idle()
    await server.bot.prebuilds.checks.close()


async def test_a_push_to_the_default_branch_builds_a_prebuild_with_its_own_check_run(server, github, devpod):
    await server.deliver("push", push(BASE))
    await settle(server)
    [build] = devpod.calls("build")
    argv = build["argv"]
    assert argv[argv.index("--provider") + 1] == "docker"
    assert argv[argv.index("--repository") + 1] == IMAGES
    assert argv[argv.index("build") + 1].endswith(f"/{OWNER}/{REPO}@sha256:{BASE}")
    [image] = images(devpod)
    assert image.startswith(IMAGES + ":devpod-")
    [run] = prebuild_runs(github)
    assert (run["head_sha"], run["status"], run["conclusion"]) == (BASE, "completed", "success")
    assert run["output"]["title"] == "Prebuilt image ready" and image in run["output"]["summary"]
    github.assert_valid()


async def test_a_pr_opened_after_the_prebuild_starts_from_it_and_says_so(server, github, devpod):
    await server.deliver("push", push(BASE))
    await settle(server)
    [image] = images(devpod)
    await server.deliver("pull_request", pr_event("opened"))
    await settle(server)
    [up] = devpod.calls("up")
    argv = up["argv"]
    assert argv[argv.index("--prebuild-repository") + 1] == IMAGES
    assert argv[argv.index("--git-clone-strategy") + 1] == "blobless"
    body = sticky(github)
    assert f"**Started from:** the prebuilt image `{image}`, built from `master` at `{BASE[:7]}`" in body
    env_run = [r for r in github.check_runs(OWNER, REPO) if r["name"] == "devenv"][-1]
    assert "Started from:" in env_run["output"]["summary"] and image in env_run["output"]["summary"]
    log = server.bot.environments.operations.logs.last(up_ws(server))
    assert any(f"Found existing prebuilt image {image}" in line for line in log.lines)


def up_ws(server) -> str:
    return workspace_id(OWNER, REPO, NUMBER)


async def test_without_a_prebuild_the_pr_still_starts_and_says_why(server, github, devpod):
    await server.deliver("pull_request", pr_event("opened"))
    await settle(server)
    assert len(devpod.calls("up")) == 1
    body = sticky(github)
    assert "🟢 Running" in body
    assert "**Built from scratch:** `master` has no prebuilt image yet" in body


async def test_a_pr_that_changes_the_dockerfile_is_built_from_scratch_and_says_so(server, github, devpod):
    set_tree(devpod, {HEAD: devcontainer(DOCKERFILE + "RUN pip install ruff\n")})
    await server.deliver("push", push(BASE))
    await settle(server)
    await server.deliver("pull_request", pr_event("opened"))
    await settle(server)
    body = sticky(github)
    assert f"**Built from scratch:** the devcontainer differs from the prebuild of `master` at `{BASE[:7]}`" in body
    log = server.bot.environments.operations.logs.last(up_ws(server))
    assert not any("Found existing prebuilt image" in line for line in log.lines)
    assert any("dockerless" in line for line in log.lines)  # the slow path: built in the workspace


async def test_when_the_registry_cannot_be_reached_up_falls_back_to_building(server, github, devpod):
    await server.deliver("push", push(BASE))
    await settle(server)
    devpod.inject(command="prebuild-lookup", registry="unreachable", times=0)
    await server.deliver("pull_request", pr_event("opened"))
    await settle(server)
    body = sticky(github)
    assert "🟢 Running" in body and "**Built from scratch:**" in body and "registry could not be reached" in body
    assert [r["conclusion"] for r in github.check_runs(OWNER, REPO) if r["name"] == "devenv"] == ["success"]


async def test_a_push_that_leaves_the_devcontainer_alone_builds_nothing(server, github, devpod):
    await server.deliver("push", push(BASE))
    await settle(server)
    await server.deliver("push", push("d" * 40, changed=("README.md", "src/app.py")))
    await settle(server)
    assert len(devpod.calls("build")) == 1
    assert [r["head_sha"] for r in prebuild_runs(github)] == [BASE]


async def test_a_push_to_another_branch_builds_nothing(server, github, devpod):
    payload = push(BASE)
    payload["ref"] = "refs/heads/feature"
    await server.deliver("push", payload)
    await settle(server)
    assert devpod.calls("build") == []
    assert prebuild_runs(github) == []


async def test_a_burst_of_pushes_builds_at_most_twice_and_the_newest_wins(server, github, devpod):
    (devpod.home / "standin-timing.json").write_text(json.dumps({"image_build": 0.5}))
    shas = [f"{i:02x}" * 20 for i in range(1, 11)]
    set_tree(devpod, {sha: devcontainer(DOCKERFILE + f"# {sha}\n") for sha in shas})
    for sha in shas:
        await server.deliver("push", push(sha))
    await settle(server)
    built = [c["argv"][c["argv"].index("build") + 1].rsplit(":", 1)[1] for c in devpod.calls("build")]
    assert len(built) <= 2 and built[-1] == shas[-1]
    runs = {r["head_sha"]: r for r in prebuild_runs(github)}
    assert runs[shas[-1]]["conclusion"] == "success"
    assert all(r["status"] == "completed" for r in runs.values())  # none left queued
    skipped = [s for s, r in runs.items() if r["conclusion"] == "skipped"]
    for sha in skipped:  # each names the newer commit built instead of it
        newer = shas[shas.index(sha) + 1:]
        assert any(f"`{n[:7]}` was pushed" in runs[sha]["output"]["summary"] for n in newer)
    assert skipped
    github.assert_valid()


async def test_a_failed_push_to_the_registry_fails_the_check_run_with_devpods_words(server, github, devpod):
    devpod.inject(command="build", registry="unreachable")
    await server.deliver("push", push(BASE))
    await settle(server)
    [run] = prebuild_runs(github)
    assert (run["conclusion"], run["output"]["title"]) == ("failure", "Prebuild failed")
    assert f"cannot push to {IMAGES}" in run["output"]["summary"]


def command(github, body: str, *, user: str) -> dict:
    comment = github.add_comment(OWNER, REPO, NUMBER, body, user=user)
    return payloads.pr_comment(body, user=user, comment_id=comment["id"])


def replies(github) -> list[str]:
    return [c["body"] for c in github.comments(OWNER, REPO, NUMBER)
            if c["user"]["type"] == "Bot" and "devenv-bot:sticky" not in c["body"]]


@pytest.mark.parametrize(("role", "builds"), [("maintain", 1), ("admin", 1), ("write", 0), ("read", 0)])
async def test_devenv_prebuild_needs_the_maintain_role(server, github, devpod, role, builds):
    github.set_permission(OWNER, REPO, "octocat", role)
    await server.deliver("issue_comment", command(github, "/devenv prebuild", user="octocat"))
    await settle(server)
    assert len(devpod.calls("build")) == builds
    [reply] = replies(github)
    if builds:
        [run] = prebuild_runs(github)  # on the PR's base commit, its base branch
        assert run["conclusion"] == "success" and "asked for by @octocat" in run["output"]["summary"].replace("\u200d", "")
        branch = run["output"]["summary"].split("`")[1]
        assert f"building the prebuilt image of `{branch}` at `{run['head_sha'][:7]}`" in reply
    else:
        assert f"needs the maintain role on this repository; you have {role}" in reply
        assert prebuild_runs(github) == []


async def test_registry_credentials_reach_devpod_build_only(server, github, devpod, caplog):
    """The Secret's config.json is given to `devpod build` (the registry wants it) and to nothing else."""
    (devpod.home / "standin-registry").mkdir(exist_ok=True)
    (devpod.home / "standin-registry" / ".auth.json").write_text(json.dumps({"auth": REGISTRY_AUTH}))
    await server.deliver("push", push(BASE))
    await settle(server)
    await server.deliver("pull_request", pr_event("opened"))
    await settle(server)
    [build] = devpod.calls("build")
    assert "DOCKER_CONFIG" in build["env"] and "DOCKER_HOST" in build["env"]
    assert prebuild_runs(github)[0]["conclusion"] == "success"  # the registry took the login
    others = [c for c in devpod.calls() if c["command"] != "build"]
    assert others and all("DOCKER_CONFIG" not in c["env"] and "DOCKER_HOST" not in c["env"] for c in others)
    assert "Started from:" in sticky(github)
    shown = json.dumps([github.check_runs(OWNER, REPO), github.comments(OWNER, REPO, NUMBER)]) + caplog.text
    auth = base64.b64encode(REGISTRY_AUTH.encode()).decode()
    for secret in (REGISTRY_AUTH, auth, "s3cr3t-registry-password"):
        assert secret not in shown
        assert not any(secret in p.read_text(errors="replace") for p in devpod.home.rglob("*")
                       if p.is_file() and p.name != ".auth.json")


async def test_without_the_registrys_login_the_push_is_refused_and_said(server, github, devpod, environ):
    """The stand-in registry really checks the login: the test above proves something."""
    (devpod.home / "standin-registry").mkdir(exist_ok=True)
    (devpod.home / "standin-registry" / ".auth.json").write_text(json.dumps({"auth": "someone:else"}))
    await server.deliver("push", push(BASE))
    await settle(server)
    [run] = prebuild_runs(github)
    assert run["conclusion"] == "failure" and "please make sure you have push permissions" in run["output"]["summary"]


async def test_help_never_tells_a_writer_they_may_ask_for_a_prebuild(server, github):
    github.set_permission(OWNER, REPO, "writer", "write")
    await server.deliver("issue_comment", command(github, "/devenv help", user="writer"))
    await settle(server)
    [reply] = replies(github)
    allowed, refused = reply.split("These need more access than you have:")
    assert "`/devenv up`" in allowed and "`/devenv prebuild`" not in allowed
    assert "`/devenv prebuild`: " in refused and "Needs maintain access." in refused
