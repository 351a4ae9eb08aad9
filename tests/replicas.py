"""The multi-replica rig: N real ``devenv-bot serve`` processes sharing one cluster, as in a Deployment
with several replicas (docs/operations.md "Several replicas").

Each replica is its own process with its own port, working directory, ``DEVENV_STATE_DIR``,
``DEVENV_REPLICA_ID`` and DEVPOD_HOME, started with ``DEVENV_STATE_BACKEND=kubernetes`` and a kubeconfig
pointing at one :class:`~tests.k8s_fake.FakeKube` (in the bot's namespace of deploy/, ``devenv-bot``; give
the fake ``Policy.from_manifests(render(...))`` to enforce deploy/'s RBAC, as :func:`cluster` does). They
share one GitHub emulator.

DevPod: each replica has its own stand-in home, :attr:`Replicas.devpods` ``[i]`` (``tmp_path/devpod-<i>``),
as each pod of a Deployment has its own DEVPOD_HOME; DevPod's state of a workspace reaches another replica
only through the cluster (bot/replicas/devpod_state.py). The stand-in's "cluster" (volumes, pods, the
containers' files) is the home of the ``devpod`` handle given to the rig (its ``standin-shared-cluster``),
and every replica's ``standin-calls.jsonl`` and ``standin-ops.jsonl`` are links to that handle's, so
``devpod.calls(...)``, ``devpod.op_spans()`` and ``devpod.assert_no_overlap()`` see every replica's DevPod
runs (``devpods[i].calls()`` too: the logs are one). Faults are per replica: ``devpods[i].inject(...)``
(and ``devpods[i].hanging()``). ``Replicas(..., own_homes=False)`` shares the handle's home instead.

:meth:`Replicas.kill` is a pod's death: SIGKILL of the replica and of every process it started (DevPod runs
in its own session, so that is done one by one), and the end of their DevPod runs noted in the ops log at
that time, as they really ended.

    async with Replicas(github, devpod, kube, tmp_path, count=2) as replicas:
        await replicas.deliver(0, "pull_request", payloads.pull_request("opened"))
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.botserver import bot_environ, sign
from tests.k8s_fake import FakeKube, Policy
from tests.standin import DevPodStandIn
from tests.test_process import spawn
from tests.test_setup import free_port, wait_ready

#: The stand-in's logs every replica's DevPod writes into the shared handle's home (see the module docstring).
SHARED_LOGS = ("standin-calls.jsonl", "standin-ops.jsonl")

#: The bot's namespace and ServiceAccount in deploy/.
NAMESPACE = "devenv-bot"
BOT_ACCOUNT = (NAMESPACE, "devenv-bot")


def cluster(variant: str = "all-components", *more: str) -> FakeKube:
    """A started Kubernetes fake enforcing the bot's RBAC rules rendered from deploy/ (``variant``; several replicas need
    the Role of ``components/replicas``, which ``all-components`` includes). ``more`` variants add their rules, as an
    overlay combined with the Component would (e.g. ``"ingress-nginx"`` for the links' Ingresses)."""
    from tests.test_deploy import render

    objects = [o for v in (variant, *more) for o in render(v)]
    return FakeKube(rbac=Policy.from_manifests(objects, service_account=BOT_ACCOUNT)).start()


class Replicas:
    """``count`` replicas of the bot as processes; :meth:`deliver` posts a signed delivery to one of them."""

    def __init__(self, github: Any, devpod: Any, kube: FakeKube, tmp_path: Path, *, count: int = 2,
                 own_homes: bool = True, **extra: str) -> None:
        self.github, self.devpod, self.kube, self.tmp_path = github, devpod, kube, tmp_path
        self.count, self.extra = count, extra
        self.devpods: list[DevPodStandIn] = [self._home(i) if own_homes else devpod for i in range(count)]
        self.urls: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self.outputs: list[str] = []
        self.session: aiohttp.ClientSession | None = None

    def _home(self, index: int) -> DevPodStandIn:
        """Replica ``index``'s own DEVPOD_HOME, on the shared handle's "cluster" and logs."""
        standin = DevPodStandIn(self.tmp_path / f"devpod-{index}", version=self.devpod.version)
        (standin.home / "standin-shared-cluster").write_text(str(self.devpod.home))
        for name in SHARED_LOGS:
            link = standin.home / name
            if not link.is_symlink():
                link.symlink_to(self.devpod.home / name)
        return standin

    def environ(self, index: int, port: int) -> dict[str, str]:
        home = self.tmp_path / f"replica-{index}"
        home.mkdir(parents=True, exist_ok=True)
        kubeconfig = self.kube.write_kubeconfig(self.tmp_path / "kubeconfig", NAMESPACE)
        return {**bot_environ(self.github, home / "state", **self.devpods[index].env()), "PORT": str(port),
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

    async def deliver(self, index: int, event: str, payload: dict[str, Any], *, delivery: str | None = None) -> int:
        """POST one signed delivery to replica ``index``; its HTTP status (202: accepted, 200: e.g. a duplicate).
        ``delivery``: the ``X-GitHub-Delivery`` (a fresh one by default), to send one delivery to several."""
        assert self.session is not None
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "X-GitHub-Event": event,
                   "X-GitHub-Delivery": delivery or f"d-{time.monotonic_ns()}",
                   "X-Hub-Signature-256": sign(self.github.webhook_secret, body)}
        async with self.session.post(self.urls[index] + "/api/github/webhooks", data=body, headers=headers) as resp:
            return resp.status

    def kill(self, index: int) -> list[int]:
        """Replica ``index``'s pod dies: SIGKILL it and every process it started (its DevPod runs, in sessions of
        their own); their DevPod runs end now in the ops log (as a signal they cannot catch ended them). The pids
        killed, the replica's first."""
        proc = self.procs[index]
        pids = [proc.pid, *descendants(proc.pid)]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=10)
        for pid in pids[1:]:
            wait_gone(pid)
        self.note_ended(pids[1:])
        return pids

    def note_ended(self, pids: list[int]) -> None:
        ops = self.devpod.home / "standin-ops.jsonl"
        open_runs = {s["pid"]: s for s in self.devpod.op_spans() if s["end"] is None and s["pid"] in pids}
        with open(ops, "a") as f:
            for pid, span in open_runs.items():
                f.write(json.dumps({"time": time.time(), "pid": pid, "edge": "end", "ws": span["ws"],
                                    "command": span["command"], "killed": True}) + "\n")

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


