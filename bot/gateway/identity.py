"""Who is connecting, and may they have a shell here?  Decided at every connection, from GitHub.

:meth:`Doorman.decide` takes the SSH user name, the public key the client offers and its
address, and answers :class:`Allowed` or :class:`Refused` with a one-line reason for the client:

1. the name must be ``<login>+<workspace>`` (:mod:`bot.gateway.names`);
2. an address or login with too many recent failures is refused unheard (:mod:`bot.gateway.guard`);
3. Apps' accounts (``…[bot]``) are refused: a shell is for people;
4. the workspace must be one the bot tracks (and not deleted);
5. the key must be one of the login's public keys on GitHub (``GET /users/{username}/keys``):
   the claim "I am <login>" is proved by holding a key GitHub publishes for that account; or a
   key the login's owner linked through the browser sign-in (:mod:`bot.gateway.links`).  With
   linking on, an unknown key of a login that has the permission is :class:`Unlinked`: the
   connection is let in pending, and waits for the link (:meth:`Gateway.link
   <bot.gateway.service.Gateway.link>`); nothing is reached before it is confirmed;
6. the login's permission on the PR's repository (``GET …/collaborators/{username}/permission``
   through :class:`bot.github.permissions.Permissions`, never ``author_association``) must reach
   ``DEVENV_SSH_PERMISSION`` (``write`` by default), or the stronger ``ssh.permission`` of the
   repository's ``.github/devenv.yml`` at the PR's base (read through the bot's settings loader; a
   repository may ask for more than the operator, never less).  The gateway's lookup keeps no
   answer (``ttl=0``): a revoked permission takes effect at the next connection.

A refusal in steps 1 and 3-6 is a failure for the guard, counted once per connection by the
caller (:meth:`Doorman.failed`).  GitHub not answering refuses without counting (nobody gets in
then).  Requests act as the repository's installation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import asyncssh
from cachetools import TTLCache

from bot.environments.journal import EnvRecord
from bot.environments.states import State
from bot.gateway.guard import FailureGuard
from bot.gateway.links import KeyLinks
from bot.gateway.names import is_bot, parse_user
from bot.github.client import is_not_found
from bot.github.permissions import LEVELS, Permissions, allows
from bot.github.pulls import PullRequestAPI
from bot.repo_settings.loader import RepoSettingsLoader

log = logging.getLogger(__name__)

__all__ = ["Allowed", "Doorman", "Refused", "Unlinked"]


class Allowed(NamedTuple):
    login: str
    record: EnvRecord
    permission: str


class Unlinked(NamedTuple):
    """A key not (yet) tied to ``login``, whose owner may link it through the sign-in."""

    login: str
    record: EnvRecord
    key: asyncssh.SSHKey
    fingerprint: str


class Refused(NamedTuple):
    why: str  # one line, shown to the client
    counted: bool = True  # a failure for the rate limits (False: GitHub did not answer)


def fingerprint(key: asyncssh.SSHKey) -> str:
    """``SHA256:…``, as ``ssh-keygen -lf`` shows it (what a link is kept under)."""
    return str(key.get_fingerprint("sha256"))


def same_key(a: asyncssh.SSHKey, line: str) -> bool:
    try:
        return asyncssh.import_public_key(line).public_data == a.public_data
    except (asyncssh.KeyImportError, ValueError):
        return False


class Doorman:
    """Decides each connection; ``github.installation(id)`` gives the installation's API."""

    def __init__(self, *, github: Any, records: Callable[[], Mapping[str, EnvRecord]], need: str,
                 github_url: str, guard: FailureGuard | None = None, key_ttl: float = 30.0,
                 repo_settings: RepoSettingsLoader | None = None, links: KeyLinks | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.github = github
        self.repo_settings = repo_settings
        self.links = links  # None: no linking (a key must be on GitHub)
        self.records = records
        self.need = need
        self.github_url = github_url.rstrip("/")
        self.guard = guard or FailureGuard(clock=clock)
        self.permissions = Permissions(ttl=0, clock=clock)  # asked again at every connection
        self._keys: TTLCache[str, tuple[str, ...]] = TTLCache(maxsize=4096, ttl=key_ttl, timer=clock)

    async def decide(self, user: str, key: asyncssh.SSHKey, source: str) -> Allowed | Unlinked | Refused:
        target = parse_user(user)
        login = target.login if not isinstance(target, str) else None
        blocked = self.guard.blocked(source, login)
        if blocked:
            return Refused(blocked, counted=False)
        try:
            verdict = await self._decide(target, key)
        except Exception as exc:  # GitHub is down or slow: nobody gets in, and nobody is blamed
            log.warning("ssh: could not check %s: %s", user, exc)
            verdict = Refused("GitHub did not answer the gateway; try again in a minute", counted=False)
        return verdict

    def failed(self, user: str, source: str) -> None:
        """Count one failed connection against its address and the login it claimed (the caller counts
        once per connection: a client offering several keys, only one on GitHub, is no attacker)."""
        target = parse_user(user)
        self.guard.failed(source, target.login if not isinstance(target, str) else None)

    def forgive(self, user: str, source: str) -> None:
        """The connection that failed as ``user`` got in after all: take its failure back."""
        target = parse_user(user)
        self.guard.forgive(source, target.login if not isinstance(target, str) else None)

    async def _decide(self, target: Any, key: asyncssh.SSHKey) -> Allowed | Unlinked | Refused:
        if isinstance(target, str):
            return Refused(target)
        login, ws_id = target
        if is_bot(login):
            return Refused(f"{login} is an App's account; the gateway lets people in, not bots")
        record = self.records().get(ws_id)
        if record is None or record.state == State.DELETED:
            return Refused(f"there is no environment {ws_id} (the PR comment shows the name to use)")
        gh = self.github.installation(record.installation_id)
        keys = await self._keys_of(gh, login)
        if keys is None:
            return Refused(f"there is no GitHub user {login}")
        known = any(same_key(key, line) for line in keys)
        linked = not known and self.links is not None and (self.links.linked(fingerprint(key)) or "").lower() == login.lower()
        not_theirs = Refused(f"this key is not one of {login}'s SSH keys on GitHub; add it at "
                             f"{self.github_url}/settings/keys (ssh-keygen -lf shows its fingerprint)")
        if not (known or linked or self.links is not None):
            return not_theirs
        need = await self.need_for(gh, record)
        have = await self.permissions.of(gh, record.owner, record.repo, login)
        if not allows(have, need):  # to a key not proved theirs, nothing is said about the login
            return Refused(f"{login} has {have} access to {record.owner}/{record.repo}; a shell needs {need}") \
                if known or linked else not_theirs
        return Allowed(login, record, have) if known or linked else Unlinked(login, record, key, fingerprint(key))

    async def need_for(self, gh: Any, record: EnvRecord) -> str:
        """The permission a shell needs here: the operator's, or the repository's ``ssh.permission``
        at the PR's base if that is stronger (a broken settings file leaves the operator's)."""
        if self.repo_settings is None:
            return self.need
        pull = await PullRequestAPI(gh, record.ref).get()
        settings, _ = await self.repo_settings.load(gh, record.owner, record.repo, pull["base"]["sha"])
        asked = settings.ssh_permission
        if asked is not None and LEVELS.get(asked, 0) > LEVELS.get(self.need, 0):
            return asked
        return self.need

    async def _keys_of(self, gh: Any, login: str) -> tuple[str, ...] | None:
        """The login's public keys as published by GitHub (None: no such user); kept ``key_ttl`` seconds."""
        cached = self._keys.get(login.lower())
        if cached is not None:
            return cached
        try:
            keys = tuple([str(item.get("key") or "") async for item in
                          gh.getiter("/users/{username}/keys", url_vars={"username": login})])
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise
        self._keys[login.lower()] = keys
        return keys
