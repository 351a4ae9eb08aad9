"""The permissions GitHub asks of a GitHub App for each operation the emulator serves.

An installation token (``ghs_…``) carries the permissions of its installation, which are the
App's (``default_permissions`` of ``app.yml``, plus ``metadata: read`` that GitHub always adds),
or fewer when the token request named ``permissions``.  Every request made with one is checked
against :data:`NEEDS`, keyed by operationId: it passes when the token holds every permission of
*one* of the operation's permission sets, else GitHub answers 403 ``Resource not accessible by
integration`` (with an ``x-accepted-github-permissions`` header) and the emulator records it, so
the test fails (``GitHubEmulator.assert_valid``).  A request for an operation missing here fails
loudly too: a new call forces a look at GitHub's documentation.

The table is written from GitHub's "Permissions required for GitHub Apps" (:data:`DOCS`, generated
from ``github/docs`` ``src/github-apps/data/fpt-2022-11-28/server-to-server-permissions.json``, which
lists each endpoint under every permission that opens it) and the endpoint pages' "Fine-grained
access" boxes (``src/rest/data/fpt-2022-11-28/*.json``, ``progAccess.permissions``).

One rule the pages leave implicit: the issue-comment endpoints are listed under both "Issues" and
"Pull requests", but GitHub checks the permission of the thread the comment belongs to: a pull
request's comments need "Pull requests", a plain issue's need "Issues" (users report ``issues:
write`` alone being refused on a pull request, e.g. gip-inclusion/les-emplois#6059, and
``pull-requests: write`` sufficing there, ynab/ynab-sdk-ruby#95).  Those entries are marked
``by_thread``.  Reactions to an issue comment are listed under "Issues" only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .openapi import load_description

DOCS = "https://docs.github.com/en/rest/authentication/permissions-required-for-github-apps"
APP_YML = Path(__file__).resolve().parents[2] / "app.yml"

LEVELS = {"none": 0, "read": 1, "write": 2, "admin": 3}

Grant = tuple[str, str]  # (permission, level)
PermissionSet = tuple[Grant, ...]  # every one of them is needed


@dataclass(frozen=True)
class Need:
    """What GitHub asks of the caller of one operation.

    ``credential``: ``installation`` (checked against ``any_of``), ``jwt`` (the App itself, no
    permission), ``user`` (a user access token) or ``none`` (no authentication).  ``any_of`` are
    alternative permission sets; an empty tuple means no permission (``metadata: read`` is implied
    by every installation).  ``by_thread``: the set naming ``pull_requests`` applies to a pull
    request's thread, the one naming ``issues`` to a plain issue's.
    """

    any_of: tuple[PermissionSet, ...] = ()
    credential: str = "installation"
    by_thread: bool = False
    doc: str = ""

    def sets_for(self, thread: str | None = None) -> tuple[PermissionSet, ...]:
        """The alternative sets for a request on a ``"pull"``/``"issue"`` thread (None: unknown)."""
        if not self.by_thread or thread is None:
            return self.any_of
        wanted = "pull_requests" if thread == "pull" else "issues"
        return tuple(s for s in self.any_of if any(name == wanted for name, _ in s))


def one(name: str, level: str) -> tuple[PermissionSet, ...]:
    return (((name, level),),)


def either(*grants: Grant) -> tuple[PermissionSet, ...]:
    return tuple((g,) for g in grants)


APP = Need(credential="jwt", doc="authenticates as the App with its JWT; no permission")

NEEDS: dict[str, Need] = {
    # -- the App itself (JWT) and flows without an installation token
    "apps/get-authenticated": APP,
    "apps/list-installations": APP,
    "apps/create-installation-access-token": APP,
    "apps/get-repo-installation": APP,
    "apps/create-from-manifest": Need(credential="none", doc="the manifest code is the credential"),
    "users/get-authenticated": Need(credential="user", doc="a user access token reads its own user"),
    "rate-limit/get": Need(doc="any credential; not counted, no permission"),
    # -- Repository permissions for "Metadata" (granted to every installation)
    "repos/get": Need(one("metadata", "read"), doc=DOCS + "#repository-permissions-for-metadata"),
    "repos/get-collaborator-permission-level": Need(
        one("metadata", "read"), doc=DOCS + "#repository-permissions-for-metadata"),
    # -- "Contents"
    "repos/get-content": Need(one("contents", "read"), doc=DOCS + "#repository-permissions-for-contents"),
    # -- "Pull requests" (Get a pull request is also listed under "Contents": either opens it)
    "pulls/list": Need(one("pull_requests", "read"), doc=DOCS + "#repository-permissions-for-pull-requests"),
    "pulls/get": Need(either(("pull_requests", "read"), ("contents", "read")),
                      doc=DOCS + "#repository-permissions-for-pull-requests"),
    # -- issue comments: "Issues" or "Pull requests", by the thread (see the module docstring)
    "issues/list-comments": Need(either(("issues", "read"), ("pull_requests", "read")), by_thread=True,
                                 doc=DOCS + "#repository-permissions-for-issues"),
    "issues/get-comment": Need(either(("issues", "read"), ("pull_requests", "read")), by_thread=True,
                               doc=DOCS + "#repository-permissions-for-issues"),
    "issues/create-comment": Need(either(("issues", "write"), ("pull_requests", "write")), by_thread=True,
                                  doc=DOCS + "#repository-permissions-for-issues"),
    "issues/update-comment": Need(either(("issues", "write"), ("pull_requests", "write")), by_thread=True,
                                  doc=DOCS + "#repository-permissions-for-issues"),
    "issues/delete-comment": Need(either(("issues", "write"), ("pull_requests", "write")), by_thread=True,
                                  doc=DOCS + "#repository-permissions-for-issues"),
    # -- reactions to issue comments: "Issues" only (also on a pull request's comments)
    "reactions/list-for-issue-comment": Need(one("issues", "read"), doc=DOCS + "#repository-permissions-for-issues"),
    "reactions/create-for-issue-comment": Need(one("issues", "write"),
                                               doc=DOCS + "#repository-permissions-for-issues"),
    "reactions/delete-for-issue-comment": Need(one("issues", "write"),
                                               doc=DOCS + "#repository-permissions-for-issues"),
    # -- "Checks"
    "checks/create": Need(one("checks", "write"), doc=DOCS + "#repository-permissions-for-checks"),
    "checks/get": Need(one("checks", "read"), doc=DOCS + "#repository-permissions-for-checks"),
    "checks/update": Need(one("checks", "write"), doc=DOCS + "#repository-permissions-for-checks"),
    "checks/list-for-ref": Need(one("checks", "read"), doc=DOCS + "#repository-permissions-for-checks"),
}


def holds(granted: dict[str, str], permission_set: PermissionSet) -> bool:
    return all(LEVELS.get(granted.get(name, "none"), 0) >= LEVELS[level] for name, level in permission_set)


def grants(granted: dict[str, str], any_of: tuple[PermissionSet, ...]) -> bool:
    """Whether permissions ``granted`` satisfy one of the sets (no sets: nothing to satisfy)."""
    return not any_of or any(holds(granted, s) for s in any_of)


def accepted_header(any_of: tuple[PermissionSet, ...]) -> str:
    """GitHub's ``x-accepted-github-permissions``: sets separated by ``;``, grants by ``,``."""
    return "; ".join(",".join(f"{name}={level}" for name, level in s) for s in any_of)


