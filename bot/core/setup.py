"""First run without an app: register the GitHub App from ``app.yml`` (Probot parity).

GitHub's manifest flow: the setup page POSTs the manifest to
``{github}/settings/apps/new`` (or ``/organizations/ORG/settings/apps/new``),
GitHub sends the browser back to ``redirect_url`` with ``?code=``, and the
code is exchanged within an hour with ``POST /app-manifests/{code}/conversions``
for the app's id, key, webhook secret and OAuth client.  Those are written to
``.env`` (mode 0600) and the bot restarts itself with them.

https://docs.github.com/en/apps/sharing-github-apps/registering-a-github-app-from-a-manifest
"""

from __future__ import annotations

import importlib.resources
import json
import logging
import os
import re
import secrets
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from bot.settings.config import Settings
from bot.text.templating import render

log = logging.getLogger(__name__)

APP_YML = importlib.resources.files("bot") / "resources" / "app.yml"  # package data (pyproject.toml)
STATE_KEY: web.AppKey[set[str]] = web.AppKey("setup_states")
SETTINGS_KEY = web.AppKey("setup_settings", Settings)
RESTART_KEY: web.AppKey[Any] = web.AppKey("setup_on_registered")
ORG_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")


def load_manifest_template(path: Traversable = APP_YML) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def base_url(request: web.Request, settings: Settings) -> str:
    if settings.public_url:
        return settings.public_url
    return f"{request.scheme}://{request.host}"


def build_manifest(template: dict[str, Any], base: str, settings: Settings) -> dict[str, Any]:
    manifest = dict(template)
    hooks = dict(manifest.get("hook_attributes") or {})
    hooks["url"] = base + settings.webhook_path
    hooks.setdefault("active", True)
    manifest["hook_attributes"] = hooks
    manifest["url"] = manifest.get("url") or base
    manifest["redirect_url"] = base + "/setup/callback"
    manifest["callback_urls"] = [base + "/auth/callback"]
    manifest.setdefault("request_oauth_on_install", False)
    return manifest


async def setup_page(request: web.Request) -> web.Response:
    settings: Settings = request.app[SETTINGS_KEY]
    org = request.query.get("org", "").strip()
    error = None
    if org and not ORG_RE.match(org):
        error = "That is not a GitHub organisation name."
        org = ""
    state = secrets.token_urlsafe(24)
    request.app[STATE_KEY].add(state)
    manifest = build_manifest(load_manifest_template(), base_url(request, settings), settings)
    target = (f"{settings.github_url}/organizations/{org}/settings/apps/new" if org
              else f"{settings.github_url}/settings/apps/new") + f"?state={state}"
    html = render("setup.html", manifest=json.dumps(manifest, indent=2), action=target, org=org,
                  error=error, env_file=str(settings.env_file), github_url=settings.github_url)
    return web.Response(text=html, content_type="text/html")


def write_env(path: Path, values: dict[str, str]) -> None:
    """Set ``values`` in the dotenv file at ``path``, keeping its other lines; mode 0600."""
    lines = path.read_text().splitlines() if path.exists() else []
    keep = [ln for ln in lines if ln.split("=", 1)[0].strip() not in values]
    for key, value in values.items():
        keep.append(f"{key}={json.dumps(value)}" if ("\n" in value or " " in value) else f"{key}={value}")
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(keep) + "\n")
    os.replace(tmp, path)


async def setup_callback(request: web.Request) -> web.Response:
    from bot.core.web import BOT_KEY

    settings: Settings = request.app[SETTINGS_KEY]
    code = request.query.get("code", "")
    state = request.query.get("state", "")
    states: set[str] = request.app[STATE_KEY]
    if not code or not re.fullmatch(r"[A-Za-z0-9_-]{1,200}", code):
        return _page(400, "The link GitHub sent back has no valid code. Start again from the setup page.")
    if state not in states:
        return _page(400, "This setup link was not started here (or was already used). Start again from the setup page.")
    states.discard(state)
    bot = request.app[BOT_KEY]
    try:
        answer = await bot.github.anonymous().post("/app-manifests/{code}/conversions", url_vars={"code": code}, data=b"")
    except Exception as exc:  # the page must say what happened; the log keeps the details
        log.exception("manifest conversion failed")
        return _page(502, f"GitHub did not accept the registration code ({exc.__class__.__name__}). "
                          "Codes expire after an hour and work once: start again from the setup page.")
    values = {
        "APP_ID": str(answer["id"]),
        "PRIVATE_KEY": answer["pem"].replace("\n", "\\n"),
        "WEBHOOK_SECRET": answer["webhook_secret"] or "",
        "GITHUB_CLIENT_ID": answer.get("client_id") or "",
        "GITHUB_CLIENT_SECRET": answer.get("client_secret") or "",
    }
    write_env(settings.env_file, values)
    log.info("registered GitHub App %s (id %s); credentials written to %s", answer.get("slug"), answer["id"],
             settings.env_file)
    restart = request.app.get(RESTART_KEY)
    html = render("setup_done.html", slug=answer.get("slug") or answer.get("name"),
                  html_url=answer.get("html_url") or "", env_file=str(settings.env_file),
                  restarting=restart is not None)
    if restart is not None:
        restart()
    return web.Response(text=html, content_type="text/html")


def _page(status: int, message: str) -> web.Response:
    return web.Response(text=render("setup_error.html", message=message), status=status, content_type="text/html")


def add_routes(app: web.Application, settings: Settings) -> None:
    app[SETTINGS_KEY] = settings
    app[STATE_KEY] = set()
    app.router.add_get("/", setup_page)
    app.router.add_get("/setup/callback", setup_callback)
