"""Per-PR environments end to end: the real app, the GitHub emulator and the stand-in devpod."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess

import pytest

from bot.environments.journal import EnvRecord, PullInfo
from bot.environments.states import State
from bot.settings import config
from tests import payloads
from tests.botserver import BotServer
from tests.eventually import eventually
from tests.observe import devenv_runs as checks
from tests.observe import sticky

OWNER, REPO, NUMBER = "Codertocat", "Hello-World", payloads.PR_NUMBER
WS = "hello-world-pr2-4d960c"


def check_writes(github) -> list[dict]:
    """Every body the bot sent to create or update a check run, in order."""
    return [c.json for c in github.calls if c.path.endswith("/check-runs") and c.method == "POST"
            or "/check-runs/" in c.path and c.method == "PATCH"]


async def start(environ, **extra) -> BotServer:
    return await BotServer(config.load({**environ, **extra})).start()


def tracked(server: BotServer, number: int = NUMBER) -> EnvRecord | None:
    """The environment record of PR ``number``, as the bot's environment service gives it out."""
    opened = payloads.pull_request("opened", number=number)
    return server.bot.environments.find(
        PullInfo.from_payload(payloads.INSTALLATION_ID, opened["pull_request"], opened["repository"]))


async def test_an_opened_pr_gets_an_environment_a_check_run_and_a_sticky_comment(server, github, devpod):
    status, _ = await server.deliver("pull_request", payloads.pull_request("opened"))
    await server.settle()
    assert status == 202
    states = [(w.get("status"), w.get("conclusion")) for w in check_writes(github)]
    assert states[0] == ("queued", None)
    assert states[1] == ("in_progress", None)
    assert states[-1] == ("completed", "success")
    [run] = checks(github)
    assert run["external_id"] == WS and run["head_sha"] == payloads.pull_request("opened")["pull_request"]["head"]["sha"]
    body = sticky(github)
    assert "🟢 Running" in body
    assert f"devpod ssh {WS}" in body and f"ssh {WS}.devpod" in body and "kubectl exec" in body
    assert "not exposed yet" in body
    [up] = devpod.calls("up")
    assert up["argv"][up["argv"].index("--source") + 1] == (
        f"git:{github.url}/{OWNER}/{REPO}@pull/{NUMBER}/head")
    assert "--open-ide=false" in up["argv"] and "--id" in up["argv"]


async def test_devpod_is_prepared_once_and_the_context_hardened(server, devpod):
    assert [c["command"] for c in devpod.calls()][:3] == ["provider list", "provider add", "context set-options"]
    options = devpod.context_options()
    assert options["SSH_INJECT_GIT_CREDENTIALS"] == "false" and options["SSH_AGENT_FORWARDING"] == "false"


async def test_a_second_start_sets_provider_options_instead_of_adding_it_again(environ, repo, devpod):
    first = await start(environ, DEVENV_NAMESPACE="devenvs")
    await first.stop()
    second = await start(environ, DEVENV_NAMESPACE="devenvs")
    await second.stop()
    assert len(devpod.calls("provider add")) == 1
    assert len(devpod.calls("provider set-options")) == 1
    assert devpod.provider_options()["KUBERNETES_NAMESPACE"] == "devenvs"


async def test_a_push_brings_the_environment_to_the_new_head(server, github, devpod):
    await server.deliver("pull_request", payloads.pull_request("opened"))
    await server.settle()
    new_head = "b" * 40
    await server.deliver("pull_request", payloads.pull_request("synchronize", head_sha=new_head))
    await server.settle()
    ups = devpod.calls("up")
    assert len(ups) == 2 and "--reset=true" in ups[1]["argv"]
    assert checks(github)[-1]["head_sha"] == new_head
    assert checks(github)[-1]["conclusion"] == "success"
    assert f"`{new_head[:7]}`, the PR head" in sticky(github)


async def test_a_clean_checkout_is_synced(server, github, devpod):
    await server.deliver("pull_request", payloads.pull_request("opened"))
    await server.settle()
    work = devpod.container_dir(WS)
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    await server.deliver("pull_request", payloads.pull_request("synchronize", head_sha="e" * 40))
    await server.settle()
    assert len(devpod.calls("ssh")) == 1 and len(devpod.calls("up")) == 2


