"""Issue 11 item 14: SIGTERM while a Kubernetes call hangs: `devenv-bot serve` exits within its grace
(plus a small margin) instead of waiting for the call, and says which call it abandoned.

A real ``devenv-bot serve`` process, the GitHub emulator, the stand-in devpod, and the fake Kubernetes
API holding the call that lists the new environment's Services without an answer."""

from __future__ import annotations

import asyncio
import signal
import time

import aiohttp
import pytest

from bot.cluster.kube import KubeApi
from bot.core.tasks import ShutdownClock
from tests import payloads
from tests.eventually import eventually
from tests.test_links_e2e import links_environ  # noqa: F401  (the fixture)
from tests.test_process import post, spawn
from tests.test_setup import free_port, wait_ready

pytestmark = pytest.mark.slow

GRACE = 2.0
MARGIN = 4.0  # the drain's cancel, closing the sessions, the interpreter's exit


async def test_sigterm_during_a_hanging_kubernetes_call_exits_within_the_grace(
        links_environ, kube, github, devpod, tmp_path):  # noqa: F811
    port = free_port()
    env = {**links_environ, "PORT": str(port), "DEVENV_SHUTDOWN_GRACE": str(GRACE)}
    url = f"http://127.0.0.1:{port}"
    proc = spawn(env, tmp_path, "serve")
    try:
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, url, 200)
            kube.hang("GET", "/namespaces/devenvs/services")  # the first call that exposes the environment
            await post(session, url, github.webhook_secret, "pull_request", payloads.pull_request("opened"))
            await eventually(lambda: kube.hanging, timeout=30, what="the Kubernetes call to hang")
            await asyncio.sleep(0.5)  # well inside the call's own 30 s timeout
            proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            out, _ = await asyncio.to_thread(proc.communicate, timeout=60)
            took = time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert took < GRACE + MARGIN, f"exited {took:.1f}s after SIGTERM (grace {GRACE}s):\n{out}"
    assert proc.returncode == 0, out
    assert "stopped cleanly" in out
    assert "exiting without waiting for a Kubernetes call still blocked" in out
    assert "GET /api/v1/namespaces/devenvs/services" in out


class _Client:
    """An ApiClient stand-in recording the timeout each call was given."""

    def __init__(self) -> None:
        self.timeouts: list[float] = []

    def param_serialize(self, method, path, **kw):
        return method, path, {}, None, None

    def call_api(self, method, url, headers, body, _request_timeout):
        self.timeouts.append(_request_timeout)
        raise TimeoutError("stop here")


async def test_once_shutdown_began_a_kubernetes_call_gets_only_the_grace_that_is_left(monkeypatch):
    now = [100.0]
    clock = ShutdownClock(lambda: now[0])
    monkeypatch.setattr("bot.cluster.kube.SHUTDOWN", clock)
    client = _Client()
    api = KubeApi(client, "ns", request_timeout=30.0)
    assert api.timeout() == 30.0  # the per-call cap, always
    clock.begin(5.0)
    now[0] += 3.0
    assert api.timeout() == pytest.approx(2.0)
    with pytest.raises(TimeoutError):
        await api.request("GET", "/api/v1/namespaces/ns/services")
    assert client.timeouts == [pytest.approx(2.0)]
    now[0] += 3.0
    with pytest.raises(TimeoutError, match="no time left"):
        await api.request("GET", "/api/v1/namespaces/ns/services")
    assert len(client.timeouts) == 1  # not even started
