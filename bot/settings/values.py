"""Value types of operator settings: how one environment variable's text becomes a typed value.

Design. A value type is a small object with ``parse(name, raw) -> value`` that raises
``ValueError`` with a whole sentence naming the variable and what to set (the reader in
:mod:`bot.settings.reader` collects those sentences; nothing here raises anything else).
Types are shared: every duration in the table goes through :class:`Duration`, every GitHub
permission through :data:`PERMISSION`, every DNS name through :class:`DnsName`, and so on,
so one variable is never stricter than another of the same kind by accident.

Types particular to one feature (the preview host template, the agent's command line,
DevPod's resource lists) are in :mod:`bot.settings.kinds`; this module holds the general ones.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Generic, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: GitHub's repository roles, weakest first (the collaborator-permission API's ``role_name``).
PERMISSIONS = ("read", "triage", "write", "maintain", "admin")

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_DURATIONS = re.compile(r"(?:\d+(?:\.\d+)?\s*[smhdw]\s*)+")
#: Characters that must never reach an ingress annotation (the ingress-nginx annotation
#: injection CVEs, e.g. CVE-2025-24514 through ``auth-url``, used quotes, braces, ``;`` and
#: newlines). The bot uses no nginx variables, so ``$`` is refused too.
UNSAFE_URL_CHARS = re.compile(r"[\s\"'`\\;{}$<>|^]")
#: One DNS label (RFC 1123): at most 63 lower-case letters, digits and '-', no '-' at either end.
DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"


class Kind(ABC, Generic[T]):
    """How the text of one variable becomes a value; ``ValueError`` says what to set instead."""

    @abstractmethod
    def parse(self, name: str, raw: str) -> T:
        """The value of ``name`` set to ``raw`` (never empty: unset variables are not parsed)."""


def must(name: str, what: str, value: str) -> ValueError:
    return ValueError(f"{name} must be {what}, got {value!r}")


# --------------------------------------------------------------------------- text


class Text(Kind[str]):
    """Free text, stripped; optionally lower-cased and matched against a pattern."""

    def __init__(self, pattern: str | None = None, what: str = "", *, lower: bool = False) -> None:
        self.pattern = re.compile(pattern) if pattern else None
        self.what, self.lower = what, lower

    def parse(self, name: str, raw: str) -> str:
        value = raw.strip()
        value = value.lower() if self.lower else value
        if self.pattern and not self.pattern.fullmatch(value):
            raise must(name, self.what, value)
        return value


class Choice(Kind[str]):
    """One of a few words (lower-cased); ``aliases`` map other spellings onto them."""

    def __init__(self, *options: str, aliases: Mapping[str, str] | None = None, hint: str = "") -> None:
        self.options, self.aliases, self.hint = options, dict(aliases or {}), hint

    def parse(self, name: str, raw: str) -> str:
        value = raw.strip().lower()
        value = self.aliases.get(value, value)
        if value not in self.options:
            raise ValueError(self.hint.format(name=name, value=value) or
                             f"{name}={value!r} must be one of {', '.join(self.options)}")
        return value


#: A GitHub repository role: read, triage, write, maintain or admin.
PERMISSION = Choice(*PERMISSIONS)


class Flag(Kind[bool]):
    """true/false (also 1/0, yes/no)."""

    def parse(self, name: str, raw: str) -> bool:
        value = raw.strip().lower()
        if value not in ("true", "false", "1", "0", "yes", "no"):
            raise must(name, "true or false", value)
        return value in ("true", "1", "yes")


class Secret(Kind[str]):
    """A token, key or password; a message about it never repeats its value.

    ``strip`` drops surrounding blanks, ``spaces`` allows blanks inside, ``one_line``
    refuses line breaks and NUL.
    """

    def __init__(self, what: str = "one line without spaces", *, min_len: int = 1, strip: bool = True,
                 spaces: bool = False, one_line: bool = True) -> None:
        self.what, self.min_len, self.strip, self.spaces, self.one_line = what, min_len, strip, spaces, one_line

    def parse(self, name: str, raw: str) -> str:
        value = raw.strip() if self.strip else raw
        bad = len(value) < self.min_len
        bad = bad or (self.one_line and ("\n" in value or "\0" in value))
        bad = bad or (not self.spaces and any(c.isspace() for c in value))
        if bad:
            raise ValueError(f"{name} must be {self.what}")
        return value


# --------------------------------------------------------------------------- numbers


class Integer(Kind[int]):
    """A whole number in ``[minimum, maximum]``."""

    def __init__(self, minimum: int = 0, maximum: int | None = None, unit: str = "") -> None:
        self.minimum, self.maximum, self.unit = minimum, maximum, unit

    def parse(self, name: str, raw: str) -> int:
        value = raw.strip()
        try:
            number = int(value)
        except ValueError:
            number = self.minimum - 1
        if number < self.minimum or (self.maximum is not None and number > self.maximum):
            upper = f" and ≤ {self.maximum}" if self.maximum is not None else ""
            raise ValueError(f"{name}={value!r} must be a whole number{self.unit} ≥ {self.minimum}{upper}")
        return number


class Port(Kind[int]):
    """A TCP port to listen on; 0 picks a free one."""

    def parse(self, name: str, raw: str) -> int:
        value = raw.strip()
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"{name}={value!r} must be a whole number ≥ 0; for example {name}=3000") from None
        if not 0 <= number <= 65535:
            raise ValueError(f"{name}={number} is not a TCP port; use 1-65535 (0 picks a free one)")
        return number


class Number(Kind[float]):
    """A number ≥ 0 (a rate, a count that may be fractional)."""

    def parse(self, name: str, raw: str) -> float:
        value = raw.strip()
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if math.isnan(number) or number < 0:
            raise ValueError(f"{name}={value!r} must be a number ≥ 0")
        return number


def seconds(text: str) -> float:
    """Seconds in ``90``, ``1.5``, ``90s``, ``30m``, ``8h``, ``2d``, ``1w`` or ``1h30m``.

    Every form an operator setting accepted before the settings table is accepted here:
    a plain number as Python's ``float`` reads it (``1e3``, ``.5``, ``inf``) and a number
    with one unit (``30m``, ``1.5h``, ``30 m``). ValueError otherwise, or for NaN.
    """
    text = text.strip().lower()
    try:
        value = float(text)
    except ValueError:
        if not _DURATIONS.fullmatch(text):
            raise ValueError(f"not a duration: {text!r}") from None
        value = sum(float(n) * _UNITS[unit] for n, unit in _DURATION_PART.findall(text))
    if math.isnan(value):
        raise ValueError("not a duration: nan")
    return value


class Duration(Kind[float]):
    """A duration in seconds (``90``, ``90s``, ``30m``, ``8h``); ``positive`` refuses 0."""

    def __init__(self, *, positive: bool = False) -> None:
        self.positive = positive

    def parse(self, name: str, raw: str) -> float:
        value = raw.strip()
        bound = "> 0" if self.positive else "≥ 0"
        try:
            number = seconds(value)
        except ValueError:
            number = -1.0
        if number < 0 or (self.positive and number == 0):
            raise ValueError(f"{name}={value!r} must be a duration {bound}: a number of seconds or one like "
                             f"90s, 30m or 8h")
        return number


class GoDuration(Kind[str]):
    """A Go duration handed to another program as text (``10m``, ``1h30m``, ``500ms``)."""

    _PATTERN = re.compile(r"([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+")

    def parse(self, name: str, raw: str) -> str:
        value = raw.strip()
        if not self._PATTERN.fullmatch(value):
            raise must(name, "a Go duration like 10m", value)
        return value


# --------------------------------------------------------------------------- names


class DnsName(Kind[str]):
    """A DNS label (``dots=False``) or subdomain: lower-case letters, digits, '-' (and '.')."""

    def __init__(self, what: str, *, dots: bool = True, max_len: int = 253, min_dots: int = 0,
                 normalise: bool = False) -> None:
        self.pattern = re.compile(rf"{DNS_LABEL}(?:\.{DNS_LABEL})*" if dots else DNS_LABEL)
        self.what, self.max_len, self.min_dots, self.normalise = what, max_len, min_dots, normalise

    def parse(self, name: str, raw: str) -> str:
        value = raw.strip()
        if self.normalise:
            value = value.lower().rstrip(".")
        if not self.pattern.fullmatch(value) or len(value) > self.max_len or value.count(".") < self.min_dots:
            raise must(name, self.what, value)
        return value


class Quantity(Kind[str]):
    """A Kubernetes quantity such as ``20Gi`` or ``500m``."""

    _PATTERN = re.compile(r"[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?")

    def parse(self, name: str, raw: str) -> str:
        value = raw.strip()
        if not self._PATTERN.fullmatch(value):
            raise must(name, "a Kubernetes quantity like 20Gi", value)
        return value


class NamePort(Kind[tuple[str, int]]):
    """``name:port``: a Kubernetes Service (a DNS-1035 label) and a port 1-65535."""

    _NAME = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")

    def __init__(self, what: str) -> None:
        self.what = what

    def parse(self, name: str, raw: str) -> tuple[str, int]:
        value = raw.strip()
        service, colon, port = value.rpartition(":")
        if not colon or not port.isdigit():
            raise ValueError(f"{name} must be set to {self.what} as name:port, e.g. devenv-bot:3000, got {value!r}")
        if not self._NAME.fullmatch(service) or len(service) > 63:
            raise ValueError(f"{name} must name a Service in the workspaces' namespace (DEVENV_NAMESPACE) like "
                             f"devenv-bot:3000, got {value!r} (another namespace: see docs/links.md, ExternalName)")
        if not 1 <= int(port) <= 65535:
            raise ValueError(f"{name} port must be 1-65535, got {value!r}")
        return service, int(port)


class Networks(Kind[tuple[Network, ...]]):
    """Comma-separated addresses or CIDR networks (``10.0.0.0/8, 127.0.0.1``)."""

    def parse(self, name: str, raw: str) -> tuple[Network, ...]:
        entries = [e.strip() for e in raw.split(",") if e.strip()]
        networks, bad = [], []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                bad.append(entry)
        if bad:
            raise ValueError(f"{name} must list addresses or networks such as 10.0.0.0/8,127.0.0.1; "
                             f"bad entries: {', '.join(bad)}")
        return tuple(networks)


# --------------------------------------------------------------------------- paths and URLs


class FilePath(Kind[Path]):
    """A path; ``absolute`` refuses relative ones, ``single`` refuses ``a:b`` path lists."""

    def __init__(self, *, absolute: bool = False, single: bool = False) -> None:
        self.absolute, self.single = absolute, single

    def parse(self, name: str, raw: str) -> Path:
        value = raw.strip()
        if self.absolute and not Path(value).is_absolute():
            raise ValueError(f"{name} must be an absolute path, got {value!r}")
        if self.single and os.pathsep in value:
            raise ValueError(f"{name} must name a single file for DevPod (no path list), got {value!r}")
        return Path(value)


class Url(Kind[str]):
    """An http(s) URL, trailing '/' dropped.

    ``plain`` refuses characters that could break out of an ingress annotation and a
    fragment; ``origin`` refuses a path, query or credentials (``scheme://host[:port]``);
    ``api`` refuses a query or fragment.
    """

    def __init__(self, example: str, *, plain: bool = False, origin: bool = False, api: bool = False,
                 schemes: tuple[str, ...] = ("http", "https")) -> None:
        self.example, self.plain, self.origin, self.api, self.schemes = example, plain, origin, api, schemes

    def parse(self, name: str, raw: str) -> str:
        value = raw.strip()
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018  (raises ValueError on a bad port)
        except ValueError:
            raise self._refuse(name, value) from None
        bad = parts.scheme not in self.schemes or not parts.hostname
        if self.plain:
            bad = bad or bool(UNSAFE_URL_CHARS.search(value) or parts.fragment)
        if self.origin:
            bad = bad or parts.path not in ("", "/") or bool(parts.query or parts.fragment or parts.username
                                                              or parts.password)
        if self.api:
            bad = bad or bool(parts.query or parts.fragment)
        if bad:
            raise self._refuse(name, value)
        return value if self.plain else value.rstrip("/")

    def _refuse(self, name: str, value: str) -> ValueError:
        schemes = " or ".join(self.schemes)
        if self.plain:
            return ValueError(f"{name} must be a plain {schemes} URL without quotes, spaces, ';', braces or '$', "
                              f"got {value!r}")
        if self.origin:
            return ValueError(f"{name} must be http(s)://host[:port] without a path, got {value!r}")
        return ValueError(f"{name}={value!r} must be an http(s) URL such as {self.example}")