async def test_a_head_pushed_from_inside_the_environment_is_not_rebuilt(server, github, devpod):
    await server.deliver("pull_request", payloads.pull_request("opened"))
    await server.settle()
    work = devpod.container_dir(WS)
    work.mkdir(parents=True, exist_ok=True)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(git + ["init", "-q"], cwd=work, check=True)
    subprocess.run(git + ["commit", "-q", "--allow-empty", "-m", "made in the environment"], cwd=work, check=True)
    pushed = subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, check=True, capture_output=True,
                            text=True).stdout.strip()
    await server.deliver("pull_request", payloads.pull_request("synchronize", head_sha=pushed))
    await server.settle()
    assert len(devpod.calls("up")) == 1  # nothing rebuilt: the work there is kept
    assert tracked(server).env_sha == pushed
    assert checks(github)[-1]["conclusion"] == "success"


async def test_ten_quick_pushes_cost_at_most_two_devpod_runs_and_end_at_the_last_head(server, github, devpod):
    # The debounce itself runs on a manual clock in tests/test_queue.py; this is the whole path.
    await server.deliver("pull_request", payloads.pull_request("opened"))
    await server.settle()
    devpod.inject(command="up", sleep=0.6, times=0)
    heads = [f"{i:x}" * 40 for i in range(1, 11)]
    for head in heads:
        await server.deliver("pull_request", payloads.pull_request("synchronize", head_sha=head[:40]))
    await server.settle()
    sync_ups = devpod.calls("up")[1:]
    assert 1 <= len(sync_ups) <= 2
    record = tracked(server)
    assert record.env_sha == heads[-1][:40] and record.state == State.RUNNING
    assert f"`{heads[-1][:7]}`, the PR head" in sticky(github)
    # no check run is left unfinished, even for heads that were skipped
    assert all(c["status"] == "completed" for c in checks(github))


async def test_a_closed_pr_deletes_the_environment_and_says_so(server, github, devpod):
    await server.deliver("pull_request", payloads.pull_request("opened"))
    await server.settle()
    assert devpod.workspace(WS) is not None
    await server.deliver("pull_request", payloads.pull_request("closed", merged=True))
    await server.settle()
    assert devpod.workspace(WS) is None
    assert len(devpod.calls("delete")) == 1
    assert "⚫ Deleted" in sticky(github)


async def test_a_delete_that_exits_0_but_leaves_the_workspace_is_reported_as_failed(server, github, devpod):
    await server.deliver("pull_request", payloads.pull_request("opened"))
    await server.settle()
    # v0.7 alphas log a failed delete and still exit 0 (CONTRACT §4.2)
    (devpod.home / "standin-version").write_text("0.7.0-alpha.34")
    devpod.inject(command="delete", exit=1, message="pvc is being used")
    await server.deliver("pull_request", payloads.pull_request("closed"))
    await server.settle()
    [delete] = devpod.calls("delete")
    assert devpod.workspace(WS) is not None
    record = tracked(server)
    assert record.state == State.FAILED
    assert "still listed" in " ".join(record.errors)
    assert "🔴 Failed" in sticky(github)


async def test_a_devpod_failure_fails_the_check_run_with_the_error_and_buttons(server, github, devpod):
    devpod.inject(command="up", exit=1, stderr_lines=[
        {"level": "error", "message": "lifecycle hook output: no error here"},
        {"level": "fatal", "message": "error creating pod: pods \"devpod-x\" is forbidden: exceeded quota"}])
    await server.deliver("pull_request", payloads.pull_request("opened"))
    await server.settle()
    [run] = checks(github)
    assert run["conclusion"] == "failure"
    assert "exceeded quota" in run["output"]["text"]
    labels = [a["label"] for a in check_writes(github)[-1]["actions"]]
    assert labels == ["Retry", "Recreate", "Delete"]
    body = sticky(github)
    assert "🔴 Failed" in body and "exceeded quota" in body and "What to do next" in body


