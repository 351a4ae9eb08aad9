"""First run without an app: the manifest flow registers it and the bot comes up with it."""

from __future__ import annotations

import html
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp
import pytest

from bot.settings import config
from tests import payloads
from tests.botserver import BotServer, sign

REPO_ROOT = Path(__file__).resolve().parents[1]


def setup_environ(github, tmp_path) -> dict[str, str]:
    return {"GHE_HOST": github.host, "GHE_PROTOCOL": "http", "HOST": "127.0.0.1", "PORT": "0",
            "DEVENV_STATE_DIR": str(tmp_path / "state")}


def form_of(page: str) -> tuple[str, dict]:
    action = html.unescape(re.search(r'<form action="([^"]+)" method="post"', page).group(1))
    manifest = html.unescape(re.search(r'name="manifest" value="([^"]*)"', page).group(1))
    return action, json.loads(manifest)


def browser() -> aiohttp.ClientSession:
    """A client that keeps cookies as a browser does, also for the test's 127.0.0.1."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


def token_of(srv: BotServer) -> str:
    """The one-time setup token of an in-process bot (a real one prints it in its log only)."""
    from bot.setup.routes import SETUP_KEY

    return srv.app[SETUP_KEY].token


class Output:
    """Collects a process's output while it runs, so a test can wait for a line (the setup link)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc, self.lines = proc, []  # type: ignore[var-annotated]
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def setup_url(self, timeout: float = 20.0) -> str:
        """The setup page's address with its token, from the log line that tells the operator where to go."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                found = re.search(r"no GitHub App configured: open (\S+\?token=[A-Za-z0-9_-]+) ", line)
                if found:
                    return found.group(1)
            time.sleep(0.05)
        raise AssertionError("the log never said where to open the setup page:\n" + self.text())

    def text(self) -> str:
        return "".join(self.lines)

    def finish(self, timeout: float = 20.0) -> str:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.text()


async def register(session: aiohttp.ClientSession, bot_url: str, token: str) -> tuple[int, str, str]:
    """Walk the browser through the flow; returns the callback's status and page, and the redirect URL."""
    async with session.get(bot_url + f"/?token={token}") as resp:
        assert resp.status == 200
        action, manifest = form_of(await resp.text())
    async with session.post(action, data={"manifest": json.dumps(manifest)}, allow_redirects=False) as resp:
        assert resp.status == 302, await resp.text()
        location = resp.headers["Location"]
    async with session.get(location, allow_redirects=False) as resp:
        return resp.status, await resp.text(), location


async def test_the_setup_page_posts_app_yml_as_a_manifest(github, tmp_path):
    settings = config.load(setup_environ(github, tmp_path), env_file=tmp_path / ".env")
    srv = await BotServer(settings).start()
    try:
        status, page = await srv.get(f"/?token={token_of(srv)}")
    finally:
        await srv.stop()
    assert status == 200
    action, manifest = form_of(page)
    assert action.startswith(f"{github.url}/settings/apps/new?state=")
    assert manifest["hook_attributes"]["url"] == srv.url + "/api/github/webhooks"
    assert manifest["redirect_url"] == srv.url + "/setup/callback"
    assert set(manifest["default_events"]) >= {"pull_request"}
    assert manifest["default_permissions"]["checks"] == "write"


async def test_an_organisation_gets_the_org_registration_url(github, tmp_path):
    settings = config.load(setup_environ(github, tmp_path), env_file=tmp_path / ".env")
    srv = await BotServer(settings).start()
    try:
        _, page = await srv.get(f"/?token={token_of(srv)}&org=octo-org")
        _, bad = await srv.get(f"/?token={token_of(srv)}&org=<script>")
    finally:
        await srv.stop()
    assert form_of(page)[0].startswith(f"{github.url}/organizations/octo-org/settings/apps/new?state=")
    assert "<script>" not in bad and "not a GitHub organisation" in bad


