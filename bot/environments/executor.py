"""Processing one operation, from the queue's hand-off to its conclusion.

The queue (:mod:`bot.environments.queue`) decides *when* an operation runs; this decides what
running it means, in plain steps: the check run is created (queued), the workspace is taken from
the other replicas and its record re-read (:mod:`bot.replicas.coordination`: a no-op with one
process), a DevPod slot is waited for (the local fair limiter, then a cluster-wide slot), the
state moves to the operation's own (:data:`~bot.environments.states.STARTS`), the operation's
DevPod step runs (:mod:`bot.environments.operations`, which returns an outcome and publishes
nothing), the outcome moves the state again through the table, links follow a build or a delete
(:mod:`bot.environments.links`), the record is journalled, and :mod:`bot.environments.publishing` shows
it.  A cancel (a delete superseding the operation, or a shutdown) and a bug are concluded
visibly too: no check run stays in progress.  Each end is counted once, by kind and outcome, with
how long the DevPod step ran (:mod:`bot.environments.telemetry`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from bot import devpod
from bot.core import logs
from bot.environments import report
from bot.environments.journal import Action, EnvRecord, Op, Records
from bot.environments.links import Links
from bot.environments.operations import BUILD_OPS, Operations, Outcome
from bot.environments.publishing import Publishing
from bot.environments.queue import WorkspaceQueue
from bot.environments.states import STARTS, Event, transition
from bot.environments.telemetry import EnvironmentMetrics, outcome_of
from bot.replicas.coordination import Coordination, LocalCoordination

log = logging.getLogger(__name__)

#: Operations shown on the head's ``devenv`` check run (``status`` only reports what it finds).
CHECKED_OPS = frozenset({*BUILD_OPS, "stop", "delete"})


class OperationExecutor:
    """Runs the operations the queue hands over (the queue's :class:`~bot.environments.queue.Executor`)."""

    def __init__(self, *, records: Records, queue: WorkspaceQueue, operations: Operations, links: Links,
                 publishing: Publishing, where: report.Where, clock: Callable[[], float],
                 metrics: EnvironmentMetrics | None = None, timer: Callable[[], float] = time.monotonic,
                 coordination: Coordination | None = None) -> None:
        self.records = records
        self.queue = queue
        self.ops = operations
        self.links = links
        self.publishing = publishing
        self.where = where
        self.clock = clock
        self.metrics = metrics if metrics is not None else EnvironmentMetrics(None)
        self.timer = timer  # durations of DevPod runs, for the metrics
        #: the other replicas (bot.replicas): the workspace's Lease and a cluster-wide DevPod slot
        self.coordination: Coordination = coordination if coordination is not None else LocalCoordination()
        #: ws id -> when its operation's DevPod step started (None: not yet); present until it is counted
        self._began: dict[str, float | None] = {}

    # ------------------------------------------------------------------ the queue's calls
    def taken(self, ws_id: str, op: Op, pending: list[Op]) -> None:
        record = self.records.by_id[ws_id]
        record.op, record.pending = op, pending
        self.records.save(record)

    def dropped(self, ws_id: str, op: Op, why: str) -> None:
        self.metrics.operation(op.kind, "cancelled", None)
        record = self.records.by_id[ws_id]
        self.publishing.react(record, op, "confused")
        self.publishing.check(record, op, status="completed", conclusion="cancelled",
                              title=report.dropped_title(why), urgent=True)

    async def execute(self, ws_id: str, op: Op) -> None:
        record = self.records.by_id[ws_id]
        self._began[ws_id] = None
        with logs.context(repo=record.full_name, pr=record.number):
            try:
                await self._prepare(record, op)
            except asyncio.CancelledError:
                self._cancelled(record, op)
                raise
            except Exception as exc:
                log.exception("%s of %s failed", op.kind, record.ws_id)
                self._internal_error(record, op, exc)

    # ------------------------------------------------------------------ the steps
    async def _prepare(self, record: EnvRecord, op: Op) -> None:
        """Open the head's check run (edited in place if the head has one), then wait for a DevPod slot
        (saying how many are ahead)."""
        if op.kind in CHECKED_OPS and op.check_run_id is None:
            op.check_run_id = await self.publishing.open_check(record, op)
            self.records.save(record)
        elif op.kind in BUILD_OPS and op.resumed:
            self.publishing.check(record, op, status="in_progress", title=report.title(op))
        record.errors, record.note = [], None

        def on_position(ahead: int) -> None:
            record.queued_ahead = ahead
            self.publishing.check(record, op, status="queued", title=report.position_title(ahead))
            self.publishing.comment(record)

        def on_wait(title: str) -> Callable[[], None]:
            return lambda: self.publishing.check(record, op, status="queued", title=report.fixed_title(title))

        async with self.coordination.workspace(record.ws_id, on_wait("other_replica")):
            self._refreshed(record, op)
            async with self.queue.limiter.hold(on_position):
                record.queued_ahead = None
                async with self.coordination.slot(on_wait("cluster_slots")):
                    await self._run(record, op)

    def _refreshed(self, record: EnvRecord, op: Op) -> None:
        """Holding the workspace's Lease: read the record again (another replica may have changed it)."""
        self.records.refresh(record.ws_id)
        if record.op is not op:  # the other replica's conclusion cleared it: the record shows this one
            record.op = op
            self.records.save(record)

    async def _run(self, record: EnvRecord, op: Op) -> None:
        """Holding a DevPod slot: start, run the step, conclude."""
        self._began[record.ws_id] = self.timer()
        if op.kind in STARTS:
            record.state = transition(record.state, STARTS[op.kind])
        record.phase = report.starting_phase()
        self.records.save(record)
        building = op.kind in BUILD_OPS
        if building:
            self.publishing.check(record, op, status="in_progress", title=report.title(op), urgent=True)
        else:  # a quick stop or delete shows only its end: "stopping" is written only if it lasts
            self.publishing.check(record, op, status="in_progress", title=report.title(op),
                                  delay=self.publishing.publisher.min_interval)
        # The check run already says it started; the comment follows after a moment, so a quick
        # operation costs one comment edit (its outcome) instead of two.
        self.publishing.comment(record, delay=self.publishing.publisher.min_interval)

        def on_line(line: devpod.LogLine) -> None:
            phase = devpod.phase_of(line.message)
            if phase and phase != record.phase:
                record.phase = phase
                if building:  # the comment shows states; phases live in the check run
                    self.publishing.check(record, op, status="in_progress", title=report.phase_title(op, phase))

        outcome = await self.ops.before_sync(record, op) if op.kind == "sync" else None
        if outcome is None and building and record.trusted is False:
            outcome = await self._approval(record)
        if outcome is None:
            outcome = await self.ops.step(record, op, on_line)
        await self._conclude(record, op, outcome)

    async def _approval(self, record: EnvRecord) -> Outcome | None:
        """Untrusted code is built only at the approved commit: DevPod clones the PR ref as it is
        *now*, so make sure the head has not moved since the approval (else pause and say so)."""
        head = (await self.publishing.pr_api(record.ref).get())["head"]["sha"]
        if head == record.approved_sha:
            return None
        event = Event.HEAD_MOVED if record.env_sha else Event.HEAD_MOVED_NO_ENV
        return Outcome("action_required", event, "waiting for approval", head_sha=head)

    async def _conclude(self, record: EnvRecord, op: Op, outcome: Outcome) -> None:
        ended = self.timer()  # links and publishing below are not DevPod's time
        before = record.state
        record.phase, record.op = None, None
        if outcome.head_sha is not None:
            record.head_sha = outcome.head_sha
        if outcome.errors is not None:
            record.errors = list(outcome.errors)
        if outcome.event is not None:
            record.state = transition(record.state, outcome.event)
        if outcome.found is not None:  # where DevPod really left it, after the bot ended DevPod
            record.state = transition(record.state, outcome.found)
        await self._follow(record, op, outcome)
        self._finish_action(record, op, outcome.verdict)
        self.publishing.conclude(record, op, conclusion=outcome.conclusion,
                                 title=report.outcome_title(op.kind, outcome.conclusion, outcome.event,
                                                            wrong_commit=outcome.wrong_commit is not None))
        if op.kind == "status" and record.state != before:  # the head's check run showed the state it had
            self.publishing.show_state(record, requested_by=op.requested_by)
        await self.publishing.flush(record, op)
        if op.kind == "delete" and outcome.conclusion == "success" and not self.queue.pending(record.ws_id):
            self.records.forget(record.ws_id)  # a deleted environment leaves nothing behind unless more work waits
            self.ops.logs.forget(record.ws_id)
        self._count(record.ws_id, op, outcome_of(outcome.conclusion), ended)

    async def _follow(self, record: EnvRecord, op: Op, outcome: Outcome) -> None:
        """What the record and the links learn from an outcome besides its state."""
        if outcome.event is Event.BUILT:
            record.env_sha = outcome.env_sha  # what DevPod cloned, never the webhook's head
            await self.links.expose(record)
        elif outcome.event is Event.DELETED:
            record.env_sha = None
            await self.links.unexpose(record)
        elif outcome.event is Event.SYNC_BLOCKED:
            record.note = report.blocked_note(self.where)
        elif outcome.event in (Event.HEAD_MOVED, Event.HEAD_MOVED_NO_ENV):
            record.note = report.paused_note(record, self.where)
            self.publishing.waiting(record)  # the new head's own check run, with an Approve button
        if outcome.wrong_commit is not None:
            expected, got, stopped = outcome.wrong_commit
            record.env_sha = None  # the workspace holds no approved commit: nothing to start as it is
            record.note = report.wrong_commit_note(expected, got, stopped, self.where)
        elif outcome.state_after is not None:
            record.note = report.state_after_note(outcome.state_after, op.kind, self.where)

    # ------------------------------------------------------------------ ends that are not the step's
    def _cancelled(self, record: EnvRecord, op: Op) -> None:
        stopped = self._stopped_devpod(record, op)  # DevPod v0.6.15 dies silently: the bot says what it ended
        if self.queue.shutting_down:
            # Stopped by a shutdown: the journal keeps the op, the next start resumes it (and counts it then,
            # and the resumed run finds where DevPod left the workspace).
            self._began.pop(record.ws_id, None)
            summary = None if stopped is None else f"{stopped} {report.cancel_reason('shutdown')}."
            self.publishing.check(record, op, status="in_progress", title=report.fixed_title("paused"),
                                  summary=summary, urgent=True)
            return
        # Cancelled by a delete: say so, never leave it in progress.
        record.phase, record.op = None, None
        if op.kind in BUILD_OPS:
            deleting = self.queue.delete_waiting(record.ws_id)
            record.state = transition(record.state, Event.CANCELLED_FOR_DELETE if deleting else Event.CANCELLED)
        if stopped is not None:
            record.errors = [stopped]
        self._finish_action(record, op, "cancelled")
        summary = report.cancelled_summary() + ("" if stopped is None else f" {stopped}")
        self.publishing.conclude(record, op, conclusion="cancelled", title=report.fixed_title("cancelled"),
                                 summary=summary)
        self._count(record.ws_id, op, "cancelled")

    def _stopped_devpod(self, record: EnvRecord, op: Op) -> str | None:
        """What DevPod was doing when a cancel ended it, and for how long (None: it had not started)."""
        began = self._began.get(record.ws_id)
        if began is None:
            return None
        return report.killed_error(op.kind, record.phase, self.timer() - began)

    def _internal_error(self, record: EnvRecord, op: Op, exc: Exception) -> None:
        record.phase, record.op = None, None
        record.state = transition(record.state, Event.INTERNAL_ERROR)
        record.errors = [report.internal_error(exc)]
        self._finish_action(record, op, "failed")
        self.publishing.conclude(record, op, conclusion="failure", title=report.fixed_title("internal_error"))
        self._count(record.ws_id, op, "error")

    def _count(self, ws_id: str, op: Op, outcome: str, ended: float | None = None) -> None:
        """Count the operation's end once (a conclusion that fails half-way ends again as an error)."""
        if ws_id not in self._began:
            return
        began = self._began.pop(ws_id)
        seconds = None if began is None else (self.timer() if ended is None else ended) - began
        self.metrics.operation(op.kind, outcome, seconds)

    def _finish_action(self, record: EnvRecord, op: Op, verdict: str) -> None:
        record.last_action = Action(verb=op.kind, by=op.requested_by, at=self.clock(), outcome=verdict)
        self.publishing.react(record, op, "rocket" if verdict == "succeeded" else "confused")
