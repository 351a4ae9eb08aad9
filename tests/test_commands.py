"""The slash-command grammar in ``bot.commands``: tables of comments and what they mean, then properties."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.commands.grammar import (
    IGNORE,
    Command,
    Ignore,
    Reply,
    escape_markdown,
    parse,
    validate_prefix,
)
from bot.commands.verbs import SYNTAX, USAGE, VERBS, usage_markdown
from bot.github.permissions import REQUIRED_PERMISSION_DEFAULTS

# --- commands that are run ---------------------------------------------------------------

RUN = [
    ("up", "/devenv up", Command("up")),
    ("recreate", "/devenv recreate", Command("recreate")),
    ("reset", "/devenv reset", Command("reset")),
    ("stop", "/devenv stop", Command("stop")),
    ("delete", "/devenv delete", Command("delete")),
    ("status", "/devenv status", Command("status")),
    ("help", "/devenv help", Command("help")),
    ("approve", "/devenv approve", Command("approve")),
    ("agent-stop", "/devenv agent stop", Command("agent stop")),
    ("upper-case-verb", "/devenv UP", Command("up")),
    ("mixed-case-prefix", "/DevEnv Status", Command("status")),
    ("upper-case-agent", "/DEVENV AGENT STOP", Command("agent stop")),
    ("trailing-spaces", "/devenv up   ", Command("up")),
    ("tabs-between", "/devenv\tup\t", Command("up")),
    ("several-spaces", "/devenv    agent     stop", Command("agent stop")),
    ("three-spaces-indent", "   /devenv up", Command("up")),
    ("after-text", "Thanks, looks good!\n\n/devenv up", Command("up", line=3)),
    ("under-a-paragraph-line", "Let's try it:\n/devenv up", Command("up", line=2)),
    ("before-text", "/devenv stop\nI'm done for today.", Command("stop")),
    ("crlf", "hello\r\n/devenv delete\r\n", Command("delete", line=2)),
    ("lone-cr", "hello\r/devenv delete", Command("delete", line=2)),
    ("after-a-closed-fence", "```\n/devenv up\n```\n/devenv stop", Command("stop", line=4)),
    ("after-a-quote-and-an-empty-line", "> /devenv up\n\n/devenv status", Command("status", line=3)),
    ("after-an-html-comment", "<!-- /devenv up -->\n/devenv stop", Command("stop", line=2)),
    ("after-a-multiline-html-comment", "<!--\n/devenv up\n-->\n/devenv stop", Command("stop", line=4)),
    ("nbsp-as-separator", "/devenv\u00a0up", Command("up")),
    ("inside-details", "<details>\n/devenv up\n</details>", Command("up", line=2)),
    ("in-a-list-item-lazy-line", "- done\n/devenv up", Command("up", line=2)),
]


@pytest.mark.parametrize(("body", "expected"), [r[1:] for r in RUN], ids=[r[0] for r in RUN])
def test_a_well_formed_command_is_run(body, expected):
    assert parse(body) == expected


# --- agent run and its prompt --------------------------------------------------------------

PROMPTS = [
    ("double-quoted", '/devenv agent run "Fix the test"', "Fix the test"),
    ("single-quoted", "/devenv agent run 'Fix the test'", "Fix the test"),
    ("curly-quoted", "/devenv agent run \u201cFix the test\u201d", "Fix the test"),
    ("unquoted", "/devenv agent run Fix the test", "Fix the test"),
    ("unquoted-keeps-inner-spacing", "/devenv agent run   a  b\tc  ", "a  b\tc"),
    ("escaped-double-quote", r'/devenv agent run "say \"hi\""', 'say "hi"'),
    ("escaped-backslash", r'/devenv agent run "C:\\dir\\"', "C:\\dir\\"),
    ("other-backslashes-kept", r'/devenv agent run "match \d+ and \n"', r"match \d+ and \n"),
    ("single-quotes-have-no-escapes", r"/devenv agent run 'a\'", "a\\"),
    ("double-quotes-inside-single", """/devenv agent run 'say "hi"'""", 'say "hi"'),
    ("shell-syntax-kept", "/devenv agent run rm -rf $(pwd); echo `id` && x | y > z", "rm -rf $(pwd); echo `id` && x | y > z"),
    ("quoted-shell-syntax-kept", "/devenv agent run \"$(whoami); `id`\"", "$(whoami); `id`"),
    ("markdown-kept", "/devenv agent run **bold** <b>@someone</b> #12", "**bold** <b>@someone</b> #12"),
    ("unicode-kept", "/devenv agent run \"R\u00e9sum\u00e9 \u2014 \u65e5\u672c\u8a9e \U0001f680\"", "R\u00e9sum\u00e9 \u2014 \u65e5\u672c\u8a9e \U0001f680"),
    ("quoted-inner-spaces-kept", '/devenv agent run "  padded  "', "  padded  "),
    ("upper-case-run", "/devenv Agent RUN go", "go"),
    ("fenced-block", "/devenv agent run\n```\nline one\n  line two\n```", "line one\n  line two"),
    ("tilde-fence-with-info", "/devenv agent run\n~~~markdown title=x\n# Heading\n~~~", "# Heading"),
    ("backtick-fence-with-info", "/devenv agent run\n```text\nhi\n```", "hi"),
    ("longer-fence-holds-a-fence", "/devenv agent run\n````\n```\ncode\n```\n````", "```\ncode\n```"),
    ("tilde-fence-holds-backticks", "/devenv agent run\n~~~\n```\n~~~", "```"),
    ("short-run-does-not-close", "/devenv agent run\n````\n```\n````", "```"),
    ("closing-fence-may-be-longer", "/devenv agent run\n```\nx\n``````", "x"),
    ("quoted-line-then-block", '/devenv agent run "Do this:"\n```\nstep 1\nstep 2\n```', "Do this:\nstep 1\nstep 2"),
    ("unquoted-line-then-block", "/devenv agent run Do this:\n```\nstep\n```", "Do this:\nstep"),
    ("block-keeps-blank-lines", "/devenv agent run\n```\na\n\n\nb\n```", "a\n\n\nb"),
    ("block-keeps-trailing-spaces", "/devenv agent run\n```\na  \n```", "a  "),
    ("block-crlf-becomes-lf", "/devenv agent run\r\n```\r\na\r\nb\r\n```\r\n", "a\nb"),
    ("unclosed-block-runs-to-the-end", "/devenv agent run\n```\na\nb", "a\nb"),
    ("indented-fence-strips-its-indent", "/devenv agent run\n  ```\n  a\n    b\n c\n  ```", "a\n  b\nc"),
    ("block-content-is-not-a-command", "/devenv agent run\n```\n/devenv delete\n```", "/devenv delete"),
]


@pytest.mark.parametrize(("body", "prompt"), [p[1:] for p in PROMPTS], ids=[p[0] for p in PROMPTS])
def test_agent_run_keeps_the_prompt_exactly(body, prompt):
    result = parse(body)
    assert result == Command("agent run", prompt, line=1)


def test_a_fenced_prompt_must_start_on_the_line_right_after_the_command():
    result = parse("/devenv agent run\n\n```\nfix it\n```")
    assert isinstance(result, Reply) and result.kind == "empty_prompt"
    assert "line right after the command" in result.message


def test_a_prompt_at_the_byte_limit_is_accepted_and_one_byte_more_is_not():
    assert parse('/devenv agent run "' + "a" * 100 + '"', max_prompt_bytes=100) == Command("agent run", "a" * 100)
    result = parse('/devenv agent run "' + "a" * 101 + '"', max_prompt_bytes=100)
    assert result == Reply("prompt_too_long", result.message, None)
    assert "101 bytes" in result.message and "100 bytes" in result.message


def test_the_prompt_limit_counts_utf8_bytes_not_characters():
    result = parse("/devenv agent run " + "\u00e9" * 60, max_prompt_bytes=100)  # 120 bytes
    assert isinstance(result, Reply) and result.kind == "prompt_too_long"


def test_the_default_prompt_limit_is_16000_bytes():
    assert parse("/devenv agent run\n```\n" + "x" * 16000 + "\n```") == Command("agent run", "x" * 16000)
    assert parse("/devenv agent run\n```\n" + "x" * 16001 + "\n```").kind == "prompt_too_long"


# --- replies to commands that cannot run -----------------------------------------------------

REPLIES = [
    ("prefix-alone", "/devenv", "usage", "/devenv help"),
    ("prefix-and-spaces", "/devenv   ", "usage", "/devenv help"),
    ("typo-recreate", "/devenv recrate", "unknown_verb", "/devenv recreate"),
    ("typo-status", "/devenv stauts", "unknown_verb", "/devenv status"),
    ("typo-delete", "/devenv delet", "unknown_verb", "/devenv delete"),
    ("synonym-start", "/devenv start", "unknown_verb", "/devenv up"),
    ("synonym-destroy", "/devenv destroy", "unknown_verb", "/devenv delete"),
    ("synonym-cancel", "/devenv cancel", "unknown_verb", "/devenv agent stop"),
    ("typo-agent", '/devenv agnet run "x"', "unknown_verb", "/devenv agent run"),
    ("dashed-agent-run", '/devenv agent-run "x"', "unknown_verb", "/devenv agent run"),
    ("nothing-close", "/devenv frobnicate", "unknown_verb", None),
    ("full-width-verb", "/devenv \uff55\uff50", "unknown_verb", None),
    ("arguments-to-up", "/devenv up please", "bad_arguments", "/devenv up"),
    ("comment-after-stop", "/devenv stop # for the night", "bad_arguments", "/devenv stop"),
    ("arguments-to-agent-stop", "/devenv agent stop now", "bad_arguments", "/devenv agent stop"),
    ("agent-alone", "/devenv agent", "bad_arguments", None),
    ("agent-typo", "/devenv agent rnu fix", "bad_arguments", "/devenv agent run"),
    ("agent-cancel", "/devenv agent cancel", "bad_arguments", "/devenv agent stop"),
    ("unterminated-double-quote", '/devenv agent run "fix it', "bad_arguments", "/devenv agent run"),
    ("unterminated-single-quote", "/devenv agent run 'fix it", "bad_arguments", "/devenv agent run"),
    ("escaped-quote-does-not-close", r'/devenv agent run "fix it\"', "bad_arguments", "/devenv agent run"),
    ("text-after-closing-quote", '/devenv agent run "fix" the bug', "bad_arguments", "/devenv agent run"),
    ("no-prompt", "/devenv agent run", "empty_prompt", "/devenv agent run"),
    ("empty-quotes", '/devenv agent run ""', "empty_prompt", "/devenv agent run"),
    ("blank-quotes", "/devenv agent run '   '", "empty_prompt", "/devenv agent run"),
    ("empty-block", "/devenv agent run\n```\n```", "empty_prompt", "/devenv agent run"),
    ("blank-block", "/devenv agent run\n```\n  \n\n```", "empty_prompt", "/devenv agent run"),
]


@pytest.mark.parametrize(
    ("body", "kind", "suggestion"), [r[1:] for r in REPLIES], ids=[r[0] for r in REPLIES]
)
def test_a_malformed_command_gets_a_reply(body, kind, suggestion):
    result = parse(body)
    assert isinstance(result, Reply)
    assert (result.kind, result.suggestion) == (kind, suggestion)
    assert result.message.strip()
    if kind == "unknown_verb" and suggestion:
        assert f"Did you mean `{suggestion}`?" in result.message


def test_an_unknown_verb_gets_a_did_you_mean_and_the_list_of_commands():
    result = parse("/devenv recrate")
    assert "Did you mean `/devenv recreate`?" in result.message
    assert usage_markdown() in result.message


def test_the_prefix_alone_lists_every_command():
    message = parse("/devenv").message
    for verb in VERBS:
        assert f"`/devenv {SYNTAX[verb]}`" in message


@pytest.mark.parametrize(
    "verb",
    ["@octocat", "<img src=x onerror=alert(1)>", "`code`", "``x``", "[a](http://evil)", "**b**", "a" * 500],
    ids=["mention", "html", "backticks", "double-backticks", "link", "emphasis", "very-long"],
)
def test_user_text_in_a_reply_stays_inside_one_code_span(verb):
    message = parse(f"/devenv {verb}").message
    first_line = message.split("\n", 1)[0]
    span = re.match(r"(`+)( ?)(.*?)\2\1(?!`) is not a command", first_line)
    assert span, first_line
    assert "`" * len(span.group(1)) not in span.group(3)  # the span cannot end early
    assert len(span.group(3)) <= 60


def test_a_reply_on_the_first_command_wins_over_later_good_ones():
    assert parse("/devenv recrate\n/devenv up").kind == "unknown_verb"


# --- several commands ------------------------------------------------------------------------

SEVERAL = [
    ("two", "/devenv up\n/devenv stop", Command("up", ignored_extra=1)),
    ("three", "/devenv stop\n/devenv up\n\n/devenv delete", Command("stop", ignored_extra=2)),
    ("bad-ones-count-too", "/devenv up\n/devenv frobnicate\n/devenv", Command("up", ignored_extra=2)),
    ("quoted-ones-do-not-count", "/devenv up\n\n> /devenv stop", Command("up")),
    ("fenced-ones-do-not-count", "/devenv up\n```\n/devenv stop\n```", Command("up")),
    ("prompt-block-lines-do-not-count", "/devenv agent run\n```\n/devenv up\n```\n/devenv stop", Command("agent run", "/devenv up", ignored_extra=1)),
    ("first-valid-after-ignored", "> /devenv delete\n\n/devenv up\n/devenv up", Command("up", line=3, ignored_extra=1)),
]


@pytest.mark.parametrize(("body", "expected"), [s[1:] for s in SEVERAL], ids=[s[0] for s in SEVERAL])
def test_only_the_first_command_in_a_comment_is_run(body, expected):
    assert parse(body) == expected


# --- lines that are not commands -------------------------------------------------------------

IGNORED = [
    ("empty", ""),
    ("plain-text", "LGTM, ship it"),
    ("prefix-mid-line", "please run /devenv up"),
    ("prefix-glued-to-word", "/devenvx up"),
    ("prefix-glued-to-punctuation", "/devenv: up"),
    ("other-bot", "/deploy up"),
    ("four-spaces-indent", "    /devenv up"),
    ("tab-indent", "\t/devenv up"),
    ("indented-after-paragraph", "Run this:\n    /devenv up"),
    ("nbsp-before", "\u00a0/devenv up"),
    ("full-width-slash", "\uff0fdevenv up"),
    ("backtick-fence", "```\n/devenv up\n```"),
    ("tilde-fence", "~~~\n/devenv up\n~~~"),
    ("fence-with-info", "```bash\n/devenv up\n```"),
    ("indented-fence", "   ```\n/devenv up\n   ```"),
    ("unclosed-fence", "```\n/devenv up"),
    ("fence-not-closed-by-other-char", "```\n~~~\n/devenv up\n```"),
    ("fence-not-closed-by-shorter-run", "````\n```\n/devenv up\n````"),
    ("fence-not-closed-with-info", "```\n```bash\n/devenv up\n```"),
    ("fence-not-closed-when-indented-4", "```\n    ```\n/devenv up\n```"),
    ("fence-crlf", "```\r\n/devenv up\r\n```\r\n"),
    ("inline-code", "`/devenv up`"),
    ("inline-code-triple", "```/devenv up```"),
    ("quote", "> /devenv up"),
    ("quote-no-space", ">/devenv up"),
    ("nested-quote", ">> /devenv up"),
    ("spaced-nested-quote", "> > /devenv up"),
    ("indented-quote", "   > /devenv up"),
    ("quote-lazy-continuation", "> I think we should\n/devenv up"),
    ("quote-lazy-continuation-chain", "> a\nb\n/devenv up"),
    ("fence-inside-quote", "> ```\n> /devenv up\n> ```"),
    ("html-comment", "<!-- /devenv up -->"),
    ("html-comment-block", "<!--\n/devenv up\n-->"),
    ("html-comment-block-with-blank-lines", "<!--\n\n/devenv up\n\n-->"),
    ("inline-html-comment", "Note <!-- hidden\n/devenv up\n-->"),
    ("pre-block", "<pre>\n/devenv up\n</pre>"),
    ("only-prefix-in-code", "Use `/devenv` to talk to me."),
]


@pytest.mark.parametrize("body", [i[1] for i in IGNORED], ids=[i[0] for i in IGNORED])
def test_a_line_that_does_not_render_as_a_command_is_ignored(body):
    assert parse(body) is IGNORE


def test_none_as_a_body_is_ignored():
    assert parse(None) == Ignore()


def test_ignore_instances_are_all_equal():
    assert Ignore() == IGNORE


# --- the prefix -------------------------------------------------------------------------------

PREFIXES = [
    ("custom", "/env", "/env up", Command("up")),
    ("custom-case", "/Env", "/ENV up", Command("up")),
    ("custom-with-dash", "/dev-env", "/dev-env stop", Command("stop")),
    ("default-not-heard-with-custom", "/env", "/devenv up", IGNORE),
    ("custom-glued", "/env", "/envy up", IGNORE),
    ("custom-in-reply", "/env", "/env recrate", Reply("unknown_verb", parse("/env recrate", prefix="/env").message, "/env recreate")),
]


@pytest.mark.parametrize(("prefix", "body", "expected"), [p[1:] for p in PREFIXES], ids=[p[0] for p in PREFIXES])
def test_the_prefix_is_configurable(prefix, body, expected):
    assert parse(body, prefix=prefix) == expected


def test_replies_name_the_configured_prefix():
    assert "`/env recreate`" in parse("/env recrate", prefix="/env").message
    assert "/devenv" not in parse("/env", prefix="/env").message


@pytest.mark.parametrize("prefix", ["devenv", "", "/dev env", "/devenv\n", " /devenv"], ids=repr)
def test_a_bad_prefix_is_a_configuration_error(prefix):
    with pytest.raises(ValueError, match="must start with '/'"):
        validate_prefix(prefix)
    with pytest.raises(ValueError):
        parse("/devenv up", prefix=prefix)


@pytest.mark.parametrize("limit", [0, -1, 1.5, True], ids=repr)
def test_a_bad_prompt_limit_is_a_configuration_error(limit):
    with pytest.raises(ValueError):
        parse("/devenv up", max_prompt_bytes=limit)


# --- verbs, usage and permissions -----------------------------------------------------------


def test_every_verb_has_a_syntax_a_usage_and_a_default_permission():
    assert list(SYNTAX) == list(USAGE) == list(REQUIRED_PERMISSION_DEFAULTS) == list(VERBS)
    assert all("\n" not in text for text in USAGE.values())


def test_every_verb_parses_from_its_own_syntax():
    for verb in VERBS:
        body = "/devenv " + SYNTAX[verb].replace("<prompt>", "go")
        assert parse(body).verb == verb


# --- escaping ---------------------------------------------------------------------------------

ESCAPES = [
    ("plain", "feature branch", "feature branch"),
    ("mention", "@octocat", "@\u200doctocat"),
    ("team-mention", "@org/team", "@\u200dorg\\/team"),
    ("issue-reference", "fixes #12", "fixes \\#\u200d12"),
    ("html", "<b>&</b>", "&lt;b&gt;&amp;&lt;\\/b&gt;"),
    ("entity", "&amp;", "&amp;amp\\;"),
    ("emphasis", "*a* _b_", "\\*a\\* \\_b\\_"),
    ("link", "[x](y)", "\\[x\\]\\(y\\)"),
    ("image", "![x](y)", "\\!\\[x\\]\\(y\\)"),
    ("code", "`x`", "\\`x\\`"),
    ("table", "a|b", "a\\|b"),
    ("strike", "~~x~~", "\\~\\~x\\~\\~"),
    ("heading", "# Title", "\\#\u200d Title"),
    ("list", "- item", "\\- item"),
    ("ordered-list", "1. item", "1\\. item"),
    ("quote", "> quoted", "&gt; quoted"),
    ("backslash", "a\\b", "a\\\\b"),
    ("math", "$x$", "\\$x\\$"),
    ("newline", "a\nb", "a b"),
    ("crlf", "a\r\nb", "a b"),
    ("line-separator", "a\u2028b\u2029c\x85d", "a b c d"),
    ("newline-then-heading", "x\n# h", "x \\#\u200d h"),
    ("unicode-untouched", "caf\u00e9 \u65e5\u672c \U0001f680", "caf\u00e9 \u65e5\u672c \U0001f680"),
    ("not-a-string", 42, "42"),
]


@pytest.mark.parametrize(("text", "escaped"), [e[1:] for e in ESCAPES], ids=[e[0] for e in ESCAPES])
def test_escape_markdown_neutralises_markdown_html_and_mentions(text, escaped):
    assert escape_markdown(text) == escaped


_DECODE = re.compile(r"\\#\u200d|@\u200d|\\([!-/:-@\[-`{-~])|&(amp|lt|gt);")


def _render_text(escaped: str) -> str:
    """What the escaped text shows as, per CommonMark's backslash escapes and entities."""

    def one(match):
        if match.group(0) in ("\\#\u200d", "@\u200d"):
            return match.group(0)[-2]
        if match.group(1):
            return match.group(1)
        return {"amp": "&", "lt": "<", "gt": ">"}[match.group(2)]

    return _DECODE.sub(one, escaped)


