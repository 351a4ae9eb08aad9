"""The running bot's services, built once from the settings: the typed composition root.

:func:`build` makes every collaborator from :class:`~bot.settings.config.Settings` and hands each
the others it needs through its constructor; nothing is assigned afterwards and no collaborator is
typed ``Any``. :meth:`Bot.start` then does the start-up I/O (DevPod's provider, the journal, the
Cloudflare check, the readiness checks) and :meth:`Bot.stop` drains and closes, in reverse.

Handlers receive the :class:`Bot` as ``ctx.bot``; the web side (:mod:`bot.app`) adds each
feature's routes.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

import aiohttp
from gidgethub import sansio

from bot.access.sessions import UsedCodes
from bot.agent.ledger import open_ledger
from bot.agent.runs import AgentRuns
from bot.cluster.cloudflare import CloudflareTunnelRoutes
from bot.cluster.exposure import Exposure
from bot.cluster.kube import KubeApi, kube_api_client, kubeconfig_namespace, own_namespace
from bot.cluster.routers import ServiceOnlyBackend
from bot.core import logs
from bot.core.deliveries import Deliveries, SeenDeliveries
from bot.core.dispatch import Context, Dispatcher, Router
from bot.core.metrics import Metrics
from bot.core.readiness import Readiness
from bot.core.tasks import TaskTracker
from bot.core.web import BodyBudget, Endpoints
from bot.environments.catchup import CatchUp, listing_transport
from bot.environments.journal import Op
from bot.environments.manager import EnvironmentManager
from bot.environments.reaper import IdleReaper
from bot.gateway import keys
from bot.gateway.service import Gateway
from bot.github.auth import AppAuth
from bot.github.client import GitHubClient
from bot.github.permissions import Permissions
from bot.github.publish import RETRY_DELAYS
from bot.github.pulls import OpenPullLister
from bot.health import add_checks, check_tunnel
from bot.policy.ask import Policy
from bot.prebuilds.builder import Prebuilds
from bot.prebuilds.checks import PrebuildChecks
from bot.replicas.agents import agent_guard
from bot.replicas.coordination import Coordination, LeaseCoordination, LocalCoordination
from bot.replicas.deliveries import ClusterDeliveries
from bot.replicas.devpod_state import LOCAL, ClusterDevPodState, DevPodState
from bot.replicas.leader import LeaderElection
from bot.replicas.leases import Leases
from bot.replicas.onceonly import ClusterUsedCodes
from bot.repo_settings.loader import RepoSettingsLoader
from bot.settings.config import Settings
from bot.setup import credentials

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, eq=False)
class Bot:
    """Every collaborator of the running bot; built by :func:`build`, shared by the web side and handlers."""

    settings: Settings
    metrics: Metrics
    dispatcher: Dispatcher
    tasks: TaskTracker
    seen_deliveries: Deliveries
    readiness: Readiness
    session: aiohttp.ClientSession
    github: GitHubClient
    auth: AppAuth | None
    repo_settings: RepoSettingsLoader
    permissions: Permissions
    exposure: Exposure | None
    tunnel: CloudflareTunnelRoutes | None
    environments: EnvironmentManager | None
    agent_runs: AgentRuns | None
    reaper: IdleReaper | None
    catchup: CatchUp | None = None  # notices PRs closed, turned draft or pushed to while no webhook came
    gateway: Gateway | None = None  # the SSH gateway, when DEVENV_SSH_PORT is set
    leader: LeaderElection | None = None  # DEVENV_STATE_BACKEND=kubernetes: who runs the singletons
    prebuilds: Prebuilds | None = None  # prebuilt images of base branches, when DEVENV_PREBUILD_REPOSITORY is set
    used_codes: UsedCodes | None = None  # one-time sign-in codes used, across replicas (None: in memory)
    replica_api: KubeApi | None = None  # the bot's namespace, with DEVENV_STATE_BACKEND=kubernetes
    endpoints: Endpoints = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "endpoints", Endpoints(
            settings=self.settings, metrics=self.metrics, tasks=self.tasks, seen=self.seen_deliveries,
            dispatcher=self.dispatcher, readiness=self.readiness, handle=self.handle,
            body_budget=BodyBudget(self.settings.webhook_body_budget)))

    async def start(self) -> None:
        """Start-up I/O, in order; the readiness checks run last, so /readyz tells the truth at once."""
        try:
            if self.tunnel is not None:
                await check_tunnel(self.tunnel, self.settings)
            if self.gateway is not None:  # its host key or nothing: before any environment work starts
                await self.gateway.load_keys()
        except BaseException:  # the start fails: leave nothing open behind (no cleanup will run)
            await self._close()
            raise
        if self.environments is not None:
            await self.environments.start()
        if self.leader is not None:  # the first round now: the singletons below know who leads
            await self.leader.step()
            self.leader.start()
        if self.prebuilds is not None:
            self.prebuilds.resume()  # builds a stop or crash left unfinished
        if self.agent_runs is not None:
            await self.agent_runs.recover()  # runs a crash left unfinished: concluded, never left in progress
        if self.catchup is not None:
            self.catchup.start()
        if self.reaper is not None:
            self.reaper.start()
        if self.gateway is not None:
            await self.gateway.start()
        self.readiness.started = True
        await self.readiness.run_once()
        self.readiness.start()

    async def stop(self) -> None:
        self.readiness.started = False
        await self.readiness.stop()
        if self.gateway is not None:  # sessions end first: they would keep environments in use
            await self.gateway.stop()
        if self.catchup is not None:
            await self.catchup.stop()
        if self.reaper is not None:
            await self.reaper.stop()
        if self.leader is not None:  # handed over at once, not after a lease duration
            await self.leader.stop()
        await self.tasks.drain(self.settings.shutdown_grace)
        if self.prebuilds is not None:
            await self.prebuilds.drain(self.settings.shutdown_grace)
        if self.agent_runs is not None:
            await self.agent_runs.drain(self.settings.shutdown_grace)
        if self.environments is not None:
            await self.environments.drain(self.settings.shutdown_grace)
            await self.environments.operations.git_access.close()  # no clone nonce outlives the bot
        await self._close()

    async def _close(self) -> None:
        if self.exposure is not None:
            await self.exposure.close()
        await self.session.close()
        self.seen_deliveries.close()
        if self.replica_api is not None:
            await self.replica_api.close()

    def context_for(self, event: sansio.Event) -> Context[Bot]:
        installation = (event.data.get("installation") or {}).get("id") if isinstance(event.data, dict) else None
        gh = self.github.installation(installation) if isinstance(installation, int) else None
        return Context(gh=gh, bot=self, delivery_id=event.delivery_id or "")

    async def handle(self, event: sansio.Event) -> int:
        """Run the handlers for one event (in the current task); returns how many failed."""
        return await self.dispatcher.dispatch(event, self.context_for(event))


def _exposure(settings: Settings) -> Exposure | None:
    """The applier of the links' Services and routes, when preview links are on (no I/O yet)."""
    if settings.exposure is None:
        return None
    api = kube_api_client(settings.kube)
    if settings.cloudflare is not None:  # no ingress controller: the Service only, the tunnel routes the hosts
        return Exposure(settings.exposure, api, backend=ServiceOnlyBackend(settings.exposure))
    return Exposure(settings.exposure, api)


