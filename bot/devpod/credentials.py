"""Git credentials for the one DevPod process that clones a private repository.

DevPod runs ``git`` on the bot host (CONTRACT §1.2). The installation token reaches that
git through the environment of that one subprocess and an askpass script that holds no
secret itself: never argv, never a file, never the workspace (pair it with the hardened
context option ``SSH_INJECT_GIT_CREDENTIALS=false``; §4.4).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["GIT_TOKEN_ENV", "git_credential_env", "write_askpass"]

#: Name of the env var that carries the installation token to the askpass script.
GIT_TOKEN_ENV = "DEVENV_GIT_TOKEN"

_ASKPASS = f"""#!/bin/sh
# git askpass helper written by devenv-bot. It holds no secret: the token comes from
# the environment of the one DevPod process that needs it.
case "$1" in
  Username*) printf '%s\\n' x-access-token ;;
  *) printf '%s\\n' "${GIT_TOKEN_ENV}" ;;
esac
"""


def write_askpass(directory: Path) -> Path:
    """Write the askpass script into ``directory`` (mode 0700) unless it is already there."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / "git-askpass.sh"
    try:
        if path.read_text() == _ASKPASS and (path.stat().st_mode & 0o777) == 0o700:
            return path
    except OSError:
        pass
    tmp = directory / f".git-askpass.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o700)
    with os.fdopen(fd, "w") as f:
        f.write(_ASKPASS)
    os.chmod(tmp, 0o700)
    os.replace(tmp, path)
    return path


def git_credential_env(token: str, askpass_path: Path) -> dict[str, str]:
    """env_extra that lets git (run by DevPod on the bot host; §1.2) fetch a private repo.

    The token travels only in the environment of that one subprocess: never in argv,
    never on disk. Pair it with ``SSH_INJECT_GIT_CREDENTIALS=false`` so it is not
    forwarded into the workspace (§4.4).
    """
    if not token:
        raise ValueError("empty token")
    return {"GIT_ASKPASS": str(askpass_path), "GIT_TERMINAL_PROMPT": "0", GIT_TOKEN_ENV: token}