@given(st.text())
def test_escaped_text_shows_the_original_text_on_one_line(text):
    escaped = escape_markdown(text)
    assert not re.search(r"[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]", escaped)
    assert not re.search(r"[<>]", escaped)
    assert not re.search(r"[@#](?!\u200d)", escaped)
    assert not re.search(r"(?<!\\)[*_`\[\]()|~!]", escaped.replace("\\\\", ""))
    one_line = re.sub(r"\r\n|[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]", " ", text)
    assert _render_text(escaped) == one_line


# --- properties -------------------------------------------------------------------------------

RESULT_TYPES = (Command, Reply, Ignore)


@given(st.text())
def test_any_text_parses_without_raising(body):
    assert isinstance(parse(body), RESULT_TYPES)


_FRAGMENTS = st.sampled_from(
    [
        "/devenv", "/DEVENV", "/devenvx", " ", "   ", "    ", "\t", "\u00a0", ">", "> ", ">>", "```", "````", "~~~",
        "`", "'", '"', "\\", "\u201c", "<!--", "-->", "<pre>", "</pre>", "#", "up", "agent", "run", "stop",
        "recrate", "help", "x", "\u00e9", "\u200b", "\ufffd", "\U0001f680",
    ]
)
_LINES = st.lists(_FRAGMENTS, max_size=8).map("".join)
_ENDINGS = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def markdownish_bodies(draw):
    lines = draw(st.lists(_LINES, max_size=15))
    ending = draw(_ENDINGS)
    return ending.join(lines)


