"""Per-PR environments: one DevPod workspace per pull request, kept in step with it.

:class:`EnvironmentManager` is the environment service's one facade: handlers, agent runs, the
idle reaper and the access checks call it, never its parts.  A request travels through the parts
in this order:

1. :meth:`EnvironmentManager.request` records what was asked (an :class:`~bot.environments.journal.Op`)
   in the PR's record and returns at once;
2. :mod:`bot.environments.queue` keeps one slot per workspace (coalescing, the sync debounce, the
   fair DevPod limiter) and hands each operation to the executor;
3. :mod:`bot.environments.executor` runs it: :mod:`~bot.environments.operations` (one DevPod step,
   an outcome), :mod:`~bot.environments.states` (the transition table), :mod:`~bot.environments.links`
   (browser links);
4. :mod:`bot.environments.publishing` shows the record, rendered by the pure
   :mod:`bot.environments.report`, on the check run and in the sticky comment;
5. :mod:`bot.environments.journal` keeps every record on disk, so on start-up unfinished
   operations are resumed and no check run stays ``in_progress`` forever.

Before a stop, rebuild or delete leaves the queue for the executor, the ``before_destructive``
hook (injected at composition: the agent runs, a layer above) ends whatever works inside the
environment, so nothing is left hanging on a container that goes away.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import types
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from bot import devpod
from bot.core.metrics import Metrics
from bot.core.tasks import every
from bot.environments import countdown, report
from bot.environments.activity import Activity, Source, last_active, source_of
from bot.environments.executor import OperationExecutor
from bot.environments.journal import Action, EnvRecord, Op, PullInfo, Records, open_journal
from bot.environments.links import Links
from bot.environments.operations import BUILD_OPS, Operations
from bot.environments.publishing import CHECK_NAME, Publishing
from bot.environments.queue import WorkspaceQueue
from bot.environments.states import Event, State, shows_queued, transition
from bot.environments.telemetry import EnvironmentMetrics
from bot.github.publish import RETRY_DELAYS
from bot.github.pulls import PullRef, PullRequestAPI
from bot.replicas.coordination import Coordination, LocalCoordination
from bot.replicas.devpod_state import LOCAL, DevPodState
from bot.repo_settings.problems import render_problems

log = logging.getLogger(__name__)

#: Operations that stop or replace the container: ``before_destructive`` runs before each.
DESTRUCTIVE_OPS = frozenset({"stop", "delete", "recreate", "reset"})

__all__ = ["CHECK_NAME", "EnvironmentManager", "PullInfo"]


class EnvironmentManager:
    """The environment service: what the rest of the bot may ask of per-PR environments."""

    def __init__(self, *, settings: Any, dp: devpod.DevPodSettings, github: Any = None, auth: Any = None,
                 exposure: Any = None, tunnel: Any = None, max_concurrent: int = 4, publish_interval: float = 3.0,
                 retry_delays: tuple[float, ...] = RETRY_DELAYS,
                 sync_debounce: float = 5.0, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep, metrics: Metrics | None = None,
                 before_destructive: Callable[[str, Op], Awaitable[None]] | None = None,
                 coordination: Coordination | None = None,
                 devpod_state: DevPodState = LOCAL) -> None:
        self.settings = settings
        self.coordination: Coordination = coordination if coordination is not None else LocalCoordination()
        self.before_destructive = before_destructive
        self.clock = clock
        self.where = report.Where.of(settings, dp)
        self.metrics = EnvironmentMetrics(metrics)  # None: counted nowhere (tests that make a manager alone)
        self.store = Records(open_journal(settings), clock, on_change=self.metrics.states)
        self.poll: asyncio.Task[None] | None = None  # the cluster store's poll of other replicas' writes
        self.activity = Activity(self.store, clock)  # what counts as use, kept in the records
        self.operations = Operations(dp, github_url=settings.github_url, auth=auth,
                                     logs_dir=settings.state_dir / "oplogs",
                                     prebuilds=getattr(settings, "prebuilds", None), state_dir=settings.state_dir,
                                     state=devpod_state)
        self.links = Links(dp, self.where, exposure=exposure, tunnel=tunnel)
        self.publishing = Publishing(self.store, self.where, min_interval=publish_interval, github=github,
                                     retry_delays=retry_delays, clock=clock, last_active=last_active)
        self.queue = WorkspaceQueue(self, max_concurrent=max_concurrent, sync_debounce=sync_debounce,
                                    clock=clock, sleep=sleep, metrics=self.metrics)
        self.executor = OperationExecutor(records=self.store, queue=self.queue, operations=self.operations,
                                          links=self.links, publishing=self.publishing, where=self.where, clock=clock,
                                          metrics=self.metrics, coordination=self.coordination)

    # ------------------------------------------------------------------ collaborators the Bot wires in at start
    @property
    def github(self) -> Any:
        return self.publishing.github

    @github.setter
    def github(self, client: Any) -> None:
        self.publishing.github = client

    @property
    def exposure(self) -> Any:
        return self.links.exposure

    @exposure.setter
    def exposure(self, exposure: Any) -> None:
        self.links.exposure = exposure

    @property
    def tunnel(self) -> Any:
        return self.links.tunnel

    @tunnel.setter
    def tunnel(self, tunnel: Any) -> None:
        self.links.tunnel = tunnel

    async def devpod_problem(self) -> str | None:
        """Why DevPod cannot work now, or None (the readiness check; see :meth:`Operations.problem`)."""
        return await self.operations.problem()

    # ------------------------------------------------------------------ start and stop
    async def start(self) -> None:
        """Prepare DevPod, load the journal, sweep orphaned links, publish outcomes left unwritten,
        resume unfinished operations."""
        self.operations.prepare_dirs()
        self.store.load()
        if self.store.journal.shared:
            self.poll = asyncio.create_task(every(getattr(self.settings, "lease_duration", 15.0), self.store.refresh_all,
                                                  "reading the records from the cluster"), name="poll the records")
        try:
            await self.operations.prepare_devpod()
        except Exception:
            log.exception("preparing DevPod failed; environments will fail until it is fixed")
        if self.coordination.resumes_at_start:  # replicas: the leader sweeps, and takes over what is abandoned
            await self.sweep_orphans()
        for record in self.store:
            if record.unpublished is not None:
                log.info("publishing the %s of %s a restart left unwritten", record.unpublished.op.kind, record.ws_id)
                self.publishing.republish(record)
            if self.coordination.resumes_at_start:
                self._resume(record, "after a restart")

    async def sweep_orphans(self) -> None:
        """Remove the links of workspaces the bot does not know (one process: at start; replicas: the leader)."""
        # a workspace whose record was set aside is not an orphan: its links stay until the operator acts
        await self.links.remove_orphans([r.ws_id for r in self.store if r.state != State.DELETED]
                                        + self.store.journal.set_aside())

    def _resume(self, record: EnvRecord, why: str) -> None:
        unfinished = ([record.op] if record.op is not None else []) + list(record.pending)
        record.op, record.pending = None, []
        for op in unfinished:
            op.resumed = True
            log.info("resuming %s of %s %s", op.kind, record.ws_id, why)
            self._enqueue(record, op)

    async def take_over(self) -> list[str]:
        """The leader's scan (replicas): resume the operations recorded as in progress that no replica runs any
        more (the one that ran them died: their workspace Lease expired), as start-up resumes its own."""
        taken: list[str] = []
        for record in self.store:
            if (record.op is None and not record.pending) or self.queue.busy(record.ws_id):
                continue
            fresh = self.store.refresh(record.ws_id)
            if fresh is None or (fresh.op is None and not fresh.pending) or self.queue.busy(fresh.ws_id):
                continue
            if await self.coordination.abandoned(fresh.ws_id, fresh.updated_at):
                log.warning("taking over %s of %s: the replica that ran it is gone",
                            ", ".join(op.kind for op in [fresh.op, *fresh.pending] if op is not None), fresh.ws_id)
                self._resume(fresh, "taken over from a replica that is gone")
                taken.append(fresh.ws_id)
        return taken

    async def idle(self) -> None:
        """Wait until no operation runs or waits and every publish is written (tests, `receive`)."""
        while True:
            tasks = self.queue.workers() + self.publishing.tasks()
            if not tasks:
                return
            await asyncio.gather(*tasks, return_exceptions=True)

    async def drain(self, grace: float) -> None:
        """On shutdown: let running operations finish within ``grace``; the rest stay journalled.

        Whatever is still running after the grace period is stopped without being
        concluded: its check run says the bot is restarting, and the journal lets
        the next start resume it.
        """
        await self.queue.drain(grace)
        self.activity.flush()
        await self.publishing.close()
        if self.poll is not None:
            self.poll.cancel()
            await asyncio.gather(self.poll, return_exceptions=True)

    # ------------------------------------------------------------------ looking
    @property
    def records(self) -> Mapping[str, EnvRecord]:
        """Every tracked record by workspace id (read-only: change them through the methods below)."""
        return types.MappingProxyType(self.store.by_id)

    def find(self, info: PullInfo) -> EnvRecord | None:
        """The PR's record if the bot tracks it (never creates one), as the store holds it now."""
        return self.store.refresh(devpod.workspace_id(info.ref.owner, info.ref.repo, info.ref.number))

    def busy(self, ws_id: str) -> bool:
        """Is an operation of this environment running or waiting?"""
        return self.queue.busy(ws_id)

    def port_permission(self, ws_id: str, port: str) -> str | None:
        """The permission ``.github/devenv.yml`` asks for a preview port (None: the default)."""
        record = self.store.get(ws_id)
        for item in (record.ports if record is not None else []):
            if item.get("name") == port:
                return item.get("permission")
        return None

    # ------------------------------------------------------------------ asking
    def record_for(self, info: PullInfo) -> EnvRecord:
        """The PR's record, made if new, brought up to date with what ``info`` says."""
        ws_id = devpod.workspace_id(info.ref.owner, info.ref.repo, info.ref.number)
        record = self.store.refresh(ws_id) or self.store.add(EnvRecord(
            ws_id=ws_id, installation_id=info.ref.installation_id, owner=info.ref.owner, repo=info.ref.repo,
            number=info.ref.number, head_sha=info.head_sha))
        record.installation_id = info.ref.installation_id
        record.head_sha = info.head_sha
        record.head_ref, record.title, record.author = info.head_ref, info.title, info.author
        record.fork, record.private = info.fork, info.private
        if info.draft is not None:
            record.draft = info.draft
        if info.closed is not None:
            record.closed = info.closed
        return record

    def observe(self, info: PullInfo) -> None:
        """Remember what GitHub says of the PR (e.g. that it is a draft) without asking for anything."""
        self.store.save(self.record_for(info))

    def request(self, info: PullInfo, kind: str, *, requested_by: str, comment_id: int | None = None,
                approve: bool = False, check_run: tuple[int, str] | None = None) -> EnvRecord:
        """Ask for an operation on the PR's environment; returns at once.

        ``approve``: someone with write access vouches for the PR's current head, so an
        untrusted PR may be built at exactly that commit.  ``check_run``: the ``devenv`` check run
        (id, head) whose button asked; on the current head it is the one the operation edits.
        """
        record = self.record_for(info)
        if check_run is not None and check_run[1] == info.head_sha and record.check_sha != info.head_sha:
            record.check_run_id, record.check_sha = check_run
        if approve:
            record.approved_sha, record.approved_by, record.note = info.head_sha, requested_by, None
        op = Op(kind=kind, head_sha=info.head_sha, requested_by=requested_by, requested_at=self.clock(),
                comment_id=comment_id)
        record.last_action = Action(verb=kind, by=requested_by, at=op.requested_at)
        if (source := source_of(kind)) is not None:  # a read (status) or a stop is no use
            self.activity.note(record.ws_id, source, op.requested_at)
        self._enqueue(record, op)
        return record

    def _enqueue(self, record: EnvRecord, op: Op) -> None:
        if not self.queue.put(record.ws_id, op):
            return
        if op.kind in BUILD_OPS and shows_queued(record.state):
            record.state = transition(record.state, Event.QUEUED)
        record.pending = self.queue.pending(record.ws_id)
        self.store.save(record)

    def configure(self, info: PullInfo, repo_settings: Any, problems: list[str]) -> EnvRecord:
        """Apply the repository's ``.github/devenv.yml`` (read from the base branch) to this PR."""
        record = self.record_for(info)
        record.ide = repo_settings.ide
        record.devcontainer_path = repo_settings.devcontainer_path
        record.resources = repo_settings.resources
        record.clone_strategy = getattr(repo_settings, "clone_strategy", None)
        record.prebuild = bool(getattr(repo_settings, "prebuild", None) and repo_settings.prebuild.enabled)
        record.base_ref = info.base_ref or record.base_ref
        record.idle_stop, record.delete_after = repo_settings.idle_stop, repo_settings.delete_after
        record.ports = [{"name": p.name, "port": p.port, "permission": p.permission} for p in repo_settings.ports]
        note = render_problems(problems, base_sha=info.base_sha or None) if problems else None
        changed = note != record.settings_note
        record.settings_note = note
        self.store.save(record)
        if changed:
            self.publishing.comment(record, urgent=True)
        return record

    def set_trust(self, info: PullInfo, trusted: bool) -> EnvRecord:
        record = self.record_for(info)
        record.trusted = trusted
        self.store.save(record)
        return record

    def wait_for_approval(self, info: PullInfo) -> None:
        """The PR's code is untrusted and its head not approved: say so in the comment and on the head's
        check run (``action_required``, with an Approve button for writers)."""
        record = self.record_for(info)
        note = report.paused_note(record, self.where)
        if record.note != note:
            self.explain(info, note)
        self.publishing.waiting(record)

    def refresh(self, info: PullInfo) -> None:
        """Re-render the sticky comment from what is known (e.g. a new head on a stopped environment)."""
        record = self.record_for(info)
        self.store.save(record)
        self.publishing.comment(record)

    def show_stopped_head(self, info: PullInfo) -> None:
        """A stopped environment's PR got a new head (nothing syncs while stopped): give that head the
        stopped check run (Wake), so its checks say what the environment is."""
        record = self.record_for(info)
        if record.state == State.STOPPED and record.check_sha != record.head_sha:
            by = record.last_action.by if record.last_action is not None else info.author
            self.publishing.show_state(record, requested_by=by)

    def explain(self, info: PullInfo, note: str) -> None:
        """Show a note in the sticky comment without running anything (e.g. fork PRs)."""
        record = self.record_for(info)
        record.note = note
        self.store.save(record)
        self.publishing.comment(record, urgent=True)

    # ------------------------------------------------------------------ the countdown
    def show_countdown(self, ws_id: str, *, warn_for: float | None = None) -> None:
        """Edit the sticky comment for its countdown (``warn_for``: with the warning of that stop time)."""
        record = self.store.get(ws_id)
        if record is None:
            return
        if warn_for is not None:
            record.warned_for = warn_for
            self.store.save(record)
        self.publishing.comment(record, urgent=True)

    def extend(self, info: PullInfo, *, duration: float, maximum: float, requested_by: str) -> countdown.Extension | None:
        """Push back the environment's stop (running) or deletion (stopped); None: it has neither to push."""
        record = self.record_for(info)
        now = self.clock()
        result = countdown.extend(record, last_active(record), now, duration, maximum)
        if result is None:
            return None
        record.keep_until, record.keep_for = max(countdown.kept(record, result.what), result.keep_until), result.what
        record.last_action = Action(verb="extend", by=requested_by, at=now, outcome="succeeded")
        self.store.save(record)
        self.publishing.comment(record, urgent=True)
        due = countdown.deadlines(record, last_active(record))
        return dataclasses.replace(result, keep_until=due.stop_at or due.delete_at or result.keep_until)

    # ------------------------------------------------------------------ texts
    def comment_body(self, record: EnvRecord) -> str:
        return report.comment_body(record, self.where)

    def check_texts(self, record: EnvRecord, op: Op) -> tuple[str, str | None]:
        """The summary and (when there are errors) the text of the check run."""
        return report.check_texts(record, op, self.where)

    # ------------------------------------------------------------------ for agent runs
    @property
    def devpod_settings(self) -> devpod.DevPodSettings:
        return self.operations.dp

    def pull_api(self, ref: PullRef) -> PullRequestAPI:
        """The PR's GitHub verbs, acting as the app's installation."""
        return self.publishing.pr_api(ref)

    async def mint_token(self, ref: PullRef, contents: str) -> str | None:
        """A token for ``contents`` (read or write) on the PR's repository alone; None without app credentials."""
        return await self.operations.mint(ref.installation_id, ref.repo, contents)

    # ------------------------------------------------------------------ the queue's executor
    def taken(self, ws_id: str, op: Op, pending: list[Op]) -> None:
        self.executor.taken(ws_id, op, pending)

    def dropped(self, ws_id: str, op: Op, why: str) -> None:
        self.executor.dropped(ws_id, op, why)

    async def execute(self, ws_id: str, op: Op) -> None:
        if op.kind in DESTRUCTIVE_OPS and self.before_destructive is not None:
            try:
                await self.before_destructive(ws_id, op)
            except asyncio.CancelledError:
                if not self.queue.shutting_down:  # superseded by a delete: say so (a shutdown resumes it)
                    self.executor.dropped(ws_id, op, "superseded by a delete")
                raise
            except Exception:
                log.exception("ending what works in %s before %s failed; going ahead", ws_id, op.kind)
        await self.executor.execute(ws_id, op)
        self._note_end(ws_id, op)

    def _note_end(self, ws_id: str, op: Op) -> None:
        """The end of an operation that acts is use; the end of a stop starts the clock of ``delete_after``."""
        record = self.store.get(ws_id)
        source = source_of(op.kind)
        if op.kind == "stop" and record is not None and record.state == State.STOPPED:
            source = Source.STOPPED
        if source is not None and record is not None:
            self.activity.note(ws_id, source)
