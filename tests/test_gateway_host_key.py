"""The gateway's host key on Kubernetes: kept in a Secret, made once, the same for every replica and
restart, read and created within the Role deploy/components/ssh-gateway grants, never logged.

The Kubernetes API is tests/k8s_fake with the RBAC rules rendered from deploy/ (as tests/test_rbac.py
does): a request the rules do not allow is a 403 that fails the test, and every object written is
validated as the API server would.
"""

from __future__ import annotations

import asyncio
import base64
import logging

import asyncssh
import pytest
from kubernetes.client import ApiClient, Configuration

from bot.gateway import keys
from bot.services import host_key_source
from bot.settings import config
from tests.eventually import eventually
from tests.k8s_fake import FakeKube, Policy
from tests.test_deploy import bot_config, render

BOT_ACCOUNT = ("devenv-bot", "devenv-bot")
NAME = "devenv-bot-ssh-host-key"


@pytest.fixture
def kube():
    """The fake, enforcing the rules of the base plus every Component (the ssh-gateway one included)."""
    fake = FakeKube(rbac=Policy.from_manifests(render("all-components"), service_account=BOT_ACCOUNT)).start()
    try:
        yield fake
    finally:
        fake.close()
    fake.assert_valid()


def in_secret(kube, tmp_path, name: str = NAME) -> keys.SecretHostKey:
    return keys.SecretHostKey("devenv-bot", name, lambda: ApiClient(Configuration(host=kube.url)),
                              seed=keys.host_key_path(tmp_path))


def stored_fingerprint(kube, name: str = NAME) -> str:
    secret = kube.get("secrets", "devenv-bot", name)
    return keys.fingerprint(asyncssh.import_private_key(base64.b64decode(secret["data"][keys.SECRET_KEY])))


def posts(kube) -> list[int]:
    return [c.status for c in kube.calls if c.method == "POST" and c.path.endswith("/secrets")]


async def test_the_host_key_is_created_once_in_the_secret_and_reused_on_restart(kube, tmp_path):
    first = await in_secret(kube, tmp_path).load()
    again = await in_secret(kube, tmp_path).load()  # a restart: a new process, the same Secret
    assert keys.fingerprint(first) == keys.fingerprint(again) == stored_fingerprint(kube)
    assert posts(kube) == [201]  # created once, then only read
    [secret] = kube.objects("secrets", "devenv-bot")
    assert secret["type"] == "Opaque" and set(secret["data"]) == {keys.SECRET_KEY}
    assert not keys.host_key_path(tmp_path).exists()  # nothing on the volume
    assert not [c for c in kube.calls if c.method in ("PUT", "PATCH", "DELETE")]  # never rewritten
    assert kube.exercised == {("", "secrets", "get"), ("", "secrets", "create")}


async def test_two_replicas_starting_at_once_agree_on_one_key(kube, tmp_path):
    # Both read "not found" before either creates: the race the 409 path resolves.
    kube.hang("GET", f"/secrets/{NAME}", times=2)
    loads = asyncio.gather(in_secret(kube, tmp_path).load(), in_secret(kube, tmp_path / "other").load())
    await eventually(lambda: len(kube.hanging) == 2, what="both replicas read the missing Secret")
    kube.release()
    one, other = await loads
    assert keys.fingerprint(one) == keys.fingerprint(other) == stored_fingerprint(kube)
    assert sorted(posts(kube)) == [201, 409]  # the loser read the winner's key instead of its own


async def test_an_existing_state_directory_key_moves_into_the_secret_so_users_keep_their_pin(kube, tmp_path):
    before = keys.host_key(tmp_path)  # made by an earlier version, on the volume
    loaded = await in_secret(kube, tmp_path).load()
    assert keys.fingerprint(loaded) == keys.fingerprint(before) == stored_fingerprint(kube)


async def test_a_secret_without_a_readable_key_is_reported_never_replaced(kube, tmp_path):
    kube.put_object("secrets", "devenv-bot", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": NAME},
                                              "data": {"other": base64.b64encode(b"x").decode()}})
    with pytest.raises(keys.HostKeyUnavailable, match=f"devenv-bot/{NAME} has no readable SSH host key"):
        await in_secret(kube, tmp_path).load()
    assert kube.writes() == []


async def test_without_the_component_s_role_the_key_is_unavailable_not_made_up(tmp_path):
    fake = FakeKube(rbac=Policy.from_manifests(render("base"), service_account=BOT_ACCOUNT)).start()
    try:
        with pytest.raises(keys.HostKeyUnavailable, match="the Kubernetes API answered 403"):
            await in_secret(fake, tmp_path).load()
    finally:
        fake.close()
    assert fake.forbidden and not fake.objects("secrets", "devenv-bot")