def descendants(pid: int) -> list[int]:
    """Every live process under ``pid`` (Linux /proc), children before grandchildren."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(0), [])
        found += children
        todo += children
    return found


def wait_gone(pid: int, timeout: float = 10.0) -> None:
    """Until ``pid`` is no more (or a zombie: dead, not yet reaped by its parent)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return
        except OSError:
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} still runs after SIGKILL")


def in_process_environ(base: dict[str, str], kube: FakeKube, tmp_path: Path):
    """For replicas run in the test's own process (``BotServer``): ``env(n, **extra)`` is replica ``n``'s
    settings on the kubernetes backend, its own state directory, a 3 s Lease duration."""
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig", NAMESPACE)

    def env(n: int, **extra: str) -> dict[str, str]:
        return {**base, "KUBECONFIG": str(kubeconfig), "DEVENV_STATE_BACKEND": "kubernetes",
                "DEVENV_REPLICA_ID": f"replica-{n}", "DEVENV_LEASE_DURATION": "3",
                "DEVENV_STATE_DIR": str(tmp_path / f"state-{n}"), **extra}
    return env


@contextlib.asynccontextmanager
async def in_process_replicas(environ):
    """``start(n, **extra)`` starts replica ``n`` in this process (settings from :func:`in_process_environ`);
    every replica started is stopped at the end, the last first."""
    from bot.settings import config
    from tests.botserver import BotServer

    started: list[BotServer] = []

    async def start(n: int, **extra: str) -> BotServer:
        server = await BotServer(config.load(environ(n, **extra))).start()
        started.append(server)
        return server
    try:
        yield start
    finally:
        for server in reversed(started):
            await server.stop()
