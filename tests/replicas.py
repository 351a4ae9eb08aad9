"""The multi-replica rig: N real ``devenv-bot serve`` processes sharing one cluster, as in a Deployment
with several replicas (docs/operations.md "Several replicas").

Each replica is its own process with its own port, working directory, ``DEVENV_STATE_DIR`` and
``DEVENV_REPLICA_ID``, started with ``DEVENV_STATE_BACKEND=kubernetes`` and a kubeconfig pointing at
one :class:`~tests.k8s_fake.FakeKube` (in the bot's namespace of deploy/, ``devenv-bot``; give the
fake ``Policy.from_manifests(render(...))`` to enforce deploy/'s RBAC, as :func:`cluster` does). They
share one GitHub emulator and one DevPod stand-in.

The DevPod stand-in's home is SHARED by the replicas for now: DevPod's own state of each workspace
lives in DEVPOD_HOME, and until it is saved to and restored from the cluster (issue 12, the DevPod
state part) a replica can only act on a workspace another one created if they share that home. Once
that lands, give each replica its own home (``DevPodStandIn(tmp_path / f"devpod-{i}")``).

    async with Replicas(github, devpod, kube, tmp_path, count=2) as replicas:
        await replicas.deliver(0, "pull_request", payloads.pull_request("opened"))
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.botserver import bot_environ, sign
from tests.k8s_fake import FakeKube, Policy
from tests.test_process import spawn
from tests.test_setup import free_port, wait_ready

#: The bot's namespace and ServiceAccount in deploy/.
NAMESPACE = "devenv-bot"
BOT_ACCOUNT = (NAMESPACE, "devenv-bot")


def cluster(variant: str = "all-components") -> FakeKube:
    """A started Kubernetes fake enforcing the bot's RBAC rules rendered from deploy/ (``variant``; several replicas need
    the Role of ``components/replicas``, which ``all-components`` includes)."""
    from tests.test_deploy import render

    return FakeKube(rbac=Policy.from_manifests(render(variant), service_account=BOT_ACCOUNT)).start()


class Replicas:
    """``count`` replicas of the bot as processes; :meth:`deliver` posts a signed delivery to one of them."""

    def __init__(self, github: Any, devpod: Any, kube: FakeKube, tmp_path: Path, *, count: int = 2,
                 **extra: str) -> None:
        self.github, self.devpod, self.kube, self.tmp_path = github, devpod, kube, tmp_path
        self.count, self.extra = count, extra
        self.urls: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self.outputs: list[str] = []
        self.session: aiohttp.ClientSession | None = None

    def environ(self, index: int, port: int) -> dict[str, str]:
        home = self.tmp_path / f"replica-{index}"
        home.mkdir(parents=True, exist_ok=True)
        kubeconfig = self.kube.write_kubeconfig(self.tmp_path / "kubeconfig", NAMESPACE)
        return {**bot_environ(self.github, home / "state", **self.devpod.env()), "PORT": str(port),
                "DEVENV_STATE_BACKEND": "kubernetes", "DEVENV_REPLICA_ID": f"replica-{index}",
                "KUBECONFIG": str(kubeconfig), **self.extra}

    async def start(self) -> Replicas:
        self.session = aiohttp.ClientSession()
        for index in range(self.count):
            port = free_port()
            home = self.tmp_path / f"replica-{index}"
            self.procs.append(spawn(self.environ(index, port), home, "serve"))
            self.urls.append(f"http://127.0.0.1:{port}")
        for url in self.urls:
            await wait_ready(self.session, url, 200, timeout=60)
        return self

    async def deliver(self, index: int, event: str, payload: dict[str, Any]) -> int:
        """POST one signed delivery to replica ``index``; its HTTP status (202: accepted)."""
        assert self.session is not None
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "X-GitHub-Event": event,
                   "X-GitHub-Delivery": f"d-{time.monotonic_ns()}",
                   "X-Hub-Signature-256": sign(self.github.webhook_secret, body)}
        async with self.session.post(self.urls[index] + "/api/github/webhooks", data=body, headers=headers) as resp:
            return resp.status

    async def stop(self) -> list[str]:
        """SIGTERM every replica and wait; their outputs (also in :attr:`outputs`)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                out, _ = await asyncio.to_thread(proc.communicate, timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = await asyncio.to_thread(proc.communicate)
            self.outputs.append(out or "")
        if self.session is not None:
            await self.session.close()
        return self.outputs

    async def __aenter__(self) -> Replicas:
        try:
            return await self.start()
        except BaseException:
            await self.stop()
            raise

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
