"""Per-repository settings: ``.github/devenv.yml`` as it is on a pull request's base commit.

Design.  The file is read through the contents API at the PR's *base* SHA,
never at its head: the head is whatever the PR's author pushed (a fork, an
outsider), while the base branch only holds what people with write access
merged.  A PR that edits ``.github/devenv.yml`` therefore changes nothing until
it is merged, which is the point: the file decides who may run code
(``permissions``) and what the bot runs (``agent.command``).

Reading and checking are split, as elsewhere in the bot.  :func:`parse_settings`
is pure: text in, :class:`RepoSettings` out, or :class:`SettingsError` listing
*every* problem at once, each naming where it is and what to write instead.  It
never raises anything else for any text (property-tested with Hypothesis).
:class:`RepoSettingsLoader` does the one GET, caches the outcome per base SHA
(a commit never changes, so neither does the file at it) and turns a broken
file into the defaults plus the problems, for the caller to show on the PR.

YAML.  The file is loaded with PyYAML's safe loader, which speaks YAML 1.1:
an unquoted ``on``, ``off``, ``yes`` or ``no`` is a boolean (so a key ``on:``
becomes ``True``), ``1:30`` is the base-60 number 90 and ``0700`` is octal.
The messages say so where it matters.  On top of ``yaml.SafeLoader`` (still
only plain Python types, no tags that build objects) the loader reports a key
that appears twice in one mapping, which plain PyYAML silently resolves to the
last value, and base-60 and octal numbers, which nobody writes on purpose here.

The settings, their defaults and a full example are in ``docs/repo-settings.md``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import datetime as dt
import difflib
import logging
import re
from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Final, Literal

import yaml
from cachetools import LRUCache

from bot.commands.grammar import VERBS
from bot.devpod.driver import ID_MAX_LEN
from bot.github.client import is_not_found
from bot.github.permissions import LEVELS as PERMISSION_LEVELS
from bot.github.permissions import REQUIRED_PERMISSION_DEFAULTS
from bot.text import markdown

__all__ = [
    "SETTINGS_PATH",
    "DOCS_URL",
    "MAX_BYTES",
    "ON_PUSH_CHOICES",
    "IDE_CHOICES",
    "CODE_RUNNING_VERBS",
    "PORT_NAME_MAX",
    "RESERVED_PORTS",
    "RESERVED_PORT_NAMES",
    "Port",
    "AgentSettings",
    "RepoSettings",
    "SettingsError",
    "parse_settings",
    "parse_duration",
    "RepoSettingsLoader",
    "render_problems",
]

log = logging.getLogger(__name__)

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
_CODE_RUNNING_FLOOR: Final = "write"

#: A port is served on ``<name>-<workspace id>.<preview domain>``; that first
#: part must stay one DNS label (63 characters) with the longest workspace id.
PORT_NAME_MAX: Final = 63 - 1 - ID_MAX_LEN
#: OpenVSCode's in-container server (CONTRACT §6).
RESERVED_PORTS: Final = frozenset({10800})
#: ``code-<workspace id>`` is the IDE's own host name.
RESERVED_PORT_NAMES: Final = frozenset({"code"})

DEFAULT_IDLE_STOP: Final = 2 * 3600
DEFAULT_DELETE_AFTER: Final = 7 * 86400
_MIN_DURATION: Final = 60
_MAX_DURATION: Final = 365 * 86400

_MAX_ARGS: Final = 64
_MAX_ARG_CHARS: Final = 4096
_SHOW_LIMIT: Final = 60


@dataclasses.dataclass(frozen=True, slots=True)
class Port:
    """An application port in the environment, reachable at ``<name>-<workspace id>.<preview domain>``.

    ``permission`` is the least repository permission needed to open its link.
    """

    name: str
    port: int
    permission: PortPermission = "read"


@dataclasses.dataclass(frozen=True, slots=True)
class AgentSettings:
    """The coding agent: ``command`` is its argv (run without a shell), None for the bot's default."""

    command: tuple[str, ...] | None = None


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
    * ``resources``: DevPod's ``RESOURCES`` provider option
      (``requests.cpu=500m,limits.memory=4Gi``), None for the operator's default.
    * ``agent``: the coding agent's settings.
    """

    auto_create: bool = True
    on_push: OnPush = "sync"
    devcontainer_path: str | None = None
    ide: Ide = "openvscode"
    ports: tuple[Port, ...] = ()
    permissions: Mapping[str, str] = dataclasses.field(default_factory=_default_permissions, hash=False)
    idle_stop: int | None = DEFAULT_IDLE_STOP
    delete_after: int | None = DEFAULT_DELETE_AFTER
    resources: str | None = None
    agent: AgentSettings = AgentSettings()

    def required_permission(self, verb: str) -> str:
        """The least permission ``verb`` needs in this repository (``write`` for a verb it does not know)."""
        return self.permissions.get(verb, "write")


class SettingsError(ValueError):
    """The settings file is wrong; ``problems`` says where and how to fix each mistake (plain text)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