async def test_the_manifest_flow_writes_working_credentials_to_dotenv(github, tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("# operator's own line\nLOG_LEVEL=debug\n")
    settings = config.load(setup_environ(github, tmp_path), env_file=env_file)
    srv = await BotServer(settings).start()
    try:
        async with browser() as session:
            status, page, _ = await register(session, srv.url, token_of(srv))
        webhook_status, _ = await srv.deliver("ping", payloads.ping(), secret="anything")
    finally:
        await srv.stop()
    assert status == 200 and "is registered" in page
    assert webhook_status == 503  # never accepts deliveries before it has a secret
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    text = env_file.read_text()
    assert "# operator's own line" in text and "LOG_LEVEL=debug" in text
    from dotenv import dotenv_values

    loaded = config.load({**setup_environ(github, tmp_path), **dotenv_values(env_file)})
    assert loaded.app.app_id == str(github.app_id)
    assert loaded.app.webhook_secret == github.webhook_secret
    assert loaded.app.client_id == github.client_id
    assert len(github.manifest_conversions) == 1


async def test_without_the_token_from_the_log_neither_the_page_nor_a_callback_gets_anywhere(github, tmp_path):
    # Whoever reaches the port first must not register their own App in the bot's place.
    settings = config.load(setup_environ(github, tmp_path), env_file=tmp_path / ".env")
    srv = await BotServer(settings).start()
    try:
        statuses = {}
        for path in ("/", "/?token=", "/?token=guessed-guessed-guessed", "/?org=octo-org"):
            statuses[path], page = await srv.get(path)
            assert "printed in its log" in page and "token" in page
        async with browser() as operator:
            async with operator.get(srv.url + f"/?token={token_of(srv)}") as resp:
                assert resp.status == 200
                action, _ = form_of(await resp.text())
                cookie = resp.cookies["devenv-setup"]
            state = action.split("state=", 1)[1]
            # A callback with the operator's state, from another browser (no cookie, or its own).
            other, _ = await srv.get(f"/setup/callback?code=attacker-code&state={state}")
            attacker = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                             cookies={"devenv-setup": "x" * 32})
            forged = f"/setup/callback?code=attacker-code&state={state}"
            async with attacker, attacker.get(srv.url + forged) as resp:
                tossed, tossed_page = resp.status, await resp.text()
            status, page, _ = await register(operator, srv.url, token_of(srv))  # the operator still can
    finally:
        await srv.stop()
    assert set(statuses.values()) == {403}
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/"
    assert other == 403 and tossed == 403 and "another browser" in tossed_page
    assert status == 200 and "is registered" in page
    assert len(github.manifest_conversions) == 1  # the attacker's code was never converted


async def test_a_callback_that_was_not_started_here_is_refused(github, tmp_path):
    settings = config.load(setup_environ(github, tmp_path), env_file=tmp_path / ".env")
    srv = await BotServer(settings).start()
    try:
        status, page = await srv.get("/setup/callback?code=abc&state=forged")
    finally:
        await srv.stop()
    assert status == 400 and "not started here" in page
    assert not (tmp_path / ".env").exists()
    assert github.manifest_conversions == []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_ready(session: aiohttp.ClientSession, url: str, want: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            async with session.get(url + "/readyz") as resp:
                if resp.status == want:
                    return
        except aiohttp.ClientError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url}/readyz never answered {want}")
        await __import__("asyncio").sleep(0.1)


@pytest.mark.slow
async def test_devenv_bot_serve_registers_restarts_itself_and_accepts_signed_webhooks(github, devpod, tmp_path):
    port = free_port()
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": str(REPO_ROOT),
           **setup_environ(github, tmp_path), **devpod.env(), "PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "-m", "bot", "serve"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = Output(proc)
    url = f"http://127.0.0.1:{port}"
    try:
        async with browser() as session:
            await wait_ready(session, url, 503)  # setup mode: alive, not ready
            setup_url = output.setup_url()
            token = setup_url.split("token=", 1)[1]
            assert setup_url == f"{url}/?token={token}"
            status, page, _ = await register(session, url, token)
            assert status == 200 and "restarting" in page
            await wait_ready(session, url, 200)  # back with the new app
            body = json.dumps(payloads.ping()).encode()
            headers = {"Content-Type": "application/json", "X-GitHub-Event": "ping",
                       "X-GitHub-Delivery": "after-setup", "X-Hub-Signature-256": sign(github.webhook_secret, body)}
            async with session.post(url + "/api/github/webhooks", data=body, headers=headers) as resp:
                assert resp.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        out = output.finish()
    assert proc.returncode == 0, out
    assert "stopped cleanly" in out
    assert out.count(token) == 1  # the setup token is in the one log line, nowhere else
    assert github.private_key_pem.splitlines()[1] not in out  # the key never reaches the log


