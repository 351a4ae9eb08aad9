"""The bot as operators run it: `devenv-bot serve` and `receive` as real processes, killed and restarted."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tests import payloads
from tests.botserver import bot_environ, sign
from tests.eventually import eventually
from tests.observe import devenv_runs
from tests.test_setup import free_port, wait_ready

REPO_ROOT = Path(__file__).resolve().parents[1]
OWNER, REPO = "Codertocat", "Hello-World"

pytestmark = pytest.mark.slow


def spawn(env: dict[str, str], cwd: Path, *args: str) -> subprocess.Popen:
    full = {"PYTHONPATH": str(REPO_ROOT), "HOME": str(cwd), **env}
    return subprocess.Popen([sys.executable, "-m", "bot", *args], cwd=cwd, env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


async def post(session: aiohttp.ClientSession, url: str, secret: str, event: str, payload: dict) -> int:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "X-GitHub-Event": event,
               "X-GitHub-Delivery": f"d-{time.monotonic_ns()}", "X-Hub-Signature-256": sign(secret, body)}
    async with session.post(url + "/api/github/webhooks", data=body, headers=headers) as resp:
        return resp.status


async def test_a_bot_killed_mid_up_and_restarted_ends_the_check_run_in_a_true_state(repo, github, devpod, tmp_path):
    port = free_port()
    env = {**bot_environ(github, tmp_path / "state", **devpod.env()), "PORT": str(port)}
    url = f"http://127.0.0.1:{port}"
    devpod.inject(command="up", sleep=3)
    first = spawn(env, tmp_path, "serve")
    second = None
    try:
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, url, 200)
            assert await post(session, url, github.webhook_secret, "pull_request",
                              payloads.pull_request("opened")) == 202
            await eventually(lambda: devpod.calls("up") and devenv_runs(github)
                             and devenv_runs(github)[0]["status"] == "in_progress", timeout=30, what="up to start")
            first.send_signal(signal.SIGKILL)
            await asyncio.to_thread(first.communicate, timeout=10)
            assert devenv_runs(github)[0]["status"] == "in_progress"  # what a crash leaves behind

            second = spawn(env, tmp_path, "serve")
            await wait_ready(session, url, 200)
            await eventually(lambda: devenv_runs(github)[0]["status"] == "completed", timeout=30, what="the check run to conclude")
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.communicate(timeout=30)
    [run] = devenv_runs(github)
    assert run["conclusion"] == "success"
    assert "resumed after a bot restart" in " ".join(
        c.json["output"]["title"] for c in github.calls if c.method == "PATCH" and c.json and "output" in c.json)


async def test_a_bot_killed_before_writing_a_conclusion_writes_it_on_its_next_start(repo, github, devpod, tmp_path):
    port = free_port()
    env = {**bot_environ(github, tmp_path / "state", **devpod.env()), "PORT": str(port)}
    url = f"http://127.0.0.1:{port}"
    github.inject(method="PATCH", path=r"/check-runs/\d+$", status=502, times=100_000)  # nothing gets through

    def conclusion_tried() -> bool:
        return any(c.json and c.json.get("conclusion") for c in github.calls_to("PATCH", r"/check-runs/\d+$"))

    first = spawn(env, tmp_path, "serve")
    second = None
    try:
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, url, 200)
            assert await post(session, url, github.webhook_secret, "pull_request",
                              payloads.pull_request("opened")) == 202
            await eventually(conclusion_tried, timeout=30, what="DevPod to finish and the conclusion to be tried")
            first.send_signal(signal.SIGKILL)
            await asyncio.to_thread(first.communicate, timeout=10)
            assert devenv_runs(github)[0]["status"] != "completed"  # what the crash left behind

            github.faults.clear()
            second = spawn(env, tmp_path, "serve")
            await wait_ready(session, url, 200)
            await eventually(lambda: devenv_runs(github)[0]["status"] == "completed", timeout=30,
                             what="the check run to conclude")
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.communicate(timeout=30)
    [run] = devenv_runs(github)
    assert run["conclusion"] == "success"
    assert len(devpod.calls("up")) == 1  # the outcome was published again, the operation not run again


async def test_sigterm_lets_a_running_operation_finish_then_exits_cleanly(repo, github, devpod, tmp_path):
    port = free_port()
    env = {**bot_environ(github, tmp_path / "state", **devpod.env()), "PORT": str(port),
           "DEVENV_SHUTDOWN_GRACE": "20"}
    url = f"http://127.0.0.1:{port}"
    devpod.inject(command="up", sleep=1.5)
    proc = spawn(env, tmp_path, "serve")
    try:
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, url, 200)
            await post(session, url, github.webhook_secret, "pull_request", payloads.pull_request("opened"))
            await eventually(lambda: bool(devpod.calls("up")), timeout=30, what="up to start")
            proc.send_signal(signal.SIGTERM)
            out, _ = await asyncio.to_thread(proc.communicate, timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out
    assert "stopped cleanly" in out
    [run] = devenv_runs(github)
    assert run["conclusion"] == "success"  # drained, not abandoned


async def test_receive_runs_the_handlers_once_on_a_saved_payload(repo, github, devpod, tmp_path):
    saved = tmp_path / "delivery.json"
    saved.write_text(json.dumps(payloads.pull_request("opened")))
    env = bot_environ(github, tmp_path / "state", **devpod.env())
    proc = spawn(env, tmp_path, "receive", "--event", "pull_request", "--payload", str(saved))
    out, _ = await asyncio.to_thread(proc.communicate, timeout=60)
    assert proc.returncode == 0, out
    [run] = devenv_runs(github)
    assert run["conclusion"] == "success"
    assert len(devpod.calls("up")) == 1


async def test_receive_explains_a_payload_it_cannot_read(repo, github, devpod, tmp_path):
    saved = tmp_path / "broken.json"
    saved.write_text("{not json")
    env = bot_environ(github, tmp_path / "state", **devpod.env())
    proc = spawn(env, tmp_path, "receive", "--event", "pull_request", "--payload", str(saved))
    out, _ = await asyncio.to_thread(proc.communicate, timeout=60)
    assert proc.returncode == 2 and "cannot read the payload" in out


async def test_serve_refuses_to_start_with_a_broken_key(tmp_path):
    env = {"PATH": os.environ["PATH"], "APP_ID": "1", "PRIVATE_KEY": "nonsense", "WEBHOOK_SECRET": "x" * 20}
    proc = spawn(env, tmp_path, "serve")
    out, _ = await asyncio.to_thread(proc.communicate, timeout=60)
    assert proc.returncode == 2
    assert "PRIVATE_KEY does not hold a PEM private key" in out
