"""How to run the coding agent: :class:`AgentSettings`, read once from the environment at start-up.

The rest of an agent run lives next to this module (see :mod:`bot.agent`): the remote
script and its stdin payload (``remote``), the stream-json parser (``stream``), the rolling
view of progress (``progress``) and the run itself (``run``).
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from collections.abc import Mapping, Sequence

from bot.devpod import driver as devpod

__all__ = ["DEFAULT_AGENT_COMMAND", "AgentSettings"]

#: ``--output-format stream-json`` needs ``--verbose`` in print mode (FACTS §D).
DEFAULT_AGENT_COMMAND = ["claude", "-p", "--output-format", "stream-json", "--verbose"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PROGRAM = re.compile(r"^[A-Za-z0-9_./+-]+$")
#: Names the stdin header may not set: they would change how the script or the shells run.
_RESERVED_ENV = frozenset(
    {"IFS", "PATH", "ENV", "BASH_ENV", "SHELL", "HOME", "PS4", "LD_PRELOAD", "LD_LIBRARY_PATH", "IS_SANDBOX"}
)


# --------------------------------------------------------------------------- settings


@dataclasses.dataclass(frozen=True, kw_only=True)
class AgentSettings:
    """How to run the agent: argv, credentials, limits (seconds and bytes)."""

    command: tuple[str, ...] = tuple(DEFAULT_AGENT_COMMAND)
    #: Wall-clock limit of one run.
    timeout: float = 30 * 60
    #: The agent's API key; handed over on stdin as ``env_name``. Never logged.
    api_key: str | None = dataclasses.field(default=None, repr=False)
    env_name: str = "ANTHROPIC_API_KEY"
    max_prompt_bytes: int = 16000
    #: After SIGINT, how long the agent gets to write its final result before SIGTERM.
    interrupt_grace: float = 30.0
    #: After SIGTERM (and again after SIGKILL), how long to wait for the agent to go.
    term_grace: float = 10.0
    #: Time limit of each ``devpod ssh --command "kill ..."``.
    signal_timeout: float = 60.0
    #: Rolling view: how many recent messages and raw output lines are kept.
    max_messages: int = 8
    max_tail_lines: int = 40
    #: Longer stream lines are cut (and then kept as raw text, not parsed).
    max_line_bytes: int = 256 * 1024

    def __post_init__(self) -> None:
        _validate_command(self.command, self.api_key)
        if not _NAME.match(self.env_name) or self.env_name in _RESERVED_ENV:
            raise ValueError(f"DEVENV_AGENT_ENV_NAME must be an environment variable name, got {self.env_name!r}")
        if self.api_key is not None and ("\n" in self.api_key or "\0" in self.api_key or not self.api_key):
            raise ValueError("DEVENV_AGENT_API_KEY must be one non-empty line")
        if self.max_prompt_bytes < 1:
            raise ValueError(f"DEVENV_AGENT_MAX_PROMPT_BYTES must be positive, got {self.max_prompt_bytes}")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AgentSettings:
        """Read ``DEVENV_AGENT_COMMAND`` (a shell-like string), ``DEVENV_AGENT_TIMEOUT``,
        ``DEVENV_AGENT_API_KEY`` (falling back to ``ANTHROPIC_API_KEY``),
        ``DEVENV_AGENT_MAX_PROMPT_BYTES``, ``DEVENV_AGENT_ENV_NAME`` and
        ``DEVENV_AGENT_CANCEL_GRACE``; ValueError names the bad variable."""

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        kw: dict[str, object] = {}
        if (raw := get("DEVENV_AGENT_COMMAND")) is not None:
            try:
                kw["command"] = tuple(shlex.split(raw))
            except ValueError as exc:
                raise ValueError(f"DEVENV_AGENT_COMMAND is not a valid command line: {exc}") from None
        if (raw := get("DEVENV_AGENT_TIMEOUT")) is not None:
            kw["timeout"] = devpod._seconds("DEVENV_AGENT_TIMEOUT", raw)  # noqa: SLF001  (one parser for durations)
        if (raw := get("DEVENV_AGENT_CANCEL_GRACE")) is not None:
            kw["interrupt_grace"] = devpod._seconds("DEVENV_AGENT_CANCEL_GRACE", raw)  # noqa: SLF001
        key = env.get("DEVENV_AGENT_API_KEY", "").strip() or env.get("ANTHROPIC_API_KEY", "").strip()
        if key:
            kw["api_key"] = key
        if (raw := get("DEVENV_AGENT_MAX_PROMPT_BYTES")) is not None:
            if not raw.isdigit() or int(raw) < 1:
                raise ValueError(f"DEVENV_AGENT_MAX_PROMPT_BYTES must be a positive number of bytes, got {raw!r}")
            kw["max_prompt_bytes"] = int(raw)
        if (raw := get("DEVENV_AGENT_ENV_NAME")) is not None:
            kw["env_name"] = raw
        return cls(**kw)  # type: ignore[arg-type]


def _validate_command(command: Sequence[str], api_key: str | None) -> None:
    if not command:
        raise ValueError(
            "DEVENV_AGENT_COMMAND must name a program, e.g. 'claude -p --output-format stream-json --verbose'"
        )
    if not _PROGRAM.match(command[0]):
        raise ValueError(f"DEVENV_AGENT_COMMAND must start with a program name or path, got {command[0]!r}")
    for arg in command:
        if "\0" in arg or "\n" in arg or "\r" in arg:
            raise ValueError("DEVENV_AGENT_COMMAND arguments must not contain line breaks or NUL")
        if api_key and len(api_key) >= 6 and api_key in arg:
            raise ValueError("DEVENV_AGENT_COMMAND must not contain the API key; set DEVENV_AGENT_API_KEY instead")
    if command[0].rsplit("/", 1)[-1] == "claude":
        args = list(command[1:])
        fmt = next((a.split("=", 1)[1] for a in args if a.startswith("--output-format=")), None)
        if "--output-format" in args[:-1]:
            fmt = args[args.index("--output-format") + 1]
        if not ({"-p", "--print"} & set(args)) or fmt != "stream-json" or "--verbose" not in args:
            raise ValueError(
                "DEVENV_AGENT_COMMAND must run claude with -p --output-format stream-json --verbose "
                "(the bot follows the agent through its JSON stream)"
            )
