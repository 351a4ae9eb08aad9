"""``/devenv agent run`` and ``/devenv agent stop`` end to end: the real app on a socket, the
GitHub emulator, the stand-in devpod with the stand-in ``claude`` on the bot's DevPod PATH."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from bot import devpod as devpod_mod
from tests import payloads
from tests.botserver import bot_environ
from tests.eventually import eventually

OWNER, REPO, NUMBER = "Codertocat", "Hello-World", payloads.PR_NUMBER
WS = devpod_mod.workspace_id(OWNER, REPO, NUMBER)
STANDIN_DIR = Path(__file__).parent / "standin"
SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "links-agent" / "claude-stream-samples"
KEY = "sk-ant-api03-" + "E2eKeyQ9xW3vY7tU1sR5pO2nM8lK4jH6"
PUSH_BODY = {"repositories": [REPO], "permissions": {"contents": "write"}}

pytestmark = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"no Claude Code stream samples at {SAMPLES}")


@pytest.fixture
def environ(github, tmp_path, devpod):
    env = devpod.env()
    env["PATH"] = f"{STANDIN_DIR}:{env['PATH']}"  # the stand-in claude is found inside the "container"
    return bot_environ(github, tmp_path / "state", **env, DEVENV_AGENT_API_KEY=KEY,
                       DEVENV_AGENT_PROGRESS_INTERVAL="0", DEVENV_AGENT_CANCEL_GRACE="5")


def command(github, body: str, *, user: str = "Codertocat", number: int = NUMBER) -> dict:
    comment = github.add_comment(OWNER, REPO, number, body, user=user)
    return payloads.pr_comment(body, user=user, comment_id=comment["id"], number=number)


def reactions(github, payload: dict) -> list[str]:
    return [r["content"] for r in github.reactions(OWNER, REPO, payload["comment"]["id"])]


def replies(github, number: int = NUMBER) -> list[str]:
    return [c["body"] for c in github.comments(OWNER, REPO, number)
            if c["user"]["type"] == "Bot" and "devenv-bot:sticky" not in c["body"]]


def agent_checks(github) -> list[dict]:
    return [c for c in github.check_runs(OWNER, REPO) if c["name"] == "devenv agent"]


def push_token_requests(github) -> list[dict]:
    return [b for b in github.token_requests if (b.get("permissions") or {}).get("contents") == "write"]


async def finish(server) -> None:
    """Wait for the deliveries, the agent runs and everything they caused."""
    await server.settle()
    await server.bot.agent_runs.idle()
    await server.settle()


async def open_pr(server, github) -> None:
    github.set_permission(OWNER, REPO, "Codertocat", "admin")
    await server.deliver("pull_request", payloads.pull_request("opened"))
    await server.settle()


def agent_call(devpod, ws: str = WS) -> dict:
    return json.loads((devpod.container_dir(ws) / ".agent-call.json").read_text())


def everything_shown(github) -> str:
    """Every comment and check-run text the bot wrote, as sent."""
    texts = [json.dumps(c.json) for c in github.calls if c.method in ("POST", "PATCH") and c.json is not None]
    texts += [c["body"] for c in github.comments(OWNER, REPO, NUMBER)]
    texts += [json.dumps(c.get("output")) for c in github.check_runs(OWNER, REPO)]
    return "\n".join(texts)


async def test_a_run_streams_into_the_agent_check_run_and_ends_with_a_comment(server, github, devpod):
    await open_pr(server, github)
    github.reset_calls()
    payload = command(github, '/devenv agent run "Say <b>hello</b> to @octocat"')
    await server.deliver("issue_comment", payload)
    await finish(server)

    [check] = agent_checks(github)
    assert check["status"] == "completed" and check["conclusion"] == "success"
    assert check["head_sha"] == payloads.pull_request("opened")["pull_request"]["head"]["sha"]
    assert "Say <b>hello</b> to @octocat" in check["output"]["summary"]  # quoted inside a fence
    assert "All done: the command printed hello-from-tool." in check["output"]["summary"]
    updates = github.calls_to("PATCH", rf"/check-runs/{check['id']}")
    assert len(updates) >= 3, "progress is streamed into the check run, not written once at the end"
    assert any(u.json["status"] == "in_progress" and "Agent running" in u.json["output"]["title"] for u in updates)

    [final] = replies(github)
    assert final.startswith("@Codertocat, the agent finished")
    assert "```text\nSay <b>hello</b> to @octocat\n```" in final
    assert "All done: the command printed hello-from-tool." in final
    assert reactions(github, payload) == ["eyes", "rocket"]
    assert len(devpod.calls("ssh")) >= 1 and len(devpod.calls("up")) == 1  # it was already running
    call = agent_call(devpod)
    assert call["api_key_set"] and "GH_TOKEN" in call["env_names"]
    assert push_token_requests(github) == [PUSH_BODY]
    assert server.bot.agent_runs.runs == {}


async def test_the_environment_is_brought_up_first_when_it_is_not_running(server, github, devpod):
    github.set_permission(OWNER, REPO, "octocat", "write")
    payload = command(github, '/devenv agent run "Say hello"', user="octocat")
    await server.deliver("issue_comment", payload)
    await finish(server)
    assert len(devpod.calls("up")) == 1
    assert [c["conclusion"] for c in agent_checks(github)] == ["success"]
    assert [c["conclusion"] for c in github.check_runs(OWNER, REPO) if c["name"] == "devenv"] == ["success"]
    assert reactions(github, payload) == ["eyes", "rocket"]


async def test_an_environment_that_cannot_start_fails_the_run_without_running_the_agent(server, github, devpod):
    github.set_permission(OWNER, REPO, "octocat", "write")
    devpod.inject(command="up", exit=1)
    payload = command(github, '/devenv agent run "Say hello"', user="octocat")
    await server.deliver("issue_comment", payload)
    await finish(server)
    [check] = agent_checks(github)
    assert check["conclusion"] == "failure" and "could not be started" in check["output"]["summary"]
    assert devpod.calls("ssh") == []
    assert reactions(github, payload) == ["eyes", "confused"]


async def test_a_failing_agent_fails_the_check_run_and_shows_the_tail(server, github, devpod):
    await open_pr(server, github)
    payload = command(github, '/devenv agent run "#scenario:crash"')
    await server.deliver("issue_comment", payload)
    await finish(server)
    [check] = agent_checks(github)
    assert check["conclusion"] == "failure"
    assert "RuntimeError: the agent crashed" in check["output"]["text"]
    [final] = replies(github)
    assert "failed" in final and "exited with code 134" in final
    assert "RuntimeError: the agent crashed" in final
    assert reactions(github, payload) == ["eyes", "confused"]


async def test_an_error_result_fails_the_run_with_the_agents_message(server, github, devpod):
    await open_pr(server, github)
    await server.deliver("issue_comment", command(github, '/devenv agent run "#scenario:max-turns"'))
    await finish(server)
    [check] = agent_checks(github)
    assert check["conclusion"] == "failure"
    assert "Reached maximum number of turns" in replies(github)[0]


async def test_agent_stop_cancels_the_run_and_the_check_run_ends_cancelled(server, github, devpod):
    await open_pr(server, github)
    github.set_permission(OWNER, REPO, "hubot", "write")
    payload = command(github, '/devenv agent run "#scenario:hang"')
    await server.deliver("issue_comment", payload)
    await server.settle()
    await eventually(lambda: (devpod.container_dir(WS) / ".agent-call.json").exists()
                     and any(c["status"] == "in_progress" and "Agent running" in c["output"]["title"]
                             for c in agent_checks(github)))
    stop = command(github, "/devenv agent stop", user="hubot")
    await server.deliver("issue_comment", stop)
    await finish(server)
    [check] = agent_checks(github)
    assert check["conclusion"] == "cancelled"
    assert "stopped by hubot" in check["output"]["summary"]
    kills = [c["argv"][c["argv"].index("--command") + 1] for c in devpod.calls("ssh")
             if "kill -s " in c["argv"][c["argv"].index("--command") + 1]]
    assert kills and "kill -s INT " in kills[0] and "__DEVENV_RUN=" in kills[0]
    [final] = replies(github)
    assert "was cancelled" in final and "(stopped by hubot)" in final
    assert reactions(github, payload) == ["eyes", "confused"]
    assert reactions(github, stop) == ["eyes", "rocket"]


async def test_agent_stop_with_nothing_running_says_so(server, github, devpod):
    await open_pr(server, github)
    payload = command(github, "/devenv agent stop")
    await server.deliver("issue_comment", payload)
    await finish(server)
    [reply] = replies(github)
    assert "no agent is running" in reply
    assert devpod.calls("ssh") == [] and agent_checks(github) == []


async def test_the_time_limit_ends_the_run_timed_out(server, github, devpod):
    await open_pr(server, github)
    server.bot.agent_runs.settings = dataclasses.replace(server.bot.agent_runs.settings, timeout=1.0)
    await server.deliver("issue_comment", command(github, '/devenv agent run "#scenario:hang"'))
    await finish(server)
    [check] = agent_checks(github)
    assert check["conclusion"] == "timed_out"
    assert "did not finish within 1 s" in replies(github)[0]


async def test_the_time_limit_comes_from_DEVENV_AGENT_TIMEOUT(github, tmp_path, devpod):
    from bot.settings import config

    env = devpod.env()
    settings = config.load(bot_environ(github, tmp_path / "state", **env, DEVENV_AGENT_API_KEY=KEY,
                                       DEVENV_AGENT_TIMEOUT="1"))
    assert settings.agent.timeout == 1.0


async def test_a_second_request_while_one_runs_is_refused_with_how_to_stop_it(server, github, devpod):
    await open_pr(server, github)
    github.set_permission(OWNER, REPO, "hubot", "write")
    first = command(github, '/devenv agent run "#scenario:hang"')
    await server.deliver("issue_comment", first)
    await server.settle()
    second = command(github, '/devenv agent run "something else"', user="hubot")
    await server.deliver("issue_comment", second)
    await server.settle()
    [refusal] = replies(github)
    assert refusal.startswith("@hubot, the agent was not started: an agent run is already going")
    assert "asked by Codertocat" in refusal and "`/devenv agent stop`" in refusal
    assert reactions(github, second) == ["confused"]
    assert len(agent_checks(github)) == 1
    await server.deliver("issue_comment", command(github, "/devenv agent stop"))
    await finish(server)
    assert [c["conclusion"] for c in agent_checks(github)] == ["cancelled"]


async def test_a_run_asked_for_as_soon_as_the_last_check_run_completes_is_accepted(server, github, devpod):
    # Issue 11 item 13: the slot was freed only after the final comment and reactions, so a request
    # made as soon as the check run said "completed" was refused as "already going".
    await open_pr(server, github)
    github.set_permission(OWNER, REPO, "hubot", "write")
    github.inject("POST", r"/issues/\d+/comments$", delay=1.5)  # the first run's final comment is slow
    await server.deliver("issue_comment", command(github, '/devenv agent run "Say hello"'))
    await eventually(lambda: [c["status"] for c in agent_checks(github)] == ["completed"],
                     what="the first agent check run to complete")

    second = command(github, '/devenv agent run "Say hello again"', user="hubot")
    await server.deliver("issue_comment", second)
    await finish(server)

    assert [c["conclusion"] for c in agent_checks(github)] == ["success", "success"]
    assert not any("already going" in r for r in replies(github))
    assert reactions(github, second) == ["eyes", "rocket"]


async def test_a_fork_pr_gets_no_agent_and_never_a_push_token(server, github, devpod):
    github.set_permission(OWNER, REPO, "octocat", "write")
    github.add_pull(OWNER, REPO, 7, head_repo="stranger/Hello-World", user="stranger")
    payload = command(github, '/devenv agent run "Say hello"', user="octocat", number=7)
    await server.deliver("issue_comment", payload)
    await finish(server)
    [refusal] = replies(github, 7)
    assert "no secrets of any kind reach untrusted environments" in refusal
    assert reactions(github, payload) == ["confused"]
    assert push_token_requests(github) == [] and devpod.calls("ssh") == []


async def test_even_a_trusted_fork_pr_never_gets_a_push_token(server, github, devpod):
    """Defence in depth: should a fork PR ever count as trusted, the agent still runs without a token."""
    github.set_permission(OWNER, REPO, "octocat", "write")
    github.add_pull(OWNER, REPO, 7, head_repo="stranger/Hello-World", user="stranger")
    from bot.environments.manager import PullInfo

    pull = await server.bot.github.installation(payloads.INSTALLATION_ID).getitem(f"/repos/{OWNER}/{REPO}/pulls/7")
    info = PullInfo.from_payload(payloads.INSTALLATION_ID, pull, payloads.pull_request("opened")["repository"])
    assert info.fork
    server.bot.environments.set_trust(info, True)
    payload = command(github, '/devenv agent run "Say hello"', user="octocat", number=7)
    await server.deliver("issue_comment", payload)
    await finish(server)
    ws = devpod_mod.workspace_id(OWNER, REPO, 7)
    assert [c["conclusion"] for c in agent_checks(github)] == ["success"]
    assert push_token_requests(github) == []
    assert "GH_TOKEN" not in agent_call(devpod, ws)["env_names"]
    assert "No push token: this pull request comes from a fork" in replies(github, 7)[0]


async def test_the_api_key_never_shows_in_comments_check_runs_or_devpod_argv(server, github, devpod):
    await open_pr(server, github)
    await server.deliver("issue_comment", command(github, '/devenv agent run "#scenario:leak"'))
    await finish(server)
    assert [c["conclusion"] for c in agent_checks(github)] == ["success"]
    assert agent_call(devpod)["api_key_set"]
    shown = everything_shown(github)
    assert "The key is \\\\*\\\\*\\\\*" in shown  # masked, then Markdown-escaped (and JSON-encoded)
    assert KEY not in shown
    recorded = (devpod.home / "standin-calls.jsonl").read_text()
    assert KEY not in recorded and "GH_TOKEN" not in recorded
    tokens = [t for t in github.state.tokens if t in shown or t in recorded]
    assert tokens == []


async def test_a_reader_may_not_run_the_agent(server, github, devpod):
    await open_pr(server, github)
    github.set_permission(OWNER, REPO, "reader", "read")
    payload = command(github, '/devenv agent run "Say hello"', user="reader")
    await server.deliver("issue_comment", payload)
    await finish(server)
    [reply] = replies(github)
    assert "needs **write** access" in reply and "you have **read**" in reply
    assert reactions(github, payload) == ["confused"]
    assert agent_checks(github) == [] and devpod.calls("ssh") == []


async def test_an_empty_prompt_gets_usage_help(server, github, devpod):
    await open_pr(server, github)
    payload = command(github, '/devenv agent run ""')
    await server.deliver("issue_comment", payload)
    await finish(server)
    [reply] = replies(github)
    assert "agent run" in reply and "For example" in reply
    assert reactions(github, payload) == ["confused"]
    assert agent_checks(github) == [] and devpod.calls("ssh") == []


async def test_a_missing_api_key_is_refused_naming_the_variable(server, github, devpod):
    await open_pr(server, github)
    server.bot.agent_runs.settings = dataclasses.replace(server.bot.agent_runs.settings, api_key=None)
    payload = command(github, '/devenv agent run "Say hello"')
    await server.deliver("issue_comment", payload)
    await finish(server)
    [reply] = replies(github)
    assert "`DEVENV_AGENT_API_KEY`" in reply
    assert agent_checks(github) == [] and devpod.calls("ssh") == []


def set_repo_settings(github, text: str) -> None:
    """``.github/devenv.yml`` at the PR's base commit (where the bot reads it)."""
    base = github._repo(OWNER, REPO).pulls[NUMBER]["base_sha"]  # noqa: SLF001
    github.set_file(OWNER, REPO, ".github/devenv.yml", text, ref=base)


