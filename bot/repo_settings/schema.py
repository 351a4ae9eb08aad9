"""Per-repository settings: what ``.github/devenv.yml`` can say, and what applies without it.

Design.  The file is read through the contents API at the PR's *base* SHA,
never at its head: the head is whatever the PR's author pushed (a fork, an
outsider), while the base branch only holds what people with write access
merged.  A PR that edits ``.github/devenv.yml`` therefore changes nothing until
it is merged, which is the point: the file decides who may run code
(``permissions``) and what the bot runs (``agent.command``).

This module holds the values only: frozen dataclasses whose defaults are the
settings of a repository without the file, the limits the checks enforce, and
:class:`SettingsError`.  Checking the text is :mod:`bot.repo_settings.validate`,
reading it from GitHub :mod:`bot.repo_settings.loader`.

The settings, their defaults and a full example are in ``docs/repo-settings.md``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Final, Literal

from bot.devpod import ID_MAX_LEN
from bot.github.permissions import REQUIRED_PERMISSION_DEFAULTS

__all__ = [
    "SETTINGS_PATH",
    "DOCS_URL",
    "MAX_BYTES",
    "ON_PUSH_CHOICES",
    "IDE_CHOICES",
    "PORT_PERMISSIONS",
    "CODE_RUNNING_VERBS",
    "CODE_RUNNING_FLOOR",
    "PORT_NAME_MAX",
    "RESERVED_PORTS",
    "RESERVED_PORT_NAMES",
    "DEFAULT_IDLE_STOP",
    "DEFAULT_DELETE_AFTER",
    "DEFAULT_EXTEND_BY",
    "DEFAULT_EXTEND_MAX",
    "Port",
    "RepoAgentSettings",
    "RepoSettings",
    "SSH_KEYS",
    "CLONE_STRATEGIES",
    "RepoPrebuildSettings",
    "SettingsError",
]

SETTINGS_PATH: Final = ".github/devenv.yml"
DOCS_URL: Final = "https://github.com/devenv-bot/devenv-bot/blob/main/docs/repo-settings.md"
#: Larger files are refused unread: settings fit in a few hundred bytes.
MAX_BYTES: Final = 64 * 1024

OnPush = Literal["sync", "recreate", "ignore"]
Ide = Literal["openvscode", "none"]
PortPermission = Literal["read", "write"]

ON_PUSH_CHOICES: Final[tuple[str, ...]] = ("sync", "recreate", "ignore")
IDE_CHOICES: Final[tuple[str, ...]] = ("openvscode", "none")
PORT_PERMISSIONS: Final[tuple[str, ...]] = ("read", "write")

#: Verbs that start or change code running in the environment.  A repository
#: may raise what they need, never lower it below ``write``: whoever can merely
#: read (on a public repository: anyone) must not be able to run code.
CODE_RUNNING_VERBS: Final[tuple[str, ...]] = ("up", "recreate", "reset", "approve", "agent run")
CODE_RUNNING_FLOOR: Final = "write"

#: A port is served on ``<name>-<workspace id>.<preview domain>``; that first
#: part must stay one DNS label (63 characters) with the longest workspace id.
PORT_NAME_MAX: Final = 63 - 1 - ID_MAX_LEN
#: OpenVSCode's in-container server (CONTRACT §6).
RESERVED_PORTS: Final = frozenset({10800})
#: ``code-<workspace id>`` is the IDE's own host name.
RESERVED_PORT_NAMES: Final = frozenset({"code"})

#: The keys of the ``ssh`` section: ``permission``, the least repository permission a gateway
#: shell needs (never below :data:`CODE_RUNNING_FLOOR`; the operator's ``DEVENV_SSH_PERMISSION``
#: is a floor the gateway applies on top: a repository may ask for more, never less).
SSH_KEYS: Final[tuple[str, ...]] = ("permission",)

#: ``devpod up --git-clone-strategy`` (CONTRACT §10); the first is the default (docs/prebuilds.md says what each costs).
CLONE_STRATEGIES: Final[tuple[str, ...]] = ("blobless", "full", "treeless", "shallow")

DEFAULT_IDLE_STOP: Final = 2 * 3600
DEFAULT_DELETE_AFTER: Final = 7 * 86400
#: ``/devenv extend`` (and the Extend button) without a duration, and the longest one it takes.
DEFAULT_EXTEND_BY: Final = 2 * 3600
DEFAULT_EXTEND_MAX: Final = 86400


@dataclasses.dataclass(frozen=True, slots=True)
class Port:
    """An application port in the environment, reachable at ``<name>-<workspace id>.<preview domain>``.

    ``permission`` is the least repository permission needed to open its link.
    """

    name: str
    port: int
    permission: PortPermission = "read"


@dataclasses.dataclass(frozen=True, slots=True)
class RepoAgentSettings:
    """The coding agent's section of the file: ``command`` is its argv (run without a shell), None
    for the bot's default.  (The operator's agent settings are :class:`bot.settings.agent.AgentSettings`.)"""

    command: tuple[str, ...] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class RepoPrebuildSettings:
    """The ``prebuild`` section: whether this repository uses the operator's prebuilds, and for which base
    branches (names or ``fnmatch`` patterns; None: the repository's default branch)."""

    enabled: bool = True
    branches: tuple[str, ...] | None = None


def _default_permissions() -> Mapping[str, str]:
    return REQUIRED_PERMISSION_DEFAULTS


@dataclasses.dataclass(frozen=True, slots=True)
class RepoSettings:
    """A repository's settings; ``RepoSettings()`` is what applies without a file.

    * ``auto_create``: create the environment when a PR is opened (or reopened,
      or marked ready); otherwise it waits for ``/devenv up``.
    * ``on_push``: after a push, ``sync`` follows the new head (``up --reset``
      once the workspace has no local changes), ``recreate`` rebuilds the
      container (``up --recreate``), ``ignore`` leaves the environment alone.
    * ``devcontainer_path``: the devcontainer.json to use, relative to the
      repository root; None lets DevPod look in the usual places.
    * ``ide``: ``openvscode`` (VS Code in the browser) or ``none`` (SSH only).
    * ``ports``: application ports to give preview links.
    * ``permissions``: the least GitHub permission per slash-command verb, the
      file's entries merged over :data:`bot.commands.REQUIRED_PERMISSION_DEFAULTS`.
    * ``idle_stop`` / ``delete_after``: seconds without activity before the
      environment is stopped / deleted; None means never.
    * ``extend_by`` / ``extend_max``: ``/devenv extend``'s default duration and the longest it
      takes (the ``extend`` section's ``by`` and ``max``), in seconds.
    * ``resources``: DevPod's ``RESOURCES`` provider option
      (``requests.cpu=500m,limits.memory=4Gi``), None for the operator's default.
    * ``agent``: the coding agent's settings.
    * ``ssh_permission``: the least permission for a shell through the SSH gateway (the ``ssh``
      section's ``permission``); None leaves it to the operator's ``DEVENV_SSH_PERMISSION``.
    * ``prebuild``: prebuilt images of the base branches (when the operator set a registry).
    * ``clone_strategy``: ``devpod up --git-clone-strategy`` (``blobless`` unless set).
    """

    auto_create: bool = True
    on_push: OnPush = "sync"
    devcontainer_path: str | None = None
    ide: Ide = "openvscode"
    ports: tuple[Port, ...] = ()
    permissions: Mapping[str, str] = dataclasses.field(default_factory=_default_permissions, hash=False)
    idle_stop: int | None = DEFAULT_IDLE_STOP
    delete_after: int | None = DEFAULT_DELETE_AFTER
    extend_by: int = DEFAULT_EXTEND_BY
    extend_max: int = DEFAULT_EXTEND_MAX
    resources: str | None = None
    agent: RepoAgentSettings = RepoAgentSettings()
    ssh_permission: str | None = None
    prebuild: RepoPrebuildSettings = RepoPrebuildSettings()
    clone_strategy: str = CLONE_STRATEGIES[0]

    def required_permission(self, verb: str) -> str:
        """The least permission ``verb`` needs in this repository (``write`` for a verb it does not know)."""
        return self.permissions.get(verb, "write")


class SettingsError(ValueError):
    """The settings file is wrong; ``problems`` says where and how to fix each mistake (plain text)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)
