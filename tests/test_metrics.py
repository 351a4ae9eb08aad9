"""The metrics operators need, read from ``GET /metrics`` of the real bot after real work.

The environments by state, DevPod operations by kind and outcome with their durations, the DevPod
queue, agent runs and link checks: each end-to-end test drives the bot (the GitHub emulator, the
stand-in devpod, the stand-in agent, a browser signing in) and then reads the exposition text as
Prometheus would, asserting exact sample lines.  Two more keep the operations guide's table equal to
the families and their label values, and check the records' counts by state on their own.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.metrics import MetricWrapperBase

from bot.access.service import ACCESS_KEY, DECISIONS
from bot.access.sessions import Identity
from bot.agent.runs import OUTCOMES as AGENT_OUTCOMES
from bot.core.metrics import Metrics
from bot.environments import telemetry
from bot.environments.journal import EnvRecord, Journal, Records
from bot.environments.states import State
from bot.settings import config
from tests import payloads
from tests.botserver import BotServer, bot_environ
from tests.eventually import eventually
from tests.test_access import DOMAIN, Browser
from tests.test_agent_e2e import KEY, SAMPLES, STANDIN_DIR, command, finish, open_pr
from tests.test_links_e2e import IDE, WEB, WS, links_environ  # noqa: F401  (the fixture)

OWNER, REPO = "Codertocat", "Hello-World"
STATES = ("none", "queued", "creating", "updating", "running", "stopping", "stopped", "deleting", "deleted", "failed")
GUIDE = Path(__file__).resolve().parents[1] / "docs" / "operations.md"


async def scrape(server: BotServer) -> list[str]:
    """The sample lines of ``/metrics`` (no comments)."""
    status, text = await server.get("/metrics")
    assert status == 200
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def environments(lines: list[str], **expected: int) -> None:
    """Every state has its sample; those not named are 0."""
    for state in STATES:
        assert f'devenv_environments{{state="{state}"}} {float(expected.get(state, 0))}' in lines, state


def test_the_operations_guide_lists_every_family_with_its_labels_and_their_values():
    rows = {line.split("`")[1]: line for line in GUIDE.read_text().splitlines() if line.startswith("| `devenv_")}
    families = [m for m in vars(Metrics()).values() if isinstance(m, MetricWrapperBase)]
    assert len(families) >= 14  # found them all (the guide lists fourteen)
    for family in families:
        name = family._name + ("_total" if family._type == "counter" else "")
        assert name in rows, f"{name} is not in docs/operations.md"
        for label in family._labelnames:
            assert f"`{label}`" in rows[name], (name, label)
    assert set(STATES) == {s.value for s in State}
    values = {"devenv_environments": STATES, "devenv_devpod_operations_total": telemetry.KINDS + telemetry.OUTCOMES,
              "devenv_agent_runs_total": AGENT_OUTCOMES, "devenv_link_checks_total": DECISIONS}
    for name, fixed in values.items():
        assert all(f"`{value}`" in rows[name] for value in fixed), name


def test_the_records_keep_their_counts_by_state_as_they_change(tmp_path):
    heard: list[dict[str, int]] = []
    records = Records(Journal(tmp_path), clock=lambda: 0.0,
                      on_change=lambda counts: heard.append({s.value: n for s, n in counts.items() if n}))
    a = records.add(EnvRecord(ws_id="a", installation_id=1, owner="o", repo="r", number=1, head_sha="1" * 40))
    b = records.add(EnvRecord(ws_id="b", installation_id=1, owner="o", repo="r", number=2, head_sha="2" * 40))
    a.state = State.RUNNING
    records.save(a)
    records.save(a)  # no change of state: nothing to tell
    b.state = State.FAILED
    records.save(b)
    records.forget("a")
    assert heard == [{"none": 1}, {"none": 2}, {"none": 1, "running": 1}, {"running": 1, "failed": 1}, {"failed": 1}]
    again = Records(Journal(tmp_path), clock=lambda: 0.0)
    again.load()  # start-up counts what the journal holds
    assert dict(+again.counts) == {State.FAILED: 1}


# -- environments and DevPod operations ------------------------------------------------------------


async def test_an_opened_pr_counts_one_successful_up_and_one_running_environment(server):
    assert 'devenv_environments{state="running"} 0.0' in await scrape(server)  # present before any PR
    await server.deliver("pull_request", payloads.pull_request("opened"))
    await server.settle()
    lines = await scrape(server)
    environments(lines, running=1)
    assert 'devenv_devpod_operations_total{kind="up",outcome="success"} 1.0' in lines
    assert 'devenv_devpod_operations_total{kind="up",outcome="failure"} 0.0' in lines
    assert 'devenv_devpod_operation_seconds_count{kind="up"} 1.0' in lines
    assert 'devenv_devpod_operation_seconds_count{kind="delete"} 0.0' in lines
    assert "devenv_queue_depth 0.0" in lines
    assert "devenv_queue_wait_seconds_count 1.0" in lines  # a free slot: waited 0 s, still counted
    assert 'devenv_queue_wait_seconds_bucket{le="0.01"} 1.0' in lines

    await server.deliver("pull_request", payloads.pull_request("converted_to_draft"))
    await server.settle()
    lines = await scrape(server)
    environments(lines, stopped=1)
    assert 'devenv_devpod_operations_total{kind="stop",outcome="success"} 1.0' in lines

    await server.deliver("pull_request", payloads.pull_request("closed"))
    await server.settle()
    lines = await scrape(server)
    environments(lines)  # deleted, then forgotten: no environment left in any state
    assert 'devenv_devpod_operations_total{kind="delete",outcome="success"} 1.0' in lines
    assert 'devenv_devpod_operation_seconds_count{kind="delete"} 1.0' in lines


async def test_a_failed_up_counts_as_a_failure_and_a_failed_environment(server, devpod):
    devpod.inject(command="up", exit=1, message="pods is forbidden")
    await server.deliver("pull_request", payloads.pull_request("opened"))
    await server.settle()
    lines = await scrape(server)
    environments(lines, failed=1)
    assert 'devenv_devpod_operations_total{kind="up",outcome="failure"} 1.0' in lines
    assert 'devenv_devpod_operations_total{kind="up",outcome="success"} 0.0' in lines
    assert 'devenv_devpod_operation_seconds_count{kind="up"} 1.0' in lines


async def test_an_up_cancelled_by_a_delete_counts_as_cancelled(server, devpod):
    devpod.inject(command="up", hang=True)
    await server.deliver("pull_request", payloads.pull_request("opened"))
    await eventually(lambda: devpod.calls("up"), what="the up to start")
    await server.deliver("pull_request", payloads.pull_request("closed"))
    await server.settle()
    lines = await scrape(server)
    assert 'devenv_devpod_operations_total{kind="up",outcome="cancelled"} 1.0' in lines
    assert 'devenv_devpod_operations_total{kind="delete",outcome="success"} 1.0' in lines
    environments(lines)


async def test_an_operation_waiting_for_a_busy_slot_shows_in_the_queue_depth_and_wait(environ, repo, github, devpod):
    github.add_pull(OWNER, REPO, 3, head_sha="c" * 40)
    server = await BotServer(config.load({**environ, "DEVENV_MAX_CONCURRENT_OPS": "1"})).start()
    try:
        devpod.inject(command="up", sleep=1.0, times=1)
        await server.deliver("pull_request", payloads.pull_request("opened", number=3, head_sha="c" * 40))
        await eventually(lambda: devpod.calls("up"), what="the first up to hold the only slot")
        await server.deliver("pull_request", payloads.pull_request("opened"))

        async def waiting() -> bool:
            return "devenv_queue_depth 1.0" in await scrape(server)

        await eventually(waiting, what="the second up to wait for the slot")
        lines = await scrape(server)
        environments(lines, creating=1, queued=1)
        await server.settle()
        lines = await scrape(server)
    finally:
        await server.stop()
    assert "devenv_queue_depth 0.0" in lines
    assert "devenv_queue_wait_seconds_count 2.0" in lines
    assert 'devenv_queue_wait_seconds_bucket{le="0.1"} 1.0' in lines  # the first got the slot at once
    assert 'devenv_queue_wait_seconds_bucket{le="5.0"} 2.0' in lines  # the second waited for the 1 s up
    assert 'devenv_devpod_operations_total{kind="up",outcome="success"} 2.0' in lines
    environments(lines, running=2)


# -- agent runs ----------------------------------------------------------------------------------------


@pytest.fixture
async def agent_server(github, repo, tmp_path, devpod):
    env = devpod.env()
    env["PATH"] = f"{STANDIN_DIR}:{env['PATH']}"  # the stand-in claude is found inside the "container"
    server = await BotServer(config.load(bot_environ(github, tmp_path / "state", **env, DEVENV_AGENT_API_KEY=KEY,
                                                     DEVENV_AGENT_PROGRESS_INTERVAL="0"))).start()
    yield server
    await server.stop()


@pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"no Claude Code stream samples at {SAMPLES}")
async def test_agent_runs_are_counted_by_how_they_ended(agent_server, github):
    await open_pr(agent_server, github)
    assert 'devenv_agent_runs_total{outcome="success"} 0.0' in await scrape(agent_server)
    await agent_server.deliver("issue_comment", command(github, '/devenv agent run "Say hello"'))
    await finish(agent_server)
    await agent_server.deliver("issue_comment", command(github, '/devenv agent run "#scenario:crash"'))
    await finish(agent_server)
    await agent_server.deliver("issue_comment", command(github, "/devenv agent stop"))  # nothing runs: no run
    await finish(agent_server)
    lines = await scrape(agent_server)
    assert 'devenv_agent_runs_total{outcome="success"} 1.0' in lines
    assert 'devenv_agent_runs_total{outcome="failure"} 1.0' in lines
    for outcome in ("cancelled", "timed_out", "missing_agent", "error"):
        assert f'devenv_agent_runs_total{{outcome="{outcome}"}} 0.0' in lines


# -- link checks ---------------------------------------------------------------------------------------


@pytest.fixture
async def links_server(links_environ):  # noqa: F811
    server = await BotServer(config.load(links_environ)).start()
    yield server
    await server.stop()


def link_checks(lines: list[str], **expected: int) -> None:
    for decision in ("allowed", "sign_in", "forbidden", "unavailable", "stopped", "starting", "unknown"):
        assert f'devenv_link_checks_total{{decision="{decision}"}} {float(expected.get(decision, 0))}' in lines, \
            decision


async def test_link_checks_are_counted_by_decision(links_server, github):
    await links_server.deliver("pull_request", payloads.pull_request("opened"))
    await links_server.settle()
    link_checks(await scrape(links_server))  # every decision present, none made yet
    github.set_permission(OWNER, REPO, "octo-writer", "write")
    github.oauth_login = "octo-writer"
    writer = Browser(links_server, github)
    assert (await writer.sign_in(IDE))[:2] == (200, IDE)  # sign-in is not a check
    assert (await writer.check(f"{IDE}static/main.js"))[0] == 200
    assert (await writer.check(WEB, style="traefik"))[0] == 302  # no cookie for that host yet: sign in
    assert (await Browser(links_server, github).check(IDE))[0] == 401  # not signed in
    assert (await writer.check(f"https://code-{WS}.elsewhere.test/"))[0] == 403  # not a preview
    # A reader holding a valid cookie for the IDE (needs write): refused, nginx gets a 401.
    github.set_permission(OWNER, REPO, "octo-reader", "read")
    access = links_server.app[ACCESS_KEY]
    host = f"code-{WS}.{DOMAIN}"
    cookie = f"{access.host_cookie(host)}={access.host_cookie_value(Identity(78, 'octo-reader'), host)}"
    assert (await writer.check(IDE, cookie=cookie))[0] == 401
    link_checks(await scrape(links_server), allowed=1, sign_in=2, forbidden=1, unknown=1)

    await links_server.deliver("pull_request", payloads.pull_request("converted_to_draft"))
    await links_server.settle()
    assert (await writer.check(IDE, style="traefik"))[0] == 503  # the page saying it is stopped
    link_checks(await scrape(links_server), allowed=1, sign_in=2, forbidden=1, unknown=1, stopped=1)

    await links_server.deliver("pull_request", payloads.pull_request("closed"))
    await links_server.settle()
    assert (await writer.check(IDE))[0] == 401  # signed in, but there is no such environment any more
    link_checks(await scrape(links_server), allowed=1, sign_in=2, forbidden=1, unknown=2, stopped=1)
