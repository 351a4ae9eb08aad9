"""What the emulated GitHub knows: installations, repositories, tokens, and so on.

Plain containers; the rules live in ``rest.py`` (API), ``auth.py`` and ``web.py``.
Objects the API serves (comments, check runs, reactions) are kept in their API
shape so tests can assert on exactly what the bot would read back.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Call:
    """One request the emulator received (API or web page), as the test sees it.

    ``path`` has no ``/api/v3`` prefix for API calls; ``auth_kind`` is what was
    presented: ``"jwt"``, ``"installation"``, ``"user"`` or ``"none"`` (a token the
    emulator never issued is classified by its shape: JWT-like, ``ghu_``/``gho_``,
    else installation).
    """

    method: str
    path: str
    query: dict[str, str]
    operation_id: str | None
    status: int
    json: Any
    headers: dict[str, str]
    token: str | None
    auth_kind: str
    response: Any = None
    injected: bool = False
    time: float = 0.0


@dataclass
class Token:
    """An installation access token (``ghs_…``) or a user token (``ghu_…``)."""

    token: str
    kind: str  # "installation" | "user"
    expires_at: float
    installation_id: int | None = None
    login: str | None = None
    repositories: list[str] | None = None  # names, None = every repo of the installation
    permissions: dict[str, str] = field(default_factory=dict)
    revoked: bool = False


@dataclass
class Repo:
    owner: str
    name: str
    id: int
    private: bool
    installation_id: int | None
    default_branch: str
    fork: bool = False
    branches: dict[str, str] = field(default_factory=dict)  # name -> sha
    files: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (ref, path) -> content
    permissions: dict[str, str] = field(default_factory=dict)  # login (lower) -> role
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass
class Fault:
    """A scripted answer for the next ``times`` requests that match (see ``inject``)."""

    method: str | None
    path: str | None
    status: int | None
    headers: dict[str, str]
    body: Any
    times: int
    delay: float
    hits: int = 0

    def matches(self, method: str, path: str, operation_id: str | None) -> bool:
        if self.hits >= self.times:
            return False
        if self.method and self.method.upper() != method.upper():
            return False
        return self.path is None or matches_path(self.path, path, operation_id)


def matches_path(pattern: str, path: str, operation_id: str | None) -> bool:
    """``pattern`` is an operationId (``issues/create-comment``) or a regex searched in the path."""
    return pattern == operation_id or re.search(pattern, path) is not None


class State:
    """Every collection of one emulator, with GitHub-like increasing ids."""

    def __init__(self) -> None:
        ids = itertools.count(1001)
        self.next_id = lambda: next(ids)
        self.installations: dict[int, dict[str, Any]] = {}
        self.repos: dict[tuple[str, str], Repo] = {}
        self.tokens: dict[str, Token] = {}
        self.comments: dict[int, dict[str, Any]] = {}  # id -> issue-comment object
        self.comment_index: dict[int, tuple[tuple[str, str], int]] = {}  # id -> (repo key, issue)
        self.reactions: dict[int, list[dict[str, Any]]] = {}  # comment id -> reactions
        self.check_runs: dict[int, dict[str, Any]] = {}  # id -> check-run object
        self.check_run_extras: dict[int, dict[str, Any]] = {}  # id -> {"repo", "actions"}
        self.manifest_codes: dict[str, dict[str, Any]] = {}  # code -> {manifest, created, used}
        self.oauth_codes: dict[str, dict[str, Any]] = {}
        self.rate: dict[str, dict[str, float]] = {}  # bucket -> {used, reset}

    def repo(self, owner: str, name: str) -> Repo | None:
        return self.repos.get((owner.lower(), name.lower()))