async def test_the_repositorys_agent_command_replaces_the_deployments(server, github, devpod):
    set_repo_settings(github, "agent:\n  command: [claude, -p, --output-format, stream-json, --verbose, "
                              "--model, repo-model]\n")
    await open_pr(server, github)
    await server.deliver("issue_comment", command(github, '/devenv agent run "Say hello"'))
    await finish(server)
    assert [c["conclusion"] for c in agent_checks(github)] == ["success"]
    assert agent_call(devpod)["argv"][-2:] == ["--model", "repo-model"]


async def test_the_repository_can_ask_for_more_than_write_to_run_the_agent(server, github, devpod):
    set_repo_settings(github, "permissions:\n  agent run: admin\n")
    await open_pr(server, github)
    github.set_permission(OWNER, REPO, "hubot", "write")
    payload = command(github, '/devenv agent run "Say hello"', user="hubot")
    await server.deliver("issue_comment", payload)
    await finish(server)
    [reply] = replies(github)
    assert "needs **admin** access" in reply
    assert agent_checks(github) == []


async def test_a_push_while_the_agent_works_does_not_rebuild_the_environment_under_it(server, github, devpod):
    await open_pr(server, github)
    payload = command(github, '/devenv agent run "#scenario:hang"')
    await server.deliver("issue_comment", payload)
    await server.settle()
    await eventually(lambda: (devpod.container_dir(WS) / ".agent-call.json").exists())
    ups_before = len(devpod.calls("up"))
    await server.deliver("pull_request", payloads.pull_request("synchronize", head_sha="9" * 40))
    await server.settle()
    assert len(devpod.calls("up")) == ups_before  # no sync while the agent runs
    await server.deliver("issue_comment", command(github, "/devenv agent stop"))
    await finish(server)
