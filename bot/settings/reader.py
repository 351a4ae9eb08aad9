"""One pass over the environment: each variable parsed once, every problem kept.

Design. A :class:`Var` is one row of the table in :mod:`bot.settings.variables`: its name,
value type, default (written as an operator would write it, and parsed by the same type) and
the line the README shows. A :class:`Reader` wraps the mapping to read (the process
environment plus ``.env``, or a test's dict). Sections ask it for the variables they use; a
value is parsed on first use and cached, so a variable two sections share (``DEVENV_NAMESPACE``,
``DEVENV_PUBLIC_URL``) is checked, and reported, once. A bad value is recorded as a problem
and the default stands in, so reading goes on and one start-up lists every problem;
:class:`ConfigError` then carries them all.

Sections of a feature that is off (no ``DEVENV_PREVIEW_DOMAIN``: no links) do not read their
variables, so a stray value there never stops the bot, as before the table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from bot.settings.values import Kind

T = TypeVar("T")


class ConfigError(ValueError):
    """One or more settings are missing or wrong; the message says what to set."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"devenv-bot cannot start, fix its configuration:\n{lines}")


@dataclasses.dataclass(frozen=True)
class Var(Generic[T]):
    """One environment variable: name, value type, default and the README's line about it."""

    name: str
    kind: Kind[T]
    #: As an operator would write it (``30m``, ``3000``); parsed by ``kind``. None: unset.
    default: str | None
    doc: str
    #: What the README shows as the default when it is not a literal value (``<state>/devpod``).
    shown: str | None = None

    def parsed_default(self) -> T | None:
        return None if self.default is None else self.kind.parse(self.name, self.default)

    def preset(self) -> T:
        """The default's value, for a section's dataclass default (so it is written once, here)."""
        value = self.parsed_default()
        if value is None:
            raise TypeError(f"{self.name} has no default")
        return value


class Reader:
    """Typed, cached access to the variables of one environment, collecting problems."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []
        self._values: dict[str, Any] = {}
        self._bad: set[str] = set()

    def raw(self, var: Var[Any]) -> str | None:
        """The text as set, or None when unset or blank (blank counts as unset everywhere)."""
        value = self.env.get(var.name)
        return value if value is not None and value.strip() else None

    def is_set(self, var: Var[Any]) -> bool:
        return self.raw(var) is not None

    def get(self, var: Var[T]) -> T | None:
        """The value, its default when unset or wrong (the problem is kept), None without default."""
        if var.name not in self._values:
            self._values[var.name] = self._parse(var)
        value: T | None = self._values[var.name]
        return value

    def _parse(self, var: Var[T]) -> T | None:
        raw = self.raw(var)
        if raw is not None:
            try:
                return var.kind.parse(var.name, raw)
            except ValueError as exc:
                self._bad.add(var.name)
                self.problem(str(exc))
        return var.parsed_default()

    def value(self, var: Var[T]) -> T:
        """The value of a variable that has a default."""
        value = self.get(var)
        if value is None:
            raise TypeError(f"{var.name} has no default; read it with get()")
        return value

    def valid(self, var: Var[Any]) -> bool:
        """Set, and to a value its type accepts."""
        self.get(var)
        return self.is_set(var) and var.name not in self._bad

    def problem(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)

    def check(self) -> None:
        """Raise :class:`ConfigError` with every problem found so far."""
        if self.problems:
            raise ConfigError(list(self.problems))
