"""The bot's ``/`` page while the gateway is on: how to connect, and the host key's fingerprint to check.

OpenSSH shows the fingerprint at the first connection ("ED25519 key fingerprint is SHA256:…");
users compare it with this page (served over the bot's HTTPS) before answering yes.
"""

from __future__ import annotations

from aiohttp import web

from bot.gateway.service import Gateway

__all__ = ["add_routes"]


def add_routes(app: web.Application, gateway: Gateway) -> None:
    async def index(_request: web.Request) -> web.Response:
        settings = gateway.settings
        text = (f"devenv-bot SSH gateway\n\n"
                f"  ssh -p {settings.public_port} <your GitHub login>+<workspace>@{settings.host}\n\n"
                f"Host key fingerprint: {gateway.fingerprint or '(starting)'}\n"
                "The pull request's comment shows the workspace name; docs/ssh.md explains the rest.\n")
        return web.Response(text=text)

    app.router.add_get("/", index)
