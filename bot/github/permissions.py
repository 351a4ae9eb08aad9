"""Who may do what on GitHub: permission levels, and a user's permission on a repository, asked and cached.

The one permissions module: the levels and :func:`allows` (used by the request policy, the
repository settings' validation, the preview access gate and agent runs), each verb's default
level, and the lookup.  It sits with the GitHub adapters, below the repository settings and the
policy that both need it.

The permission comes from ``GET /repos/{owner}/{repo}/collaborators/{username}/permission``,
never from a comment's ``author_association`` (which says nothing about organisation team
grants and is ``NONE`` for many who may push).  Its ``permission`` field folds ``maintain``
into ``write`` and ``triage`` into ``read``, so :data:`LEVELS` ranks them alike.
https://docs.github.com/en/rest/collaborators/collaborators#get-repository-permissions-for-a-user

Design.  One :class:`Permissions` per consumer (the webhook handlers share one, the preview
access gate keeps another with its own time-to-live and clock), one implementation: answers are
cached per (installation, repository, login) for ``ttl`` seconds, and concurrent lookups of
one key share one request.  The request runs as its own task, so a caller that goes away
(a browser closing a page) does not cancel it for the others.  Every lookup acts as the
app's *installation* (the token of the ``gh`` it is given), never as the user.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from types import MappingProxyType
from typing import Any, Final

from cachetools import TTLCache

from bot.commands.grammar import VERBS
from bot.github.client import is_not_found

__all__ = ["LEVELS", "REQUIRED_PERMISSION_DEFAULTS", "Permissions", "allows"]

#: GitHub permission levels, weakest first.  ``triage`` counts as ``read`` and ``maintain``
#: as ``write``, as in the ``permission`` field of the collaborator-permission endpoint.
LEVELS: Final = MappingProxyType({"none": 0, "read": 1, "triage": 1, "write": 2, "maintain": 2, "admin": 3})

#: The least GitHub repository permission needed for each verb unless ``.github/devenv.yml``
#: says otherwise.
REQUIRED_PERMISSION_DEFAULTS: Final = MappingProxyType(
    {v: ("read" if v in ("status", "help", "logs") else "maintain" if v == "prebuild" else "write") for v in VERBS}
)

Key = tuple[int | None, str, str, str]


def allows(have: str, need: str) -> bool:
    """Whether a user with GitHub permission ``have`` may do something that needs ``need``.

    Unknown levels (on either side) are refused.
    """
    have_rank = LEVELS.get(str(have).strip().lower())
    need_rank = LEVELS.get(str(need).strip().lower())
    if have_rank is None or need_rank is None:
        return False
    return have_rank >= need_rank


class Permissions:
    """Looks up repository permissions; an answer is reused for ``ttl`` seconds."""

    def __init__(self, *, ttl: float = 60.0, maxsize: int = 4096, clock: Callable[[], float] = time.monotonic) -> None:
        self._cache: TTLCache[Key, str] = TTLCache(maxsize=maxsize, ttl=ttl, timer=clock)
        self._inflight: dict[Key, asyncio.Task[str]] = {}
        self.lookups = 0  # requests sent to GitHub

    async def of(self, gh: Any, owner: str, repo: str, login: str) -> str:
        """``admin``, ``write``, ``read`` or ``none`` for ``login`` on ``owner/repo``.

        ``gh`` acts as the installation the repository belongs to; its ``installation_id`` is
        part of the cache key.  GitHub's errors other than 404 propagate (and are not cached).
        """
        key = (getattr(gh, "installation_id", None), owner.lower(), repo.lower(), login.lower())
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._lookup(key, gh, owner, repo, login),
                                                          name=f"permission-{owner}/{repo}")
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # never "never retrieved"
            self._inflight[key] = task
        return await asyncio.shield(task)

    async def _lookup(self, key: Key, gh: Any, owner: str, repo: str, login: str) -> str:
        try:
            value = await self._ask_github(gh, owner, repo, login)
            self._cache[key] = value
            return value
        finally:
            self._inflight.pop(key, None)

    async def _ask_github(self, gh: Any, owner: str, repo: str, login: str) -> str:
        self.lookups += 1
        try:
            answer = await gh.getitem("/repos/{owner}/{repo}/collaborators/{username}/permission",
                                      url_vars={"owner": owner, "repo": repo, "username": login})
        except Exception as exc:
            if is_not_found(exc):  # renamed or deleted user, or the repository left the installation
                return "none"
            raise
        return str(answer.get("permission") or "none")