# --- YAML -----------------------------------------------------------------------


def _at(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also notes duplicate keys and base-60 or octal numbers."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.notes: list[str] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[tuple[str, str], Any] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = (key_node.tag, key_node.value)
                if key in seen:
                    self.notes.append(
                        f"{_at(key_node.start_mark)}: the key {_show(key_node.value)} appears a second time"
                        f" in the same mapping (first on line {seen[key].line + 1}); keep one of them"
                    )
                else:
                    seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)

    def _note_number(self, node: yaml.ScalarNode, value: Any) -> None:
        text = str(node.value).replace("_", "")
        digits = text.lstrip("+-")
        if ":" in text:
            self.notes.append(
                f"{_at(node.start_mark)}: {_show(node.value)} is a base-60 number in YAML 1.1 (it reads as"
                f" {value}); quote it, or for a duration write e.g. 1h30m"
            )
        elif len(digits) > 1 and digits.startswith("0") and digits[1] not in "xXbB.":
            self.notes.append(
                f"{_at(node.start_mark)}: {_show(node.value)} is an octal number in YAML 1.1 (it reads as"
                f" {value}); leave out the leading zero"
            )

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        value = super().construct_yaml_int(node)
        self._note_number(node, value)
        return value

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        value = super().construct_yaml_float(node)
        if ":" in str(node.value):
            self._note_number(node, value)
        return value


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _Loader.construct_yaml_float)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        where = _at(exc.problem_mark) if exc.problem_mark else (_at(exc.context_mark) if exc.context_mark else None)
        what = exc.problem or exc.context or "invalid YAML"
        context = ""
        if exc.context and exc.problem and exc.context_mark:
            context = f" ({exc.context} at {_at(exc.context_mark)})"
        return f"YAML syntax error{' at ' + where if where else ''}: {what}{context}"
    return f"YAML syntax error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"


def _load_yaml(text: str) -> tuple[Any, list[str]]:
    """The document and the loader's notes; raises SettingsError for text that is not YAML."""
    loader = None
    try:
        loader = _Loader(text)  # the reader already refuses control characters here
        return loader.get_single_data(), loader.notes
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise SettingsError([f"YAML syntax error at line {line}, column {column}: the character"
                             f" U+{exc.character:04X} is not allowed in YAML; remove it"]) from None
    except yaml.YAMLError as exc:
        raise SettingsError([_yaml_problem(exc)]) from None
    except RecursionError:
        raise SettingsError(["YAML: the file nests too deeply to read"]) from None
    except Exception as exc:  # noqa: BLE001 - third-party code on untrusted text
        # PyYAML's constructors trust their regexes and tags: ``2024-13-01``
        # matches the timestamp pattern and then fails in datetime, an empty
        # ``!!int`` fails with IndexError.  Report, don't crash.
        detail = str(exc).splitlines()[0][:_SHOW_LIMIT] if str(exc) else type(exc).__name__
        raise SettingsError([f"YAML: a value cannot be read ({detail}); check explicit !!tags and dates"]) from None
    finally:
        if loader is not None:
            loader.dispose()


# --- showing values -------------------------------------------------------------

