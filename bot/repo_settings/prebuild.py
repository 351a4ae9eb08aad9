"""The checks of the ``prebuild`` and ``clone_strategy`` keys of ``.github/devenv.yml`` (docs/prebuilds.md).

``prebuild`` is ``true``/``false`` or a mapping ``{enabled: bool, branches: [names or fnmatch patterns]}``;
``clone_strategy`` is one of :data:`~bot.repo_settings.schema.CLONE_STRATEGIES`.  Each check returns
``(ok, value)`` like the section checks of :mod:`bot.repo_settings.sections`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

from bot.repo_settings.checks import Checker
from bot.repo_settings.problems import show
from bot.repo_settings.schema import CLONE_STRATEGIES, RepoPrebuildSettings

__all__ = ["PREBUILD_CHECKS"]

_KEYS: Final = ("enabled", "branches")
_MAX_BRANCHES: Final = 20
#: Branch names (git's rules, roughly) and fnmatch patterns over them.
_BRANCH = re.compile(r"[A-Za-z0-9._/*?\[\]-]{1,255}")


def prebuild(check: Checker, path: str, value: Any) -> tuple[bool, RepoPrebuildSettings]:
    if value is None:
        return True, RepoPrebuildSettings()
    if isinstance(value, bool):
        return True, RepoPrebuildSettings(enabled=value)
    entry = check.mapping(path, value, _KEYS, "{enabled: true, branches: [main]}")
    if entry is None:
        return False, RepoPrebuildSettings()
    before = len(check.problems)
    enabled = True
    if "enabled" in entry:
        flag = check.boolean(f"{path}.enabled", entry["enabled"])
        enabled = flag if flag is not None else True
    branches = _branches(check, f"{path}.branches", entry.get("branches"))
    return len(check.problems) == before, RepoPrebuildSettings(enabled=enabled, branches=branches)


def _branches(check: Checker, path: str, value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        check.add(path, f"expected a list of branch names such as [main, release/*], found {show(value)}")
        return None
    if len(items) > _MAX_BRANCHES:
        check.add(path, f"lists {len(items)} branches; at most {_MAX_BRANCHES}")
        return None
    out: list[str] = []
    for index, item in enumerate(items):
        if not isinstance(item, str) or not _BRANCH.fullmatch(item) or ".." in item or item.startswith("-"):
            check.add(f"{path}[{index}]", f"{show(item)} is not a branch name or pattern such as main or release/*")
        else:
            out.append(item)
    return tuple(out)


def clone_strategy(check: Checker, path: str, value: Any) -> tuple[bool, str]:
    if value is None:
        return True, CLONE_STRATEGIES[0]
    choice = check.choice(path, value, CLONE_STRATEGIES)
    return choice is not None, choice or CLONE_STRATEGIES[0]


PREBUILD_CHECKS: Final[dict[str, Callable[[Checker, str, Any], tuple[bool, Any]]]] = {
    "prebuild": prebuild,
    "clone_strategy": clone_strategy,
}
