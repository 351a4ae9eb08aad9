"""Reading the YAML of ``.github/devenv.yml`` safely, noting what PyYAML would silently accept.

Design.  The file is loaded with PyYAML's safe loader, which speaks YAML 1.1:
an unquoted ``on``, ``off``, ``yes`` or ``no`` is a boolean (so a key ``on:``
becomes ``True``), ``1:30`` is the base-60 number 90 and ``0700`` is octal.
The messages say so where it matters.  On top of ``yaml.SafeLoader`` (still
only plain Python types, no tags that build objects) the loader reports a key
that appears twice in one mapping, which plain PyYAML silently resolves to the
last value, and base-60 and octal numbers, which nobody writes on purpose here.
:func:`load_yaml` raises :class:`~bot.repo_settings.schema.SettingsError` and
nothing else for any text.
"""

from __future__ import annotations

from typing import Any

import yaml

from bot.repo_settings.problems import SHOW_LIMIT, show
from bot.repo_settings.schema import SettingsError

__all__ = ["load_yaml"]


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
                        f"{_at(key_node.start_mark)}: the key {show(key_node.value)} appears a second time"
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
                f"{_at(node.start_mark)}: {show(node.value)} is a base-60 number in YAML 1.1 (it reads as"
                f" {value}); quote it, or for a duration write e.g. 1h30m"
            )
        elif len(digits) > 1 and digits.startswith("0") and digits[1] not in "xXbB.":
            self.notes.append(
                f"{_at(node.start_mark)}: {show(node.value)} is an octal number in YAML 1.1 (it reads as"
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


def load_yaml(text: str) -> tuple[Any, list[str]]:
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
        detail = str(exc).splitlines()[0][:SHOW_LIMIT] if str(exc) else type(exc).__name__
        raise SettingsError([f"YAML: a value cannot be read ({detail}); check explicit !!tags and dates"]) from None
    finally:
        if loader is not None:
            loader.dispose()