@given(markdownish_bodies(), st.sampled_from(["/devenv", "/d", "/DevEnv-2"]), st.integers(1, 64))
def test_markdown_like_text_parses_without_raising(body, prefix, limit):
    result = parse(body, prefix=prefix, max_prompt_bytes=limit)
    assert isinstance(result, RESULT_TYPES)
    if isinstance(result, Command):
        assert result.verb in VERBS
        assert 1 <= result.line <= len(re.split(r"\r\n|\r|\n", body))
        assert (result.prompt is not None) == (result.verb == "agent run")
        if result.prompt is not None:
            assert result.prompt.strip() and len(result.prompt.encode("utf-8", "surrogatepass")) <= limit


# Bodies whose only prefix lines sit in code, quotes or HTML comments.
_COMMAND_TEXT = st.sampled_from(VERBS).map(lambda v: "/devenv " + v) | st.sampled_from(["/devenv", "/DEVENV UP"])
_FILLER = st.text(
    alphabet=st.characters(blacklist_characters="`~<>\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029", blacklist_categories=("Cs",)),
    max_size=20,
).filter(lambda s: "/devenv" not in s.casefold())
_INDENT = st.sampled_from(["", " ", "  ", "   "])


@st.composite
def fenced(draw, may_be_unclosed=True):
    char = draw(st.sampled_from("`~"))
    length = draw(st.integers(3, 6))
    info = draw(st.sampled_from(["", "bash", " python title=x", "~"] if char == "`" else ["", "bash", "`weird`"]))
    other = "~" if char == "`" else "`"
    inner = st.one_of(
        st.tuples(st.sampled_from(["", " ", "   ", "    "]), _COMMAND_TEXT).map("".join),
        _FILLER,
        st.just(""),
        st.just(other * 3),
        st.just(char * (length - 1)),
        st.just(char * length + " not a closer"),
    )
    lines = [draw(_INDENT) + char * length + info, *draw(st.lists(inner, max_size=5))]
    if not may_be_unclosed or draw(st.booleans()):
        lines.append(draw(_INDENT) + char * draw(st.integers(length, length + 2)) + draw(st.sampled_from(["", " ", "\t"])))
    else:
        lines.append(None)  # unclosed: must be the last block
    return lines


