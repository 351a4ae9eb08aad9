"""Agent runs across replicas (``DEVENV_STATE_BACKEND=kubernetes``): what the run service asks the others.

The rule and the liveness live in the run's Lease (:mod:`bot.replicas.agents`), the requests in its
ledger entry (:mod:`bot.replicas.records_runs`):

* :func:`busy_elsewhere`: the refusal of a second run when another replica holds the workspace's run,
  naming who asked for the run going (from its ledger entry).
* :func:`orphans`: which journalled runs a start-up or the leader's round concludes (or writes the
  owed conclusion of): not this process's own, not those already handled, not those whose Lease
  another replica holds fresh.
* :func:`end_elsewhere`: a stop, rebuild or delete on this replica while another runs the agent there:
  the run's entry is marked with why, and this replica waits (at most ``wait`` s) until the other has
  concluded the run and let its Lease go; only then does DevPod act (as for a run of its own).
* :func:`stop_elsewhere`: ``/devenv agent stop`` on this replica while another runs the agent: the
  run's entry is marked; the other replica interrupts it as if asked there (and answers the comment).
* :func:`watch`: called after each renewal of a run's Lease; an ``end`` mark found ends the run as
  :meth:`~bot.agent.runs.AgentRuns.end_for` does locally (concluded cancelled, saying why), a ``stop``
  mark as :meth:`~bot.agent.runs.AgentRuns.stop` does.

With one process (the file backend) the guard is :class:`~bot.replicas.agents.LocalAgentGuard` and
every function here is a no-op or answers "none".
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from bot.agent.ledger import Ledger, RunEntry
from bot.agent.model import AgentRun
from bot.agent.view import ended_because
from bot.environments.journal import Op
from bot.replicas.agents import AgentGuard

log = logging.getLogger(__name__)

__all__ = ["busy_elsewhere", "end_elsewhere", "orphans", "stop_elsewhere", "watch"]

#: How often a replica waiting for another's run to end looks at its Lease.
POLL = 0.25


def busy_elsewhere(ledger: Ledger, ws_id: str, prefix: str) -> dict[str, Any]:
    """The "already going" refusal for a run another replica holds."""
    try:
        going = ledger.running_on(ws_id)
    except Exception:
        log.exception("reading the agent runs of %s failed", ws_id)
        going = []
    return {"kind": "busy", "running_by": going[0].requested_by if going else "someone else",
            "stop_command": f"{prefix} agent stop"}


async def orphans(ledger: Ledger, guard: AgentGuard, done: set[str]) -> list[RunEntry]:
    """The journalled runs nobody runs any more (``done``: the run ids this process runs or has already
    recovered; those found are added to it)."""
    found = []
    for entry in ledger.load_all():
        if entry.run_id in done:
            continue
        if guard.shared and await guard.held_elsewhere(entry.ws_id):
            continue  # its replica is alive and renews the run's Lease
        done.add(entry.run_id)
        found.append(entry)
    return found


async def end_elsewhere(ledger: Ledger, guard: AgentGuard, ws_id: str, op: Op, *, prefix: str,
                        wait: float) -> None:
    """Ask the replica running an agent on ``ws_id`` to end it before ``op``, and wait for it."""
    if not guard.shared or not await guard.held_elsewhere(ws_id):
        return
    why = {"kind": op.kind, "requested_by": op.requested_by,
           "command": f"{prefix} {op.kind}" if op.comment_id is not None else None}
    try:
        asked = [e.run_id for e in ledger.running_on(ws_id) if ledger.request_end(e, why)]
    except Exception:
        log.exception("asking another replica to end the agent run on %s failed; %s goes ahead", ws_id, op.kind)
        return
    if not asked:
        return
    log.info("%s of %s asked for by %s: asked the replica running agent run %s to end it first", op.kind, ws_id,
             op.requested_by, ", ".join(asked))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while loop.time() < deadline:
        await asyncio.sleep(POLL)
        if not await guard.held_elsewhere(ws_id):
            return
    log.warning("the agent run on %s (another replica's) has not ended within %.0f s; %s goes ahead", ws_id,
                wait, op.kind)


async def stop_elsewhere(ledger: Ledger, guard: AgentGuard, ws_id: str, requested_by: str,
                         comment_id: int | None) -> bool:
    """``agent stop`` for a run another replica runs: True when it was asked to stop it."""
    if not guard.shared or not await guard.held_elsewhere(ws_id):
        return False
    why = {"requested_by": requested_by, "comment_id": comment_id}
    try:
        asked = [e.run_id for e in ledger.running_on(ws_id) if ledger.request_end(e, why, "stop")]
    except Exception:
        log.exception("asking another replica to stop the agent run on %s failed", ws_id)
        return False
    if asked:
        log.info("%s asked to stop agent run %s, which another replica runs: asked it to", requested_by, asked[0])
    return bool(asked)


def watch(ledger: Ledger, run: AgentRun) -> None:
    """After a renewal of ``run``'s Lease: end it if another replica asked (see :func:`end_elsewhere`)."""
    if run.entry is None or run.abort.is_set() or run.task is None or run.task.done():
        return
    marks = ledger.end_request(run.entry)
    stop = marks.get("stop")
    if stop is not None and not run.cancel.is_set():  # as `agent stop` asked here: interrupted, answered with 🚀
        run.stopped_by = run.stopped_by or str(stop.get("requested_by") or "someone")
        if isinstance(stop.get("comment_id"), int):
            run.stop_comments.append(stop["comment_id"])
        run.cancel.set()
    why = marks.get("end")
    if why is None:
        return
    kind, requested_by = str(why.get("kind") or "stop"), str(why.get("requested_by") or "someone")
    log.info("%s of %s asked for by %s on another replica: ending its agent run", kind, run.ws_id, requested_by)
    command = why.get("command")
    run.ended_because = ended_because(kind, requested_by, command if isinstance(command, str) else None)
    run.abort.set()
    run.cancel.set()
