"""The real bot app on a real socket, and a client that signs deliveries with a real HMAC."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import uuid
from typing import Any

import aiohttp
from aiohttp import web

from bot.app import BOT_KEY, make_app
from bot.core.server import make_runner
from bot.services import Bot
from bot.settings import config


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def bot_environ(github, state_dir, **extra: str) -> dict[str, str]:
    """Environment variables that point a bot at the emulator, as an operator would set them."""
    env = {
        "APP_ID": str(github.app_id),
        "PRIVATE_KEY": github.private_key_pem.replace("\n", "\\n"),
        "WEBHOOK_SECRET": github.webhook_secret,
        "GITHUB_CLIENT_ID": github.client_id,
        "GITHUB_CLIENT_SECRET": github.client_secret,
        "GHE_HOST": github.host,
        "GHE_PROTOCOL": "http",
        "HOST": "127.0.0.1",
        "PORT": "0",
        "DEVENV_STATE_DIR": str(state_dir),
        "DEVENV_RETRY_BACKOFF": "0.01",
        "DEVENV_WRITES_PER_MINUTE": "6000",
        "DEVENV_SHUTDOWN_GRACE": "5",
        "DEVENV_PUBLISH_INTERVAL": "0",
        "DEVENV_SYNC_DEBOUNCE": "0.5",
        "DEVENV_KILL_GRACE": "2",
        "LOG_LEVEL": "debug",
    }
    env.update(extra)
    return env


class BotServer:
    def __init__(self, settings: config.Settings, bot: Bot | None = None) -> None:
        self.settings = settings
        self.app = make_app(settings, bot=bot)
        self.bot: Bot = self.app[BOT_KEY]
        self.runner = make_runner(self.app, settings, access_log=None)
        self.url = ""
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> BotServer:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        self.session = aiohttp.ClientSession()
        return self

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()
        await self.runner.cleanup()

    async def deliver(self, event: str, payload: Any = None, *, delivery: str | None = None,
                      body: bytes | None = None, secret: str | None = None, signature: str | None = None,
                      headers: dict[str, str] | None = None, unsigned: bool = False) -> tuple[int, Any]:
        """POST a delivery as GitHub does; returns (status, JSON answer)."""
        assert self.session is not None
        if body is None:
            body = json.dumps(payload).encode()
        secret = secret if secret is not None else self.settings.app.webhook_secret
        h = {
            "Content-Type": "application/json",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "User-Agent": "GitHub-Hookshot/test",
        }
        if not unsigned:
            h["X-Hub-Signature-256"] = signature or sign(secret, body)
        h.update(headers or {})
        data = io.BytesIO(body) if len(body) > 1_000_000 else body
        async with self.session.post(self.url + self.settings.webhook_path, data=data, headers=h) as resp:
            try:
                answer = await resp.json(content_type=None)
            except ValueError:
                answer = await resp.text()
            return resp.status, answer

    async def get(self, path: str) -> tuple[int, str]:
        assert self.session is not None
        async with self.session.get(self.url + path, allow_redirects=False) as resp:
            return resp.status, await resp.text()

    async def settle(self) -> None:
        """Wait until the background work started by deliveries is done."""
        await self.bot.tasks.join()
        if self.bot.environments is not None:
            await self.bot.environments.idle()
