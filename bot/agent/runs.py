"""``/devenv agent run`` and ``/devenv agent stop``: one coding-agent run per environment.

Design (user-facing rules in ``docs/agent.md``):

* :meth:`AgentRuns.start` decides *synchronously* whether a run may begin (prompt, API key, trust, one run per
  environment) and registers it before its first ``await``, so two requests racing each other cannot both start.
  A refusal is a reply comment that says why and what to do.
* The run itself is a task kept in :attr:`AgentRuns.runs` (one per workspace id), drained by :meth:`drain` on
  shutdown. It reacts 👀, creates the ``devenv agent`` check run on the PR head, brings the environment up if
  needed (through the environment manager, waiting for its slot to go idle), mints a push token when allowed,
  calls :func:`bot.agent.run_agent` and concludes: check-run conclusion, a final comment that quotes the
  request, 🚀 or 😕 on the command comment, one count by outcome. Progress goes through a
  :class:`~bot.github.publish.Publisher`: re-rendered at most once per ``progress_interval`` s, the end at once.
* Durable: each run is journalled in the :class:`~bot.agent.ledger.Ledger` (accepted, its check run, its final
  write). :meth:`AgentRuns.recover` concludes every run nobody runs any more (``cancelled``, saying the bot
  restarted and to run it again; its remote agent ended if the workspace runs) and writes again any conclusion
  GitHub never got: at start-up and, with replicas, at each leader's round.
* :meth:`AgentRuns.end_for` is the environment manager's hook before a stop, rebuild or delete: the run is
  aborted (its local ``devpod ssh`` killed, no remote signal: the container goes anyway), concluded
  ``cancelled`` saying why, its slot released; only then does DevPod act. Signals go only to a running
  workspace (:mod:`bot.agent.recovery`). Across replicas a Lease per run is the one-run rule, and a run another
  replica runs is spared by recovery and ended on request (:mod:`bot.agent.across`).
* Secrets: the API key and the push token are masked in every text (the stream by ``run_agent``, the final texts
  again here) and given to the log redactor. No token is minted for a fork PR or an untrusted one (no run).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
from collections.abc import Sequence
from typing import Any

from bot import devpod
from bot.agent.across import busy_elsewhere, end_elsewhere, orphans, stop_elsewhere, watch
from bot.agent.ledger import Ledger, RunEntry
from bot.agent.model import AgentRun
from bot.agent.prepare import ensure_up, push_env
from bot.agent.progress import Progress
from bot.agent.recovery import DESTRUCTIVE, recover, workspace_running
from bot.agent.remote import AgentPromptError, stdin_payload
from bot.agent.run import AgentResult, run_agent
from bot.agent.view import (
    CHECK_NAME,
    CONCLUSIONS,
    HEADLINES,
    OUTCOMES,
    TITLES,
    check_summary,
    ended_because,
    progress_text,
    request_quote,
)
from bot.core import logs
from bot.core.metrics import Metrics
from bot.environments.activity import Source as Use
from bot.environments.journal import Op, PullInfo
from bot.environments.manager import EnvironmentManager
from bot.environments.publishing import CheckRuns, CheckUpdate
from bot.github.permissions import allows as permission_allows
from bot.github.publish import RETRY_DELAYS, Publisher
from bot.github.pulls import PullRequestAPI, check_output
from bot.replicas.agents import AgentGuard, LocalAgentGuard
from bot.settings.agent import AgentSettings
from bot.text.markdown import escape, fenced, truncate_bytes
from bot.text.templating import render

log = logging.getLogger(__name__)

__all__ = ["CHECK_NAME", "OUTCOMES", "AgentRun", "AgentRuns"]

#: How many of the last output lines a failed run shows, and at most how many bytes of them.
TAIL_LINES = 20
TAIL_BYTES = 4000
PROGRESS_BYTES = 12000


class AgentRuns:
    """The Bot's agent runs; one at a time per environment."""

    def __init__(self, *, manager: EnvironmentManager, settings: AgentSettings, github_url: str, metrics: Metrics,
                 prefix: str = "/devenv", progress_interval: float = 5.0, poll_interval: float = 0.1,
                 up_timeout: float | None = None, ledger: Ledger | None = None, abort_wait: float = 15.0,
                 retry_delays: tuple[float, ...] = RETRY_DELAYS, guard: AgentGuard | None = None) -> None:
        self.manager, self.guard = manager, guard if guard is not None else LocalAgentGuard()
        self.ledger = ledger if ledger is not None else Ledger(manager.settings.state_dir)
        self.abort_wait, self.metrics = abort_wait, metrics  # abort_wait: how long a stop waits for the run it ends
        for outcome in OUTCOMES:  # every outcome present from the start, 0 until it happens
            metrics.agent_runs.labels(outcome)
        self.settings, self.github_url, self.prefix, self.poll_interval = settings, github_url.rstrip("/"), prefix, poll_interval
        self.up_timeout = up_timeout if up_timeout is not None else manager.devpod_settings.up_timeout
        self.publisher = Publisher(min_interval=progress_interval, retry_delays=retry_delays)
        self.checks = CheckRuns(self.publisher, "agent-check")
        self.runs: dict[str, AgentRun] = {}  # the runs going on, one slot per environment
        self._tasks: set[asyncio.Task[None]] = set()  # every run's task, until it has said its last word
        self._handled: set[str] = set()  # run ids this process runs or has recovered: never recovered (again)
        logs.redactor.add(settings.api_key)

    # ------------------------------------------------------------------ requests
    async def start(self, info: PullInfo, prompt: str, requested_by: str, comment_id: int | None, *,
                    permission: str = "write", command: Sequence[str] | None = None) -> AgentRun | None:
        """Start a run, or reply why not (and return None). Returns once the run is registered."""
        pr = self._pr(info)
        ws_id = devpod.workspace_id(info.ref.owner, info.ref.repo, info.ref.number)
        settings = self.settings
        refusal: dict[str, Any] | None = None
        if command:
            try:
                settings = dataclasses.replace(settings, command=tuple(command))
            except ValueError as exc:
                refusal = {"kind": "bad_command", "message": escape(str(exc))}
        if refusal is None:
            try:
                stdin_payload(prompt, settings)
            except AgentPromptError as exc:
                refusal = {"kind": "prompt", "message": escape(str(exc))}
        if refusal is None and not settings.api_key:
            refusal = {"kind": "no_key"}
        record = self.manager.find(info)
        if refusal is None and (record is None or not record.trusted):
            refusal = {"kind": "untrusted"}
        if refusal is None and ws_id in self.runs:
            refusal = {"kind": "busy", "running_by": self.runs[ws_id].requested_by,
                       "stop_command": f"{self.prefix} agent stop"}
        if refusal is not None:
            log.info("agent run on %s refused: %s", info.ref, refusal["kind"])
            await self._reply_refusal(pr, requested_by, comment_id, refusal)
            return None
        run = AgentRun(ws_id=ws_id, info=info, prompt=prompt, requested_by=requested_by, comment_id=comment_id,
                       settings=settings, may_push=not info.fork and record is not None and not record.fork
                       and permission_allows(permission, "write"))
        self.runs[ws_id] = run  # registered before the first await: a second request is refused
        if not await self.guard.claim(ws_id, functools.partial(watch, self.ledger, run)):  # another replica's
            del self.runs[ws_id]
            await self._reply_refusal(pr, requested_by, comment_id, busy_elsewhere(self.ledger, ws_id, self.prefix))
            return None
        self.manager.activity.note(ws_id, Use.AGENT)
        self._handled.add(run.run_id)
        run.entry = RunEntry(run_id=run.run_id, ws_id=ws_id, installation_id=info.ref.installation_id, owner=info.ref.owner,
                             repo=info.ref.repo, number=info.ref.number, head_sha=info.head_sha,
                             requested_by=requested_by, started_at=run.started_at, comment_id=comment_id)
        self.ledger.save(run.entry)
        run.task = self._track(self._run(run), name=f"agent-{ws_id}")
        return run

    async def stop(self, info: PullInfo, requested_by: str, comment_id: int | None = None) -> bool:
        """Ask the running agent to stop (SIGINT); reply "no agent is running" if there is none."""
        pr = self._pr(info)
        ws_id = devpod.workspace_id(info.ref.owner, info.ref.repo, info.ref.number)
        run = self.runs.get(ws_id)
        if run is None or run.task is None or run.task.done():
            elsewhere = run is None and await stop_elsewhere(self.ledger, self.guard, ws_id, requested_by, comment_id)
            if not elsewhere:
                await self._reply_refusal(pr, requested_by, comment_id, {"kind": "not_running"})
            elif comment_id is not None:
                await self._react(pr, comment_id, "eyes")  # the replica running it answers with 🚀 at the end
            return elsewhere
        log.info("%s asked to stop the agent run on %s", requested_by, info.ref)
        run.stopped_by = run.stopped_by or requested_by
        if comment_id is not None:
            run.stop_comments.append(comment_id)
            await self._react(pr, comment_id, "eyes")
        run.cancel.set()
        return True

    async def end_for(self, ws_id: str, op: Op) -> None:
        """The environment manager's hook before ``op`` runs: a stop, rebuild or delete first ends
        the agent run (local ``devpod ssh`` killed, concluded cancelled saying why, slot released)."""
        run = self.runs.get(ws_id)
        if op.kind in DESTRUCTIVE and run is None:  # another replica's, if any
            await end_elsewhere(self.ledger, self.guard, ws_id, op, prefix=self.prefix, wait=self.abort_wait)
        if op.kind not in DESTRUCTIVE or run is None or run.task is None or run.task.done():
            return
        log.info("%s of %s asked for by %s: ending its agent run first", op.kind, ws_id, op.requested_by)
        command = f"{self.prefix} {op.kind}" if op.comment_id is not None else None
        run.ended_because = ended_because(op.kind, op.requested_by, command)
        run.abort.set()
        run.cancel.set()
        _, pending = await asyncio.wait({run.task}, timeout=self.abort_wait)
        if pending:
            log.warning("the agent run on %s has not ended within %.0f s; %s goes ahead", ws_id, self.abort_wait, op.kind)

    async def recover(self) -> None:
        """At start-up (and at each leader's round): end every run nobody runs any more, visibly."""
        recover(self.ledger, self.manager, self.checks, prefix=self.prefix, settings=self.settings, track=self._track,
                entries=await orphans(self.ledger, self.guard, self._handled))

    def _track(self, coro: Any, name: str | None = None) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def running(self, info: PullInfo) -> AgentRun | None:
        return self.runs.get(devpod.workspace_id(info.ref.owner, info.ref.repo, info.ref.number))

    async def idle(self) -> None:
        """Wait until no run is going and every check-run update is written (tests)."""
        while True:
            tasks = [t for t in self._tasks if not t.done()] + self.publisher.tasks()
            if not tasks:
                return
            await asyncio.gather(*tasks, return_exceptions=True)

    async def drain(self, grace: float) -> None:
        """On shutdown: interrupt every run (each concludes as cancelled), wait ``grace``, then cancel."""
        tasks = [t for t in self._tasks if not t.done()]
        for run in self.runs.values():
            run.shutting_down = True
            run.cancel.set()
        if tasks:
            log.info("stopping %d agent run(s)", len(tasks))
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.publisher.close()

    # ------------------------------------------------------------------ the run
    async def _run(self, run: AgentRun) -> None:
        pr = self._pr(run.info)
        with logs.context(repo=run.info.ref.full_name, pr=run.info.ref.number):
            try:
                await self._run_inner(run, pr)
            except asyncio.CancelledError:
                # Shutdown past its grace: say so rather than leave the check run in progress.
                with contextlib.suppress(Exception):
                    await self._conclude_early(run, pr, "cancelled", "devenv-bot was shut down during the run.")
                raise
            except Exception as exc:
                log.exception("agent run on %s failed", run.ws_id)
                with contextlib.suppress(Exception):
                    await self._conclude_early(run, pr, "failure", f"devenv-bot hit an internal error "
                                               f"({exc.__class__.__name__}); this is a bug, the log has the details.")
                run.outcome = "error"
            finally:
                self._release(run)
                if run.outcome is not None:  # counted once, however it ended
                    self.metrics.agent_runs.labels(run.outcome).inc()
                if run.ws_id not in self.runs:  # its end is journalled: other replicas may start one
                    await self.guard.release(run.ws_id)

    def _release(self, run: AgentRun) -> None:
        """Free the environment's slot: a new run may be asked for from here on."""
        self.manager.activity.note(run.ws_id, Use.AGENT)  # its end is use (while it runs the reaper waits)
        if self.runs.get(run.ws_id) is run:
            del self.runs[run.ws_id]

    async def _run_inner(self, run: AgentRun, pr: PullRequestAPI) -> None:
        if run.comment_id is not None:
            await self._react(pr, run.comment_id, "eyes")
        run.check_run_id = await self.checks.create(
            pr, run.ws_id, name=CHECK_NAME, head_sha=run.info.head_sha, status="in_progress", paced=False,
            output=check_output("Waiting for the environment", self._summary(run)))
        if run.entry is not None:
            run.entry.check_run_id = run.check_run_id
            self.ledger.save(run.entry)
        problem = await self._ensure_up(run)
        if problem is not None:
            outcome, message = problem
            await self._conclude_early(run, pr, outcome, message)
            return
        extra_env = await self._push_env(run)
        if run.cancel.is_set():  # stopped (or the environment is going) while the token was minted
            await self._conclude_early(run, pr, "cancelled", "The agent run was cancelled before the agent started.")
            return
        masker = devpod.Masker([v for v in (run.settings.api_key, *extra_env.values()) if v])
        run.status = "Agent running"
        self._publish(run)

        def on_progress(progress: Progress) -> None:
            run.progress = progress
            self._publish(run)

        async def may_signal() -> bool:
            return not run.abort.is_set() and await workspace_running(self.manager, run.ws_id)

        result = await run_agent(self.manager.devpod_settings, run.ws_id, run.prompt, settings=run.settings, masker=masker,
                                 on_progress=on_progress, cancel=run.cancel, extra_env=extra_env or None,
                                 run_id=run.run_id, may_signal=may_signal, abort=run.abort)
        run.progress = result.progress
        await self._conclude(run, pr, result, masker)

    async def _ensure_up(self, run: AgentRun) -> tuple[str, str] | None:
        return await ensure_up(self.manager, run.info, run.requested_by, run.cancel, poll_interval=self.poll_interval,
                               up_timeout=self.up_timeout)

    async def _push_env(self, run: AgentRun) -> dict[str, str]:
        env, run.note = await push_env(self.manager, run.info, may_push=run.may_push)
        return env

    # ------------------------------------------------------------------ concluding
    async def _conclude(self, run: AgentRun, pr: PullRequestAPI, result: AgentResult, masker: devpod.Masker) -> None:
        outcome = result.outcome
        message = self._message(run, result, masker)
        tail = ""
        if outcome not in ("success", "missing_agent") and result.tail:
            lines = [masker.mask(line) for line in result.tail[-TAIL_LINES:]]
            tail = fenced(truncate_bytes(masker.mask("\n".join(lines)), TAIL_BYTES))
        await self._finish(run, pr, outcome, message, tail)

    def _message(self, run: AgentRun, result: AgentResult, masker: devpod.Masker) -> str:
        outcome = result.outcome
        if outcome == "missing_agent":
            return result.final_message  # the bot's own how-to text (Markdown)
        if outcome == "success" or (result.progress.final is not None and outcome == "failure"):
            return ""  # the final message is in the progress view (fenced)
        if run.ended_because is not None and outcome == "cancelled":
            return run.ended_because
        text = escape(masker.mask(result.final_message))
        if run.shutting_down and outcome == "cancelled":
            text += " devenv-bot was restarting; ask again once it is back."
        return text

    async def _conclude_early(self, run: AgentRun, pr: PullRequestAPI, outcome: str, message: str) -> None:
        if run.ended_because is not None and outcome == "cancelled":
            message = run.ended_because
        await self._finish(run, pr, outcome, message, "")

    async def _finish(self, run: AgentRun, pr: PullRequestAPI, outcome: str, message: str, tail: str) -> None:
        conclusion = CONCLUSIONS[outcome]
        run.outcome, run.status = outcome, TITLES[outcome]
        # Released before anyone can see the run end: once the check run says "completed", a new
        # `agent run` must be accepted, not told that one is "already going".
        self._release(run)
        if run.check_run_id is not None:
            self._publish(run, conclusion=conclusion, message=message, tail=tail, urgent=True)
            await self.checks.flush(run.ws_id, run.check_run_id)
        else:
            self._forget(run)
        body = render("agent_result.md.j2", login=run.requested_by, headline=HEADLINES[outcome],
                      stopped_by=run.stopped_by if outcome == "cancelled" else None,
                      request=request_quote(run.prompt), message=message, note=run.note,
                      progress=self._progress(run, limit=PROGRESS_BYTES), tail=tail)
        try:
            await pr.reply(body)
        except Exception:
            log.exception("posting the agent's final comment on %s failed", run.ws_id)
        if run.comment_id is not None:
            await self._react(pr, run.comment_id, "rocket" if outcome == "success" else "confused")
        for comment_id in run.stop_comments:
            await self._react(pr, comment_id, "rocket")
        log.info("agent run on %s ended: %s", run.ws_id, outcome)

    # ------------------------------------------------------------------ rendering and writing
    def _progress(self, run: AgentRun, *, limit: int) -> str:
        return progress_text(run.progress, run.status, limit=limit)

    def _summary(self, run: AgentRun, *, message: str = "") -> str:
        return check_summary(requested_by=run.requested_by, stopped_by=run.stopped_by, prompt=run.prompt,
                             message=message, note=run.note, progress=self._progress(run, limit=20000))

    def _publish(self, run: AgentRun, *, conclusion: str | None = None, message: str = "", tail: str = "",
                 urgent: bool = False) -> None:
        if run.check_run_id is None:
            return
        check_id = run.check_run_id
        pr = self._pr(run.info)
        details = f"{self.github_url}/{run.info.ref.owner}/{run.info.ref.repo}/pull/{run.info.ref.number}"
        status = "completed" if conclusion else "in_progress"
        title = run.status

        def render() -> CheckUpdate:
            text = f"**Last output lines:**\n\n{tail}" if tail else None
            return CheckUpdate(status=status, conclusion=conclusion,
                               details_url=details if conclusion == "action_required" else None,
                               output=check_output(title, self._summary(run, message=message), text))

        if conclusion is None:
            self.checks.update(pr, run.ws_id, check_id, render, urgent=urgent)
            return
        final = render()  # kept in the ledger until GitHub has it: a restart writes it again
        if run.entry is not None:
            run.entry.state = "ended"
            run.entry.final = dataclasses.asdict(final)
            self.ledger.save(run.entry)
        self.checks.update(pr, run.ws_id, check_id, lambda: final, urgent=urgent, written=lambda: self._forget(run))

    def _forget(self, run: AgentRun) -> None:
        if run.entry is not None:
            self.ledger.forget(run.entry.run_id)

    def _pr(self, info: PullInfo) -> PullRequestAPI:
        return self.manager.pull_api(info.ref)

    async def _reply_refusal(self, pr: PullRequestAPI, login: str, comment_id: int | None,
                             values: dict[str, Any]) -> None:
        await pr.reply(render("agent_reply.md.j2", login=login, **values))
        if comment_id is not None:
            await self._react(pr, comment_id, "confused")

    @staticmethod
    async def _react(pr: PullRequestAPI, comment_id: int, content: str) -> None:
        try:
            await pr.react(comment_id, content)
        except Exception:
            log.exception("reacting %s to comment %s failed", content, comment_id)