def app_permissions(path: Path = APP_YML) -> dict[str, str]:
    """The App's permissions as GitHub grants them: ``app.yml``'s, plus ``metadata: read``."""
    manifest: dict[str, Any] = yaml.safe_load(path.read_text())
    return with_metadata(manifest.get("default_permissions") or {})


def with_metadata(permissions: dict[str, str]) -> dict[str, str]:
    """GitHub adds ``metadata: read`` to every App and token that has any repository access."""
    return {**permissions, "metadata": permissions.get("metadata", "read")}


_SUBSCRIBE = re.compile(r'To subscribe to this event, a GitHub App must have at least (\w+)-level access '
                        r'for the ((?:"[^"]+"(?: or )?)+) (?:repository |organization )?permissions?')
_RECEIVE = re.compile(r'To receive the (.+?) event types?, the app must have at least (\w+)-level access '
                      r'for the "([^"]+)" permission')


def _permission_key(title: str) -> str:
    return title.lower().replace(" ", "_")  # "Pull requests" -> pull_requests


def webhook_needs(event: str, action: str | None) -> list[tuple[str, tuple[PermissionSet, ...]]]:
    """What GitHub's description says an App needs to receive ``event`` (one ``action``; None: all).

    Read from the ``x-webhooks`` of ``api.github.com.json`` ("To subscribe to this event, a GitHub
    App must have at least read-level access for the "Issues" repository permission", and for some
    actions "To receive the `rerequested` … event types, … write-level access for the "Checks"
    permission"), as (sentence, alternative permission sets) pairs.  An event the description does
    not document raises: its permission must be looked up by hand.
    """
    webhooks = load_description()["x-webhooks"]
    dashed = event.replace("_", "-")
    keys = [k for k, v in webhooks.items() if v["post"]["x-github"].get("subcategory") == event
            and (action is None or k == f"{dashed}-{action.replace('_', '-')}")]
    if not keys:
        raise LookupError(f"GitHub's description has no webhook {event!r} (action {action!r})")
    needs: dict[str, tuple[PermissionSet, ...]] = {}
    for key in keys:
        text = " ".join(webhooks[key]["post"].get(part, "") for part in ("summary", "description"))
        subscribe = _SUBSCRIBE.search(text)
        if subscribe is None:
            raise LookupError(f"the description of webhook {key} states no permission")
        level, titles = subscribe.group(1), re.findall(r'"([^"]+)"', subscribe.group(2))
        needs[subscribe.group(0)] = either(*((_permission_key(t), level) for t in titles))
        for receive in _RECEIVE.finditer(text):
            actions = re.findall(r"`(\w+)`", receive.group(1))
            if action is None or action in actions:
                needs[receive.group(0)] = one(_permission_key(receive.group(3)), receive.group(2))
    return list(needs.items())