def _environments(settings: Settings, github: GitHubClient, auth: AppAuth | None, exposure: Exposure | None,
                  tunnel: CloudflareTunnelRoutes | None, metrics: Metrics,
                  before_destructive: Callable[[str, Op], Awaitable[None]],
                  coordination: Coordination, replica_api: KubeApi | None) -> EnvironmentManager | None:
    if settings.app is None or settings.devpod is None:
        return None
    devpod_state: DevPodState = LOCAL  # replicas: DevPod's files of each workspace are kept in the cluster
    if replica_api is not None:
        devpod_state = ClusterDevPodState(replica_api, settings.devpod.home, settings.devpod.context)
    return EnvironmentManager(
        settings=settings, dp=settings.devpod, github=github, auth=auth, exposure=exposure, tunnel=tunnel,
        max_concurrent=settings.max_concurrent_ops, publish_interval=settings.publish_interval,
        sync_debounce=settings.sync_debounce, metrics=metrics, before_destructive=before_destructive,
        coordination=coordination,
        # a failed check-run or comment write is retried for about a minute at the default back-off of 1 s
        retry_delays=tuple(settings.retry_backoff * d for d in RETRY_DELAYS), devpod_state=devpod_state)


def _replica_api(settings: Settings) -> KubeApi | None:
    """The bot's own namespace, where replicas keep what they share (DEVENV_STATE_BACKEND=kubernetes)."""
    if settings.state_backend != "kubernetes":
        return None
    return KubeApi(kube_api_client(settings.kube), own_namespace(settings.kube))


