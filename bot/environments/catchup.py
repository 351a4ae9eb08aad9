"""Catching up with pull requests that changed while no webhook told the bot (it was down, or a
delivery was lost): closed, turned into a draft, or pushed to.

Design. At start-up and then every ``DEVENV_CATCHUP_INTERVAL`` seconds, :class:`CatchUp` makes, per
repository that has records in the journal, ONE list call of its open pull requests (more only to
page past 100), sent with the ETag of the previous answer: GitHub answers 304 when nothing changed,
which costs no rate limit (:class:`bot.github.pulls.OpenPullLister`). Never one call per PR.

Each record is then compared with its PR and what differs takes the webhook's path through the
environment facade, as the handlers in ``handlers/environments.py`` do:

* not open any more (closed or merged): ``delete``, as ``pull_request.closed``;
* a draft now, and the record saw it ready before: ``stop``, as ``converted_to_draft``;
* a new head: asked of the request policy (:mod:`bot.policy.ask`, source ``CATCHUP``), then
  ``sync`` or ``recreate`` (``on_push``) through the debounce, as ``synchronize``. No one is known
  to have pushed, so no one vouches for the commit: an untrusted PR's new head is built only if it
  is the approved one, otherwise the comment says syncing is paused until someone approves.

A record a webhook or a command touched after the list call was sent is left alone (the webhook
knows better); the next round looks again. The bot acts only on a listing that succeeded: a
repository that cannot be read is never taken for one without open PRs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from bot.environments.journal import EnvRecord, PullInfo
from bot.environments.manager import EnvironmentManager
from bot.environments.states import accepts_push, is_live, may_exist
from bot.github.pulls import OpenPull, OpenPullLister, PullRef
from bot.policy.ask import Accepted, Policy, Source

log = logging.getLogger(__name__)

__all__ = ["CATCHUP_ACTOR", "CatchUp"]

#: Who the journal, check run and comment say asked for what the catch-up requests.
CATCHUP_ACTOR = "devenv-bot (catch-up)"

Repository = tuple[int, str, str]  # installation id, owner, name


class CatchUp:
    """Reconciles the journal with GitHub's open pull requests, at start and every ``interval`` seconds."""

    def __init__(self, manager: EnvironmentManager, lister: OpenPullLister, policy: Callable[[int], Policy], *,
                 agent_busy: Callable[[EnvRecord], bool] = lambda _: False, interval: float = 600.0,
                 leader: Callable[[], bool] = lambda: True) -> None:
        self.manager = manager
        self.leader = leader  # replicas: only the leader catches up (bot.replicas.leader)
        self.lister = lister
        self.policy = policy  # the request policy acting as an installation
        self.agent_busy = agent_busy
        self.interval = interval
        self.rounds = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """The first round now (in the background: start-up does not wait for GitHub), then every ``interval``."""
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="catch-up")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            await self.run_once()
            if self.interval <= 0:
                return
            await asyncio.sleep(self.interval)

    async def run_once(self) -> None:
        """One round over every repository that has records (none on a replica that is not the leader)."""
        if not self.leader():
            return
        repositories: dict[Repository, list[str]] = {}
        for record in self.manager.records.values():
            repositories.setdefault((record.installation_id, record.owner, record.repo), []).append(record.ws_id)
        for repository, ws_ids in repositories.items():
            try:
                await self._repository(repository, ws_ids)
            except Exception as exc:
                log.warning("catch-up of %s/%s failed (%s); trying again in %.0f s", repository[1], repository[2],
                            exc, self.interval)
        self.rounds += 1

    async def _repository(self, repository: Repository, ws_ids: list[str]) -> None:
        installation_id, owner, name = repository
        before = {ws_id: self._mark(ws_id) for ws_id in ws_ids}
        asked_at = self.manager.clock()
        listing = await self.lister.list_open(installation_id, owner, name)
        log.debug("catch-up of %s/%s: %d open PR(s), %s, %d call(s)", owner, name, len(listing.pulls),
                  "changed" if listing.changed else "not modified", listing.calls)
        for ws_id, mark in before.items():
            record = self.manager.records.get(ws_id)
            if record is None or self._mark(ws_id) != mark or self._touched_since(record, asked_at):
                continue  # a webhook or command got there while the list call was out
            try:
                await self._reconcile(record, listing.pulls.get(record.number))
            except Exception:
                log.exception("catch-up of %s failed; trying again next round", ws_id)

    def _mark(self, ws_id: str) -> tuple[int, str] | None:
        record = self.manager.records.get(ws_id)
        return None if record is None else (id(record), record.head_sha)

    @staticmethod
    def _touched_since(record: EnvRecord, asked_at: float) -> bool:
        return record.last_action is not None and record.last_action.at >= asked_at

    async def _reconcile(self, record: EnvRecord, pull: OpenPull | None) -> None:
        """What a webhook would have done had it arrived."""
        if pull is None:
            if may_exist(record.state) or self.manager.busy(record.ws_id):
                log.info("catch-up: %s is no longer open: deleting %s", record.ref, record.ws_id)
                self.manager.request(PullInfo.of(record), "delete", requested_by=CATCHUP_ACTOR)
            return
        info = self._info(record, pull)
        if pull.draft and record.draft is False and is_live(record.state):
            log.info("catch-up: %s became a draft: stopping %s", record.ref, record.ws_id)
            self.manager.request(info, "stop", requested_by=CATCHUP_ACTOR)
        elif pull.head_sha != record.head_sha:
            log.info("catch-up: %s moved to %s", record.ref, pull.head_sha[:12])
            await self._follow(info)
        elif record.draft != pull.draft:
            self.manager.observe(info)

    async def _follow(self, info: PullInfo) -> None:
        """The ``synchronize`` handler's path for a push the bot did not hear of."""
        decision = await self.policy(info.ref.installation_id).ask(info, "sync", CATCHUP_ACTOR, Source.CATCHUP)
        record = self.manager.record_for(info)
        if not isinstance(decision, Accepted):  # untrusted, and the new head is not the approved commit
            self.manager.wait_for_approval(info)  # the new head's check run asks for an approval
            return
        on_push = decision.settings.on_push
        if accepts_push(record.state) and on_push != "ignore" and not self.agent_busy(record):
            self.manager.request(info, "recreate" if on_push == "recreate" else "sync", requested_by=CATCHUP_ACTOR)
        elif record.comment_id is not None:
            self.manager.refresh(info)  # the comment shows the environment is behind the new head
            self.manager.show_stopped_head(info)  # a stopped one's new head gets its check run (Wake)

    @staticmethod
    def _info(record: EnvRecord, pull: OpenPull) -> PullInfo:
        return PullInfo(ref=PullRef(record.installation_id, record.owner, record.repo, record.number),
                        head_sha=pull.head_sha, head_ref=pull.head_ref, title=pull.title, author=pull.author,
                        fork=pull.head_full_name != record.full_name, private=record.private,
                        base_sha=pull.base_sha, draft=pull.draft)


def listing_transport(send: Callable[..., Any]) -> Callable[[int, str, dict[str, str]], Any]:
    """The lister's transport over :meth:`bot.github.client.GitHubClient.send` (credentials, retries, metrics)."""
    def get(installation_id: int, url: str, headers: dict[str, str]) -> Any:
        return send(("installation", installation_id), "GET", url, headers, b"")
    return get
