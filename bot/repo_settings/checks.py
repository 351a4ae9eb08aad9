"""The checker's generic part: collecting problems, and checking mappings, choices, booleans, durations.

Design.  A :class:`Checker` walks the loaded document once and *collects* every
problem (``path: message``) instead of stopping at the first, so a broken file
is fixed in one round.  Each check returns the value it accepted, or None after
recording why not; the section checks (:mod:`bot.repo_settings.sections`) are
built from these.
"""

from __future__ import annotations

import re
from typing import Any, Final

from bot.repo_settings.problems import BOOL_HINT_FALSE, BOOL_HINT_TRUE, bool_hint, show, suggest

__all__ = ["Checker", "parse_duration"]

MIN_DURATION: Final = 60
MAX_DURATION: Final = 365 * 86400

_DURATION_PART = re.compile(r"(\d+)\s*([smhdw])")
_DURATION = re.compile(r"(?:\d+\s*[smhdw]\s*)+")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


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


class Checker:
    """Collects problems while turning the loaded document into :class:`RepoSettings` fields."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def mapping(self, path: str, value: Any, known: tuple[str, ...], example: str, *,
                suggest_keys: bool = True) -> dict[str, Any] | None:
        """``value`` if it is a mapping; unknown keys are reported (with a guess at the key meant,
        if ``suggest_keys``) and dropped."""
        if not isinstance(value, dict):
            self.add(path, f"expected a mapping such as {example}, found {show(value)}{bool_hint(value)}")
            return None
        known_here: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(key, str) and key in known:
                known_here[key] = item
            else:
                self.unknown_key(path, key, known, suggest_keys=suggest_keys)
        return known_here

    def unknown_key(self, path: str, key: Any, known: tuple[str, ...], *, suggest_keys: bool = True) -> None:
        where = f"{path}." if path else ""
        choices = ", ".join(known)
        if key is True and "on_push" in known:
            self.add(f"{where}true", f"is not a setting ({BOOL_HINT_TRUE}); did you mean on_push?")
        elif isinstance(key, bool):
            self.add(f"{where}{show(key)}", f"is not a setting ({BOOL_HINT_TRUE if key else BOOL_HINT_FALSE});"
                     f" the settings here are {choices}")
        elif isinstance(key, str):
            shown = show(key)[1:-1] if key and show(key)[1:-1] == key else show(key)
            hint = f"; the settings here are {choices}"
            if suggest_keys:
                hint = suggest(key, known) or hint
            self.add(f"{where}{shown}", f"is not a setting{hint}")
        else:
            self.add(f"{where}{show(key)}", f"is not a setting; the settings here are {choices}")

    def choice(self, path: str, value: Any, choices: tuple[str, ...]) -> str | None:
        if isinstance(value, str) and value in choices:
            return value
        hint = bool_hint(value)
        if value is False and "ignore" in choices:
            hint = f" ({BOOL_HINT_FALSE}); did you mean ignore?"
        elif value is False and "none" in choices:
            hint = f" ({BOOL_HINT_FALSE}); did you mean none?"
        hint = hint or suggest(value, choices)
        self.add(path, f"{show(value)} is not one of {', '.join(choices)}{hint}")
        return None

    def boolean(self, path: str, value: Any) -> bool | None:
        if isinstance(value, bool):
            return value
        self.add(path, f"{show(value)} is not true or false")
        return None

    def duration(self, path: str, value: Any) -> tuple[bool, int | None]:
        if value is None:
            self.add(path, "has no value; write a duration such as 2h, or never, or remove the line for the default")
            return False, None
        try:
            seconds = parse_duration(value)
        except ValueError:
            self.add(path, f"{show(value)} is not a duration; write e.g. 30m, 2h, 7d, a number of seconds,"
                     f" or never{bool_hint(value)}")
            return False, None
        if seconds is not None and not MIN_DURATION <= seconds <= MAX_DURATION:
            self.add(path, f"{show(value)} is {_format_seconds(seconds)}; it must be between 1m and 365d"
                     " (write never to turn it off)")
            return False, None
        return True, seconds

