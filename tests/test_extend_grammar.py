"""``/devenv extend [duration]`` in the grammar: a duration with its unit, or none for the repository's default."""

from __future__ import annotations

import pytest

from bot.commands.grammar import Command, Reply, parse


@pytest.mark.parametrize(("body", "seconds"), [
    ("/devenv extend", None), ("/devenv extend 2h", 7200), ("/devenv extend 90m", 5400),
    ("/devenv extend 1h30m", 5400), ("/devenv extend 2D", 2 * 86400), ("/devenv extend 1w", 7 * 86400),
])
def test_extend_takes_an_optional_duration(body, seconds):
    assert parse(body) == Command("extend", seconds=seconds)


@pytest.mark.parametrize(("body", "says"), [
    ("/devenv extend 5", "takes a duration with its unit (m, h, d or w), not `5`"),
    ("/devenv extend 0m", "not `0m`"),  # less than a minute
    ("/devenv extend forever", "not `forever`"),
    ("/devenv extend 2h please", "takes at most one duration"),
    ("/devenv extend 999999w", "not `999999w`"),  # beyond what any repository allows
])
def test_anything_else_gets_a_reply_with_an_example(body, says):
    result = parse(body)
    assert isinstance(result, Reply) and result.kind == "bad_arguments" and says in result.message
    assert "`/devenv extend 4h`" in result.message and result.suggestion == "/devenv extend"


def test_words_people_try_suggest_extend():
    result = parse("/devenv snooze")
    assert isinstance(result, Reply) and result.suggestion == "/devenv extend"
