"""The emulator: an aiohttp server on 127.0.0.1 laid out like GitHub Enterprise Server.

REST under ``/api/v3`` (what gidgethub's ``base_url`` points at), web pages at the
root (``web.py``).  Every API request goes through :meth:`GitHubEmulator._serve_api`:

1. recorded in ``emu.calls``;
2. validated against GitHub's OpenAPI description (path, method, parameters,
   body); unknown query parameters are recorded too (but answered normally, as
   GitHub ignores them), since a misspelt ``check_name`` would go unnoticed;
3. a fault scripted with :meth:`inject` answers instead, if one matches;
4. authenticated and authorized (``access.py``): the credential, the repositories it
   may see and, for installation tokens, the App permissions GitHub asks for the
   operation (``permissions.py``); then rate limited (``x-ratelimit-*`` headers, per
   installation as on GitHub);
5. answered 422 if step 2 found problems, else by the handler (``rest.py``);
6. the answer is validated against the operation's response schema.

Problems found in steps 2 and 6 go to ``emu.validation_errors``, 403s for a missing
App permission to ``emu.permission_denials``; :meth:`assert_valid` (called by the
``github`` fixture at teardown) fails the test on either.

Installations get the App's permissions, read from ``app.yml`` (``default_permissions``
plus ``metadata: read``), unless ``add_installation(permissions=…)`` says otherwise.
"""

from __future__ import annotations

import asyncio
import http
import json
import re
import secrets
import time
import traceback
from typing import Any

from aiohttp import web

from . import pulls as pull_lists
from . import user_keys  # noqa: F401  (registers GET /users/{username}/keys)
from . import web as web_pages
from .access import authenticate, classify
from .auth import DOCS, ROLE_TO_PERMISSION, new_private_key_pem, parse_authorization, public_key_of
from .builders import Builders, stable_id
from .openapi import SERVER_PREFIX, Validator, load_description, operation, operation_id
from .permissions import app_permissions, with_metadata
from .rest import ROUTES, ApiError, ApiRequest, Auth, Reply, Route
from .state import Call, Fault, Repo, State, matches_path

DEFAULT_EVENTS = ["check_run", "issue_comment", "pull_request"]
SECONDARY_RATE_LIMIT = (
    "You have exceeded a secondary rate limit and have been temporarily blocked from content "
    "creation. Please retry your request again later."
)
JSON = "application/json; charset=utf-8"


def _hex40() -> str:
    return secrets.token_hex(20)