@st.composite
def quoted(draw):
    marker = draw(st.sampled_from([">", "> ", ">>", "> > ", "   >"]))
    lines = [marker + draw(_COMMAND_TEXT)]
    lines += draw(st.lists(st.one_of(_COMMAND_TEXT, st.just(marker + "/devenv up")), max_size=3))
    return lines  # the later unquoted lines continue the quote lazily


@st.composite
def hidden(draw):
    kind = draw(st.sampled_from(["indented", "comment", "pre"]))
    command = draw(_COMMAND_TEXT)
    if kind == "indented":
        return [draw(st.sampled_from(["    ", "\t", "  \t", "      "])) + command]
    if kind == "comment":
        return ["<!--", command, "", command, "-->"]
    return ["<pre>", command, "</pre>"]


@st.composite
def bodies_with_only_hidden_commands(draw, may_be_unclosed=True):
    blocks = draw(
        st.lists(st.one_of(fenced(may_be_unclosed), quoted(), hidden(), _FILLER.map(lambda s: [s])), max_size=6)
    )
    lines: list[str] = []
    for block in blocks:
        if block[-1] is None:  # an unclosed fence swallows the rest
            lines += block[:-1]
            break
        lines += [*block, ""]
    return draw(_ENDINGS).join(lines)


@given(bodies_with_only_hidden_commands())
def test_commands_in_code_quotes_and_comments_are_never_run(body):
    assert parse(body) is IGNORE


