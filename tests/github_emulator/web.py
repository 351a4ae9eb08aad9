"""GitHub's web pages the bot sends people (or itself) to.

* ``POST /settings/apps/new`` and ``POST /organizations/{org}/settings/apps/new``:
  the App manifest flow.  The browser posts a form field ``manifest`` (JSON);
  GitHub (after the person clicks "Create") redirects to the manifest's
  ``redirect_url`` with ``?code=…&state=…``; the code is exchanged once, within an
  hour, at ``POST /api/v3/app-manifests/{code}/conversions`` (``rest.py``).  The
  emulator skips the click.
* ``GET /login/oauth/authorize`` and ``POST /login/oauth/access_token``: the OAuth
  web flow for user-to-server tokens; ``emu.oauth_login`` approves at once.
  Quirk: the token endpoint answers errors with **200** and an ``error`` field, and
  answers form-encoded unless the request says ``Accept: application/json``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web

from .access import classify
from .auth import parse_authorization, random_token
from .state import Call, Token

if TYPE_CHECKING:
    from .server import GitHubEmulator

MANIFEST_REQUIRED = ("name", "url", "hook_attributes", "redirect_url", "default_permissions", "default_events")


def register(emu: GitHubEmulator, app: web.Application) -> None:
    pages = {
        ("POST", "/settings/apps/new"): ("web/create-app-from-manifest", new_app),
        ("POST", "/organizations/{org}/settings/apps/new"): ("web/create-org-app-from-manifest", new_app),
        ("GET", "/login/oauth/authorize"): ("web/oauth-authorize", authorize),
        ("POST", "/login/oauth/access_token"): ("web/oauth-access-token", access_token),
    }
    for (method, path), (name, page) in pages.items():
        app.router.add_route(method, path, _recorded(emu, name, page))
    app.router.add_route("*", "/{tail:.*}", _recorded(emu, None, unknown_page))


def _recorded(emu: GitHubEmulator, name: str | None, page):
    """Record the call and apply injected faults, as for API calls."""
    async def handle(request: web.Request) -> web.StreamResponse:
        await request.read()
        token = parse_authorization(request.headers.get("Authorization"))
        form = dict(await request.post()) if request.method == "POST" else {}
        call = Call(request.method, request.path, dict(request.query), name, 0, form or None,
                    dict(request.headers), token, classify(emu, token), time=emu.now())
        emu.calls.append(call)
        fault = emu._fault_for(request.method, request.path, name)
        if fault is not None and fault.delay:
            await asyncio.sleep(fault.delay)
        if fault is not None and fault.status is not None:
            call.injected = True
            reply = emu._fault_reply(fault)
            response = emu._respond(reply, {})
        else:
            response = await page(emu, request, form)
        call.status = response.status
        return response
    return handle


def _problem(emu: GitHubEmulator, request: web.Request, message: str, status: int = 422) -> web.Response:
    emu.validation_errors.append(f"web {request.method} {request.path_qs}: {message}")
    return web.Response(status=status, text=f"<h1>{status}</h1><p>{message}</p>", content_type="text/html")


def _check_manifest(raw: Any) -> tuple[dict[str, Any] | None, str | None]:
    if not isinstance(raw, str):
        return None, "no 'manifest' form field"
    try:
        manifest = json.loads(raw)
    except ValueError as error:
        return None, f"manifest is not JSON: {error}"
    if not isinstance(manifest, dict):
        return None, "manifest is not a JSON object"
    missing = [key for key in MANIFEST_REQUIRED if key not in manifest]
    if missing:
        return None, f"manifest lacks {missing}"
    hook = manifest["hook_attributes"]
    if not isinstance(hook, dict) or not hook.get("url"):
        return None, "manifest hook_attributes.url is missing"
    if not isinstance(manifest["default_permissions"], dict):
        return None, "manifest default_permissions must be an object"
    if not isinstance(manifest["default_events"], list):
        return None, "manifest default_events must be a list"
    return manifest, None


def _with_query(url: str, params: dict[str, str]) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


async def new_app(emu: GitHubEmulator, request: web.Request, form: dict[str, Any]) -> web.Response:
    manifest, problem = _check_manifest(form.get("manifest"))
    if problem:
        return _problem(emu, request, problem)
    code = secrets.token_hex(10)
    emu.state.manifest_codes[code] = {"manifest": manifest, "created": emu.now(), "used": False,
                                      "org": request.match_info.get("org")}
    emu.manifests.append(manifest)
    emu.last_manifest = manifest
    params = {"code": code}
    if "state" in request.query:
        params["state"] = request.query["state"]
    raise web.HTTPFound(_with_query(manifest["redirect_url"], params))


async def authorize(emu: GitHubEmulator, request: web.Request, form: dict[str, Any]) -> web.Response:
    if request.query.get("client_id") != emu.client_id:
        return _problem(emu, request, f"unknown client_id {request.query.get('client_id')!r}", 404)
    redirect = request.query.get("redirect_uri") or emu.oauth_callback_url
    if not redirect:
        return _problem(emu, request, "no redirect_uri and no callback URL configured", 400)
    code = secrets.token_hex(10)
    emu.state.oauth_codes[code] = {"login": emu.oauth_login, "created": emu.now(), "used": False,
                                   "redirect_uri": request.query.get("redirect_uri")}
    params = {"code": code}
    if "state" in request.query:
        params["state"] = request.query["state"]
    raise web.HTTPFound(_with_query(redirect, params))


async def access_token(emu: GitHubEmulator, request: web.Request, form: dict[str, Any]) -> web.Response:
    fields = {**request.query, **form}
    if not form and request.content_type == "application/json":
        fields.update(await request.json())
    entry = emu.state.oauth_codes.get(str(fields.get("code")))
    if fields.get("client_id") != emu.client_id or fields.get("client_secret") != emu.client_secret:
        answer: dict[str, Any] = {"error": "incorrect_client_credentials",
                                  "error_description": "The client_id and/or client_secret passed are incorrect."}
    elif entry is None or entry["used"] or emu.now() - entry["created"] > 600:
        answer = {"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."}
    else:
        entry["used"] = True
        token = Token(token=random_token("ghu_"), kind="user", expires_at=emu.now() + emu.user_token_ttl,
                      login=entry["login"])
        emu.state.tokens[token.token] = token
        answer = {"access_token": token.token, "expires_in": emu.user_token_ttl,
                  "refresh_token": random_token("ghr_", 76), "refresh_token_expires_in": 15897600,
                  "token_type": "bearer", "scope": ""}
    if "application/json" in request.headers.get("Accept", ""):
        return web.json_response(answer)
    return web.Response(text=urlencode(answer), content_type="application/x-www-form-urlencoded")


async def unknown_page(emu: GitHubEmulator, request: web.Request, form: dict[str, Any]) -> web.Response:
    return _problem(emu, request, "no such emulated page", 404)
