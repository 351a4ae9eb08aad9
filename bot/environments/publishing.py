"""The one publishing side effect: check runs, the sticky comment and reactions, through a Publisher.

Progress is *published*, not written: the executor marks the check run or the comment as changed
and :class:`~bot.github.publish.Publisher` renders the newest state when it gets to write (from a
snapshot of the record taken when it was marked, through :mod:`bot.environments.report`), so a
burst of phase changes costs one GitHub write.

:class:`CheckRuns` is the check-run lifecycle (created once, then updated from the newest state,
flushed when final) shared by the ``devenv`` check run here and the ``devenv agent`` check run of
:mod:`bot.agent.runs`.  A write identical to the last one of the same check run is skipped.

The ``devenv`` check run is one per head: the record remembers its id and head (``check_run_id``,
``check_sha``), and every later operation on that head (a wake, a stop, a delete, a rebuild) and the
wait for an approval edit it in place (:meth:`Publishing.open_check`, :meth:`Publishing.waiting`),
as does a state no operation of the head concluded (``status`` found it; a push carried a stopped
environment to a new head: :meth:`Publishing.show_state`), so the head's one check run always shows
the environment's state and the buttons that fit it.

The sticky comment's countdown (:mod:`bot.environments.countdown`) is worked out when the comment is
written, from the newest record and its last activity, so any edit shows the true stop or deletion time.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Hashable
from typing import Any

from bot.environments import countdown, report
from bot.environments.journal import EnvRecord, Op, Records, Unpublished
from bot.github.publish import RETRY_DELAYS, Publisher
from bot.github.pulls import PullRef, PullRequestAPI, check_output

CHECK_NAME = "devenv"


@dataclasses.dataclass(frozen=True)
class CheckUpdate:
    """One write of a check run."""

    status: str
    output: dict[str, str]
    conclusion: str | None = None
    actions: list[dict[str, str]] | None = None
    details_url: str | None = None


class CheckRuns:
    """Check runs of one kind (``kind`` keeps their publisher keys apart), created once and then re-rendered."""

    def __init__(self, publisher: Publisher, kind: str) -> None:
        self.publisher = publisher
        self.kind = kind
        self._last: dict[int, CheckUpdate] = {}  # check run id -> its last write (identical writes are skipped)

    def key(self, ws_id: str, check_id: int | None) -> Hashable:
        return (self.kind, ws_id, check_id)

    async def create(self, pr: PullRequestAPI, ws_id: str, *, name: str, head_sha: str, status: str,
                     output: dict[str, str], paced: bool = True) -> int:
        """Create the check run; ``paced``: its creation counts as a write against the update interval."""
        check_id = await pr.create_check(name=name, head_sha=head_sha, external_id=ws_id, status=status, output=output)
        if paced:
            self.publisher.note_write(self.key(ws_id, check_id))
        return check_id

    def update(self, pr: PullRequestAPI, ws_id: str, check_id: int, render: Callable[[], CheckUpdate], *,
               urgent: bool = False, written: Callable[[], None] | None = None, delay: float = 0.0) -> None:
        """Write ``render()`` soon (it runs when the write happens, so it sees the newest state);
        ``written`` hears that it was (or that it needed no write: GitHub shows it already)."""

        async def write() -> None:
            await self.put(pr, check_id, render())
            if written is not None:
                written()

        self.publisher.mark(self.key(ws_id, check_id), write, urgent=urgent, delay=delay)

    async def put(self, pr: PullRequestAPI, check_id: int, u: CheckUpdate) -> None:
        """Write ``u`` now, unless it is what the check run already shows."""
        if self._last.get(check_id) != u:
            await pr.update_check(check_id, status=u.status, conclusion=u.conclusion, actions=u.actions,
                                  details_url=u.details_url, output=u.output)
            self.remember(check_id, u)

    def remember(self, check_id: int, update: CheckUpdate) -> None:
        if len(self._last) > 1000:  # bounded: forgetting one only costs a repeated write
            self._last.pop(next(iter(self._last)))
        self._last[check_id] = update

    async def flush(self, ws_id: str, check_id: int | None) -> None:
        await self.publisher.flush(self.key(ws_id, check_id))  # None: nothing was marked, nothing to write


class Publishing:
    """What the environment service writes to GitHub."""

    def __init__(self, records: Records, where: report.Where, *, min_interval: float, github: Any = None,
                 retry_delays: tuple[float, ...] = RETRY_DELAYS, clock: Callable[[], float] | None = None,
                 last_active: Callable[[EnvRecord], float] = countdown.recorded_activity) -> None:
        self.records = records
        self.where = where
        self.clock = clock if clock is not None else records.clock
        self.last_active = last_active  # the countdown's notion of activity (the idle reaper's)
        self.github = github  # bot.github.client.GitHubClient: installation clients
        self.publisher = Publisher(min_interval=min_interval, retry_delays=retry_delays)
        self.checks = CheckRuns(self.publisher, "check")

    def pr_api(self, ref: PullRef) -> PullRequestAPI:
        return PullRequestAPI(self.github.installation(ref.installation_id), ref)

    async def open_check(self, record: EnvRecord, op: Op) -> int:
        """The ``devenv`` check run ``op`` shows on: the head's own if it has one (edited in place),
        else a new one, created queued for a build (its history then reads queued → in progress →
        conclusion) or in progress for a stop or delete."""
        if record.check_run_id is not None and record.check_sha == op.head_sha:
            op.check_run_id = record.check_run_id
            if op.kind in report.BUILD_OPS:
                self.check(record, op, status="queued", title=report.queued_title(op))
            return record.check_run_id
        building = op.kind in report.BUILD_OPS
        status, title = ("queued", report.queued_title(op)) if building else ("in_progress", report.title(op))
        output = check_output(title, report.check_summary(record, op, self.where))
        check_id = await self.checks.create(self.pr_api(record.ref), record.ws_id, name=CHECK_NAME,
                                            head_sha=op.head_sha, status=status, output=output)
        record.check_run_id, record.check_sha = check_id, op.head_sha
        return check_id

    def waiting(self, record: EnvRecord) -> None:
        """Show that the head waits for a writer's approval: the head's check run (made if it has none)
        concluded ``action_required``, with an **Approve** button pinned to that head."""
        ws_id = record.ws_id

        async def write() -> None:
            current = self.records.get(ws_id)
            if current is None or not report.waits_for_approval(current):
                return  # approved (or gone) before this was written: nobody needs to see it
            u = CheckUpdate(**report.waiting_check_run(current, self.where))
            await self._on_head(current, u)

        self.publisher.mark(("check-waiting", ws_id), write, urgent=True)

    async def _on_head(self, current: EnvRecord, u: CheckUpdate) -> None:
        """Show ``u`` on the head's check run: edited when the head has one, else created completed (its id kept)."""
        pr = self.pr_api(current.ref)
        if current.check_run_id is not None and current.check_sha == current.head_sha:
            await self.checks.put(pr, current.check_run_id, u)
            return
        check_id = await pr.create_check(name=CHECK_NAME, head_sha=current.head_sha, external_id=current.ws_id,
                                         status=u.status, conclusion=u.conclusion, actions=u.actions,
                                         details_url=u.details_url, output=u.output)
        self.checks.remember(check_id, u)
        current.check_run_id, current.check_sha = check_id, current.head_sha
        self.records.save(current)

    def show_state(self, record: EnvRecord, *, requested_by: str) -> None:
        """Show the state ``record`` is in on its head's check run, though no operation of that head
        concluded it (``status`` found another state; a push carried a stopped environment to a new
        head): edited in place, or created completed on a head without one, with the buttons of the
        state.  A write identical to the check run's last is skipped."""
        shown = report.STATE_CHECKS.get(record.state)
        if shown is None:
            return
        kind, conclusion = shown
        ws_id, state = record.ws_id, record.state

        async def write() -> None:
            current = self.records.get(ws_id)
            if current is None or current.state != state:
                return  # moved on since: the operation that moved it shows that
            op = Op(kind, current.head_sha, requested_by, self.clock())
            u = CheckUpdate(**report.check_run(current, op, self.where, status="completed", conclusion=conclusion,
                                               title=report.conclusion_title(kind, conclusion)))
            await self._on_head(current, u)

        self.publisher.mark(("check-state", ws_id), write, urgent=True)

    def conclude(self, record: EnvRecord, op: Op, *, conclusion: str, title: str, summary: str | None = None) -> None:
        """Journal ``record`` with ``op``'s end as unpublished, then show it on the check run and
        the comment (each clears its part of the unpublished outcome once written)."""
        record.unpublished = Unpublished(op, conclusion, title, summary, check=op.check_run_id is not None)
        self.records.save(record)
        self.republish(record)

    def republish(self, record: EnvRecord) -> None:
        """Write what ``record``'s unpublished outcome still lacks (at start-up: what a crash left)."""
        u = record.unpublished
        if u is None:
            return
        if u.check:
            self.check(record, u.op, status="completed", conclusion=u.conclusion, title=u.title, summary=u.summary,
                       urgent=True, outcome=u)
        if u.comment:
            self.comment(record, urgent=True)

    def _published(self, ws_id: str, outcome: Unpublished, part: str) -> None:
        current = self.records.get(ws_id)
        if current is None or current.unpublished is not outcome or not getattr(outcome, part):
            return
        setattr(outcome, part, False)
        if not (outcome.check or outcome.comment):
            current.unpublished = None
        self.records.save(current)

    def check(self, record: EnvRecord, op: Op, *, status: str, title: str, conclusion: str | None = None,
              summary: str | None = None, urgent: bool = False, outcome: Unpublished | None = None,
              delay: float = 0.0) -> None:
        """Show ``record`` (as it is now) on ``op``'s check run, if it has one (``outcome``: the
        unpublished outcome this write publishes; ``delay``: a state that may be replaced soon)."""
        if op.check_run_id is None:
            return
        snapshot = dataclasses.replace(record, errors=list(record.errors))
        where = self.where

        def render() -> CheckUpdate:
            return CheckUpdate(**report.check_run(snapshot, op, where, status=status, title=title,
                                                  conclusion=conclusion, summary=summary))

        written = None if outcome is None else lambda: self._published(record.ws_id, outcome, "check")
        self.checks.update(self.pr_api(record.ref), record.ws_id, op.check_run_id, render, urgent=urgent,
                           written=written, delay=delay)

    def comment(self, record: EnvRecord, *, urgent: bool = False, delay: float = 0.0) -> None:
        """Show ``record`` (as it is now) in the sticky comment; remembers the comment's id."""
        snapshot = dataclasses.replace(record, errors=list(record.errors))

        async def write() -> None:
            current = self.records.get(snapshot.ws_id) or snapshot
            snapshot.warned_for, snapshot.keep_until = current.warned_for, current.keep_until
            countdown.stamp(snapshot, self.last_active(current), self.clock())  # true when written
            body = report.comment_body(snapshot, self.where)
            if (current.stop_at, current.delete_at) != (snapshot.stop_at, snapshot.delete_at):
                current.stop_at, current.delete_at = snapshot.stop_at, snapshot.delete_at
                current.countdown_at = snapshot.countdown_at
                self.records.save(current)
            comment_id = await self.pr_api(snapshot.ref).upsert_comment(body, current.comment_id)
            if current.comment_id != comment_id:
                current.comment_id = comment_id
                self.records.save(current)
            if snapshot.unpublished is not None:  # this comment shows that outcome (or a newer state)
                self._published(snapshot.ws_id, snapshot.unpublished, "comment")

        self.publisher.mark(("comment", record.ws_id), write, urgent=urgent, delay=delay)

    def react(self, record: EnvRecord, op: Op, content: str) -> None:
        """Answer the command comments that asked for ``op`` (if any did) with a reaction."""
        pr = self.pr_api(record.ref)
        for comment_id in dict.fromkeys([*([] if op.comment_id is None else [op.comment_id]), *op.also_notify]):

            async def write(comment_id: int = comment_id) -> None:
                await pr.react(comment_id, content)

            self.publisher.mark(("reaction", record.ws_id, comment_id), write, urgent=True)

    async def flush(self, record: EnvRecord, op: Op) -> None:
        """Write the final state of ``op``'s check run and of the comment now."""
        self.comment(record, urgent=True)
        await self.checks.flush(record.ws_id, op.check_run_id)
        await self.publisher.flush(("comment", record.ws_id))

    def tasks(self) -> list[asyncio.Task[None]]:
        return self.publisher.tasks()

    async def close(self) -> None:
        await self.publisher.close()
