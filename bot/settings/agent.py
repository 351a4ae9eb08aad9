"""How to run the coding agent: its command line, API key, limits (docs/agent.md).

:class:`AgentSettings` checks itself on construction, not only at start-up: a repository's
``.github/devenv.yml`` may replace the command (``dataclasses.replace`` in bot.agent.runs),
and the replacement must pass the same checks (:func:`bot.settings.kinds.check_command`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from bot.settings import variables as var
from bot.settings.kinds import check_command, check_env_name
from bot.settings.reader import Reader


@dataclasses.dataclass(frozen=True, kw_only=True)
class AgentSettings:
    """How to run the agent: argv, credentials, limits (seconds and bytes)."""

    command: tuple[str, ...] = var.AGENT_COMMAND.preset()
    #: Wall-clock limit of one run.
    timeout: float = var.AGENT_TIMEOUT.preset()
    #: The agent's API key; handed over on stdin as ``env_name``. Never logged.
    api_key: str | None = dataclasses.field(default=None, repr=False)
    env_name: str = var.AGENT_ENV_NAME.preset()
    max_prompt_bytes: int = var.AGENT_MAX_PROMPT_BYTES.preset()
    #: After SIGINT, how long the agent gets to write its final result before SIGTERM.
    interrupt_grace: float = var.AGENT_CANCEL_GRACE.preset()
    #: After SIGTERM (and again after SIGKILL), how long to wait for the agent to go.
    term_grace: float = 10.0
    #: Time limit of each ``devpod ssh --command "kill ..."``.
    signal_timeout: float = 60.0
    #: Rolling view: how many recent messages and raw output lines are kept.
    max_messages: int = 8
    max_tail_lines: int = 40
    #: Longer stream lines are cut (and then kept as raw text, not parsed).
    max_line_bytes: int = 256 * 1024
    #: Least seconds between two updates of a run's check run (0: every event).
    progress_interval: float = var.AGENT_PROGRESS_INTERVAL.preset()

    def __post_init__(self) -> None:
        check_command(self.command, self.api_key)
        check_env_name(self.env_name)
        if self.api_key is not None and ("\n" in self.api_key or "\0" in self.api_key or not self.api_key):
            raise ValueError("DEVENV_AGENT_API_KEY must be one non-empty line")
        if self.max_prompt_bytes < 1:
            raise ValueError(f"DEVENV_AGENT_MAX_PROMPT_BYTES must be positive, got {self.max_prompt_bytes}")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AgentSettings:
        """The agent section alone; ValueError lists every problem."""
        r = Reader(env)
        settings = read_agent(r)
        r.check()
        return settings


def read_agent(r: Reader) -> AgentSettings:
    """The agent section (always on: without a key, ``/devenv agent run`` says how to set one)."""
    try:
        return AgentSettings(
            command=r.value(var.AGENT_COMMAND), timeout=r.value(var.AGENT_TIMEOUT),
            api_key=r.get(var.AGENT_API_KEY) or r.get(var.ANTHROPIC_API_KEY),
            env_name=r.value(var.AGENT_ENV_NAME), max_prompt_bytes=r.value(var.AGENT_MAX_PROMPT_BYTES),
            interrupt_grace=r.value(var.AGENT_CANCEL_GRACE), progress_interval=r.value(var.AGENT_PROGRESS_INTERVAL))
    except ValueError as exc:  # the command holds the key: only the two together tell
        r.problem(str(exc))
        return AgentSettings()
