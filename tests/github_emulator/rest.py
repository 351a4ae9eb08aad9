"""The emulated REST endpoints (paths as in GitHub's description, served under /api/v3).

Each handler gets the emulator and an :class:`ApiRequest` whose authentication,
repository and App permissions were already checked by the pipeline in ``server.py``
(``access.py``: the route's ``auth``, the operation's entry in ``permissions.NEEDS``);
it returns a :class:`Reply` or raises :class:`ApiError`.
Rules GitHub enforces beyond its schema are enforced here and documented on the
handler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from .auth import DOCS, ROLE_TO_PERMISSION, random_token
from .builders import iso
from .permissions import LEVELS, with_metadata
from .state import Repo, Token

if TYPE_CHECKING:
    from .server import GitHubEmulator


class ApiError(Exception):
    """An error answer: ``{"message", "documentation_url"[, "errors"]}``."""

    def __init__(self, status: int, message: str, *, errors: list | None = None,
                 headers: dict[str, str] | None = None, documentation_url: str | None = None):
        super().__init__(message)
        self.status, self.message, self.errors, self.headers = status, message, errors, headers or {}
        self.documentation_url = documentation_url or DOCS

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "documentation_url": self.documentation_url}
        if self.errors is not None:
            body["errors"] = self.errors
        return body


def not_found() -> ApiError:
    return ApiError(404, "Not Found")


def invalid(resource: str, field_name: str, message: str, code: str = "custom") -> ApiError:
    """GitHub's 422 for a rule the schema does not express (gidgethub reads ``errors``)."""
    return ApiError(422, "Validation Failed",
                    errors=[{"resource": resource, "code": code, "field": field_name, "message": message}])


@dataclass
class Auth:
    kind: str  # "jwt" | "installation" | "user" | "none"
    token: str | None
    state: Token | None = None
    login: str | None = None  # the acting account for installation/user tokens


@dataclass
class ApiRequest:
    method: str
    path: str
    template: str
    params: dict[str, str]
    query: Any  # MultiDictProxy
    json: Any
    auth: Auth
    repo: Repo | None = None


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[["GitHubEmulator", ApiRequest], Awaitable[Reply]]


@dataclass
class Route:
    method: str
    template: str
    handler: Handler
    auth: str  # "jwt" | "repo" | "user" | "any" | "none"


ROUTES: list[Route] = []


def route(method: str, template: str, *, auth: str = "repo"):
    """Register a handler; the App permissions it needs are in ``permissions.NEEDS``."""
    def register(handler: Handler) -> Handler:
        ROUTES.append(Route(method, template, handler, auth))
        return handler
    return register


