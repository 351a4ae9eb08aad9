"""``/devenv logs [lines]`` in the grammar: the default, a number within bounds, and clear replies otherwise."""

from __future__ import annotations

import pytest

from bot.commands.grammar import Command, Reply, parse
from bot.commands.verbs import LOGS_DEFAULT_LINES, LOGS_MAX_LINES
from bot.github.permissions import REQUIRED_PERMISSION_DEFAULTS


@pytest.mark.parametrize(("body", "lines"), [
    ("/devenv logs", LOGS_DEFAULT_LINES),
    ("/devenv logs 200", 200),
    ("/devenv LOGS 1", 1),
    (f"/devenv logs {LOGS_MAX_LINES}", LOGS_MAX_LINES),
    ("please look\n/devenv logs   7  ", 7),
])
def test_logs_takes_an_optional_number_of_lines(body, lines):
    assert parse(body) == Command("logs", None, body.count("\n") + 1, lines=lines)


@pytest.mark.parametrize(("body", "says"), [
    (f"/devenv logs {LOGS_MAX_LINES + 1}", f"shows 1 to {LOGS_MAX_LINES} lines of each log, not `{LOGS_MAX_LINES + 1}`"),
    ("/devenv logs 0", "shows 1 to 500 lines of each log, not `0`"),
    ("/devenv logs all", "takes a number of lines, not `all`"),
    ("/devenv logs -5", "takes a number of lines, not `-5`"),
    ("/devenv logs ５", "takes a number of lines, not `５`"),  # a full-width digit is not a number here
    ("/devenv logs 10 20", "takes at most one number, but it is followed by `10 20`"),
    ("/devenv logs " + "9" * 5000, "shows 1 to 500 lines of each log"),  # never int() of a huge string
])
def test_a_bad_number_of_lines_gets_a_clear_reply(body, says):
    result = parse(body)
    assert isinstance(result, Reply) and result.kind == "bad_arguments", result
    assert says in result.message and "`/devenv logs 200`" in result.message
    assert result.suggestion == "/devenv logs"


def test_people_who_ask_for_the_log_are_pointed_at_logs():
    result = parse("/devenv log")
    assert isinstance(result, Reply) and result.suggestion == "/devenv logs"


def test_logs_needs_read_access_by_default():
    assert REQUIRED_PERMISSION_DEFAULTS["logs"] == "read"


def test_more_command_lines_after_logs_are_counted_and_the_number_kept():
    assert parse("/devenv logs 9\n/devenv up") == Command("logs", None, 1, ignored_extra=1, lines=9)