class GitHubEmulator:
    """An emulated GitHub that is also the bot's GitHub App (id, key, secrets)."""

    def __init__(self, *, app_id: int = 4242, app_slug: str = "devenv-bot", app_owner: str = "Codertocat",
                 private_key_pem: str | None = None, rate_limit: int = 5000):
        self.app_id = app_id
        self.app_slug = app_slug
        self.app_name = app_slug
        self.app_owner = app_owner
        self.private_key_pem = private_key_pem or new_private_key_pem()
        self.public_key = public_key_of(self.private_key_pem)
        self.webhook_secret = secrets.token_hex(20)
        self.client_id = "Iv1." + secrets.token_hex(8)
        self.client_secret = secrets.token_hex(20)
        self.app_permissions = app_permissions()  # app.yml's, as GitHub grants them
        self.app_events = list(DEFAULT_EVENTS)
        self.app_external_url = "https://devenv-bot.example.invalid"
        self.oauth_login = "Codertocat"  # who approves /login/oauth/authorize
        self.oauth_callback_url: str | None = None

        self.token_ttl = 3600
        self.user_token_ttl = 28800
        self.rate_limit = rate_limit
        self.clock_offset = 0.0  # seconds added to the emulator's clock (advance_clock)
        self.tokens_minted = 0
        self.token_requests: list[dict[str, Any]] = []  # bodies of access_tokens requests
        self.calls: list[Call] = []
        self.validation_errors: list[str] = []
        self.permission_denials: list[str] = []  # 403s for a permission the installation token lacks
        self.faults: list[Fault] = []
        self.manifest_conversions: list[str] = []
        self.manifests: list[dict[str, Any]] = []
        self.last_manifest: dict[str, Any] | None = None
        self.nonexistent_users: set[str] = set()
        self.state = State()

        load_description()  # warm the shared cache outside any request
        self.validator = Validator(r.template for r in ROUTES)
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self._builders: Builders | None = None

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> GitHubEmulator:
        app = web.Application(client_max_size=30 * 1024 * 1024)
        for r in ROUTES:
            app.router.add_route(r.method, SERVER_PREFIX + _aiohttp_path(r.template), self._api_handler(r))
        app.router.add_route("*", SERVER_PREFIX + "/{tail:.*}", self._unknown_api)
        web_pages.register(self, app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self._builders = Builders(self.api_url, self.url)
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> GitHubEmulator:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    @property
    def host(self) -> str:
        if self.port is None:
            raise RuntimeError("start() the emulator first")
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def api_url(self) -> str:
        return self.url + SERVER_PREFIX

    @property
    def bot_login(self) -> str:
        return f"{self.app_slug}[bot]"

    @property
    def builders(self) -> Builders:
        if self._builders is None:
            raise RuntimeError("start() the emulator first")
        return self._builders

    def now(self) -> float:
        return time.time() + self.clock_offset

    def advance_clock(self, seconds: float) -> None:
        """Move the emulator's clock (token and JWT expiry, code expiry) forward."""
        self.clock_offset += seconds

    # -- scenario setup ------------------------------------------------------------------------

    def add_installation(self, installation_id: int, account: str = "Codertocat", *,
                         permissions: dict[str, str] | None = None,
                         repository_selection: str = "all") -> dict[str, Any]:
        self.state.installations[installation_id] = {
            "id": installation_id, "account": account, "repository_selection": repository_selection,
            "permissions": dict(permissions or self.app_permissions),
        }
        return self.installation_object(installation_id) if self._builders else dict(
            self.state.installations[installation_id])

    def add_repo(self, owner: str, name: str, *, private: bool = False, installation_id: int | None = 1,
                 default_branch: str = "main", repo_id: int | None = None, fork: bool = False) -> dict[str, Any]:
        """A repository (``installation_id=None``: the App is not installed on it).

        An unknown ``installation_id`` is created for ``owner``.  Returns the
        ``full-repository`` object once started, else the state's fields.
        """
        if installation_id is not None and installation_id not in self.state.installations:
            self.add_installation(installation_id, owner)
        repo = Repo(owner=owner, name=name, id=repo_id or stable_id(f"{owner}/{name}", 100_000_000),
                    private=private, installation_id=installation_id, default_branch=default_branch, fork=fork)
        repo.branches[default_branch] = _hex40()
        self.state.repos[(owner.lower(), name.lower())] = repo
        return self.repository_object(repo, full=True) if self._builders else vars(repo)

    def _repo(self, owner: str, name: str) -> Repo:
        repo = self.state.repo(owner, name)
        if repo is None:
            raise KeyError(f"no repository {owner}/{name}: add_repo() it first")
        return repo

    def add_pull(self, owner: str, repo: str, number: int | None = None, *, head_sha: str | None = None,
                 head_ref: str = "changes", base_ref: str | None = None, base_sha: str | None = None,
                 user: str = "Codertocat", head_repo: str | None = None, state: str = "open",
                 draft: bool = False, title: str = "Amazing new feature", body: str | None = None,
                 merged: bool = False) -> dict[str, Any]:
        """A pull request; ``head_repo`` other than ``owner/repo`` makes it come from a fork
        (created on the fly, not installed)."""
        base = self._repo(owner, repo)
        number = number or max([0, *base.pulls, *base.issues]) + 1
        base_ref = base_ref or base.default_branch
        head_full = head_repo or base.full_name
        head_owner, head_name = head_full.split("/", 1)
        head = self.state.repo(head_owner, head_name)
        if head is None:
            head = self._repo_from(head_owner, head_name, base)
        pull = {"number": number, "id": stable_id(f"{base.full_name}#{number}", 200_000_000),
                "head_sha": head_sha or _hex40(), "head_ref": head_ref, "base_ref": base_ref,
                "base_sha": base_sha or base.branches.get(base_ref) or _hex40(), "user": user,
                "head_repo": head.full_name, "state": state, "draft": draft, "title": title, "body": body,
                "merged": merged, "created_at": self.now()}
        head.branches[head_ref] = pull["head_sha"]
        base.branches.setdefault(base_ref, pull["base_sha"])
        base.pulls[number] = pull
        return self.pull_object(base, pull) if self._builders else dict(pull)

    def _repo_from(self, owner: str, name: str, parent: Repo) -> Repo:
        self.add_repo(owner, name, private=parent.private, installation_id=None,
                      default_branch=parent.default_branch, fork=True)
        return self._repo(owner, name)

    def add_issue(self, owner: str, repo: str, number: int | None = None, *, title: str = "Found a bug",
                  user: str = "Codertocat") -> int:
        target = self._repo(owner, repo)
        number = number or max([0, *target.pulls, *target.issues]) + 1
        target.issues[number] = {"number": number, "title": title, "user": user}
        return number

    def add_comment(self, owner: str, repo: str, issue_number: int, body: str,
                    user: str = "Codertocat") -> dict[str, Any]:
        """A comment written by a person (or any login) on an issue or pull request."""
        return self.new_comment(self._repo(owner, repo), issue_number, body, user, via_app=False)

    def set_permission(self, owner: str, repo: str, login: str, role: str) -> None:
        """``admin``, ``maintain``, ``write``, ``triage``, ``read`` or ``none``.

        Users without a role read ``read`` on public repositories, ``none`` on
        private ones (GitHub answers 200 for any existing user).
        """
        if role not in ROLE_TO_PERMISSION:
            raise ValueError(f"unknown role {role!r}")
        self._repo(owner, repo).permissions[login.lower()] = role

    def set_file(self, owner: str, repo: str, path: str, content: bytes | str, ref: str = "main") -> None:
        data = content.encode() if isinstance(content, str) else content
        self._repo(owner, repo).files[(ref, path.strip("/"))] = data

    def expire_tokens(self) -> None:
        """Every token minted so far (installation and user) now answers 401."""
        for token in self.state.tokens.values():
            token.revoked = True

    # -- fault injection -------------------------------------------------------------------------

    def inject(self, method: str | None = None, path: str | None = None, *, status: int | None = None,
               headers: dict[str, str] | None = None, body: Any = None, times: int = 1,
               delay: float = 0.0) -> Fault:
        """Answer the next ``times`` matching requests with ``status``/``headers``/``body``.

        ``path`` is a regex searched in the path (no ``/api/v3``) or an operationId.
        ``status=None`` with a ``delay`` only slows the normal answer down.  A JSON
        ``body`` defaults to GitHub's ``{"message", "documentation_url"}``; a ``str``
        body is sent as text/html (GitHub's 502 pages are HTML).
        """
        fault = Fault(method=method, path=path, status=status, headers=dict(headers or {}), body=body,
                      times=times, delay=delay)
        self.faults.append(fault)
        return fault

    def inject_secondary_rate_limit(self, method: str | None = "POST", path: str | None = None, *,
                                    retry_after: int | None = 1, times: int = 1) -> Fault:
        """403 with GitHub's secondary-rate-limit message (and ``retry-after`` unless None)."""
        headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
        return self.inject(method, path, status=403, headers=headers, times=times, body={
            "message": SECONDARY_RATE_LIMIT,
            "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
                                 "#about-secondary-rate-limits"})

    def _fault_for(self, method: str, path: str, op_id: str | None) -> Fault | None:
        for fault in self.faults:
            if fault.matches(method, path, op_id):
                fault.hits += 1
                return fault
        return None

    @staticmethod
    def _fault_reply(fault: Fault) -> Reply:
        body = fault.body
        if body is None:
            body = {"message": http.HTTPStatus(fault.status).phrase, "documentation_url": DOCS}
        return Reply(fault.status, body, dict(fault.headers))

    # -- assertions ---------------------------------------------------------------------------------

    def calls_to(self, method: str | None, pattern: str) -> list[Call]:
        """Calls with this method (None: any) whose operationId is ``pattern`` or path matches it."""
        return [c for c in self.calls if (method is None or c.method == method.upper())
                and matches_path(pattern, c.path, c.operation_id)]

    def reset_calls(self) -> None:
        self.calls.clear()

    def assert_valid(self) -> None:
        problems = []
        if self.validation_errors:
            problems.append(f"{len(self.validation_errors)} request(s)/response(s) did not match GitHub's "
                            "OpenAPI description:\n\n" + "\n\n".join(self.validation_errors))
        if self.permission_denials:
            problems.append(f"{len(self.permission_denials)} request(s) needed an App permission the "
                            "installation token lacks (app.yml, or the token request's permissions):\n\n"
                            + "\n\n".join(self.permission_denials))
        if problems:
            raise AssertionError("\n\n".join(problems))

    def comments(self, owner: str, repo: str, issue_number: int) -> list[dict[str, Any]]:
        key = (owner.lower(), repo.lower())
        return [self.state.comments[i] for i, (k, n) in self.state.comment_index.items()
                if k == key and n == issue_number]

    def check_runs(self, owner: str, repo: str) -> list[dict[str, Any]]:
        """Current state of every check run, oldest first, plus the ``actions`` last sent
        (GitHub never returns those in the API)."""
        target = self._repo(owner, repo)
        return [{**self.state.check_runs[i], "actions": x["fields"].get("actions", [])}
                for i, x in self.state.check_run_extras.items() if x["repo"] is target]

    def reactions(self, owner: str, repo: str, comment_id: int) -> list[dict[str, Any]]:
        return list(self.state.reactions.get(comment_id, []))

    # -- objects as the API serves them ----------------------------------------------------------------

    def app_object(self) -> dict[str, Any]:
        return self.builders.app(app_id=self.app_id, slug=self.app_slug, name=self.app_name, owner=self.app_owner,
                                 client_id=self.client_id, permissions=self.app_permissions,
                                 events=self.app_events, external_url=self.app_external_url,
                                 installations_count=len(self.state.installations))

    def installation_object(self, installation_id: int) -> dict[str, Any]:
        inst = self.state.installations[installation_id]
        return self.builders.installation(installation_id=installation_id, account=inst["account"],
                                          app_id=self.app_id, app_slug=self.app_slug,
                                          permissions=inst["permissions"], events=self.app_events,
                                          repository_selection=inst["repository_selection"])

    def repository_object(self, repo: Repo, full: bool = False) -> dict[str, Any]:
        return self.builders.repository(owner=repo.owner, name=repo.name, repo_id=repo.id, private=repo.private,
                                        default_branch=repo.default_branch, fork=repo.fork, full=full)

    def pull_object(self, repo: Repo, pull: dict[str, Any]) -> dict[str, Any]:
        head = self._repo(*pull["head_repo"].split("/", 1))
        return self.builders.pull_request(repo=self.repository_object(repo),
                                          head_repo=self.repository_object(head), pull=pull)

    def new_comment(self, repo: Repo, number: int, body: str, login: str, *, via_app: bool) -> dict[str, Any]:
        comment_id = self.state.next_id()
        role = repo.permissions.get(login.lower())
        association = ("OWNER" if login.lower() == repo.owner.lower() else
                       "COLLABORATOR" if role in ("admin", "maintain", "write") else "NONE")
        comment = self.builders.issue_comment(
            repo=self.repository_object(repo), issue_number=number, is_pull=number in repo.pulls,
            comment_id=comment_id, body=body, user=self.builders.user(login), created_at=self.now(),
            app=self.app_object() if via_app else None, author_association=association)
        self.state.comments[comment_id] = comment
        self.state.comment_index[comment_id] = ((repo.owner.lower(), repo.name.lower()), number)
        return comment

    def react(self, comment_id: int, content: str, login: str) -> Reply:
        reactions = self.state.reactions.setdefault(comment_id, [])
        for existing in reactions:
            if existing["content"] == content and existing["user"]["login"] == login:
                return Reply(200, existing)
        reaction = self.builders.reaction(reaction_id=self.state.next_id(), content=content,
                                          user=self.builders.user(login), created_at=self.now())
        reactions.append(reaction)
        return Reply(201, reaction)

    def new_check_run(self, repo: Repo, fields: dict[str, Any]) -> dict[str, Any]:
        run_id = self.state.next_id()
        self.state.check_run_extras[run_id] = {"id": run_id, "repo": repo, "suite_id": self.state.next_id()}
        return self.store_check_run(repo, run_id, fields)

    def store_check_run(self, repo: Repo, run_id: int, fields: dict[str, Any]) -> dict[str, Any]:
        """Build and keep the run.  ``pull_requests`` lists open PRs of *this* repository
        whose head is ``head_sha`` — never PRs from forks (a GitHub quirk)."""
        extras = self.state.check_run_extras[run_id]
        extras["fields"] = fields
        repo_obj = self.repository_object(repo)
        pulls = [self.builders.pull_request_minimal(repo=repo_obj, head_repo=repo_obj, pull=p)
                 for p in repo.pulls.values()
                 if p["state"] == "open" and p["head_sha"] == fields["head_sha"] and p["head_repo"] == repo.full_name]
        run = self.builders.check_run(repo=repo_obj, run_id=run_id, suite_id=extras["suite_id"],
                                      app=self.app_object(), fields=fields, pull_requests=pulls)
        self.state.check_runs[run_id] = run
        return run

    def adopt_manifest(self, manifest: dict[str, Any]) -> None:
        """After a manifest conversion the emulated App has the manifest's name and settings."""
        self.app_name = manifest["name"]
        self.app_slug = re.sub(r"[^a-z0-9]+", "-", manifest["name"].lower()).strip("-")
        self.app_external_url = manifest["url"]
        self.app_permissions = with_metadata(manifest.get("default_permissions") or {})
        self.app_events = list(manifest.get("default_events", []))
        callbacks = manifest.get("callback_urls") or []
        self.oauth_callback_url = callbacks[0] if callbacks else manifest.get("redirect_url")

    # -- rate limits ------------------------------------------------------------------------------------

    def rate_bucket(self, auth: Auth) -> str:
        """Installations share one budget across tokens, as on GitHub."""
        if auth.kind == "installation" and auth.state:
            return f"installation:{auth.state.installation_id}"
        if auth.kind == "user" and auth.state:
            return f"user:{auth.state.login}"
        return "app" if auth.kind == "jwt" else "anonymous"

    def rate_snapshot(self, bucket: str) -> dict[str, int]:
        limit = 60 if bucket == "anonymous" else self.rate_limit
        entry = self.state.rate.setdefault(bucket, {"used": 0, "reset": self.now() + 3600})
        if self.now() >= entry["reset"]:
            entry.update(used=0, reset=self.now() + 3600)
        used = int(entry["used"])
        return {"limit": limit, "remaining": max(limit - used, 0), "reset": int(entry["reset"]), "used": used}

    def _rate_headers(self, bucket: str) -> dict[str, str]:
        snap = self.rate_snapshot(bucket)
        return {"x-ratelimit-limit": str(snap["limit"]), "x-ratelimit-remaining": str(snap["remaining"]),
                "x-ratelimit-reset": str(snap["reset"]), "x-ratelimit-used": str(snap["used"]),
                "x-ratelimit-resource": "core"}

    def _count(self, bucket: str, auth: Auth) -> None:
        snap = self.rate_snapshot(bucket)
        if snap["remaining"] <= 0:
            who = (f"installation ID {auth.state.installation_id}" if auth.kind == "installation"
                   else "this user" if auth.kind == "user" else "this app")
            raise ApiError(403, f"API rate limit exceeded for {who}.")
        self.state.rate[bucket]["used"] += 1

    # -- the request pipeline ----------------------------------------------------------------------------------

    def _api_handler(self, route: Route):
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._serve_api(request, route)
        return handle

    async def _serve_api(self, request: web.Request, route: Route) -> web.StreamResponse:
        raw = await request.read()
        path = request.path[len(SERVER_PREFIX):]
        params = dict(request.match_info)
        op_id = operation_id(route.template, route.method)
        token = parse_authorization(request.headers.get("Authorization"))
        body, problems = _parse_json(raw)
        call = Call(method=request.method, path=path, query=dict(request.query), operation_id=op_id, status=0,
                    json=body, headers=dict(request.headers), token=token, auth_kind=classify(self, token),
                    time=self.now())
        self.calls.append(call)

        if not problems:
            problems = self.validator.request_errors(
                route.method, route.template, params, request.query.items(), request.headers,
                raw if body is not None else None, request.headers.get("Content-Type", "application/json"))
        for problem in problems + _unknown_query_parameters(route, request.query):
            self.validation_errors.append(f"request {request.method} {request.path_qs} ({op_id}):\n{problem}")

        bucket = "anonymous"
        fault = self._fault_for(request.method, path, op_id)
        if fault is not None and fault.delay:
            await asyncio.sleep(fault.delay)
        if fault is not None and fault.status is not None:
            call.injected = True
            reply = self._fault_reply(fault)
        else:
            try:
                auth, repo = authenticate(self, route, op_id, token, request.method, params)
                if route.template != "/rate_limit":
                    bucket = self.rate_bucket(auth)
                    self._count(bucket, auth)
                else:
                    bucket = self.rate_bucket(auth)
                if body is None and raw:
                    raise ApiError(400, "Problems parsing JSON")
                if problems:
                    raise ApiError(422, "Invalid request.\n\n" + problems[0].splitlines()[-1].strip())
                api_request = ApiRequest(method=request.method, path=path, template=route.template, params=params,
                                         query=request.query, json=body, auth=auth, repo=repo)
                reply = await route.handler(self, api_request)
            except ApiError as error:
                reply = Reply(error.status, error.body(), error.headers)
            except Exception:  # a bug of the emulator: make it loud, in the test's failure
                self.validation_errors.append(f"emulator crashed on {request.method} {request.path_qs}:\n"
                                              + traceback.format_exc())
                reply = Reply(500, {"message": "Server Error (emulator bug)", "documentation_url": DOCS})
            if not problems:
                reply = pull_lists.conditional(request.headers, reply)
                if reply.status == 304:  # a conditional request answered 304 costs no rate limit
                    self.state.rate[bucket]["used"] -= 1
                self._validate_response(route, params, reply, request)
        call.status, call.response = reply.status, reply.body
        return self._respond(reply, {**self._rate_headers(bucket), **reply.headers})

    def _validate_response(self, route: Route, params: dict[str, str], reply: Reply, request: web.Request) -> None:
        documented = operation(route.template, route.method)["responses"]
        where = f"response {reply.status} to {request.method} {request.path_qs}"
        if str(reply.status) not in documented:
            # GitHub documents few error statuses per operation, but answers 401/403/404/422 anywhere.
            if reply.status < 400 or not isinstance(reply.body, dict) or "message" not in reply.body:
                self.validation_errors.append(f"{where}: undocumented status with body {reply.body!r}")
            return
        data = json.dumps(reply.body).encode() if reply.body is not None else None
        for problem in self.validator.response_errors(route.method, route.template, params, reply.status, data):
            self.validation_errors.append(f"{where}:\n{problem}")

    @staticmethod
    def _respond(reply: Reply, headers: dict[str, str]) -> web.Response:
        headers = {"x-github-request-id": secrets.token_hex(8).upper(), **headers}
        if reply.body is None:
            return web.Response(status=reply.status, headers=headers)
        if isinstance(reply.body, (str, bytes)):
            content_type = headers.pop("Content-Type", None) or headers.pop("content-type", None) or "text/html"
            data = reply.body.encode() if isinstance(reply.body, str) else reply.body
            return web.Response(status=reply.status, body=data, headers={**headers, "Content-Type": content_type})
        return web.Response(status=reply.status, body=json.dumps(reply.body).encode(),
                            headers={"Content-Type": JSON, **headers})

    async def _unknown_api(self, request: web.Request) -> web.Response:
        """An endpoint the emulator does not implement (or a method the path lacks)."""
        await request.read()
        path = request.path[len(SERVER_PREFIX):]
        token = parse_authorization(request.headers.get("Authorization"))
        fault = self._fault_for(request.method, path, None)
        self.validation_errors.append(f"request {request.method} {request.path_qs}: no such emulated endpoint "
                                      f"(add it to tests/github_emulator/rest.py if the bot needs it)")
        reply = self._fault_reply(fault) if fault and fault.status else ApiError(404, "Not Found").body()
        reply = reply if isinstance(reply, Reply) else Reply(404, reply)
        self.calls.append(Call(request.method, path, dict(request.query), None, reply.status, None,
                               dict(request.headers), token, classify(self, token), reply.body,
                               injected=bool(fault), time=self.now()))
        return self._respond(reply, self._rate_headers("anonymous"))


def _aiohttp_path(template: str) -> str:
    """``{path}`` of the contents API and ``{ref}`` of commits may hold slashes."""
    return template.replace("{path}", "{path:.+}").replace("{ref}", "{ref:.+}")


def _parse_json(raw: bytes) -> tuple[Any, list[str]]:
    if not raw:
        return None, []
    try:
        return json.loads(raw), []
    except ValueError as error:
        return None, [f"body is not JSON ({error}): {raw[:200]!r}"]


def _unknown_query_parameters(route: Route, query) -> list[str]:
    known = _parameter_names(route.template, route.method)
    return [f"unknown query parameter {name!r} (GitHub ignores it silently; known: {sorted(known)})"
            for name in query if name not in known]


def _parameter_names(template: str, method: str) -> set[str]:
    spec = load_description()
    names = set()
    for param in [*spec["paths"][template].get("parameters", []), *operation(template, method).get("parameters", [])]:
        if "$ref" in param:
            param = spec["components"]["parameters"][param["$ref"].rsplit("/", 1)[1]]
        if param.get("in") == "query":
            names.add(param["name"])
    return names