async def test_the_key_never_reaches_a_log_line(kube, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    key = await in_secret(kube, tmp_path).load()
    await in_secret(kube, tmp_path).load()
    pem = key.export_private_key()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert f"SSH host key stored in the Kubernetes Secret devenv-bot/{NAME}" in text
    body_line = pem.decode().splitlines()[1]
    assert body_line not in text and base64.b64encode(pem).decode()[:40] not in text
    from bot.core import logs

    assert body_line not in logs.redactor(f"oops {pem.decode()} {base64.b64encode(pem).decode()}")


def test_the_secret_is_used_exactly_when_the_credentials_are_kept_in_kubernetes(kube, tmp_path):
    env = {"DEVENV_STATE_DIR": str(tmp_path), "DEVENV_SSH_PORT": "2222", "DEVENV_SSH_HOST": "ssh.example.com",
           "KUBECONFIG": str(kube.write_kubeconfig(tmp_path / "kubeconfig", "devenv-bot"))}
    outside = host_key_source(config.load(env))
    assert isinstance(outside, keys.FileHostKey) and outside.path == tmp_path / "ssh" / "host_ed25519"
    inside = host_key_source(config.load({**env, "DEVENV_CREDENTIALS_SECRET": "devenv-bot-credentials"}))
    assert isinstance(inside, keys.SecretHostKey)
    assert inside.describe() == f"the Kubernetes Secret devenv-bot/{NAME}"  # the kubeconfig context's namespace
    named = host_key_source(config.load({**env, "DEVENV_CREDENTIALS_SECRET": "devenv-bot-credentials",
                                         "DEVENV_SSH_HOST_KEY_SECRET": "ops/gateway-key"}))
    assert named.describe() == "the Kubernetes Secret ops/gateway-key"


def test_the_component_s_role_names_the_secret_the_bot_uses_by_default():
    from bot.settings import variables as var

    objects = render("all-components")
    assert var.SSH_HOST_KEY_SECRET.preset() == NAME
    assert "DEVENV_SSH_HOST_KEY_SECRET" not in bot_config(objects)  # the default, which the Role names
    [role] = [o for o in objects if o["kind"] == "Role" and o["metadata"]["name"] == NAME]
    assert any(rule.get("resourceNames") == [NAME] for rule in role["rules"])


async def test_the_cli_prints_the_fingerprint_of_the_key_in_the_secret(kube, tmp_path):
    from tests.test_cli import run

    env = {"DEVENV_STATE_DIR": str(tmp_path / "state"), "DEVENV_SSH_PORT": "2222",
           "DEVENV_SSH_HOST": "ssh.example.com", "DEVENV_CREDENTIALS_SECRET": "devenv-bot-credentials",
           "KUBECONFIG": str(kube.write_kubeconfig(tmp_path / "kubeconfig", "devenv-bot"))}
    status, out = await run(env, tmp_path, "ssh-host-key")
    assert status == 0, out
    assert out.strip().splitlines()[-1] == stored_fingerprint(kube)
    status, again = await run(env, tmp_path, "ssh-host-key")
    assert again.strip().splitlines()[-1] == stored_fingerprint(kube) and posts(kube) == [201]
    assert not (tmp_path / "state" / "ssh" / "host_ed25519").exists()


async def test_the_running_gateway_serves_the_secret_s_key_and_shows_its_fingerprint(environ, kube, tmp_path):
    from tests.botserver import BotServer

    env = {**environ, "DEVENV_SSH_PORT": "0", "DEVENV_SSH_HOST": "ssh.devenv.example.com",
           "DEVENV_CREDENTIALS_SECRET": "devenv-bot-credentials",
           "KUBECONFIG": str(kube.write_kubeconfig(tmp_path / "kubeconfig", "devenv-bot"))}
    srv = await BotServer(config.load(env)).start()
    try:
        status, page = await srv.get("/")
        scan = await asyncio.create_subprocess_exec(
            "ssh-keyscan", "-t", "ed25519", "-p", str(srv.bot.gateway.port), "127.0.0.1",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        out, _ = await asyncio.wait_for(scan.communicate(), 30)
    finally:
        await srv.stop()
    assert status == 200 and f"Host key fingerprint: {stored_fingerprint(kube)}" in page
    [line] = [ln for ln in out.decode().splitlines() if "ssh-ed25519" in ln]  # what OpenSSH is shown
    served = asyncssh.import_public_key(line.split(None, 1)[1])
    assert keys.fingerprint(served) == stored_fingerprint(kube)
    assert not keys.host_key_path(environ["DEVENV_STATE_DIR"]).exists()


async def test_serve_refuses_to_start_rather_than_serve_another_key_when_the_secret_is_forbidden(environ, tmp_path):
    from tests.test_cli import run

    fake = FakeKube(rbac=Policy.from_manifests(render("base"), service_account=BOT_ACCOUNT)).start()  # no Role
    try:
        env = {**environ, "PORT": "0", "DEVENV_SSH_PORT": "0", "DEVENV_SSH_HOST": "ssh.devenv.example.com",
               "DEVENV_CREDENTIALS_SECRET": "devenv-bot-credentials",
               "KUBECONFIG": str(fake.write_kubeconfig(tmp_path / "kubeconfig", "devenv-bot"))}
        status, out = await run(env, tmp_path, "serve")
    finally:
        fake.close()
    assert status == 1, out
    assert (f"devenv-bot cannot start the SSH gateway: the SSH host key could not be read from the Kubernetes "
            f"Secret devenv-bot/{NAME} (the Kubernetes API answered 403); deploy/components/ssh-gateway's Role "
            "grants what the bot needs") in out
    assert "devenv-bot ready" not in out and "Unclosed" not in out and not (tmp_path / "state" / "ssh" / "host_ed25519").exists()