@given(bodies_with_only_hidden_commands(may_be_unclosed=False), st.sampled_from(VERBS))
def test_a_command_after_closed_code_quotes_and_comments_is_found(body, verb):
    command = "/devenv " + SYNTAX[verb].replace("<prompt>", "go")
    result = parse(body + "\n\n" + command)
    assert isinstance(result, Command) and result.verb == verb


_PROMPT_TEXT = st.text(
    alphabet=st.characters(blacklist_characters="\r", blacklist_categories=("Cs",)), min_size=1, max_size=200
).filter(lambda s: s.strip())


@given(_PROMPT_TEXT)
def test_a_fenced_prompt_comes_back_byte_for_byte(prompt):
    longest = max((len(run) for run in re.findall(r"`+", prompt)), default=0)
    fence = "`" * max(3, longest + 1)
    result = parse(f"/devenv agent run\n{fence}\n{prompt}\n{fence}", max_prompt_bytes=10**6)
    assert result == Command("agent run", prompt)


@given(_PROMPT_TEXT.filter(lambda s: not re.search(r"[\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]", s)))
def test_a_double_quoted_prompt_comes_back_byte_for_byte(prompt):
    quoted_prompt = prompt.replace("\\", "\\\\").replace('"', '\\"')
    result = parse(f'/devenv agent run "{quoted_prompt}"', max_prompt_bytes=10**6)
    assert result == Command("agent run", prompt)