def paginate(emu: GitHubEmulator, req: ApiRequest, items: list) -> tuple[list, dict[str, str]]:
    """``per_page`` (default 30, silently capped at 100) and ``page``, with a Link header."""
    per_page = min(int(req.query.get("per_page", 30)), 100) or 30
    page = max(int(req.query.get("page", 1)), 1)
    last = max((len(items) + per_page - 1) // per_page, 1)
    chunk = items[(page - 1) * per_page: page * per_page]

    def link(number: int, rel: str) -> str:
        query = {k: v for k, v in req.query.items() if k not in ("page", "per_page")}
        query.update(per_page=per_page, page=number)
        return f'<{emu.api_url}{req.path}?{urlencode(query)}>; rel="{rel}"'

    links = []
    if page > 1:
        links += [link(page - 1, "prev"), link(1, "first")]
    if page < last:
        links += [link(page + 1, "next"), link(last, "last")]
    return chunk, ({"Link": ", ".join(links)} if links else {})


# -- the App (JWT) ---------------------------------------------------------------------


@route("GET", "/app", auth="jwt")
async def get_app(emu, req):
    return Reply(200, emu.app_object())


@route("GET", "/app/installations", auth="jwt")
async def list_installations(emu, req):
    items = [emu.installation_object(i) for i in sorted(emu.state.installations)]
    chunk, headers = paginate(emu, req, items)
    return Reply(200, chunk, headers)


@route("POST", "/app/installations/{installation_id}/access_tokens", auth="jwt")
async def create_installation_token(emu, req):
    """Mint ``ghs_…`` valid ``emu.token_ttl`` seconds, optionally narrowed.

    The token holds the installation's permissions (the App's: app.yml), or exactly the
    ``permissions`` asked for; ``access.py`` checks each request made with it.  GitHub
    answers 422 when a requested repository is not in the installation or a requested
    permission exceeds what the installation was granted (an App mints only what it holds).
    """
    installation_id = int(req.params["installation_id"])
    installation = emu.state.installations.get(installation_id)
    if installation is None:
        raise not_found()
    body = req.json or {}
    installed = [r for r in emu.state.repos.values() if r.installation_id == installation_id]
    names: list[str] | None = None
    if "repositories" in body or "repository_ids" in body:
        by_name = {r.name.lower(): r for r in installed}
        by_id = {r.id: r for r in installed}
        chosen = []
        for name in body.get("repositories", []):
            if name.lower() not in by_name:
                raise ApiError(422, "There is at least one repository that does not exist or is not "
                                    "accessible to the parent installation.")
            chosen.append(by_name[name.lower()])
        for repo_id in body.get("repository_ids", []):
            if repo_id not in by_id:
                raise ApiError(422, "There is at least one repository that does not exist or is not "
                                    "accessible to the parent installation.")
            chosen.append(by_id[repo_id])
        names = sorted({r.name for r in chosen})
    granted = installation["permissions"]
    permissions = dict(granted)
    if "permissions" in body:
        for name, level in body["permissions"].items():
            if LEVELS.get(with_metadata(granted).get(name, "none"), 0) < LEVELS.get(level, 0):
                raise ApiError(422, "The permissions requested are not granted to this installation.")
        permissions = dict(body["permissions"])
    token = Token(token=random_token("ghs_"), kind="installation", expires_at=emu.now() + emu.token_ttl,
                  installation_id=installation_id, login=emu.bot_login, repositories=names,
                  permissions=permissions)
    emu.state.tokens[token.token] = token
    emu.tokens_minted += 1
    emu.token_requests.append(body)
    reply: dict[str, Any] = {
        "token": token.token, "expires_at": iso(token.expires_at), "permissions": permissions,
        "repository_selection": "selected" if names is not None else installation["repository_selection"],
    }
    if names is not None:
        reply["repositories"] = [emu.repository_object(r) for r in chosen if r.name in names]
    return Reply(201, reply)


@route("GET", "/repos/{owner}/{repo}/installation", auth="jwt")
async def get_repo_installation(emu, req):
    repo = emu.state.repo(req.params["owner"], req.params["repo"])
    if repo is None or repo.installation_id is None:
        raise not_found()
    return Reply(200, emu.installation_object(repo.installation_id))


@route("POST", "/app-manifests/{code}/conversions", auth="none")
async def convert_manifest(emu, req):
    """Exchange a manifest ``code`` (single use, one hour) for the App's credentials.

    The emulator *is* the App: the answer carries its id, key, secrets, so a bot
    configured from this answer authenticates against this emulator.
    """
    code = req.params["code"]
    entry = emu.state.manifest_codes.get(code)
    if entry is None or entry["used"] or emu.now() - entry["created"] > 3600:
        raise not_found()
    entry["used"] = True
    emu.adopt_manifest(entry["manifest"])
    emu.manifest_conversions.append(code)
    body = emu.app_object()
    body.update(client_id=emu.client_id, client_secret=emu.client_secret,
                webhook_secret=emu.webhook_secret, pem=emu.private_key_pem)
    return Reply(201, body)


# -- anyone ---------------------------------------------------------------------------------


@route("GET", "/rate_limit", auth="any")
async def rate_limit(emu, req):
    """Does not count against the limit (as on GitHub)."""
    bucket = emu.rate_bucket(req.auth)
    core = emu.rate_snapshot(bucket)
    other = {"limit": 30, "remaining": 30, "reset": core["reset"], "used": 0}
    return Reply(200, {"rate": core, "resources": {"core": core, "search": other, "graphql": dict(core)}})


@route("GET", "/user", auth="user")
async def get_user(emu, req):
    return Reply(200, emu.builders.private_user(req.auth.login))


# -- repositories --------------------------------------------------------------------------


@route("GET", "/repos/{owner}/{repo}")
async def get_repo(emu, req):
    return Reply(200, emu.repository_object(req.repo, full=True))


@route("GET", "/repos/{owner}/{repo}/pulls/{pull_number}")
async def get_pull(emu, req):
    pull = req.repo.pulls.get(int(req.params["pull_number"]))
    if pull is None:
        raise not_found()
    return Reply(200, emu.pull_object(req.repo, pull))


@route("GET", "/repos/{owner}/{repo}/collaborators/{username}/permission")
async def get_permission(emu, req):
    """``permission`` is admin|write|read|none; ``role_name`` keeps maintain/triage.

    Users never given a role: ``read`` on public repositories, ``none`` on private
    ones (200 either way); logins in ``emu.nonexistent_users`` answer 404.
    """
    login = req.params["username"]
    if login.lower() in {u.lower() for u in emu.nonexistent_users}:
        raise ApiError(404, f"{login} is not a user")
    role = req.repo.permissions.get(login.lower()) or ("none" if req.repo.private else "read")
    permission = ROLE_TO_PERMISSION[role]
    user = emu.builders.user(login)
    user["role_name"] = role
    user["permissions"] = {"admin": permission == "admin", "maintain": role in ("admin", "maintain"),
                           "push": permission in ("admin", "write"), "triage": role != "read" and permission != "none",
                           "pull": permission != "none"}
    return Reply(200, {"permission": permission, "role_name": role, "user": user})


@route("GET", "/repos/{owner}/{repo}/contents/{path}")
async def get_content(emu, req):
    """A file as base64 (``ref`` defaults to the default branch); 404 if absent."""
    ref = req.query.get("ref") or req.repo.default_branch
    path = req.params["path"].strip("/")
    content = req.repo.files.get((ref, path))
    if content is None:
        raise not_found()
    return Reply(200, emu.builders.content_file(repo=emu.repository_object(req.repo), path=path, ref=ref,
                                                content=content))


# -- issue comments ------------------------------------------------------------------------


def _issue(req: ApiRequest) -> int:
    number = int(req.params["issue_number"])
    if number not in req.repo.pulls and number not in req.repo.issues:
        raise not_found()
    return number


def _comment(emu, req: ApiRequest) -> dict[str, Any]:
    comment_id = int(req.params["comment_id"])
    where = emu.state.comment_index.get(comment_id)
    if where is None or where[0] != (req.repo.owner.lower(), req.repo.name.lower()):
        raise not_found()
    return emu.state.comments[comment_id]


MAX_COMMENT = 65536


def _check_comment_body(body: str) -> None:
    """GitHub: ``body is too long (maximum is 65536 characters)``."""
    if len(body) > MAX_COMMENT:
        raise invalid("IssueComment", "body", f"body is too long (maximum is {MAX_COMMENT} characters)")


@route("GET", "/repos/{owner}/{repo}/issues/{issue_number}/comments")
async def list_comments(emu, req):
    number = _issue(req)
    since = req.query.get("since")
    items = [c for c in emu.comments(req.repo.owner, req.repo.name, number)
             if since is None or c["updated_at"] >= since.replace(".000", "")]
    chunk, headers = paginate(emu, req, items)
    return Reply(200, chunk, headers)


@route("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments")
async def create_comment(emu, req):
    number = _issue(req)
    _check_comment_body(req.json["body"])
    comment = emu.new_comment(req.repo, number, req.json["body"], req.auth.login,
                              via_app=req.auth.kind == "installation")
    return Reply(201, comment, {"Location": comment["url"]})


@route("GET", "/repos/{owner}/{repo}/issues/comments/{comment_id}")
async def get_comment(emu, req):
    return Reply(200, _comment(emu, req))


@route("PATCH", "/repos/{owner}/{repo}/issues/comments/{comment_id}")
async def update_comment(emu, req):
    comment = _comment(emu, req)
    _check_comment_body(req.json["body"])
    comment.update(body=req.json["body"], updated_at=iso(emu.now()))
    return Reply(200, comment)


@route("DELETE", "/repos/{owner}/{repo}/issues/comments/{comment_id}")
async def delete_comment(emu, req):
    comment = _comment(emu, req)
    del emu.state.comments[comment["id"]]
    del emu.state.comment_index[comment["id"]]
    emu.state.reactions.pop(comment["id"], None)
    return Reply(204)


# -- reactions ---------------------------------------------------------------------------------


@route("GET", "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions")
async def list_reactions(emu, req):
    comment = _comment(emu, req)
    content = req.query.get("content")
    items = [r for r in emu.state.reactions.get(comment["id"], []) if content in (None, r["content"])]
    chunk, headers = paginate(emu, req, items)
    return Reply(200, chunk, headers)


@route("POST", "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions")
async def create_reaction(emu, req):
    """201 for a new reaction; 200 with the existing one if this user already reacted so."""
    comment = _comment(emu, req)
    return emu.react(comment["id"], req.json["content"], req.auth.login)


@route("DELETE", "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions/{reaction_id}")
async def delete_reaction(emu, req):
    comment = _comment(emu, req)
    reactions = emu.state.reactions.get(comment["id"], [])
    reaction_id = int(req.params["reaction_id"])
    kept = [r for r in reactions if r["id"] != reaction_id]
    if len(kept) == len(reactions):
        raise not_found()
    emu.state.reactions[comment["id"]] = kept
    return Reply(204)


# -- check runs ----------------------------------------------------------------------------------


MAX_OUTPUT_BYTES = 65535


def _check_run_rules(fields: dict[str, Any]) -> None:
    """Rules the schema leaves out.

    * ``output.summary`` / ``output.text``: at most 65535 *bytes* of UTF-8 (the schema's
      ``maxLength`` counts characters, GitHub counts bytes).
    * ``status: completed`` needs a ``conclusion`` (also when ``completed_at`` is given).
    """
    output = fields.get("output") or {}
    for name in ("summary", "text"):
        value = output.get(name)
        if value is not None and len(value.encode("utf-8")) > MAX_OUTPUT_BYTES:
            raise invalid("CheckRun", f"output.{name}",
                          f"Only {MAX_OUTPUT_BYTES} characters are allowed; {len(value.encode())} were supplied.")
    if fields.get("status") == "completed" and not fields.get("conclusion"):
        raise invalid("CheckRun", "conclusion", "conclusion can't be blank when status is completed",
                      code="missing_field")


def _apply_check_run_fields(emu, fields: dict[str, Any], body: dict[str, Any]) -> None:
    """Merge a create/update body; a conclusion completes the run (GitHub's rule)."""
    for key in ("name", "head_sha", "details_url", "external_id", "status", "conclusion",
                "started_at", "completed_at"):
        if key in body:
            fields[key] = body[key]
    if "output" in body:
        output = dict(body["output"])
        fields["annotations_count"] = fields.get("annotations_count", 0) + len(output.pop("annotations", []))
        fields["output"] = output
    if "actions" in body:
        fields["actions"] = body["actions"]
    if body.get("conclusion") or body.get("completed_at"):
        fields["status"] = "completed"
    if fields["status"] == "completed":
        fields["completed_at"] = fields.get("completed_at") or iso(emu.now())
    else:
        fields["conclusion"] = fields["completed_at"] = None
    if fields["status"] == "in_progress" and not fields.get("started_at"):
        fields["started_at"] = iso(emu.now())


@route("POST", "/repos/{owner}/{repo}/check-runs")
async def create_check_run(emu, req):
    fields: dict[str, Any] = {"status": "queued", "started_at": iso(emu.now())}
    _apply_check_run_fields(emu, fields, req.json)
    _check_run_rules(fields)
    return Reply(201, emu.new_check_run(req.repo, fields))


def _check_run(emu, req) -> dict[str, Any]:
    run_id = int(req.params["check_run_id"])
    extras = emu.state.check_run_extras.get(run_id)
    if extras is None or extras["repo"] is not req.repo:
        raise not_found()
    return extras


@route("GET", "/repos/{owner}/{repo}/check-runs/{check_run_id}")
async def get_check_run(emu, req):
    extras = _check_run(emu, req)
    return Reply(200, emu.state.check_runs[extras["id"]])


@route("PATCH", "/repos/{owner}/{repo}/check-runs/{check_run_id}")
async def update_check_run(emu, req):
    """Only the App that created a run may update it (all runs here are the App's)."""
    extras = _check_run(emu, req)
    fields = dict(extras["fields"])
    _apply_check_run_fields(emu, fields, req.json)
    _check_run_rules(fields)
    return Reply(200, emu.store_check_run(req.repo, extras["id"], fields))


@route("GET", "/repos/{owner}/{repo}/commits/{ref}/check-runs")
async def list_check_runs_for_ref(emu, req):
    """``ref`` is a SHA or a branch; ``filter=latest`` (default) keeps the newest run per name."""
    ref = req.params["ref"]
    sha = req.repo.branches.get(ref.removeprefix("refs/heads/"), ref)
    runs = [emu.state.check_runs[i] for i, x in emu.state.check_run_extras.items()
            if x["repo"] is req.repo and x["fields"]["head_sha"] == sha]
    if name := req.query.get("check_name"):
        runs = [r for r in runs if r["name"] == name]
    if status := req.query.get("status"):
        runs = [r for r in runs if r["status"] == status]
    if req.query.get("filter", "latest") == "latest":
        newest: dict[str, dict] = {}
        for run in runs:
            newest[run["name"]] = run
        runs = list(newest.values())
    runs.sort(key=lambda r: -r["id"])
    chunk, headers = paginate(emu, req, runs)
    return Reply(200, {"total_count": len(runs), "check_runs": chunk}, headers)
