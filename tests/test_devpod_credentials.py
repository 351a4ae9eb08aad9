"""Git credentials reach DevPod's git through one process's environment and a secret-free askpass script."""

from __future__ import annotations

import json
import stat
import subprocess

from bot import devpod
from bot.devpod import Masker
from tests.devpod_rig import TOKEN, settings, standin, up  # noqa: F401  (fixtures)


def test_the_askpass_script_answers_git_from_the_environment_only(tmp_path):
    path = devpod.write_askpass(tmp_path / "bin")
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert TOKEN not in path.read_text()
    mtime = path.stat().st_mtime_ns
    assert devpod.write_askpass(tmp_path / "bin") == path and path.stat().st_mtime_ns == mtime  # idempotent
    env = devpod.git_credential_env(TOKEN, path)
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    ask = lambda prompt: subprocess.run([str(path), prompt], env=env, capture_output=True, text=True).stdout  # noqa: E731
    assert ask("Username for 'https://github.com': ") == "x-access-token\n"
    assert ask("Password for 'https://x-access-token@github.com': ") == TOKEN + "\n"


async def test_the_token_reaches_git_through_the_environment_only(settings, standin, tmp_path):
    askpass = devpod.write_askpass(tmp_path / "askpass")
    masker = Masker([TOKEN])
    result = await devpod.run(
        up(settings), settings=settings, timeout=20, masker=masker, env_extra=devpod.git_credential_env(TOKEN, askpass)
    )
    assert result.ok
    call = standin.calls("up")[-1]
    assert call["git_askpass"] and call["git_token_env"] and call["git_terminal_prompt"] == "0"
    assert TOKEN not in " ".join(call["argv"])
    assert TOKEN not in (standin.home / "standin-calls.jsonl").read_text()
    clone = json.loads((standin.container_dir("hello-world-pr1-abcdef") / ".standin-source.json").read_text())
    assert clone["askpassAnswered"] is True