async def manifest_seen(settings, headers: dict[str, str] | None = None) -> tuple[str, dict]:
    srv = await BotServer(settings).start()
    try:
        assert srv.session is not None
        async with srv.session.get(srv.url + f"/?token={token_of(srv)}", headers=headers or {}) as resp:
            assert resp.status == 200
            page = await resp.text()
    finally:
        await srv.stop()
    return page, form_of(page)[1]


async def test_forwarded_headers_count_only_from_a_trusted_proxy(github, tmp_path):
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "devenv.example.com"}
    untrusted = config.load(setup_environ(github, tmp_path), env_file=tmp_path / ".env")
    _, manifest = await manifest_seen(untrusted, forwarded)
    assert manifest["hook_attributes"]["url"].startswith("http://127.0.0.1:")  # anyone could send those headers

    trusted = config.load({**setup_environ(github, tmp_path), "DEVENV_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1"},
                          env_file=tmp_path / ".env")
    _, manifest = await manifest_seen(trusted, forwarded)
    assert manifest["hook_attributes"]["url"] == "https://devenv.example.com/api/github/webhooks"
    assert manifest["redirect_url"] == "https://devenv.example.com/setup/callback"


async def test_the_public_url_wins_over_what_the_browser_used(github, tmp_path):
    settings = config.load({**setup_environ(github, tmp_path), "DEVENV_PUBLIC_URL": "https://bot.example.org/"},
                           env_file=tmp_path / ".env")
    _, manifest = await manifest_seen(settings, {"X-Forwarded-Host": "evil.example"})
    assert manifest["hook_attributes"]["url"] == "https://bot.example.org/api/github/webhooks"


async def test_the_page_warns_when_github_cannot_reach_the_webhook_url(tmp_path):
    env = {"HOST": "127.0.0.1", "PORT": "0", "DEVENV_STATE_DIR": str(tmp_path / "state")}  # GitHub.com
    page, _ = await manifest_seen(config.load(env, env_file=tmp_path / ".env"))
    assert "GitHub cannot reach that address" in page and "loopback" in page
    public = config.load({**env, "DEVENV_PUBLIC_URL": "https://devenv.example.com"}, env_file=tmp_path / ".env")
    page, _ = await manifest_seen(public)
    assert "GitHub cannot reach that address" not in page


@pytest.mark.parametrize(("url", "public", "why"), [
    ("http://0.0.0.0:3000", True, "every address"),
    ("http://127.0.0.1:3000", False, "loopback"),
    ("http://localhost:3000", True, "loopback"),
    ("http://10.1.2.3:3000", True, "private"),
    ("http://192.168.1.5", True, "private"),
    ("http://10.1.2.3:3000", False, None),  # GitHub Enterprise Server may share the network
    ("https://devenv.example.com", True, None),
    ("https://140.82.112.3", True, None),
])
def test_which_addresses_github_cannot_reach(url, public, why):
    from bot.setup.manifest import unreachable_reason

    reason = unreachable_reason(url, github_is_public=public)
    assert (reason is None) if why is None else (why in reason)


