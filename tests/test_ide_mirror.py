"""openvscode-server from a mirror: workspaces without internet get their IDE (issue 11 item 17).

The workspace downloads openvscode-server from github.com during ``up`` (CONTRACT §6); the IDE options
``DOWNLOAD_AMD64``/``DOWNLOAD_ARM64`` point it elsewhere. The stand-in fault ``offline`` makes the
download fail the way v0.6.15 did (§9) unless such an option names a mirror.
"""

from __future__ import annotations

import dataclasses

import pytest

from bot import devpod
from bot.devpod import Masker
from bot.settings import config
from tests import payloads
from tests.botserver import BotServer
from tests.devpod_rig import settings, standin, up  # noqa: F401  (fixtures)
from tests.observe import devenv_runs as checks

MIRROR = "https://mirror.internal.example/openvscode/openvscode-server-v1.84.2-linux-x64.tar.gz"
MIRROR_ARM = "https://mirror.internal.example/openvscode/openvscode-server-v1.84.2-linux-arm64.tar.gz"
WS = "hello-world-pr2-4d960c"


def ide_options(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == "--ide-option"]


def test_up_carries_the_mirror_options_only_when_set_and_only_for_openvscode(settings):
    assert ide_options(up(settings)) == []
    mirrored = dataclasses.replace(settings, ide_download_amd64=MIRROR, ide_download_arm64=MIRROR_ARM)
    assert ide_options(up(mirrored)) == [f"DOWNLOAD_AMD64={MIRROR}", f"DOWNLOAD_ARM64={MIRROR_ARM}"]
    assert ide_options(up(dataclasses.replace(settings, ide_download_arm64=MIRROR_ARM))) == [
        f"DOWNLOAD_ARM64={MIRROR_ARM}"]
    assert ide_options(up(mirrored, ide="none")) == []  # DevPod refuses options the IDE does not define


def test_the_mirror_settings_are_read_and_checked(tmp_path):
    read = devpod.DevPodSettings.from_env({"DEVENV_IDE_DOWNLOAD_AMD64": MIRROR}, tmp_path)
    assert read.ide_download_amd64 == MIRROR and read.ide_download_arm64 is None
    for bad, says in [("ftp://mirror/x.tar.gz", "http(s) URL"), ("https://mirror.example", "http(s) URL"),
                      ("https://user:pw@mirror.example/x.tar.gz", "must not carry credentials"),
                      ("https://mirror.example/x.tar.gz;rm", "http(s) URL"),
                      ("https://mirror.example/$(id).tar.gz", "http(s) URL")]:
        with pytest.raises(ValueError, match="DEVENV_IDE_DOWNLOAD_ARM64") as info:
            devpod.DevPodSettings.from_env({"DEVENV_IDE_DOWNLOAD_ARM64": bad}, tmp_path)
        assert says in str(info.value)


async def test_the_standin_fails_offline_without_a_mirror_and_installs_from_one(settings, standin):
    standin.inject(command="up", offline=True, times=0)
    failed = await devpod.run(up(settings), settings=settings, timeout=20, masker=Masker())
    assert failed.exit_code == 1
    assert [(ln.level, ln.message) for ln in failed.lines[-2:]] == [
        ("info", "extract vscode: decompress: tar reader next: unexpected EOF"),
        ("fatal", "run agent command: Process exited with status 1")]
    assert devpod.likely_cause(failed.errors()) == "ide"
    mirrored = dataclasses.replace(settings, ide_download_amd64=MIRROR)
    ok = await devpod.run(up(mirrored), settings=mirrored, timeout=20, masker=Masker())
    assert ok.ok, ok.errors()
    assert standin.workspace("hello-world-pr1-abcdef")["ide"]["options"]["DOWNLOAD_AMD64"]["value"] == MIRROR


async def test_the_standin_refuses_ide_options_the_ide_does_not_define(settings, standin):
    mirrored = dataclasses.replace(settings, ide_download_amd64=MIRROR)
    argv = up(mirrored, ide="none") + ["--ide-option", f"DOWNLOAD_AMD64={MIRROR}"]
    result = await devpod.run(argv, settings=settings, timeout=20, masker=Masker())
    assert result.exit_code == 1 and "invalid option 'DOWNLOAD_AMD64'" in result.errors()[-1]


async def test_an_air_gapped_failure_tells_the_operator_what_to_set_and_the_mirror_fixes_it(environ, repo, github,
                                                                                            devpod):
    devpod.inject(command="up", offline=True, times=0)
    srv = await BotServer(config.load(environ)).start()
    try:
        await srv.deliver("pull_request", payloads.pull_request("opened"))
        await srv.settle()
    finally:
        await srv.stop()
    [run] = checks(github)
    assert run["conclusion"] == "failure"
    assert "extract vscode" in run["output"]["text"]
    summary = run["output"]["summary"]
    assert "**Likely cause:** installing the IDE server" in summary
    assert "`DEVENV_IDE_DOWNLOAD_AMD64`" in summary and "`DEVENV_IDE_DOWNLOAD_ARM64`" in summary

    srv = await BotServer(config.load({**environ, "DEVENV_IDE_DOWNLOAD_AMD64": MIRROR})).start()
    try:
        comment = github.add_comment("Codertocat", "Hello-World", payloads.PR_NUMBER, "/devenv up")
        await srv.deliver("issue_comment", payloads.pr_comment("/devenv up", comment_id=comment["id"]))
        await srv.settle()
    finally:
        await srv.stop()
    assert checks(github)[-1]["conclusion"] == "success"
    assert ide_options(devpod.calls("up")[-1]["argv"]) == [f"DOWNLOAD_AMD64={MIRROR}"]


def test_a_failed_download_from_a_mirror_is_named_an_ide_install_failure():
    assert devpod.likely_cause(['Get "https://mirror.internal.example/x/server-linux-x64.tar.gz": dial tcp: '
                                'lookup mirror.internal.example: no such host']) == "ide"
