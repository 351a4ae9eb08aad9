"""The checks of each section of ``.github/devenv.yml`` that is more than one value.

Design.  :class:`SectionChecker` adds to the generic :class:`~bot.repo_settings.checks.Checker`
one method per section, named like its key (``ports``, ``permissions``, ``resources``,
``agent``, ``devcontainer_path``), each returning ``(ok, value)``: the value goes into
:class:`~bot.repo_settings.schema.RepoSettings` only when the whole section is right.
The messages say what to write instead, e.g. that a verb that runs code needs at least
``write`` however the repository configures it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Final

from bot.commands.verbs import VERBS
from bot.github.permissions import LEVELS as PERMISSION_LEVELS
from bot.github.permissions import REQUIRED_PERMISSION_DEFAULTS
from bot.repo_settings.checks import Checker
from bot.repo_settings.problems import bool_hint, show, suggest
from bot.repo_settings.schema import (
    CODE_RUNNING_FLOOR,
    CODE_RUNNING_VERBS,
    DEFAULT_EXTEND_BY,
    DEFAULT_EXTEND_MAX,
    PORT_NAME_MAX,
    PORT_PERMISSIONS,
    RESERVED_PORT_NAMES,
    RESERVED_PORTS,
    SSH_KEYS,
    Port,
    RepoAgentSettings,
)

__all__ = ["SectionChecker"]

_PORT_KEYS: Final = ("name", "port", "permission")
_RESOURCE_SECTIONS: Final = ("requests", "limits")
_RESOURCE_NAMES: Final = ("cpu", "memory")
_AGENT_KEYS: Final = ("command",)
_EXTEND_KEYS: Final = ("by", "max")

#: As the links require (bot/cluster/workspace.py): the host ``<name>-<workspace id>`` splits at the first
#: ``-``, so a name holding one would never get its link.
_PORT_NAME = re.compile(r"[a-z][a-z0-9]*")
#: Kubernetes quantities, in the form DevPod's RESOURCES accepts (no exponents or signs).
_QUANTITY = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]+)?)(?P<suffix>m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?")
_SUFFIX_VALUE: Final = {
    None: Decimal(1), "m": Decimal("0.001"),
    "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}  # fmt: skip

_MAX_ARGS: Final = 64
_MAX_ARG_CHARS: Final = 4096


class SectionChecker(Checker):
    """A :class:`Checker` that also knows the sections of the file."""

    def devcontainer_path(self, path: str, value: Any) -> tuple[bool, str | None]:
        if value is None:
            return True, None
        if not isinstance(value, str):
            self.add(path, f"{show(value)} is not a path; write e.g. .devcontainer/devcontainer.json")
            return False, None
        text = value.strip()
        bad = None
        if not text:
            bad = "is empty; remove the line to let DevPod find devcontainer.json itself"
        elif any(ord(c) < 32 or ord(c) == 127 for c in text):
            bad = "holds control characters"
        elif "\\" in text:
            bad = "holds a backslash; separate directories with /"
        elif text.startswith("/"):
            bad = "starts with /; write it relative to the repository root, e.g. .devcontainer/devcontainer.json"
        elif len(text) > 255:
            bad = "is longer than 255 characters"
        elif text.endswith("/"):
            bad = "is a directory; name the devcontainer.json file itself, e.g. .devcontainer/devcontainer.json"
        if bad is None:
            parts = text.split("/")
            while parts and parts[0] == ".":
                parts.pop(0)
            if ".." in parts:
                bad = "holds ..; the file must be inside the repository"
            elif not parts or any(p in ("", ".") for p in parts):
                bad = "has an empty or . directory part"
            elif parts[0].startswith("-"):
                bad = "starts with -"
            elif not parts[-1].endswith(".json"):
                bad = "must name the devcontainer.json file itself, e.g. .devcontainer/devcontainer.json"
            else:
                return True, "/".join(parts)
        self.add(path, f"{show(value)} {bad}")
        return False, None

    def ports(self, path: str, value: Any) -> tuple[bool, tuple[Port, ...]]:
        if value is None:
            return True, ()
        if not isinstance(value, list):
            self.add(path, f"expected a list such as [{{name: web, port: 3000}}], found {show(value)}")
            return False, ()
        before = len(self.problems)
        result: list[Port] = []
        names: dict[str, int] = {}
        numbers: dict[int, int] = {}
        for index, item in enumerate(value):
            here = f"{path}[{index}]"
            entry = self.mapping(here, item, _PORT_KEYS, "{name: web, port: 3000}")
            if entry is None:
                continue
            name = self.port_name(here, entry)
            number = self.port_number(here, entry)
            permission: str | None = "read"
            if "permission" in entry:
                permission = self.choice(f"{here}.permission", entry["permission"], PORT_PERMISSIONS)
            if name is not None:
                if name in names:
                    self.add(f"{here}.name", f"{show(name)} is already the name of {path}[{names[name]}];"
                             " port names must be unique")
                    name = None
                else:
                    names[name] = index
            if number is not None:
                if number in numbers:
                    self.add(f"{here}.port", f"{number} is already {path}[{numbers[number]}]; list each port once")
                    number = None
                else:
                    numbers[number] = index
            if name is not None and number is not None and permission is not None:
                result.append(Port(name, number, permission))  # type: ignore[arg-type]
        return len(self.problems) == before, tuple(result)

    def port_name(self, here: str, entry: dict[str, Any]) -> str | None:
        if "name" not in entry:
            self.add(here, "needs a name, e.g. name: web")
            return None
        name = entry["name"]
        if not isinstance(name, str):
            self.add(f"{here}.name", f"{show(name)} is not a name{bool_hint(name)}; write e.g. web")
        elif not _PORT_NAME.fullmatch(name):
            self.add(f"{here}.name", f"{show(name)} may hold only lower-case letters and digits, starting with a"
                     " letter; no - (it becomes the first part of a host name, <name>-<workspace id>, which is split"
                     f" at its first -), e.g. {show(_port_name_hint(name))}")
        elif len(name) > PORT_NAME_MAX:
            self.add(f"{here}.name", f"{show(name)} is {len(name)} characters long; the limit is {PORT_NAME_MAX}"
                     " so that <name>-<workspace id> stays one DNS label")
        elif name in RESERVED_PORT_NAMES:
            self.add(f"{here}.name", f"{show(name)} is taken by the IDE's own link; choose another name")
        else:
            return name
        return None

    def port_number(self, here: str, entry: dict[str, Any]) -> int | None:
        if "port" not in entry:
            self.add(here, "needs a port, e.g. port: 3000")
            return None
        number = entry["port"]
        if isinstance(number, bool) or not isinstance(number, int):
            self.add(f"{here}.port", f"{show(number)} is not a TCP port (1-65535){bool_hint(number)}")
        elif not 1 <= number <= 65535:
            self.add(f"{here}.port", f"{show(number)} is not a TCP port (1-65535)")
        elif number in RESERVED_PORTS:
            self.add(f"{here}.port", f"{number} is OpenVSCode's own port; the IDE link already serves it")
        else:
            return number
        return None

    def permissions(self, path: str, value: Any) -> tuple[bool, Mapping[str, str]]:
        if value is None:
            return True, REQUIRED_PERMISSION_DEFAULTS
        if not isinstance(value, dict):
            self.add(path, f"expected a mapping such as {{stop: read}}, found {show(value)}")
            return False, REQUIRED_PERMISSION_DEFAULTS
        before = len(self.problems)
        merged = dict(REQUIRED_PERMISSION_DEFAULTS)
        for verb, level in value.items():
            if not isinstance(verb, str) or verb not in VERBS:
                self.unknown_verb(path, verb)
                continue
            here = f"{path}.{verb}"
            if not self.known_level(here, level):
                continue
            if verb in CODE_RUNNING_VERBS and PERMISSION_LEVELS[level] < PERMISSION_LEVELS[CODE_RUNNING_FLOOR]:
                self.add(here, f"{show(level)} is too low: {verb} runs code in the environment, so it needs at"
                         f" least {CODE_RUNNING_FLOOR} (people who can only read a repository, on a public one"
                         " anybody, must not start code)")
                continue
            merged[verb] = level
        return len(self.problems) == before, MappingProxyType(merged)

    def ssh(self, path: str, value: Any) -> tuple[bool, str | None]:
        """``ssh: {permission: admin}``: who may have a shell through the gateway (at least write)."""
        if value is None:
            return True, None
        if not isinstance(value, dict):
            self.add(path, f"expected a mapping such as {{permission: admin}}, found {show(value)}")
            return False, None
        before = len(self.problems)
        for key in value:
            if not isinstance(key, str) or key not in SSH_KEYS:
                self.unknown_key(path, key, SSH_KEYS)
        level = value.get("permission")
        here = f"{path}.permission"
        levels = tuple(PERMISSION_LEVELS)
        if level is None:
            if "permission" in value:
                self.add(here, f"has no value; write one of {', '.join(levels)}, or remove the line for the default")
        elif self.known_level(here, level) and PERMISSION_LEVELS[level] < PERMISSION_LEVELS[CODE_RUNNING_FLOOR]:
            self.add(here, f"{show(level)} is too low: a shell runs code in the environment, so it needs at least"
                     f" {CODE_RUNNING_FLOOR} (and never less than the operator's DEVENV_SSH_PERMISSION)")
        return len(self.problems) == before, level if isinstance(level, str) else None

    def extend(self, path: str, value: Any) -> tuple[bool, tuple[int, int]]:
        """``extend: {by: 2h, max: 1d}``: ``/devenv extend``'s default duration and its maximum (by <= max)."""
        section = self.mapping(path, value, _EXTEND_KEYS, "{by: 2h, max: 1d}")
        if section is None:
            return False, (DEFAULT_EXTEND_BY, DEFAULT_EXTEND_MAX)
        before = len(self.problems)
        found = {"by": DEFAULT_EXTEND_BY, "max": DEFAULT_EXTEND_MAX}
        for key in _EXTEND_KEYS:
            if key not in section:
                continue
            ok, seconds = self.duration(f"{path}.{key}", section[key])
            if ok and seconds is None:
                self.add(f"{path}.{key}", "cannot be never; write a duration such as 2h, or remove the line")
            elif ok and seconds is not None:
                found[key] = seconds
        if len(self.problems) == before and found["by"] > found["max"]:
            self.add(f"{path}.by", f"is longer than {path}.max; the default extension must fit within the maximum")
        return len(self.problems) == before, (found["by"], found["max"])

    def known_level(self, here: str, level: Any) -> bool:
        """Whether ``level`` is a permission level; if not, say which ones are (with a likely meant one)."""
        if isinstance(level, str) and level in PERMISSION_LEVELS:
            return True
        levels = tuple(PERMISSION_LEVELS)
        self.add(here, f"{show(level)} is not one of {', '.join(levels)}{bool_hint(level) or suggest(level, levels)}")
        return False

    def unknown_verb(self, path: str, verb: Any) -> None:
        choices = ", ".join(VERBS)
        if isinstance(verb, bool):
            self.add(f"{path}.{show(verb)}", f"is not a command ({bool_hint(verb)[2:-1]}); the commands are {choices}")
            return
        shown = show(verb)
        shown = shown[1:-1] if isinstance(verb, str) and shown[1:-1] == verb else shown
        hint = suggest(verb, VERBS) or f"; the commands are {choices}"
        self.add(f"{path}.{shown}", f"is not a command{hint}")

    def resources(self, path: str, value: Any) -> tuple[bool, str | None]:
        if value is None:
            return True, None
        before = len(self.problems)
        sections = self.mapping(path, value, _RESOURCE_SECTIONS, "{requests: {cpu: 500m}, limits: {memory: 4Gi}}")
        if sections is None:
            return False, None
        entries: list[str] = []
        amounts: dict[tuple[str, str], Decimal] = {}
        for section in _RESOURCE_SECTIONS:
            if section not in sections or sections[section] is None:
                continue
            here = f"{path}.{section}"
            names = self.mapping(here, sections[section], _RESOURCE_NAMES, "{cpu: 500m, memory: 4Gi}",
                                 suggest_keys=False)  # gpu is not a typo of cpu
            if names is None:
                continue
            for name in _RESOURCE_NAMES:
                if name not in names:
                    continue
                quantity = self.quantity(f"{here}.{name}", name, names[name])
                if quantity is not None:
                    entries.append(f"{section}.{name}={quantity[0]}")
                    amounts[(section, name)] = quantity[1]
        for name in _RESOURCE_NAMES:
            low, high = amounts.get(("requests", name)), amounts.get(("limits", name))
            if low is not None and high is not None and low > high:
                self.add(f"{path}.requests.{name}", f"is more than {path}.limits.{name}; Kubernetes refuses a"
                         " request above its limit")
        if len(self.problems) != before:
            return False, None
        return True, ",".join(entries) or None

    def quantity(self, path: str, name: str, value: Any) -> tuple[str, Decimal] | None:
        example = "500m or 2" if name == "cpu" else "512Mi or 4Gi"
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            self.add(path, f"{show(value)} is not a Kubernetes quantity such as {example}")
            return None
        text = value.strip() if isinstance(value, str) else (repr(value) if isinstance(value, float) else str(value))
        match = _QUANTITY.fullmatch(text)
        if not match:
            self.add(path, f"{show(value)} is not a Kubernetes quantity such as {example}")
            return None
        suffix = match["suffix"]
        amount = Decimal(match["number"]) * _SUFFIX_VALUE[suffix]
        if name == "cpu" and suffix not in (None, "m"):
            self.add(path, f"{show(value)} would be {match['number']} million or more CPUs; write cores (2) or"
                     f" millicores ({match['number']}m)")
            return None
        if name == "memory" and suffix == "m":
            self.add(path, f"{show(value)} means {match['number']} thousandths of a byte; did you mean"
                     f" {match['number']}Mi?")
            return None
        if amount <= 0:
            self.add(path, f"{show(value)} must be more than zero")
            return None
        return text, amount

    def agent(self, path: str, value: Any) -> tuple[bool, RepoAgentSettings]:
        if value is None:
            return True, RepoAgentSettings()
        before = len(self.problems)
        entry = self.mapping(path, value, _AGENT_KEYS, "{command: [my-agent, --verbose]}")
        if entry is None:
            return False, RepoAgentSettings()
        if "command" not in entry or entry["command"] is None:
            return len(self.problems) == before, RepoAgentSettings()
        here = f"{path}.command"
        command = entry["command"]
        if isinstance(command, str):
            self.add(here, f"{show(command)} is a string; write the command as a list of arguments, e.g."
                     " [my-agent, --verbose] (it is run without a shell)")
            return False, RepoAgentSettings()
        if not isinstance(command, list) or not command:
            self.add(here, f"expected a non-empty list of arguments such as [my-agent, --verbose],"
                     f" found {'an empty list' if command == [] else show(command)}")
            return False, RepoAgentSettings()
        if len(command) > _MAX_ARGS:
            self.add(here, f"has {len(command)} arguments; the limit is {_MAX_ARGS}")
            return False, RepoAgentSettings()
        ok = True
        for index, argument in enumerate(command):
            at = f"{here}[{index}]"
            if not isinstance(argument, str):
                self.add(at, f"{show(argument)} is not a string{bool_hint(argument) or '; quote it'}")
                ok = False
            elif not argument:
                self.add(at, "is empty; leave it out")
                ok = False
            elif "\x00" in argument:
                self.add(at, "holds a NUL character, which no argument can")
                ok = False
            elif len(argument) > _MAX_ARG_CHARS:
                self.add(at, f"is {len(argument)} characters long; the limit is {_MAX_ARG_CHARS}")
                ok = False
        ok = ok and len(self.problems) == before
        return ok, RepoAgentSettings(tuple(command)) if ok else RepoAgentSettings()


def _port_name_hint(name: str) -> str:
    """``name`` as a valid port name, to suggest (``admin-api`` → ``adminapi``; ``web`` when nothing is left)."""
    kept = re.sub(r"[^a-z0-9]", "", name.lower()).lstrip("0123456789")
    return kept or "web"