async def test_a_clone_failure_names_the_cause_and_delete_removes_the_agent_leftovers(server, github, devpod):
    """v0.6.15: the cause at info, one generic fatal, the agent's workspace.json left behind (CONTRACT §9)."""
    devpod.inject(command="up", failure="clone")
    await server.deliver("pull_request", payloads.pull_request("opened"))
    await server.settle()
    [run] = checks(github)
    assert run["conclusion"] == "failure"
    assert "clone repository: exit status 128" in run["output"]["text"]
    assert "**Likely cause:** cloning the repository" in run["output"]["summary"]
    leftover = devpod.home / "agent" / "contexts" / devpod.context / "workspaces" / WS
    assert (leftover / "workspace.json").exists() and devpod.workspace(WS) is None
    await server.deliver("pull_request", payloads.pull_request("closed"))
    await server.settle()
    assert devpod.calls("delete") and not leftover.exists()


async def test_a_hanging_devpod_ends_in_timed_out(environ, repo, github, devpod):
    devpod.inject(command="up", hang=True)
    srv = await start(environ, DEVENV_UP_TIMEOUT="1", DEVENV_KILL_GRACE="1")
    try:
        await srv.deliver("pull_request", payloads.pull_request("opened"))
        await srv.settle()
    finally:
        await srv.stop()
    [run] = checks(github)
    assert run["conclusion"] == "timed_out"
    assert "did not finish within 1 seconds" in run["output"]["text"]


async def test_an_up_the_bot_timed_out_says_what_was_running_and_where_devpod_left_it(environ, repo, github, devpod):
    # DevPod v0.6.15 dies at once on SIGTERM and says nothing; the container stays up with its hooks unfinished.
    (devpod.home / "standin-devcontainer.json").write_text(json.dumps({"postCreateCommand": "make setup"}))
    devpod.inject(command="up", phase="Run command", after_line=True, hang=True)
    srv = await start(environ, DEVENV_UP_TIMEOUT="2", DEVENV_KILL_GRACE="1")
    try:
        await srv.deliver("pull_request", payloads.pull_request("opened"))
        await srv.settle()
        record = tracked(srv)
    finally:
        await srv.stop()
    [run] = checks(github)
    assert run["conclusion"] == "timed_out"
    assert 'devenv-bot stopped it after 2 s, during "Running lifecycle hooks" (creating the environment)' \
        in run["output"]["text"]
    assert len(devpod.calls("status")) == 1  # the state is checked afterwards
    assert devpod.cluster(WS)["pod"] == "Running"
    assert record.state == State.RUNNING and record.links == []  # not "failed and gone", not offered either
    assert "says the workspace is **Running**" in run["output"]["summary"] and "recreate" in sticky(github)


async def test_devpod_ended_by_someone_else_is_reported_and_its_state_checked(server, github, devpod):
    devpod.inject(command="up", phase="Setting up container", after_line=True, hang=True)
    await server.deliver("pull_request", payloads.pull_request("opened"))
    await eventually(devpod.hanging, what="up to hang in its pod's setup")
    os.kill(devpod.calls("up")[0]["pid"], signal.SIGTERM)  # an operator, not the bot
    await server.settle()
    [run] = checks(github)
    assert run["conclusion"] == "failure"
    assert "DevPod was ended by SIGTERM, not by devenv-bot" in run["output"]["text"]
    assert len(devpod.calls("status")) == 1 and tracked(server).state == State.RUNNING


async def test_the_environment_is_at_the_commit_devpod_cloned_not_the_webhooks_head(server, github, devpod):
    cloned = "d" * 40  # the PR moved on before DevPod fetched pull/2/head
    devpod.set_refs(f"{OWNER}/{REPO}", {f"refs/pull/{NUMBER}/head": cloned})
    opened = payloads.pull_request("opened")
    await server.deliver("pull_request", opened)
    await server.settle()
    assert tracked(server).env_sha == cloned
    head = opened["pull_request"]["head"]["sha"]
    assert f"at `{cloned[:7]}`; the PR head is `{head[:7]}` (not applied yet)" in sticky(github)


async def test_a_fork_pr_gets_no_environment_and_an_explanation(server, github, devpod):
    await server.deliver("pull_request", payloads.pull_request("opened", fork="stranger/Hello-World"))
    await server.settle()
    assert devpod.calls("up") == []
    [run] = checks(github)  # the head waits for a writer's approval (tests/test_check_runs_e2e.py)
    assert run["conclusion"] == "action_required"
    assert "comes from a fork" in sticky(github)


