"""Checking ``.github/devenv.yml``: ``parse_settings(text) -> RepoSettings``, pure, every problem at once.

Design.  Reading and checking are split, as elsewhere in the bot.
:func:`parse_settings` is pure: text in, :class:`~bot.repo_settings.schema.RepoSettings`
out, or :class:`~bot.repo_settings.schema.SettingsError` listing *every* problem at
once, each naming where it is and what to write instead.  It never raises anything
else for any text (property-tested with Hypothesis).  The YAML is read by
:mod:`bot.repo_settings.yaml_load`, the values checked by
:class:`~bot.repo_settings.sections.SectionChecker`.
"""

from __future__ import annotations

from typing import Any, Final

from bot.repo_settings.checks import parse_duration
from bot.repo_settings.prebuild import PREBUILD_CHECKS
from bot.repo_settings.problems import show
from bot.repo_settings.schema import IDE_CHOICES, MAX_BYTES, ON_PUSH_CHOICES, RepoSettings, SettingsError
from bot.repo_settings.sections import SectionChecker
from bot.repo_settings.yaml_load import load_yaml

__all__ = ["parse_duration", "parse_settings"]

_KEYS: Final = (
    "auto_create", "on_push", "devcontainer_path", "ide", "ports", "permissions",
    "idle_stop", "delete_after", "extend", "resources", "agent", "ssh", "prebuild", "clone_strategy",
)  # fmt: skip


def parse_settings(text: str) -> RepoSettings:
    """Read the text of ``.github/devenv.yml``; an empty file (or only comments) gives the defaults.

    Raises :class:`SettingsError` listing every problem, and nothing else, whatever the text.
    """
    if not isinstance(text, str):
        raise SettingsError([f"the settings must be text, not {show(text)}"])
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise SettingsError([f"the file is {size:,} bytes long; the limit is {MAX_BYTES:,} bytes"])
    document, notes = load_yaml(text)
    check = SectionChecker()
    check.problems.extend(notes)
    if document is None:
        if check.problems:
            raise SettingsError(check.problems)
        return RepoSettings()
    if not isinstance(document, dict):
        check.add("top level", f"the file must be a mapping of settings such as on_push: sync, not {show(document)}")
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
        elif key == "extend":
            ok, (by, longest) = check.extend(key, value)
            if ok:
                fields["extend_by"], fields["extend_max"] = by, longest
        elif key == "ssh":
            ok, level = check.ssh(key, value)
            if ok:
                fields["ssh_permission"] = level
        elif key in PREBUILD_CHECKS:
            ok, result = PREBUILD_CHECKS[key](check, key, value)
            if ok:
                fields[key] = result
        else:
            ok, result = getattr(check, key)(key, value)
            if ok:
                fields[key] = result
    if check.problems:
        raise SettingsError(check.problems)
    return RepoSettings(**fields)