_BOOL_HINT_TRUE = "YAML 1.1 reads an unquoted on, yes or true as the boolean true; quote it to mean the word"
_BOOL_HINT_FALSE = "YAML 1.1 reads an unquoted off, no or false as the boolean false; quote it to mean the word"


def _show(value: Any) -> str:
    """A short, single-line description of a value from the file; never its full (maybe huge) repr."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        text = str(value)
        return text if len(text) <= _SHOW_LIMIT else text[: _SHOW_LIMIT - 1] + "…"
    if isinstance(value, str):
        flat = markdown._LINE_BREAKS.sub(" ", value)
        if len(flat) > _SHOW_LIMIT:
            flat = flat[: _SHOW_LIMIT - 1] + "…"
        return repr(flat)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, dt.datetime):
        return "a timestamp"
    if isinstance(value, dt.date):
        return "a date"
    if isinstance(value, bytes):
        return "binary data"
    if isinstance(value, set):
        return "a set"
    return f"a {type(value).__name__}"


def _bool_hint(value: Any) -> str:
    if value is True:
        return f" ({_BOOL_HINT_TRUE})"
    if value is False:
        return f" ({_BOOL_HINT_FALSE})"
    return ""


def _suggest(word: Any, choices: tuple[str, ...] | list[str]) -> str:
    if not isinstance(word, str):
        return ""
    probe = word[:100].strip().lower().replace("-", "_")
    spaced = probe.replace("_", " ")
    for candidate in (probe, spaced):
        if candidate in choices and candidate != word:
            return f"; did you mean {candidate}?"
    close = difflib.get_close_matches(probe, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


# --- checking -------------------------------------------------------------------

_KEYS: Final = (
    "auto_create", "on_push", "devcontainer_path", "ide", "ports", "permissions",
    "idle_stop", "delete_after", "resources", "agent",
)  # fmt: skip
_PORT_KEYS: Final = ("name", "port", "permission")
_RESOURCE_SECTIONS: Final = ("requests", "limits")
_RESOURCE_NAMES: Final = ("cpu", "memory")
_AGENT_KEYS: Final = ("command",)

_PORT_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
_DURATION_PART = re.compile(r"(\d+)\s*([smhdw])")
_DURATION = re.compile(r"(?:\d+\s*[smhdw]\s*)+")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
#: Kubernetes quantities, in the form DevPod's RESOURCES accepts (no exponents or signs).
_QUANTITY = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]+)?)(?P<suffix>m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?")
_SUFFIX_VALUE: Final = {
    None: Decimal(1), "m": Decimal("0.001"),
    "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}  # fmt: skip


def parse_duration(value: Any) -> int | None:
    """Seconds for ``30m``, ``2h``, ``1h30m``, ``7d``, ``1w`` or a number of seconds; None for ``never``.

    Raises ValueError (with a message to show) for anything else.
    """
    if isinstance(value, bool) or value is None:
        raise ValueError("is not a duration")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "never":
            return None
        if text.isascii() and text.isdigit():
            return int(text)
        if text.isascii() and _DURATION.fullmatch(text):
            return sum(int(n) * _UNITS[unit] for n, unit in _DURATION_PART.findall(text))
    raise ValueError("is not a duration")


def _format_seconds(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class _Checker:
    """Collects problems while turning the loaded document into :class:`RepoSettings` fields."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def mapping(self, path: str, value: Any, known: tuple[str, ...], example: str) -> dict[str, Any] | None:
        """``value`` if it is a mapping; unknown keys are reported and dropped."""
        if not isinstance(value, dict):
            self.add(path, f"expected a mapping such as {example}, found {_show(value)}{_bool_hint(value)}")
            return None
        known_here: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(key, str) and key in known:
                known_here[key] = item
            else:
                self.unknown_key(path, key, known)
        return known_here

    def unknown_key(self, path: str, key: Any, known: tuple[str, ...]) -> None:
        where = f"{path}." if path else ""
        choices = ", ".join(known)
        if key is True and "on_push" in known:
            self.add(f"{where}true", f"is not a setting ({_BOOL_HINT_TRUE}); did you mean on_push?")
        elif isinstance(key, bool):
            self.add(f"{where}{_show(key)}", f"is not a setting ({_BOOL_HINT_TRUE if key else _BOOL_HINT_FALSE});"
                     f" the settings here are {choices}")
        elif isinstance(key, str):
            shown = _show(key)[1:-1] if key and _show(key)[1:-1] == key else _show(key)
            hint = f"; the settings here are {choices}"
            if known != _RESOURCE_NAMES:  # gpu is not a typo of cpu
                hint = _suggest(key, known) or hint
            self.add(f"{where}{shown}", f"is not a setting{hint}")
        else:
            self.add(f"{where}{_show(key)}", f"is not a setting; the settings here are {choices}")

    def choice(self, path: str, value: Any, choices: tuple[str, ...]) -> str | None:
        if isinstance(value, str) and value in choices:
            return value
        hint = _bool_hint(value)
        if value is False and "ignore" in choices:
            hint = f" ({_BOOL_HINT_FALSE}); did you mean ignore?"
        elif value is False and "none" in choices:
            hint = f" ({_BOOL_HINT_FALSE}); did you mean none?"
        hint = hint or _suggest(value, choices)
        self.add(path, f"{_show(value)} is not one of {', '.join(choices)}{hint}")
        return None

    def boolean(self, path: str, value: Any) -> bool | None:
        if isinstance(value, bool):
            return value
        self.add(path, f"{_show(value)} is not true or false")
        return None

    def duration(self, path: str, value: Any) -> tuple[bool, int | None]:
        if value is None:
            self.add(path, "has no value; write a duration such as 2h, or never, or remove the line for the default")
            return False, None
        try:
            seconds = parse_duration(value)
        except ValueError:
            self.add(path, f"{_show(value)} is not a duration; write e.g. 30m, 2h, 7d, a number of seconds,"
                     f" or never{_bool_hint(value)}")
            return False, None
        if seconds is not None and not _MIN_DURATION <= seconds <= _MAX_DURATION:
            self.add(path, f"{_show(value)} is {_format_seconds(seconds)}; it must be between 1m and 365d"
                     " (write never to turn it off)")
            return False, None
        return True, seconds

    # -- sections -------------------------------------------------------------

    def devcontainer_path(self, path: str, value: Any) -> tuple[bool, str | None]:
        if value is None:
            return True, None
        if not isinstance(value, str):
            self.add(path, f"{_show(value)} is not a path; write e.g. .devcontainer/devcontainer.json")
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
        self.add(path, f"{_show(value)} {bad}")
        return False, None

    def ports(self, path: str, value: Any) -> tuple[bool, tuple[Port, ...]]:
        if value is None:
            return True, ()
        if not isinstance(value, list):
            self.add(path, f"expected a list such as [{{name: web, port: 3000}}], found {_show(value)}")
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
                    self.add(f"{here}.name", f"{_show(name)} is already the name of {path}[{names[name]}];"
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
            self.add(f"{here}.name", f"{_show(name)} is not a name{_bool_hint(name)}; write e.g. web")
        elif not _PORT_NAME.fullmatch(name):
            self.add(f"{here}.name", f"{_show(name)} may hold only lower-case letters, digits and -, and must"
                     " start and end with a letter or digit (it becomes part of a host name)")
        elif len(name) > PORT_NAME_MAX:
            self.add(f"{here}.name", f"{_show(name)} is {len(name)} characters long; the limit is {PORT_NAME_MAX}"
                     " so that <name>-<workspace id> stays one DNS label")
        elif name in RESERVED_PORT_NAMES:
            self.add(f"{here}.name", f"{_show(name)} is taken by the IDE's own link; choose another name")
        else:
            return name
        return None

    def port_number(self, here: str, entry: dict[str, Any]) -> int | None:
        if "port" not in entry:
            self.add(here, "needs a port, e.g. port: 3000")
            return None
        number = entry["port"]
        if isinstance(number, bool) or not isinstance(number, int):
            self.add(f"{here}.port", f"{_show(number)} is not a TCP port (1-65535){_bool_hint(number)}")
        elif not 1 <= number <= 65535:
            self.add(f"{here}.port", f"{_show(number)} is not a TCP port (1-65535)")
        elif number in RESERVED_PORTS:
            self.add(f"{here}.port", f"{number} is OpenVSCode's own port; the IDE link already serves it")
        else:
            return number
        return None

    def permissions(self, path: str, value: Any) -> tuple[bool, Mapping[str, str]]:
        if value is None:
            return True, REQUIRED_PERMISSION_DEFAULTS
        if not isinstance(value, dict):
            self.add(path, f"expected a mapping such as {{stop: read}}, found {_show(value)}")
            return False, REQUIRED_PERMISSION_DEFAULTS
        before = len(self.problems)
        merged = dict(REQUIRED_PERMISSION_DEFAULTS)
        levels = tuple(PERMISSION_LEVELS)
        for verb, level in value.items():
            if not isinstance(verb, str) or verb not in VERBS:
                self.unknown_verb(path, verb)
                continue
            here = f"{path}.{verb}"
            if not isinstance(level, str) or level not in PERMISSION_LEVELS:
                self.add(here, f"{_show(level)} is not one of {', '.join(levels)}"
                         f"{_bool_hint(level) or _suggest(level, levels)}")
                continue
            if verb in CODE_RUNNING_VERBS and PERMISSION_LEVELS[level] < PERMISSION_LEVELS[_CODE_RUNNING_FLOOR]:
                self.add(here, f"{_show(level)} is too low: {verb} runs code in the environment, so it needs at"
                         f" least {_CODE_RUNNING_FLOOR} (people who can only read a repository, on a public one"
                         " anybody, must not start code)")
                continue
            merged[verb] = level
        return len(self.problems) == before, MappingProxyType(merged)

    def unknown_verb(self, path: str, verb: Any) -> None:
        choices = ", ".join(VERBS)
        if isinstance(verb, bool):
            self.add(f"{path}.{_show(verb)}", f"is not a command ({_bool_hint(verb)[2:-1]}); the commands are {choices}")
            return
        shown = _show(verb)
        shown = shown[1:-1] if isinstance(verb, str) and shown[1:-1] == verb else shown
        hint = _suggest(verb, VERBS) or f"; the commands are {choices}"
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
            names = self.mapping(here, sections[section], _RESOURCE_NAMES, "{cpu: 500m, memory: 4Gi}")
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
            self.add(path, f"{_show(value)} is not a Kubernetes quantity such as {example}")
            return None
        text = value.strip() if isinstance(value, str) else (repr(value) if isinstance(value, float) else str(value))
        match = _QUANTITY.fullmatch(text)
        if not match:
            self.add(path, f"{_show(value)} is not a Kubernetes quantity such as {example}")
            return None
        suffix = match["suffix"]
        amount = Decimal(match["number"]) * _SUFFIX_VALUE[suffix]
        if name == "cpu" and suffix not in (None, "m"):
            self.add(path, f"{_show(value)} would be {match['number']} million or more CPUs; write cores (2) or"
                     f" millicores ({match['number']}m)")
            return None
        if name == "memory" and suffix == "m":
            self.add(path, f"{_show(value)} means {match['number']} thousandths of a byte; did you mean"
                     f" {match['number']}Mi?")
            return None
        if amount <= 0:
            self.add(path, f"{_show(value)} must be more than zero")
            return None
        return text, amount

    def agent(self, path: str, value: Any) -> tuple[bool, AgentSettings]:
        if value is None:
            return True, AgentSettings()
        before = len(self.problems)
        entry = self.mapping(path, value, _AGENT_KEYS, "{command: [my-agent, --verbose]}")
        if entry is None:
            return False, AgentSettings()
        if "command" not in entry or entry["command"] is None:
            return len(self.problems) == before, AgentSettings()
        here = f"{path}.command"
        command = entry["command"]
        if isinstance(command, str):
            self.add(here, f"{_show(command)} is a string; write the command as a list of arguments, e.g."
                     " [my-agent, --verbose] (it is run without a shell)")
            return False, AgentSettings()
        if not isinstance(command, list) or not command:
            self.add(here, f"expected a non-empty list of arguments such as [my-agent, --verbose],"
                     f" found {'an empty list' if command == [] else _show(command)}")
            return False, AgentSettings()
        if len(command) > _MAX_ARGS:
            self.add(here, f"has {len(command)} arguments; the limit is {_MAX_ARGS}")
            return False, AgentSettings()
        ok = True
        for index, argument in enumerate(command):
            at = f"{here}[{index}]"
            if not isinstance(argument, str):
                self.add(at, f"{_show(argument)} is not a string{_bool_hint(argument) or '; quote it'}")
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
        return ok, AgentSettings(tuple(command)) if ok else AgentSettings()


def parse_settings(text: str) -> RepoSettings:
    """Read the text of ``.github/devenv.yml``; an empty file (or only comments) gives the defaults.

    Raises :class:`SettingsError` listing every problem, and nothing else, whatever the text.
    """
    if not isinstance(text, str):
        raise SettingsError([f"the settings must be text, not {_show(text)}"])
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise SettingsError([f"the file is {size:,} bytes long; the limit is {MAX_BYTES:,} bytes"])
    document, notes = _load_yaml(text)
    check = _Checker()
    check.problems.extend(notes)
    if document is None:
        if check.problems:
            raise SettingsError(check.problems)
        return RepoSettings()
    if not isinstance(document, dict):
        check.add("top level", f"the file must be a mapping of settings such as on_push: sync, not {_show(document)}")
        raise SettingsError(check.problems)

    fields: dict[str, Any] = {}
    for key, value in document.items():
        if not isinstance(key, str) or key not in _KEYS:
            check.unknown_key("", key, _KEYS)
            continue
        if key == "auto_create":
            if value is None:
                check.add(key, "has no value; write true or false, or remove the line for the default")
            elif (flag := check.boolean(key, value)) is not None:
                fields[key] = flag
        elif key in ("on_push", "ide"):
            choices = ON_PUSH_CHOICES if key == "on_push" else IDE_CHOICES
            if value is None:
                check.add(key, f"has no value; write one of {', '.join(choices)}, or remove the line for the default")
            elif (choice := check.choice(key, value, choices)) is not None:
                fields[key] = choice
        elif key in ("idle_stop", "delete_after"):
            ok, seconds = check.duration(key, value)
            if ok:
                fields[key] = seconds
        else:
            ok, result = getattr(check, key)(key, value)
            if ok:
                fields[key] = result
    if check.problems:
        raise SettingsError(check.problems)
    return RepoSettings(**fields)


# --- reading it from GitHub -----------------------------------------------------

_SHA = re.compile(r"[0-9a-fA-F]{40}|[0-9a-fA-F]{64}")
_CONTENTS = "/repos/{owner}/{repo}/contents/{+path}{?ref}"


class RepoSettingsLoader:
    """Reads ``.github/devenv.yml`` at a base commit, once per commit (an LRU of ``maxsize`` commits).

    Share one loader in the process.  Errors other than 404 (after the client's
    own retries) propagate and are not cached, so the next event tries again.
    """

    def __init__(self, *, maxsize: int = 1024) -> None:
        self._cache: LRUCache[tuple[str, str, str], tuple[RepoSettings, tuple[str, ...]]] = LRUCache(maxsize=maxsize)
        self._locks: dict[tuple[str, str, str], asyncio.Lock] = {}

    async def load(self, gh: Any, owner: str, repo: str, base_sha: str) -> tuple[RepoSettings, list[str]]:
        """The settings at ``base_sha`` and the file's problems (to show on the PR; empty if none).

        No file: the defaults and no problems.  A broken file: the defaults and its problems.
        ``base_sha`` must be a commit SHA (``pull_request.base.sha``), never a branch name,
        since results are cached for good.
        """
        if not isinstance(base_sha, str) or not _SHA.fullmatch(base_sha):
            raise ValueError(f"base_sha must be a commit SHA, not {base_sha!r}")
        key = (owner.lower(), repo.lower(), base_sha.lower())
        cached = self._cache.get(key)
        if cached is None:
            lock = self._locks.setdefault(key, asyncio.Lock())
            try:
                async with lock:  # events for one base commit often arrive together: one GET
                    cached = self._cache.get(key)
                    if cached is None:
                        settings, problems = await self._fetch(gh, owner, repo, base_sha)
                        cached = self._cache[key] = (settings, tuple(problems))
            finally:
                if self._locks.get(key) is lock and not lock.locked():
                    del self._locks[key]
        return cached[0], list(cached[1])

    async def _fetch(self, gh: Any, owner: str, repo: str, base_sha: str) -> tuple[RepoSettings, list[str]]:
        where = f"{owner}/{repo}@{base_sha[:7]}"
        try:
            answer = await gh.getitem(_CONTENTS, {"owner": owner, "repo": repo, "path": SETTINGS_PATH, "ref": base_sha})
        except Exception as exc:
            if is_not_found(exc):
                log.debug("no %s in %s", SETTINGS_PATH, where)
                return RepoSettings(), []
            raise
        problems = _file_problems(answer)
        if not problems:
            text, problems = _decode(answer)
            if text is not None:
                try:
                    return parse_settings(text), []
                except SettingsError as exc:
                    problems = exc.problems
        log.info("%s in %s has %d problem(s); using the defaults", SETTINGS_PATH, where, len(problems))
        return RepoSettings(), problems


def _file_problems(answer: Any) -> list[str]:
    if isinstance(answer, list):
        return [f"{SETTINGS_PATH} is a directory; the settings must be a file"]
    if not isinstance(answer, dict) or answer.get("type") != "file":
        kind = answer.get("type") if isinstance(answer, dict) else None
        return [f"{SETTINGS_PATH} is a {kind or 'something other than a file'}; the settings must be a"
                " regular file (a symbolic link only works to a file in the repository)"]
    size = answer.get("size")
    if isinstance(size, int) and size > MAX_BYTES:
        return [f"{SETTINGS_PATH} is {size:,} bytes long; the limit is {MAX_BYTES:,} bytes"]
    if answer.get("encoding") != "base64":
        return [f"{SETTINGS_PATH} could not be read through GitHub's contents API"
                f" (encoding {_show(answer.get('encoding'))})"]
    return []


def _decode(answer: dict[str, Any]) -> tuple[str | None, list[str]]:
    try:
        data = base64.b64decode(answer.get("content") or "")
    except (binascii.Error, ValueError):
        return None, [f"{SETTINGS_PATH}: GitHub sent content that is not base64"]
    if len(data) > MAX_BYTES:
        return None, [f"{SETTINGS_PATH} is {len(data):,} bytes long; the limit is {MAX_BYTES:,} bytes"]
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        return None, [f"{SETTINGS_PATH} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset"
                      f" {exc.start}); save it as UTF-8"]


# --- telling people -------------------------------------------------------------

_RENDER_LIMIT: Final = 30


def render_problems(problems: list[str], *, base_sha: str | None = None, docs_url: str = DOCS_URL) -> str:
    """Markdown for a PR comment listing ``problems`` (plain text, escaped here) and where to read more."""
    commit = f" at {markdown.inline_code(base_sha[:7])}" if base_sha else ""
    lines = [
        f"**{markdown.inline_code(SETTINGS_PATH)} has {'a problem' if len(problems) == 1 else 'problems'}**,"
        " so this pull request uses the default settings until it is fixed.",
        "",
        f"The file is read from the pull request's base branch{commit}, never from the pull request itself:"
        " fix it there (a change in this pull request takes effect once it is merged).",
        "",
    ]
    lines += [f"- {markdown.escape(problem)}" for problem in problems[:_RENDER_LIMIT]]
    if len(problems) > _RENDER_LIMIT:
        lines.append(f"- …and {len(problems) - _RENDER_LIMIT} more")
    lines += ["", f"Every setting is described in [the settings reference]({docs_url})."]
    return "\n".join(lines)