async def test_two_prs_get_environments_in_parallel(server, github, devpod):
    github.add_pull(OWNER, REPO, 3, head_sha="c" * 40)
    devpod.inject(command="up", sleep=0.8, times=2)
    await server.deliver("pull_request", payloads.pull_request("opened"))
    await server.deliver("pull_request", payloads.pull_request("opened", number=3, head_sha="c" * 40))
    await server.settle()
    ups = devpod.calls("up")
    assert len(ups) == 2
    # Neither waited for a DevPod slot (how far apart they started: bench/environments.py, (d)).
    assert not any(w["output"]["title"].startswith("Queued,") for w in check_writes(github))
    assert sorted(c["conclusion"] for c in checks(github)) == ["success", "success"]


async def test_the_queue_position_is_shown_when_devpod_runs_are_capped(environ, repo, github, devpod):
    for n in (3, 4):
        github.add_pull(OWNER, REPO, n, head_sha=f"{n}" * 40)
    devpod.inject(command="up", sleep=0.5, times=3)
    srv = await start(environ, DEVENV_MAX_CONCURRENT_OPS="1")
    try:
        for n in (2, 3, 4):
            payload = payloads.pull_request("opened", number=n, head_sha=None if n == 2 else f"{n}" * 40)
            await srv.deliver("pull_request", payload)
        await srv.settle()
    finally:
        await srv.stop()
    titles = [w["output"]["title"] for w in check_writes(github)]
    assert "Queued, 1 ahead" in titles and "Queued, next in line" in titles
    assert all(c["conclusion"] == "success" for c in checks(github))


async def test_closing_a_pr_cancels_its_build_in_flight(server, github, devpod):
    devpod.inject(command="up", sleep=30)
    await server.deliver("pull_request", payloads.pull_request("opened"))
    await eventually(lambda: devpod.calls("up"), what="up to start")
    await server.deliver("pull_request", payloads.pull_request("closed"))
    await server.settle()
    [run] = checks(github)  # the head's one check run ends saying what is left: nothing
    assert (run["conclusion"], run["output"]["title"]) == ("neutral", "Deleted")
    [cancelled] = [c.json for c in github.calls_to("PATCH", r"/check-runs/") if c.json.get("conclusion") == "cancelled"]
    # DevPod v0.6.15 dies without a word on SIGTERM: the bot says what it ended.
    assert re.search(r'devenv-bot stopped DevPod after \d+ s, during "Starting DevPod" \(creating the environment\)',
                     cancelled["output"]["summary"])
    assert len(devpod.calls("delete")) == 1
    assert tracked(server) is None  # nothing kept for a deleted environment
    assert not (server.settings.state_dir / "environments" / f"{WS}.json").exists()


async def test_converting_to_draft_stops_the_environment(server, github, devpod):
    await server.deliver("pull_request", payloads.pull_request("opened"))
    await server.settle()
    await server.deliver("pull_request", payloads.pull_request("converted_to_draft"))
    await server.settle()
    assert len(devpod.calls("stop")) == 1
    assert "⏸️ Stopped" in sticky(github)


async def test_a_push_to_a_stopped_environment_shows_it_is_behind_without_waking_it(server, github, devpod):
    await server.deliver("pull_request", payloads.pull_request("opened"))
    await server.settle()
    await server.deliver("pull_request", payloads.pull_request("converted_to_draft"))
    await server.settle()
    await server.deliver("pull_request", payloads.pull_request("synchronize", head_sha="f" * 40))
    await server.settle()
    assert len(devpod.calls("up")) == 1
    body = sticky(github)
    assert "⏸️ Stopped" in body and "the PR head is `fffffff` (not applied yet)" in body


