"""Who may call what: the credential a request presents, the repository it may see, the App
permissions its installation token holds.  Step 4 of the pipeline in ``server.py``.

* Routes of ``auth="jwt"`` take the App's JWT (``auth.py`` checks it as GitHub does).
* Installation tokens see the repositories of their installation (narrowed ones: only those
  named), public repositories read-only, and need the permissions ``permissions.NEEDS`` lists for
  the operation; a missing permission answers GitHub's 403 and is recorded in
  ``emu.permission_denials``, an operation missing from the table in ``emu.validation_errors``.
* User tokens act with the user's role on the repository.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .auth import BAD_CREDENTIALS, ROLE_TO_PERMISSION, looks_like_jwt, verify_app_jwt
from .openapi import operation
from .permissions import LEVELS, NEEDS, accepted_header, grants, with_metadata
from .rest import ApiError, Auth, Route, not_found
from .state import Repo, Token

if TYPE_CHECKING:
    from .server import GitHubEmulator

NOT_ACCESSIBLE = "Resource not accessible by integration"


def classify(emu: GitHubEmulator, token: str | None) -> str:
    """``jwt``/``installation``/``user``/``none``: what a credential is (by its shape if unknown)."""
    if token is None:
        return "none"
    known = emu.state.tokens.get(token)
    if known is not None:
        return known.kind
    if looks_like_jwt(token):
        return "jwt"
    return "user" if token.startswith(("ghu_", "gho_")) else "installation"


def authenticate(emu: GitHubEmulator, route: Route, op_id: str, token: str | None, method: str,
                 params: dict[str, str]) -> tuple[Auth, Repo | None]:
    kind = classify(emu, token)
    if route.auth == "none":
        return Auth(kind, token), None
    if route.auth == "jwt" or (route.auth == "any" and kind == "jwt"):
        if token is None:
            raise ApiError(401, "Requires authentication")
        problem = verify_app_jwt(token, emu.public_key, emu.app_id, emu.client_id, emu.now())
        if problem:
            raise ApiError(401, problem)
        return Auth("jwt", token), None
    auth = Auth("none", None)
    if token is not None:
        known = emu.state.tokens.get(token)
        if known is None or known.revoked or known.expires_at <= emu.now():
            raise ApiError(401, BAD_CREDENTIALS)
        auth = Auth(known.kind, token, known, known.login)
    if route.auth == "any":
        if auth.kind == "installation":
            check_permissions(emu, route, op_id, auth.state, None, params)
        return auth, None
    if route.auth == "user":
        if auth.kind == "none":
            raise ApiError(401, "Requires authentication")
        if auth.kind != "user":
            raise ApiError(403, NOT_ACCESSIBLE)
        return auth, None
    return auth, authorize_repo(emu, route, op_id, auth, method, params)


def authorize_repo(emu: GitHubEmulator, route: Route, op_id: str, auth: Auth, method: str,
                   params: dict[str, str]) -> Repo:
    """404 for what the caller may not see (private), 403 for what it may not change."""
    repo = emu.state.repo(params["owner"], params["repo"])
    if repo is None:
        raise not_found()
    reading = method == "GET"
    if auth.kind == "none":
        if repo.private:
            raise not_found()
        if not reading:
            raise ApiError(401, "Requires authentication")
        return repo
    if auth.kind == "user":
        return _authorize_user(emu, route, auth, reading, repo, params)
    token = auth.state
    in_scope = (repo.installation_id == token.installation_id
                and (token.repositories is None or repo.name in token.repositories))
    if not in_scope:
        if repo.private:
            raise not_found()
        if not reading:
            raise ApiError(403, NOT_ACCESSIBLE)
        return repo
    check_permissions(emu, route, op_id, token, repo, params)
    return repo


def _authorize_user(emu: GitHubEmulator, route: Route, auth: Auth, reading: bool, repo: Repo,
                    params: dict[str, str]) -> Repo:
    role = repo.permissions.get(auth.login.lower()) or ("none" if repo.private else "read")
    if ROLE_TO_PERMISSION[role] == "none":
        raise not_found()
    if not reading and "check-runs" in route.template:
        raise ApiError(403, "You must authenticate via a GitHub App.")
    if not reading and route.template.endswith("{comment_id}") and LEVELS[ROLE_TO_PERMISSION[role]] < 2:
        comment = emu.state.comments.get(int(params["comment_id"]))
        if comment and comment["user"]["login"].lower() != auth.login.lower():
            raise ApiError(403, "Must have admin rights to Repository.")
    return repo


def check_permissions(emu: GitHubEmulator, route: Route, op_id: str, token: Token, repo: Repo | None,
                      params: dict[str, str]) -> None:
    """GitHub's 403 unless ``token`` holds one of the permission sets ``op_id`` needs (recorded)."""
    where = f"{route.method} {route.template} ({op_id})"
    need = NEEDS.get(op_id)
    if need is None or need.credential != "installation":
        emu.validation_errors.append(
            f"request {where} with an installation token: tests/github_emulator/permissions.py has no "
            f"installation permissions for {op_id}; look the operation up in GitHub's \"Permissions "
            f"required for GitHub Apps\" and add it to NEEDS")
        raise ApiError(403, NOT_ACCESSIBLE)
    thread = _thread(repo, params, emu)
    any_of = need.sets_for(thread)
    granted = with_metadata(token.permissions)
    if grants(granted, any_of):
        return
    emu.permission_denials.append(
        f"{where}{f' on a {thread} thread' if thread else ''}: the installation token holds "
        f"{dict(sorted(granted.items()))}, GitHub asks for one of: {accepted_header(any_of)} ({need.doc})")
    docs = operation(route.template, route.method).get("externalDocs", {}).get("url")
    raise ApiError(403, NOT_ACCESSIBLE, headers={"x-accepted-github-permissions": accepted_header(any_of)},
                   documentation_url=docs)


def _thread(repo: Repo | None, params: dict[str, str], emu: GitHubEmulator) -> str | None:
    """``pull`` or ``issue``: whose thread an issue-comment request is about (None: not one)."""
    if repo is None:
        return None
    number: int | None = None
    if "issue_number" in params:
        number = int(params["issue_number"])
    elif "comment_id" in params:
        where = emu.state.comment_index.get(int(params["comment_id"]))
        number = where[1] if where else None
    if number is None:
        return None
    return "pull" if number in repo.pulls else "issue" if number in repo.issues else None