async def test_in_a_pod_the_credentials_go_into_a_kubernetes_secret(github, kube, tmp_path):
    env = {**setup_environ(github, tmp_path), "DEVENV_CREDENTIALS_SECRET": "devenv/devenv-bot-credentials",
           "KUBECONFIG": str(kube.write_kubeconfig(tmp_path / "kubeconfig", "devenv"))}
    settings = config.load(env, env_file=tmp_path / ".env")
    restarts: list[bool] = []
    srv = await BotServer(settings).start()
    from bot.setup.routes import SETUP_KEY

    srv.app[SETUP_KEY].on_registered = restarts.append
    try:
        async with browser() as session:
            status, page, _ = await register(session, srv.url, token_of(srv))
    finally:
        await srv.stop()
    assert status == 200 and "the Kubernetes Secret devenv/devenv-bot-credentials" in page
    assert restarts == [False]  # exit: the kubelet restarts the pod with the Secret in its environment
    assert not (tmp_path / ".env").exists()
    import base64

    secret = kube.get("secrets", "devenv", "devenv-bot-credentials")
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data["APP_ID"] == str(github.app_id) and data["WEBHOOK_SECRET"] == github.webhook_secret
    assert data["PRIVATE_KEY"].startswith("-----BEGIN") and "\n" in data["PRIVATE_KEY"]
    loaded = config.load({**setup_environ(github, tmp_path), **data})
    assert loaded.app.app_id == str(github.app_id)


async def test_when_the_secret_cannot_be_written_the_page_shows_the_exact_command(github, kube, tmp_path, caplog):
    env = {**setup_environ(github, tmp_path), "DEVENV_CREDENTIALS_SECRET": "devenv-bot-credentials",
           "KUBECONFIG": str(kube.write_kubeconfig(tmp_path / "kubeconfig", "devenv"))}
    kube.inject("POST", "/namespaces/devenv/secrets", 403, "Forbidden")
    settings = config.load(env, env_file=tmp_path / ".env")
    restarts: list[bool] = []
    srv = await BotServer(settings).start()
    from bot.setup.routes import SETUP_KEY

    srv.app[SETUP_KEY].on_registered = restarts.append
    try:
        async with browser() as session:
            status, page, _ = await register(session, srv.url, token_of(srv))
    finally:
        await srv.stop()
    page = html.unescape(page)
    assert status == 200 and restarts == []
    assert "could not write the Kubernetes Secret devenv/devenv-bot-credentials (the Kubernetes API answered 403)" in page
    assert (f"kubectl -n devenv create secret generic devenv-bot-credentials --from-literal=APP_ID={github.app_id} "
            f"--from-literal=WEBHOOK_SECRET={github.webhook_secret}") in page
    assert "--from-file=PRIVATE_KEY=devenv-bot.private-key.pem" in page and "-----BEGIN" in page
    assert kube.objects("secrets") == []
    assert github.webhook_secret not in caplog.text and "-----BEGIN" not in caplog.text


async def test_setup_states_expire_after_an_hour_and_are_bounded_in_number(github, tmp_path):
    from bot.setup.routes import SETUP_KEY

    now = [1000.0]
    settings = config.load(setup_environ(github, tmp_path), env_file=tmp_path / ".env")
    srv = await BotServer(settings).start()
    states = srv.app[SETUP_KEY].states
    states.clock = lambda: now[0]
    try:
        _, page = await srv.get(f"/?token={token_of(srv)}")
        state = form_of(page)[0].split("state=", 1)[1]
        now[0] += 3601
        status, page = await srv.get(f"/setup/callback?code=abc&state={state}")
        for _ in range(3 * states.limit):  # a script reloading the page
            states.issue()
    finally:
        await srv.stop()
    assert status == 400 and "over an hour old" in page
    assert github.manifest_conversions == []
    assert len(states) == states.limit


def test_the_secrets_namespace_follows_the_context_the_bots_client_uses(tmp_path):
    import json as _json

    from bot.cluster.kube import kubeconfig_namespace
    from bot.settings.kube import KubeSettings

    path = tmp_path / "kubeconfig"
    path.write_text(_json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "dev",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "dev", "context": {"cluster": "c", "user": "u", "namespace": "dev-ns"}},
                     {"name": "prod", "context": {"cluster": "c", "user": "u", "namespace": "devenv-bot"}}]}))
    assert kubeconfig_namespace(KubeSettings(kubeconfig=path)) == "dev-ns"
    assert kubeconfig_namespace(KubeSettings(kubeconfig=path, context="prod")) == "devenv-bot"
    assert kubeconfig_namespace(KubeSettings(kubeconfig=tmp_path / "missing")) is None