async def test_local_changes_pause_syncing_and_the_comment_says_how_to_go_on(server, github, devpod):
    await server.deliver("pull_request", payloads.pull_request("opened"))
    await server.settle()
    # the "container" holds a checkout with an uncommitted change
    work = devpod.container_dir(WS)
    work.mkdir(parents=True, exist_ok=True)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(git + ["init", "-q"], cwd=work, check=True)
    (work / "app.py").write_text("print(1)\n")
    subprocess.run(git + ["add", "app.py"], cwd=work, check=True)
    subprocess.run(git + ["commit", "-qm", "base"], cwd=work, check=True)
    (work / "app.py").write_text("print(2)\n")
    await server.deliver("pull_request", payloads.pull_request("synchronize", head_sha="d" * 40))
    await server.settle()
    assert len(devpod.calls("up")) == 1  # not reset over the user's work
    body = sticky(github)
    assert "uncommitted changes" in body and "/devenv reset" in body
    assert checks(github)[-1]["conclusion"] == "action_required"


async def test_a_private_repo_clone_gets_a_narrow_token_outside_argv(environ, github, devpod, caplog):
    caplog.set_level(logging.DEBUG)  # every log line, not only warnings
    github.add_installation(payloads.INSTALLATION_ID)
    github.add_repo(OWNER, REPO, private=True, installation_id=payloads.INSTALLATION_ID)
    github.set_permission(OWNER, REPO, OWNER, "admin")
    github.add_pull(OWNER, REPO, NUMBER, head_sha=payloads.pull_request("opened")["pull_request"]["head"]["sha"])
    payload = payloads.pull_request("opened")
    payload["repository"]["private"] = True
    srv = await start(environ)
    try:
        await srv.deliver("pull_request", payload)
        await srv.settle()
    finally:
        await srv.stop()
    [up] = devpod.calls("up")
    assert up["git_askpass"] and not up["git_token_env"]  # the token is not in DevPod's environment (CONTRACT §9)
    mints = [c for c in github.calls_to("POST", r"/app/installations/\d+/access_tokens") if c.json]
    assert mints and mints[-1].json == {"repositories": [REPO], "permissions": {"contents": "read"}}
    calls_text = (devpod.home / "standin-calls.jsonl").read_text()
    assert "ghs_" not in calls_text
    # No token the bot was given reaches a log line, a comment or a check run.
    tokens = list(github.state.tokens)
    assert len(tokens) >= 2  # the installation's own and the narrowed clone token
    published = [c["body"] for c in github.comments(OWNER, REPO, NUMBER)]
    published += [str(run["output"]) for run in github.check_runs(OWNER, REPO)]
    for token in tokens:
        assert token not in caplog.text
        assert not any(token in text for text in published)
    assert environ["WEBHOOK_SECRET"] not in caplog.text


async def test_an_operation_interrupted_by_a_crash_is_resumed_on_start_up(environ, repo, github, devpod, tmp_path):
    first = await start(environ)
    devpod.inject(command="up", sleep=30)
    await first.deliver("pull_request", payloads.pull_request("opened"))
    await eventually(lambda: devpod.calls("up"), what="up to start")
    # Simulate a crash: drop the bot without letting it conclude anything.
    await first.bot.environments.drain(0)  # no grace: the running up is cut short, not concluded
    journal = json.loads((tmp_path / "state" / "environments" / f"{WS}.json").read_text())
    assert journal["op"]["kind"] == "up"
    await first.stop()
    assert checks(github)[0]["status"] == "in_progress"

    second = await start(environ)
    try:
        await second.settle()
    finally:
        await second.stop()
    [run] = checks(github)
    assert run["status"] == "completed" and run["conclusion"] == "success"
    assert "🟢 Running" in sticky(github)


def test_check_run_texts_are_cut_to_githubs_byte_limit_without_breaking_utf8():
    from bot.github.pulls import check_output

    out = check_output("t", "é" * 40000, "🙂" * 20000)
    assert len(out["summary"].encode()) <= 65535 and len(out["text"].encode()) <= 65535
    out["summary"].encode("utf-8").decode("utf-8")


@pytest.mark.parametrize("login", ["@everyone", "a<b>c", "x](javascript:alert(1))"])
async def test_user_text_in_the_comment_is_escaped(server, github, login):
    payload = payloads.pull_request("opened", author=login.replace("@", "") if login.startswith("@") else "octo")
    payload["sender"]["login"] = login
    await server.deliver("pull_request", payload)
    await server.settle()
    body = sticky(github)
    assert login not in body
