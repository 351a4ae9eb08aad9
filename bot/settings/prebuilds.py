"""Prebuilds: where prebuilt devcontainer images go and how ``devpod build`` reaches Docker (docs/prebuilds.md).

:class:`PrebuildSettings` exists only when ``DEVENV_PREBUILD_REPOSITORY`` is set (prebuilds are off
otherwise).  The registry's credentials are never read by the bot: ``DEVENV_PREBUILD_DOCKER_CONFIG``
names the directory where the deployment mounts them (a Docker ``config.json`` from a Secret), and
only the ``devpod build`` process is told where it is.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bot.settings import variables as var
from bot.settings.reader import Reader


@dataclasses.dataclass(frozen=True, kw_only=True)
class PrebuildSettings:
    """Where prebuilds go and how they are built."""

    repository: str  # the image repository prefix; a repository's images live at <it>/<owner>/<repo>
    docker_host: str | None = None  # DOCKER_HOST for `devpod build` (None: Docker's default socket)
    docker_config: Path | None = None  # DOCKER_CONFIG for `devpod build` only (the registry's credentials)
    timeout: float = var.PREBUILD_TIMEOUT.preset()


def read_prebuilds(r: Reader) -> PrebuildSettings | None:
    """The prebuild section, or None without ``DEVENV_PREBUILD_REPOSITORY``; problems go to ``r``."""
    repository = r.get(var.PREBUILD_REPOSITORY)
    docker_host, docker_config = r.get(var.PREBUILD_DOCKER_HOST), r.get(var.PREBUILD_DOCKER_CONFIG)
    timeout = r.value(var.PREBUILD_TIMEOUT)
    if not repository:
        return None
    return PrebuildSettings(repository=repository, docker_host=docker_host, docker_config=docker_config,
                            timeout=timeout)
