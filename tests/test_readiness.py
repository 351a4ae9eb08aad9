"""Readiness checks: every reason is reported, a failing check is retried until it passes."""

from __future__ import annotations

import asyncio

from bot.core.readiness import Readiness
from bot.settings import config
from tests import test_links_e2e as links
from tests.botserver import BotServer, bot_environ
from tests.k8s_fake.fixtures import kube  # noqa: F401  (the shared Kubernetes API fake)
from tests.standin import DevPodStandIn
from tests.test_links_e2e import links_environ  # noqa: F401  (fixture, reused)


async def test_nothing_is_ready_before_the_first_check():
    readiness = Readiness()

    async def fine() -> None:
        return None

    readiness.add("devpod", fine)
    assert readiness.problems() == {"devpod": "not checked yet", "start-up": "starting, or shutting down"}
    readiness.started = True
    assert await readiness.run_once() == {}


async def test_every_failing_check_is_reported_with_its_reason():
    readiness = Readiness()

    async def devpod() -> str:
        return "devpod was not found: install DevPod v0.6.15-hotfix.2 or set DEVPOD_BIN"

    async def github() -> None:
        return None

    async def crashes() -> None:
        raise RuntimeError("boom")

    async def hangs() -> None:
        await asyncio.sleep(60)

    readiness.timeout = 0.05
    readiness.started = True
    for name, check in (("devpod", devpod), ("github", github), ("kubernetes", crashes), ("slow", hangs)):
        readiness.add(name, check)
    problems = await readiness.run_once()
    assert problems == {
        "devpod": "devpod was not found: install DevPod v0.6.15-hotfix.2 or set DEVPOD_BIN",
        "kubernetes": "the kubernetes check failed (RuntimeError)",
        "slow": "the slow check did not finish within 0.05 s",
    }


async def test_a_failing_check_is_retried_in_the_background_until_it_passes():
    waits: list[float] = []
    woken = asyncio.Event()
    answers = ["GitHub answered 401", None]

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) > 2:
            woken.set()
            await asyncio.Event().wait()  # park the loop once the retry has happened

    async def github() -> str | None:
        return answers.pop(0) if answers else None

    readiness = Readiness(retry=5, recheck=60, sleep=sleep)
    readiness.started = True
    readiness.add("github", github)
    assert await readiness.run_once() == {"github": "GitHub answered 401"}
    readiness.start()
    await asyncio.wait_for(woken.wait(), 5)
    await readiness.stop()
    assert readiness.problems() == {}
    assert waits[:2] == [5, 60]  # soon while failing, then only now and then


# --------------------------------------------------------------------------- the bot's own checks, end to end


async def readyz(srv) -> tuple[int, dict]:
    assert srv.session is not None
    async with srv.session.get(srv.url + "/readyz") as resp:
        return resp.status, await resp.json()


async def test_the_bot_is_ready_when_devpod_github_and_kubernetes_answer(links_environ):
    srv = await BotServer(config.load(links_environ)).start()
    try:
        assert await readyz(srv) == (200, {"status": "ready", "background_tasks": 0})
    finally:
        await srv.stop()


async def test_without_devpod_the_bot_is_alive_but_not_ready_and_says_what_to_install(environ, repo, tmp_path):
    srv = await BotServer(config.load({**environ, "DEVPOD_BIN": str(tmp_path / "no-devpod-here")})).start()
    try:
        assert (await srv.get("/healthz"))[0] == 200
        status, answer = await readyz(srv)
    finally:
        await srv.stop()
    assert status == 503 and answer["status"] == "not ready"
    assert set(answer["problems"]) == {"devpod"}
    assert "install DevPod v0.6.15-hotfix.2" in answer["problems"]["devpod"]
    assert "DEVPOD_BIN" in answer["problems"]["devpod"]


async def test_another_devpod_version_is_not_ready(github, repo, tmp_path):
    other = DevPodStandIn(tmp_path / "devpod-home")
    other.home.mkdir(parents=True, exist_ok=True)
    (other.home / "standin-version").write_text("0.7.0-alpha.4")  # the bot runs devpod with a minimal env
    srv = await BotServer(config.load(bot_environ(github, tmp_path / "state", **other.env()))).start()
    try:
        status, answer = await readyz(srv)
    finally:
        await srv.stop()
    assert status == 503
    assert "is DevPod v0.7.0-alpha.4; devenv-bot drives v0.6.15-hotfix.2 only" in answer["problems"]["devpod"]


async def test_credentials_github_refuses_are_not_ready_until_they_work(environ, repo, github):
    github.inject(method="GET", path=r"^/app$", status=401, body={"message": "Bad credentials"}, times=2)
    srv = await BotServer(config.load(environ)).start()
    try:
        status, answer = await readyz(srv)
        assert status == 503
        assert answer["problems"] == {
            "github": "GitHub refused the App's credentials (401): check APP_ID and PRIVATE_KEY (a new key may be needed)"}
        assert await srv.bot.readiness.run_once() == {}  # the next check passes: ready without a restart
        assert (await readyz(srv))[0] == 200
    finally:
        await srv.stop()


async def test_a_kubernetes_api_that_refuses_the_bot_is_not_ready(links_environ, kube):
    srv = await BotServer(config.load(links_environ)).start()
    try:
        kube.inject("GET", "/services", 403, "Forbidden", times=1)
        problems = await srv.bot.readiness.run_once()
    finally:
        await srv.stop()
    assert problems == {"kubernetes": "the Kubernetes API did not answer (listing Services in "
                                      f"{links.NS} got 403): check KUBECONFIG or the ServiceAccount"}


async def test_shutting_down_is_not_ready(environ, repo):
    srv = await BotServer(config.load(environ)).start()
    try:
        srv.bot.tasks.accepting = False
        assert await readyz(srv) == (503, {"status": "shutting down"})
    finally:
        await srv.stop()
