"""A repository's ``ssh.permission`` raises what the gateway asks of a user, never lowers it.

Real OpenSSH client, real bot app, the settings file served by the GitHub emulator at the PR's base
(fixtures of :mod:`tests.test_gateway`).
"""

from __future__ import annotations

import pytest

from tests.test_gateway import devenv_yml, gateway_bot, pytestmark, user  # noqa: F401  (fixtures, marks)


@pytest.mark.parametrize("devenv_yml", ["ssh: {permission: admin}\n"])
async def test_a_repository_asking_for_admin_refuses_a_writer_and_lets_an_admin_in(gateway_bot, github, tmp_path):
    writer = user(github, tmp_path, gateway_bot, "wanda", role="write")
    refused = await writer.ssh("true")
    assert refused.returncode == 255
    assert "wanda has write access to Codertocat/Hello-World; a shell needs admin" in refused.stderr.decode()
    admin = user(github, tmp_path, gateway_bot, "ada", role="admin")
    done = await admin.ssh("echo in")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"in\n"


@pytest.mark.parametrize("devenv_yml", ["ssh: {permission: write}\n"])
async def test_a_repository_cannot_go_below_the_operators_level(gateway_bot, github, tmp_path):
    gateway_bot.bot.gateway.doorman.need = "admin"  # DEVENV_SSH_PERMISSION=admin
    writer = user(github, tmp_path, gateway_bot, "wanda", role="write")
    refused = await writer.ssh("true")
    assert refused.returncode == 255
    assert "a shell needs admin" in refused.stderr.decode()
