"""One agent run as the run service (:mod:`bot.agent.runs`) keeps it while it goes."""

from __future__ import annotations

import asyncio
import dataclasses
import time

from bot.agent.ledger import RunEntry
from bot.agent.progress import Progress
from bot.agent.remote import new_run_id
from bot.environments.journal import PullInfo
from bot.settings.agent import AgentSettings

__all__ = ["AgentRun"]


@dataclasses.dataclass
class AgentRun:
    """One run, from the request to its final comment."""

    ws_id: str
    info: PullInfo
    prompt: str
    requested_by: str
    comment_id: int | None
    settings: AgentSettings
    may_push: bool
    cancel: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    check_run_id: int | None = None
    stopped_by: str | None = None
    shutting_down: bool = False
    stop_comments: list[int] = dataclasses.field(default_factory=list)  # `agent stop`s to answer with 🚀
    progress: Progress | None = None
    status: str = "Waiting for the environment"
    note: str | None = None
    started_at: float = dataclasses.field(default_factory=time.time)
    outcome: str | None = None  # one of OUTCOMES once it has ended
    run_id: str = dataclasses.field(default_factory=new_run_id)
    abort: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)  # drop it now, no remote signal
    ended_because: str | None = None  # why an environment operation ended it (Markdown)
    entry: RunEntry | None = None  # its ledger entry
