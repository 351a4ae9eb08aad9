"""Value types particular to one feature: the App ID, DevPod's resource lists, the preview
host template, the agent's command line.

They follow :class:`bot.settings.values.Kind`: ``parse(name, raw)`` returns the value or raises
``ValueError`` with a sentence naming the variable and what to set. Two checks here are also
used after start-up: :func:`template_room` (how long a port name may be under the host
template) and :func:`check_command` (a repository's ``.github/devenv.yml`` may replace the
agent command, and the replacement is held to the same rules).
"""

from __future__ import annotations

import re
import shlex
import string
from collections.abc import Sequence
from urllib.parse import urlsplit

from bot.settings.values import Kind

#: Workspace ids are at most 48 characters (DevPod's ``--id`` limit; bot.devpod.ID_MAX_LEN).
ID_MAX_LEN = 48
DNS_LABEL_MAX = 63
PORT_NAME_MAX = 15  # IANA service names, as Kubernetes container port names
#: The IDE's port name; every workspace exposes it.
CODE_PORT_NAME = "code"

_RESOURCE_ENTRY = re.compile(r"(requests|limits)\.[A-Za-z0-9./_-]+=[0-9]+(\.[0-9]+)?[A-Za-z]*")
_LABEL_KEY = re.compile(r"([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Characters a download URL has no business holding (quotes, blanks, shell and template syntax).
_UNSAFE_URL = re.compile(r"[\s\"'`\\;{}$<>|]")
_PROGRAM = re.compile(r"[A-Za-z0-9_./+-]+")
#: Names the agent's environment header may not set: they would change how its shells run.
RESERVED_ENV = frozenset(
    {"IFS", "PATH", "ENV", "BASH_ENV", "SHELL", "HOME", "PS4", "LD_PRELOAD", "LD_LIBRARY_PATH", "IS_SANDBOX"}
)


class AppId(Kind[str]):
    """A GitHub App's numeric ID, or its client ID (``Iv…``)."""

    def parse(self, name: str, raw: str) -> str:
        value = raw.strip()
        if not value.isdigit() and not value.startswith("Iv"):
            raise ValueError(f"{name}={value!r} is neither a numeric App ID nor a client ID (Iv…)")
        return value


class BareHost(Kind[str]):
    """A host name with an optional port, no scheme and no path (GitHub Enterprise Server)."""

    def parse(self, name: str, raw: str) -> str:
        value = raw.strip().rstrip("/")
        if "://" in value or "/" in value:
            raise ValueError(f"{name}={value!r} must be a bare host name such as github.example.com "
                             "(no scheme, no path)")
        return value


# --------------------------------------------------------------------------- DevPod's provider options


class ResourceList(Kind[str]):
    """``requests.cpu=500m,limits.memory=4Gi`` (DevPod's ``RESOURCES``), blanks dropped."""

    def parse(self, name: str, raw: str) -> str:
        entries = [e.strip() for e in raw.split(",")]
        bad = [e for e in entries if not _RESOURCE_ENTRY.fullmatch(e)]
        if bad:
            raise ValueError(f"{name} must look like 'requests.cpu=500m,limits.memory=4Gi'; "
                             f"bad entries: {', '.join(bad)}")
        return ",".join(entries)


class DownloadUrl(Kind[str]):
    """Where a workspace downloads a file from (openvscode-server's ``DOWNLOAD_AMD64``): an http(s) URL with a
    path and no credentials (it is stored in DevPod's state and shown in its argv), a fragment or unsafe characters."""

    def parse(self, name: str, raw: str) -> str:
        value = raw.strip()
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018  (raises ValueError on a bad port)
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname \
                or parts.path in ("", "/") or parts.fragment or _UNSAFE_URL.search(value):
            raise ValueError(f"{name} must be the http(s) URL of the file to download, e.g. "
                             f"https://mirror.example.com/openvscode-server-v1.84.2-linux-x64.tar.gz, got {value!r}")
        if parts.username is not None or parts.password is not None:
            raise ValueError(f"{name} must not carry credentials: DevPod keeps it in its state files and "
                             "passes it on the command line; let the mirror accept requests from the workspaces")
        return value


class NodeSelector(Kind[str]):
    """``k=v,k2=v2`` with Kubernetes label keys and values (DevPod's ``NODE_SELECTOR``)."""

    def parse(self, name: str, raw: str) -> str:
        pairs = [p.strip() for p in raw.split(",")]
        for p in pairs:
            k, eq, v = p.partition("=")
            if not eq or not _LABEL_KEY.fullmatch(k) or not _LABEL_VALUE.fullmatch(v):
                raise ValueError(f"{name} must look like 'k=v,k2=v2'; bad entry {p!r}")
        return ",".join(pairs)


# --------------------------------------------------------------------------- preview hosts


def template_room(template: str) -> int:
    """How many characters a port name may have under ``template`` (ids have ≤ 48)."""
    fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    if sorted(fields) != ["id", "port"]:
        raise ValueError(f"DEVENV_HOST_TEMPLATE must contain {{port}} and {{id}} exactly once each, got {template!r}")
    literal = template.replace("{port}", "").replace("{id}", "")
    if not re.fullmatch(r"[a-z0-9-]*", literal):
        raise ValueError(f"DEVENV_HOST_TEMPLATE may only add lower-case letters, digits and '-', got {template!r}")
    if template.startswith("-") or template.endswith("-"):
        raise ValueError(f"DEVENV_HOST_TEMPLATE must not start or end with '-', got {template!r}")
    # The literal next to {port} must be a '-', so the host splits back into (port, id):
    # port names have no '-'.
    p, i = template.index("{port}"), template.index("{id}")
    between = template[p + 6:i] if p < i else template[i + 4:p]
    if (p < i and not between.startswith("-")) or (i < p and not between.endswith("-")):
        raise ValueError(f"DEVENV_HOST_TEMPLATE needs a '-' between {{port}} and {{id}}, got {template!r}")
    room = min(PORT_NAME_MAX, DNS_LABEL_MAX - ID_MAX_LEN - len(literal))
    if room < len(CODE_PORT_NAME):
        raise ValueError(
            f"DEVENV_HOST_TEMPLATE {template!r} leaves {max(room, 0)} characters for the port name with a "
            f"{ID_MAX_LEN}-character workspace id; a host label has at most {DNS_LABEL_MAX}"
        )
    return room


class HostTemplate(Kind[str]):
    """The first label of a preview host, with ``{port}`` and ``{id}`` (e.g. ``{port}-{id}``)."""

    def parse(self, name: str, raw: str) -> str:
        value = raw.strip()
        template_room(value)
        return value


# --------------------------------------------------------------------------- the agent


def check_command(command: Sequence[str], api_key: str | None) -> None:
    """Refuse an agent argv the bot cannot follow, or one that carries the API key."""
    if not command:
        raise ValueError(
            "DEVENV_AGENT_COMMAND must name a program, e.g. 'claude -p --output-format stream-json --verbose'"
        )
    if not _PROGRAM.fullmatch(command[0]):
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


def check_env_name(name: str) -> None:
    if not ENV_NAME.fullmatch(name) or name in RESERVED_ENV:
        raise ValueError(f"DEVENV_AGENT_ENV_NAME must be an environment variable name, got {name!r}")


class CommandLine(Kind[tuple[str, ...]]):
    """A shell-like command line, split as ``sh`` would (``shlex``), then checked."""

    def parse(self, name: str, raw: str) -> tuple[str, ...]:
        try:
            command = tuple(shlex.split(raw))
        except ValueError as exc:
            raise ValueError(f"{name} is not a valid command line: {exc}") from None
        check_command(command, None)
        return command


class EnvName(Kind[str]):
    """The name of an environment variable the bot may set for the agent."""

    def parse(self, name: str, raw: str) -> str:
        value = raw.strip()
        check_env_name(value)
        return value
