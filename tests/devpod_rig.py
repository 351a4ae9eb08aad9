"""What the DevPod tests share: a stand-in ``devpod``, settings that point at it, an ``up`` argv.

Import the fixtures by name (``from tests.devpod_rig import settings, standin``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import devpod
from bot.devpod import DevPodSettings
from tests.standin import DevPodStandIn

#: An installation token's shape; the masker must hide it wherever it shows up.
TOKEN = "ghs_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


@pytest.fixture
def standin(tmp_path: Path) -> DevPodStandIn:
    return DevPodStandIn(tmp_path / "devpod-home", provider_configured=True)


@pytest.fixture
def settings(standin: DevPodStandIn) -> DevPodSettings:
    s = DevPodSettings(
        home=standin.home, binary=str(standin.binary), path=standin.search_path, kill_grace=0.5, namespace="devenv"
    )
    devpod.prepare_dirs(s)
    return s


def up(settings: DevPodSettings, ws: str = "hello-world-pr1-abcdef", **kw) -> list[str]:
    return devpod.up_argv(settings, ws, "git:https://github.com/Codertocat/Hello-World@pull/1/head", **kw)