# --- speed ------------------------------------------------------------------------------------

HUGE = 65536
LARGE_BODIES = [
    ("no-prefix", "a" * HUGE),
    ("prefix-words", "/devenv " * (HUGE // 8)),
    ("many-command-lines", "/devenv up\n" * (HUGE // 11)),
    ("many-fences", "```\n" * (HUGE // 4)),
    ("many-quotes", "> /devenv up\n" * (HUGE // 13)),
    ("many-comment-openers", "/devenv up <!--" * (HUGE // 15)),
    ("many-backslashes", '/devenv agent run "' + "\\" * HUGE),
    ("long-unknown-verb", "/devenv " + "x" * HUGE),
    ("long-prompt", "/devenv agent run\n```\n" + "y\n" * (HUGE // 2)),
    ("many-blank-lines", "\n" * HUGE + "/devenv up"),
    ("mixed", ("> q\n```\n/devenv up\n```\n<!--\n-->\n    x\n/devenv up\n") * (HUGE // 50)),
]


@pytest.mark.parametrize("body", [b[1] for b in LARGE_BODIES], ids=[b[0] for b in LARGE_BODIES])
def test_a_65536_character_comment_parses_to_an_answer(body):
    # How fast: bench/parsing.py (timed tests flake on shared machines).
    assert isinstance(parse(body), RESULT_TYPES)
