"""``ssh.permission`` in ``.github/devenv.yml``: who may have a shell through the SSH gateway."""

from __future__ import annotations

import pytest

from bot.repo_settings.schema import RepoSettings, SettingsError
from bot.repo_settings.validate import parse_settings


def problems(text: str) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        parse_settings(text)
    return caught.value.problems


def test_without_the_section_the_operator_decides():
    assert RepoSettings().ssh_permission is None
    assert parse_settings("on_push: sync").ssh_permission is None
    assert parse_settings("ssh:").ssh_permission is None


def test_a_repository_may_ask_for_admin_or_maintain():
    assert parse_settings("ssh: {permission: admin}").ssh_permission == "admin"
    assert parse_settings("ssh:\n  permission: maintain\n").ssh_permission == "maintain"


def test_a_shell_for_readers_is_refused_with_the_reason():
    assert problems("ssh: {permission: read}") == [
        "ssh.permission: 'read' is too low: a shell runs code in the environment, so it needs at least write"
        " (and never less than the operator's DEVENV_SSH_PERMISSION)"]


def test_bad_values_get_precise_errors():
    assert problems("ssh: {permission: admn}") == ["ssh.permission: 'admn' is not one of none, read, triage, write,"
                                                   " maintain, admin; did you mean admin?"]
    assert problems("ssh: admin") == ["ssh: expected a mapping such as {permission: admin}, found 'admin'"]
    assert problems("ssh: {permision: admin}")[0].startswith("ssh.permision: is not a setting; did you mean permission")
    assert problems("ssh: {permission: }") == ["ssh.permission: has no value; write one of none, read, triage,"
                                               " write, maintain, admin, or remove the line for the default"]