def _deliveries(settings: Settings, api: KubeApi | None) -> Deliveries:
    if api is None:
        return SeenDeliveries(settings.state_dir, settings.delivery_cache_size)
    return ClusterDeliveries(api, settings.replica_id, capacity=settings.delivery_cache_size)


def _replicas(settings: Settings, metrics: Metrics,
              api: KubeApi | None) -> tuple[Coordination, LeaderElection | None]:
    """Leases in the bot's namespace with ``DEVENV_STATE_BACKEND=kubernetes`` (no I/O yet); else one process."""
    if api is None:
        return LocalCoordination(), None
    leases = Leases(api, settings.replica_id, settings.lease_duration)
    coordination = LeaseCoordination(leases, slots=settings.max_concurrent_ops,
                                     on_lost=lambda kind: metrics.lease_lost.labels(kind).inc())
    return coordination, LeaderElection(leases)


def _lead(leader: LeaderElection | None, environments: EnvironmentManager | None) -> Callable[[], bool]:
    """Give the leader its own singletons; returns what the others (reaper, catch-up) ask at each round."""
    if leader is None:
        return lambda: True
    if environments is not None:
        manager = environments
        leader.on_elected.append(manager.sweep_orphans)  # the links no replica's record knows

        async def take_over() -> None:
            await manager.take_over()  # operations whose replica died: resumed here
        leader.on_tick.append(take_over)
    return leader.is_leader


def _agent_runs(settings: Settings, environments: EnvironmentManager | None, metrics: Metrics,
                coordination: Coordination, leader: LeaderElection | None) -> AgentRuns | None:
    """The coding agent's runs, when it is configured (no I/O yet)."""
    if environments is None or settings.agent is None:
        return None
    agent_runs = AgentRuns(manager=environments, settings=settings.agent, github_url=settings.github_url,
                           ledger=open_ledger(environments.store.journal, settings.state_dir),
                           metrics=metrics, prefix=settings.command_prefix,
                           progress_interval=settings.agent.progress_interval,
                           retry_delays=tuple(settings.retry_backoff * d for d in RETRY_DELAYS),
                           guard=agent_guard(coordination))
    if leader is not None:  # runs whose replica died (their Lease expired): concluded by the leader
        leader.on_tick.append(agent_runs.recover)
    return agent_runs


def _prebuilds(settings: Settings, environments: EnvironmentManager | None, github: GitHubClient) -> Prebuilds | None:
    """The prebuild queue, when DEVENV_PREBUILD_REPOSITORY is set; it runs DevPod through the environments'
    runner (one masker, one clone-token service) and shares its ledger (no I/O yet)."""
    if settings.prebuilds is None or environments is None or settings.devpod is None:
        return None
    ops = environments.operations
    assert ops.ledger is not None  # made from the same settings
    checks = PrebuildChecks(github, prefix=settings.command_prefix, min_interval=settings.publish_interval,
                            retry_delays=tuple(settings.retry_backoff * d for d in RETRY_DELAYS))
    return Prebuilds(settings.prebuilds, settings.devpod, runner=ops, checks=checks, ledger=ops.ledger,
                     github_url=settings.github_url)


def host_key_source(settings: Settings) -> keys.HostKeySource:
    """Where the gateway's host key lives: a Kubernetes Secret when the bot keeps its secrets there
    (DEVENV_CREDENTIALS_SECRET, resolved as the credentials' Secret is), else the state directory."""
    spec = settings.gateway.host_key_secret if settings.gateway is not None else None
    if not spec:
        return keys.FileHostKey(settings.state_dir)
    namespace, name = credentials.secret_location(
        spec, context_namespace=kubeconfig_namespace(settings.kube))
    return keys.SecretHostKey(namespace, name, lambda: kube_api_client(settings.kube),
                              seed=keys.host_key_path(settings.state_dir))


