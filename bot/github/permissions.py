"""Who may run what: a user's permission on a repository, asked of GitHub and cached briefly.

The permission comes from ``GET /repos/{owner}/{repo}/collaborators/{username}/permission``,
never from a comment's ``author_association`` (which says nothing about
organisation team grants and is ``NONE`` for many who may push).  Its
``permission`` field folds ``maintain`` into ``write`` and ``triage`` into
``read``, the levels :func:`bot.commands.permission_allows` compares.
https://docs.github.com/en/rest/collaborators/collaborators#get-repository-permissions-for-a-user
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from cachetools import TTLCache

from bot.github.client import is_not_found


class Permissions:
    """Looks up repository permissions; an answer is reused for ``ttl`` seconds."""

    def __init__(self, *, ttl: float = 60.0, maxsize: int = 4096, clock: Callable[[], float] = time.monotonic) -> None:
        self._cache: TTLCache[tuple[str, str, str], str] = TTLCache(maxsize=maxsize, ttl=ttl, timer=clock)

    async def of(self, gh: Any, owner: str, repo: str, login: str) -> str:
        """``admin``, ``write``, ``read`` or ``none`` for ``login`` on ``owner/repo``."""
        key = (owner.lower(), repo.lower(), login.lower())
        permission = self._cache.get(key)
        if permission is None:
            try:
                answer = await gh.getitem(f"/repos/{owner}/{repo}/collaborators/{login}/permission")
                permission = str(answer.get("permission") or "none")
            except Exception as exc:
                if not is_not_found(exc):  # 404: no such user (deleted, renamed)
                    raise
                permission = "none"
            self._cache[key] = permission
        return permission
