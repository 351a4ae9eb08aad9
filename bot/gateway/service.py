"""The gateway's listener, its life with the app, waking stopped environments, and the accounting.

:class:`Gateway` is built by :func:`bot.services.build` when ``DEVENV_SSH_PORT`` is set and the
bot has environments; :meth:`Gateway.start` and :meth:`Gateway.stop` run with the app's.  It owns:

* the asyncssh listener (``DEVENV_SSH_PORT`` on ``HOST``), its host key (state directory or Secret)
  (fingerprint logged at start), one :class:`~bot.gateway.sessions.ClientConnection` per client;
* :meth:`ready`: a stopped environment is woken through the environment service's ``up``, asked
  of the request policy exactly as the check run's Wake button asks it (the pull request is
  read for its base commit, whose ``.github/devenv.yml`` says who may ``up``); the client gets
  one progress line, or the reason it may not wake it and how to;
* :meth:`link`: a connection authenticated with an :class:`~bot.gateway.identity.Unlinked` key
  prints a one-time link to the bot's page (on ``DEVENV_PUBLIC_URL``, when the sign-in is set up:
  :mod:`bot.gateway.link_page` sets :attr:`link_url`) and waits up to ``CODE_TTL`` for its owner to
  confirm it there, then is decided again (permission as usual);
* accounting: an open connection counts as use of its environment for the idle reaper (the same
  :class:`~bot.environments.activity.Activity` the browser links' checks note, as ``ssh``: at open,
  every minute and at close),
  each connection is logged at its end (who, which workspace, from where, when, how long) and
  counted in ``devenv_ssh_*`` metrics.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import asyncssh
from prometheus_client import Counter, Gauge, Histogram

from bot.core.metrics import Metrics
from bot.environments.activity import Activity
from bot.environments.activity import Source as Use
from bot.environments.journal import PullInfo
from bot.environments.states import State, is_stopped
from bot.gateway import keys
from bot.gateway.identity import Allowed, Doorman, Refused, Unlinked
from bot.gateway.links import CODE_TTL, KeyLinks
from bot.gateway.names import user_name
from bot.gateway.sessions import ClientConnection
from bot.gateway.upstream import Upstream
from bot.github.pulls import PullRequestAPI
from bot.policy.ask import Accepted, Policy, Source
from bot.policy.ask import Refused as PolicyRefused
from bot.replicas.devpod_state import restored
from bot.repo_settings.loader import RepoSettingsLoader
from bot.settings.devpod import DevPodSettings
from bot.settings.gateway import GatewaySettings

log = logging.getLogger(__name__)

__all__ = ["Gateway", "GatewayMetrics"]

#: Seconds between two notes to the idle reaper that an open connection still uses its environment.
TOUCH_INTERVAL = 60.0
#: How often a woken environment's state is looked at while the client waits.
WAKE_POLL = 0.5


class GatewayMetrics:
    """``devenv_ssh_*``: sign-ins by outcome, open connections, finished ones and their length."""

    def __init__(self, metrics: Metrics | None) -> None:
        registry = metrics.registry if metrics is not None else None
        self.auth = Counter("devenv_ssh_auth", "SSH gateway key checks, by outcome", ["outcome"], registry=registry)
        for outcome in ("allowed", "pending", "refused", "unavailable"):
            self.auth.labels(outcome)
        self.active = Gauge("devenv_ssh_sessions_active", "SSH gateway connections open now", registry=registry)
        self.sessions = Counter("devenv_ssh_sessions", "SSH gateway connections that reached a workspace",
                                registry=registry)
        self.seconds = Histogram("devenv_ssh_session_seconds", "How long SSH gateway connections lasted",
                                 registry=registry, buckets=(1, 10, 60, 300, 900, 3600, 4 * 3600, 12 * 3600))


class Gateway:
    def __init__(self, *, settings: GatewaySettings, dp: DevPodSettings, state_dir: Path, manager: Any,
                 github: Any, repo_settings: RepoSettingsLoader, activity: Activity, github_url: str,
                 prefix: str, metrics: Metrics | None = None, clock: Callable[[], float] = time.time,
                 host_key: keys.HostKeySource | None = None) -> None:
        self.settings, self.dp, self.state_dir = settings, dp, state_dir
        self.host_key = host_key or keys.FileHostKey(state_dir)  # the state dir's file, or a Secret
        self.manager, self.github, self.repo_settings = manager, github, repo_settings
        self.activity, self.prefix, self.clock = activity, prefix, clock
        self.metrics = GatewayMetrics(metrics)
        self.links = KeyLinks(Path(state_dir) / "ssh" / "key_links.json", ttl=settings.link_ttl, clock=clock)
        self.link_url: str | None = None  # the bot's public URL once the link page is served; None: no linking
        self.doorman = Doorman(github=github, records=lambda: manager.records, need=settings.permission,
                               github_url=github_url, repo_settings=repo_settings)
        self.fingerprint: str | None = None  # the host key's, once started
        self.port: int | None = None
        self._client_key: asyncssh.SSHKey | None = None
        self._host_key: asyncssh.SSHKey | None = None
        self._server: asyncssh.SSHAcceptor | None = None
        self._open: dict[ClientConnection, float] = {}  # connection -> when it reached its workspace
        self._clients: weakref.WeakSet[ClientConnection] = weakref.WeakSet()  # every connection, to close at stop
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- life
    async def load_keys(self) -> None:
        """Read (or make) the host key first: HostKeyUnavailable stops the start before anything else runs,
        never a listener with another key than the one users pinned."""
        self._host_key = await self.host_key.load()
        self.fingerprint = keys.fingerprint(self._host_key)

    async def start(self) -> None:
        if self._host_key is None:
            await self.load_keys()
        host_key = self._host_key
        self._client_key = keys.client_key(self.state_dir)
        self._server = await asyncssh.create_server(
            self._client, self.settings.listen, self.settings.port,
            server_host_keys=[host_key], encoding=None, line_editor=False,
            agent_forwarding=False, x11_forwarding=False, allow_scp=False, login_timeout=60,
            keepalive_interval=60)
        self.port = self._server.sockets[0].getsockname()[1]
        self.track(self._touch_loop(), name="ssh-activity")
        log.info("SSH gateway listening on port %s; host key %s", self.port, self.fingerprint)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for connection in list(self._clients):
            if connection.conn is not None:
                connection.conn.close()
        for task in list(self._tasks):
            if task.get_name() == "ssh-activity":
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _client(self) -> ClientConnection:
        connection = ClientConnection(self)
        self._clients.add(connection)
        return connection

    def track(self, coro: Coroutine[Any, Any, Any], *, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def enable_links(self, public_url: str) -> None:
        """Offer unknown keys a link to ``public_url``'s ``/ssh/link`` (:mod:`bot.gateway.link_page`)."""
        self.link_url = public_url
        self.doorman.links = self.links

    # -- the workspace side
    def upstream_for(self, ws_id: str) -> Upstream:
        assert self._client_key is not None, "start() the gateway first"
        return Upstream(self.dp, ws_id, self._client_key)

    async def link(self, unlinked: Unlinked, source: str, say: Callable[[str], None]) -> Allowed:
        """Print the one-time link for ``unlinked``'s key, wait for its owner to confirm it, decide again."""
        pending = self.links.start(unlinked.fingerprint, unlinked.login, unlinked.record.ws_id) \
            if self.link_url else None
        if pending is None:
            raise ConnectionError(f"this key is not one of {unlinked.login}'s SSH keys on GitHub; add it at "
                                  f"{self.doorman.github_url}/settings/keys")
        say(f"this key ({unlinked.fingerprint}) is not on {unlinked.login}'s GitHub account.")
        say(f"To link it to {unlinked.login} for {self.settings.link_ttl / 86400:g} days, open within "
            f"{CODE_TTL / 60:g} minutes and sign in: {self.link_url}/ssh/link?code={pending.code}")
        try:
            await asyncio.wait_for(pending.done.wait(), CODE_TTL)
        except TimeoutError:  # a link nobody confirms counts as a failed attempt (no free waiting slots)
            self.doorman.failed(user_name(unlinked.login, unlinked.record.ws_id), source)
            raise ConnectionError("the key was not linked in time; connect again for a new link") from None
        finally:
            self.links.drop(pending.code)
        verdict = await self.doorman.decide(user_name(unlinked.login, unlinked.record.ws_id), unlinked.key, source)
        self.counted(verdict)
        if not isinstance(verdict, Allowed):
            raise ConnectionError(verdict.why if isinstance(verdict, Refused) else "the key is still not linked")
        log.info("ssh: key %s linked to %s", unlinked.fingerprint, unlinked.login)
        say("key linked; connecting…")
        return verdict

    async def ready(self, allowed: Allowed, say: Callable[[str], None]) -> None:
        """Return once the environment runs and DevPod's state of it is here; wake a stopped one if
        ``allowed.login`` may, else raise."""
        await self._running(allowed, say)
        problem = await restored(self.manager.operations.state, allowed.record.ws_id)
        if problem is not None:
            raise ConnectionError(problem)

    async def _running(self, allowed: Allowed, say: Callable[[str], None]) -> None:
        ws_id = allowed.record.ws_id
        record = self.manager.records.get(ws_id)
        if record is None or record.state == State.RUNNING:
            return
        if is_stopped(record.state) or record.state in (State.FAILED, State.NONE):
            await self._wake(allowed, say)
        else:
            say(f"the environment is {record.state}; waiting for it to run…")
        deadline = self.clock() + self.dp.up_timeout
        while self.clock() < deadline:
            record = self.manager.records.get(ws_id)
            if record is None or record.state in (State.DELETED, State.DELETING):
                raise ConnectionError("the environment is being deleted")
            if record.state == State.RUNNING and not self.manager.busy(ws_id):
                return
            if record.state == State.FAILED and not self.manager.busy(ws_id):
                raise ConnectionError("the environment failed to start; the PR's check run says why")
            await asyncio.sleep(WAKE_POLL)
        raise ConnectionError("the environment did not start in time")

    async def _wake(self, allowed: Allowed, say: Callable[[str], None]) -> None:
        record = allowed.record
        gh = self.github.installation(record.installation_id)
        pull = await PullRequestAPI(gh, record.ref).get()
        info = PullInfo.from_payload(record.installation_id, pull, pull["base"]["repo"])
        policy = Policy(gh, loader=self.repo_settings, permissions=self.doorman.permissions, ledger=self.manager)
        decision = await policy.ask(info, "up", allowed.login, Source.BUTTON, closed=pull.get("state") == "closed")
        if not isinstance(decision, Accepted):
            need = decision.need if isinstance(decision, PolicyRefused) else "write"
            raise ConnectionError(f"the environment is {record.state}; someone with {need} access can wake it "
                                  f"with `{self.prefix} up` on the pull request")
        say(f"the environment is {record.state}; waking it for you (this can take a few minutes)…")
        self.manager.request(info, "up", requested_by=allowed.login, approve=decision.approve)

    # -- accounting
    def counted(self, verdict: Allowed | Unlinked | Refused) -> None:
        outcome = ("allowed" if isinstance(verdict, Allowed) else "pending" if isinstance(verdict, Unlinked)
                   else "refused" if verdict.counted else "unavailable")
        self.metrics.auth.labels(outcome).inc()

    def opened(self, connection: ClientConnection) -> None:
        self._open[connection] = self.clock()
        self.metrics.active.inc()
        self._touch(connection)

    def ended(self, connection: ClientConnection) -> None:
        allowed = connection.allowed
        started = self._open.pop(connection, None)
        if allowed is None or started is None:
            return
        duration = max(self.clock() - started, 0.0)
        self.metrics.active.dec()
        self.metrics.sessions.inc()
        self.metrics.seconds.observe(duration)
        self._touch(connection)
        log.info("ssh session: %s on %s from %s, started %s, %.0f s", allowed.login, allowed.record.ws_id,
                 connection.source, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), duration)

    def _touch(self, connection: ClientConnection) -> None:
        if connection.allowed is not None:
            self.activity.note(connection.allowed.record.ws_id, Use.SSH, self.clock())

    async def _touch_loop(self) -> None:
        while True:
            await asyncio.sleep(TOUCH_INTERVAL)
            for connection in list(self._open):
                self._touch(connection)