def _gateway(settings: Settings, environments: EnvironmentManager | None, github: GitHubClient, metrics: Metrics,
             repo_settings: RepoSettingsLoader) -> Gateway | None:
    """The SSH gateway, when DEVENV_SSH_PORT is set and there are environments to reach (no I/O yet)."""
    if settings.gateway is None or environments is None or settings.devpod is None:
        return None
    return Gateway(settings=settings.gateway, dp=settings.devpod, state_dir=settings.state_dir, manager=environments,
                   github=github, repo_settings=repo_settings, activity=environments.activity,
                   github_url=settings.github_url, prefix=settings.command_prefix, metrics=metrics,
                   host_key=host_key_source(settings))


def build(settings: Settings, routers: Iterable[Router], *,
          clock: Callable[[], float] = time.time) -> Bot:
    """Every collaborator, wired once. Needs a running event loop (for the HTTP session); no I/O."""
    metrics = Metrics()
    auth = None
    if settings.app is not None:
        auth = AppAuth(settings.app.app_id, settings.app.private_key, clock=clock)
        logs.redactor.add(settings.app.webhook_secret)
        logs.redactor.add(settings.app.client_secret)
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60, connect=10))
    github = GitHubClient(settings, auth, session, metrics)
    exposure = _exposure(settings)
    replica_api = _replica_api(settings)  # one client for everything the replicas share
    coordination, leader = _replicas(settings, metrics, replica_api)
    tunnel = None
    if settings.cloudflare is not None and settings.exposure is not None:
        tunnel = CloudflareTunnelRoutes(settings.cloudflare, settings.exposure, session,
                                        mutex=lambda: coordination.mutex("devenv-cloudflare-tunnel"))
    agent_runs: AgentRuns | None = None

    async def end_agent_run(ws_id: str, op: Op) -> None:  # a stop, rebuild or delete first ends the agent run
        if agent_runs is not None:
            await agent_runs.end_for(ws_id, op)

    environments = _environments(settings, github, auth, exposure, tunnel, metrics, end_agent_run, coordination,
                                 replica_api)
    is_leader = _lead(leader, environments)
    agent_runs = _agent_runs(settings, environments, metrics, coordination, leader)
    reaper = None
    runs = agent_runs
    if environments is not None and settings.idle_sweep_interval > 0:
        reaper = IdleReaper(environments, busy=lambda record: runs is not None and record.ws_id in runs.runs,
                            interval=settings.idle_sweep_interval, leader=is_leader)
    repo_settings, permissions = RepoSettingsLoader(), Permissions()
    gateway = _gateway(settings, environments, github, metrics, repo_settings)
    catchup = None
    if environments is not None:
        manager = environments
        catchup = CatchUp(environments, OpenPullLister(listing_transport(github.send), settings.api_url),
                          lambda inst: Policy(github.installation(inst), loader=repo_settings, permissions=permissions,
                                              ledger=manager),
                          agent_busy=lambda record: runs is not None and record.ws_id in runs.runs,
                          interval=settings.catchup_interval, leader=is_leader)
    readiness = Readiness()
    add_checks(readiness, settings, github=github, environments=environments, exposure=exposure)
    tasks = TaskTracker(on_change=metrics.background_tasks.set)
    return Bot(settings=settings, metrics=metrics, dispatcher=Dispatcher(routers, metrics), tasks=tasks,
               seen_deliveries=_deliveries(settings, replica_api), readiness=readiness,
               session=session, github=github, auth=auth, repo_settings=repo_settings,
               permissions=permissions, exposure=exposure, tunnel=tunnel, environments=environments,
               agent_runs=agent_runs, reaper=reaper, catchup=catchup,
               gateway=gateway, leader=leader, replica_api=replica_api,
               used_codes=ClusterUsedCodes(replica_api) if replica_api is not None else None,
               prebuilds=_prebuilds(settings, environments, github))


__all__ = ["Bot", "build", "host_key_source"]
