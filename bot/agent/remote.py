"""What crosses ``devpod ssh`` for an agent run: the fixed remote script, its stdin, its markers.

All pure. One ``devpod ssh <id> --command <script>`` per run. The script is a fixed POSIX
``sh`` text built only from the shell-quoted agent argv (:func:`remote_script`); no prompt,
no secret and nothing a user typed is ever part of a command line, local or remote.
Everything variable travels on **stdin** (:func:`stdin_payload`): a header of
``NAME=VALUE`` lines (the API key, optional extra secrets such as a push token) ended by an
empty line, then the prompt bytes. The script ``read``s the header (``read`` takes one byte
at a time from a pipe, so the rest stays unread), ``export``s each line and hands the
remaining stdin, the prompt, to the agent untouched. No shell ever parses the prompt.

``devpod ssh`` exits 1 for any remote failure (CONTRACT §3), so the script prints markers
on stdout (:func:`parse_marker`): ``__DEVENV_PID=<pid>`` just before the agent starts (the
PID *is* the agent's: a child ``sh`` prints its ``$$`` and ``exec``s the agent),
``__DEVENV_RC=<code>`` after it ends, and ``__DEVENV_AGENT_MISSING=<program>`` when the
program is not installed.

Signals do not cross ``devpod ssh``: :func:`signal_command` is the ``--command`` of a second
``devpod ssh`` that stops the agent. It names the *run*, never a bare PID: a PID remembered
from before a container restart points into a fresh PID namespace where it may be anyone
(CONTRACT §9). Each run has a bot-made id (:func:`new_run_id`); the script exports
``__DEVENV_RUN=<id>`` into the agent's environment and writes the agent's PID to
``/tmp/devenv-agent-<id>.pid`` (removed when the agent ends). The signal command reads that
file and signals the PID only if ``/proc/<pid>/environ`` holds exactly that run id, so in a
fresh container (no file) or after PID reuse (another process) it does nothing.
"""

from __future__ import annotations

import re
import secrets
import shlex
from collections.abc import Mapping
from typing import Literal

# The stdin header obeys the same variable-name rules the settings check (kept beside AgentSettings).
from bot.settings.agent import AgentSettings
from bot.settings.kinds import ENV_NAME, RESERVED_ENV

__all__ = [
    "MISSING_EXIT_CODE",
    "AgentPromptError",
    "new_run_id",
    "parse_marker",
    "remote_script",
    "signal_command",
    "stdin_payload",
]

_PID_MARKER = "__DEVENV_PID="
_RC_MARKER = "__DEVENV_RC="
_MISSING_MARKER = "__DEVENV_AGENT_MISSING="
_MARKER = re.compile(r"^(__DEVENV_PID=|__DEVENV_RC=|__DEVENV_AGENT_MISSING=)(\S*)$")

#: Exit status the script reports when the agent program is missing (as a shell would).
MISSING_EXIT_CODE = 127
#: A run id: made by the bot (:func:`new_run_id`), checked before it is put in any script.
_RUN_ID = re.compile(r"[0-9a-f]{16,64}")


def new_run_id() -> str:
    return secrets.token_hex(16)


def _checked(run_id: str) -> str:
    if not _RUN_ID.fullmatch(run_id):
        raise ValueError(f"not a run id: {run_id!r}")
    return run_id


def _pid_file(run_id: str) -> str:
    return f"/tmp/devenv-agent-{_checked(run_id)}.pid"


class AgentPromptError(ValueError):
    """The prompt cannot be sent (empty or too long); the message is fit for the user."""


def remote_script(settings: AgentSettings, run_id: str) -> str:
    """The ``--command`` for ``devpod ssh``: fixed text plus the shell-quoted agent argv and the run id.

    It runs under ``sh`` whatever the user's login shell is (devpod runs ``<login shell> -c
    CMD``; CONTRACT §3). Holds no secret and nothing user-supplied.
    """
    program = shlex.quote(settings.command[0])
    agent = shlex.join(settings.command)
    pid_file = _pid_file(run_id)
    script = f"""set -u
while IFS= read -r __devenv_kv; do
  [ -n "$__devenv_kv" ] || break
  export "$__devenv_kv"
done
unset __devenv_kv
export DISABLE_AUTOUPDATER=1 CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1
if [ "$(id -u 2>/dev/null)" = 0 ]; then export IS_SANDBOX=1; fi
if ! command -v {program} >/dev/null 2>&1; then
  echo "{_MISSING_MARKER}"{program}
  echo "{_RC_MARKER}{MISSING_EXIT_CODE}"
  exit 0
fi
export __DEVENV_RUN={run_id}
sh -c 'echo $$ > {pid_file}; echo "{_PID_MARKER}$$"; exec "$@"' devenv-agent {agent}
__devenv_rc=$?
rm -f {pid_file}
echo "{_RC_MARKER}$__devenv_rc"
"""
    return "exec sh -c " + shlex.quote(script)


def stdin_payload(prompt: str, settings: AgentSettings, extra_env: Mapping[str, str] | None = None) -> bytes:
    """What the script reads on stdin: ``NAME=VALUE`` lines, an empty line, then the prompt bytes.

    Raises :class:`AgentPromptError` for an empty or too long prompt and ValueError for a
    bad variable (a name the script reserves, or a value with a line break or NUL).
    """
    data = prompt.encode("utf-8")
    if not prompt.strip():
        raise AgentPromptError("The prompt is empty.")
    if len(data) > settings.max_prompt_bytes:
        raise AgentPromptError(
            f"The prompt is {len(data)} bytes long; the limit is {settings.max_prompt_bytes} bytes."
        )
    env: dict[str, str] = {}
    if settings.api_key:
        env[settings.env_name] = settings.api_key
    for name, value in (extra_env or {}).items():
        if not ENV_NAME.fullmatch(name) or name in RESERVED_ENV or name.startswith("__DEVENV"):
            raise ValueError(f"extra_env may not set {name!r}")
        env[name] = value
    lines = []
    for name, value in env.items():
        if "\n" in value or "\r" in value or "\0" in value:
            raise ValueError(f"the value of {name} must be one line")
        lines.append(f"{name}={value}\n")
    return "".join(lines).encode("utf-8") + b"\n" + data


def signal_command(run_id: str, sig: Literal["INT", "TERM", "KILL"]) -> str:
    """The ``--command`` that sends ``sig`` to run ``run_id``'s agent, and to nothing else.

    Prints ``__DEVENV_SIGNALLED=<pid>`` when it signalled, nothing when the run is not there.
    """
    if sig not in ("INT", "TERM", "KILL"):
        raise ValueError(f"not a signal: {sig!r}")
    pid_file = _pid_file(run_id)
    script = f"""f={pid_file}
[ -r "$f" ] || exit 0
read -r p < "$f" || exit 0
case "$p" in ''|*[!0-9]*|0|1) exit 0 ;; esac
tr '\\000' '\\n' < "/proc/$p/environ" 2>/dev/null | grep -qxF '__DEVENV_RUN={run_id}' || exit 0
kill -s {sig} "$p" && echo "__DEVENV_SIGNALLED=$p"
"""
    return "exec sh -c " + shlex.quote(script)


def parse_marker(line: str) -> tuple[str, str] | None:
    """``("pid" | "rc" | "missing", value)`` for a marker line from the script, else None."""
    m = _MARKER.match(line.strip())
    if not m:
        return None
    kind = {_PID_MARKER: "pid", _RC_MARKER: "rc", _MISSING_MARKER: "missing"}[m.group(1)]
    if kind in ("pid", "rc") and not m.group(2).isdigit():
        return None
    return kind, m.group(2)
