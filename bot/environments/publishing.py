"""The one publishing side effect: check runs, the sticky comment and reactions, through a Publisher.

Progress is *published*, not written: the executor marks the check run or the comment as changed
and :class:`~bot.github.publish.Publisher` renders the newest state when it gets to write (from a
snapshot of the record taken when it was marked, through :mod:`bot.environments.report`), so a
burst of phase changes costs one GitHub write.

:class:`CheckRuns` is the check-run lifecycle (created once, then updated from the newest state,
flushed when final) shared by the ``devenv`` check run here and the ``devenv agent`` check run of
:mod:`bot.agent.runs`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Hashable
from typing import Any

from bot.environments import report
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
               urgent: bool = False, written: Callable[[], None] | None = None) -> None:
        """Write ``render()`` soon (it runs when the write happens, so it sees the newest state);
        ``written`` hears that it was."""

        async def write() -> None:
            u = render()
            await pr.update_check(check_id, status=u.status, conclusion=u.conclusion, actions=u.actions,
                                  details_url=u.details_url, output=u.output)
            if written is not None:
                written()

        self.publisher.mark(self.key(ws_id, check_id), write, urgent=urgent)

    async def flush(self, ws_id: str, check_id: int | None) -> None:
        await self.publisher.flush(self.key(ws_id, check_id))  # None: nothing was marked, nothing to write


class Publishing:
    """What the environment service writes to GitHub."""

    def __init__(self, records: Records, where: report.Where, *, min_interval: float, github: Any = None,
                 retry_delays: tuple[float, ...] = RETRY_DELAYS) -> None:
        self.records = records
        self.where = where
        self.github = github  # bot.github.client.GitHubClient: installation clients
        self.publisher = Publisher(min_interval=min_interval, retry_delays=retry_delays)
        self.checks = CheckRuns(self.publisher, "check")

    def pr_api(self, ref: PullRef) -> PullRequestAPI:
        return PullRequestAPI(self.github.installation(ref.installation_id), ref)

    async def create_check(self, record: EnvRecord, op: Op) -> int:
        """The ``devenv`` check run of a build, created queued (its history then always reads
        queued → in progress → conclusion, even when a DevPod slot is free)."""
        output = check_output(report.queued_title(op), report.check_summary(record, op, self.where))
        return await self.checks.create(self.pr_api(record.ref), record.ws_id, name=CHECK_NAME,
                                        head_sha=op.head_sha, status="queued", output=output)

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
              summary: str | None = None, urgent: bool = False, outcome: Unpublished | None = None) -> None:
        """Show ``record`` (as it is now) on ``op``'s check run, if it has one (``outcome``: the
        unpublished outcome this write publishes)."""
        if op.check_run_id is None:
            return
        snapshot = dataclasses.replace(record, errors=list(record.errors))
        where = self.where

        def render() -> CheckUpdate:
            default_summary, text = report.check_texts(snapshot, op, where)
            return CheckUpdate(
                status=status, conclusion=conclusion, output=check_output(title, summary or default_summary, text),
                actions=report.buttons(snapshot, conclusion) if status == "completed" else None,
                details_url=report.details_url(snapshot, where) if conclusion == "action_required" else None)

        written = None if outcome is None else lambda: self._published(record.ws_id, outcome, "check")
        self.checks.update(self.pr_api(record.ref), record.ws_id, op.check_run_id, render, urgent=urgent,
                           written=written)

    def comment(self, record: EnvRecord, *, urgent: bool = False, delay: float = 0.0) -> None:
        """Show ``record`` (as it is now) in the sticky comment; remembers the comment's id."""
        snapshot = dataclasses.replace(record, errors=list(record.errors))

        async def write() -> None:
            body = report.comment_body(snapshot, self.where)
            current = self.records.get(snapshot.ws_id) or snapshot
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
