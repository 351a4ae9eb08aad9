"""``.github/devenv.yml`` is read from the base commit, checked with precise messages and cached per commit."""

from __future__ import annotations

import asyncio
import textwrap
from types import MappingProxyType

import aiohttp
import pytest
import yaml
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from bot.commands.verbs import VERBS
from bot.core.metrics import Metrics
from bot.github.auth import AppAuth
from bot.github.client import GitHubClient
from bot.github.permissions import REQUIRED_PERMISSION_DEFAULTS
from bot.repo_settings.loader import RepoSettingsLoader
from bot.repo_settings.problems import render_problems
from bot.repo_settings.schema import (
    DOCS_URL,
    MAX_BYTES,
    PORT_NAME_MAX,
    SETTINGS_PATH,
    Port,
    RepoAgentSettings,
    RepoSettings,
    SettingsError,
)
from bot.repo_settings.validate import parse_duration, parse_settings
from tests.payloads import INSTALLATION_ID

FULL_EXAMPLE = """\
# .github/devenv.yml
auto_create: false
on_push: recreate
devcontainer_path: .devcontainer/python/devcontainer.json
ide: none
ports:
  - name: web
    port: 3000
  - name: adminapi
    port: 8080
    permission: write
permissions:
  delete: admin
  stop: read
  agent run: maintain
idle_stop: 30m
delete_after: 14d
resources:
  requests:
    cpu: 500m
    memory: 1Gi
  limits:
    cpu: 2
    memory: 4Gi
agent:
  command: [my-agent, --non-interactive]
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        parse_settings(textwrap.dedent(text))
    return caught.value.problems


# --- valid files -----------------------------------------------------------------


def test_the_full_example_is_read_into_every_setting():
    settings = parse_settings(FULL_EXAMPLE)
    assert settings.auto_create is False
    assert settings.on_push == "recreate"
    assert settings.devcontainer_path == ".devcontainer/python/devcontainer.json"
    assert settings.ide == "none"
    assert settings.ports == (Port("web", 3000, "read"), Port("adminapi", 8080, "write"))
    assert settings.permissions == {**REQUIRED_PERMISSION_DEFAULTS, "delete": "admin", "stop": "read",
                                    "agent run": "maintain"}
    assert settings.idle_stop == 30 * 60
    assert settings.delete_after == 14 * 86400
    assert settings.resources == "requests.cpu=500m,requests.memory=1Gi,limits.cpu=2,limits.memory=4Gi"
    assert settings.agent == RepoAgentSettings(("my-agent", "--non-interactive"))


def test_the_docs_example_is_the_full_example():
    from pathlib import Path

    docs = (Path(__file__).parent.parent / "docs" / "repo-settings.md").read_text()
    assert FULL_EXAMPLE in docs


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n", "~\n"])
def test_an_empty_file_gives_the_defaults(text):
    assert parse_settings(text) == RepoSettings()


def test_the_defaults_are_as_documented():
    settings = RepoSettings()
    assert (settings.auto_create, settings.on_push, settings.devcontainer_path, settings.ide) == (
        True, "sync", None, "openvscode")
    assert settings.ports == () and settings.resources is None and settings.agent.command is None
    assert (settings.idle_stop, settings.delete_after) == (2 * 3600, 7 * 86400)
    assert dict(settings.permissions) == dict(REQUIRED_PERMISSION_DEFAULTS)
    assert settings.required_permission("status") == "read"
    hash(settings)  # usable as a dict key despite the mapping field


def test_settings_are_immutable():
    settings = parse_settings("permissions: {stop: read}")
    with pytest.raises(AttributeError):
        settings.on_push = "ignore"  # type: ignore[misc]
    with pytest.raises(TypeError):
        settings.permissions["up"] = "none"  # type: ignore[index]
    assert isinstance(settings.permissions, MappingProxyType)


@pytest.mark.parametrize(
    "value, seconds",
    [(7200, 7200), ("90", 90), ("30m", 1800), ("2h", 7200), ("1h30m", 5400), ("7d", 604800), ("2w", 1209600),
     (" 2H ", 7200), ("never", None), ("Never", None)],
)
def test_durations_accept_units_seconds_and_never(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["2 hours", "1.5h", "", "h", "-5m", True, None, 1.5, [], "٣h"])
def test_durations_refuse_anything_else(value):
    with pytest.raises(ValueError):
        parse_duration(value)


def test_devcontainer_path_may_start_with_dot_slash():
    assert parse_settings("devcontainer_path: ./.devcontainer.json").devcontainer_path == ".devcontainer.json"


def test_yes_and_no_are_booleans_where_a_boolean_is_wanted():
    assert parse_settings("auto_create: no").auto_create is False


def test_permissions_may_be_raised_for_code_running_verbs_and_lowered_for_others():
    settings = parse_settings("permissions: {up: admin, status: none, delete: read}")
    assert settings.required_permission("up") == "admin"
    assert settings.required_permission("status") == "none"
    assert settings.required_permission("delete") == "read"
    assert settings.required_permission("recreate") == "write"


def test_a_cpu_given_as_a_yaml_number_is_a_quantity():
    assert parse_settings("resources: {requests: {cpu: 0.5}, limits: {cpu: 1}}").resources == (
        "requests.cpu=0.5,limits.cpu=1")


# --- one message per mistake -----------------------------------------------------------

ERRORS = [
    ("ports:\n  - {name: web, port: 70000}", "ports[0].port: 70000 is not a TCP port (1-65535)"),
    ("ports: [{name: web, port: 3000}, {name: db, port: 0}]", "ports[1].port: 0 is not a TCP port (1-65535)"),
    ("ports: [{name: web, port: '3000'}]", "ports[0].port: '3000' is not a TCP port (1-65535)"),
    ("ports: [{name: ide, port: 10800}]", "ports[0].port: 10800 is OpenVSCode's own port"),
    ("ports: [{name: Web, port: 3000}]", "ports[0].name: 'Web' may hold only lower-case letters and digits, starting with a letter"),
    ("ports: [{name: -web, port: 3000}]", "ports[0].name: '-web' may hold only lower-case letters"),
    ("ports: [{name: " + "a" * (PORT_NAME_MAX + 1) + ", port: 3000}]",
     f"characters long; the limit is {PORT_NAME_MAX} so that <name>-<workspace id> stays one DNS label"),
    ("ports: [{name: code, port: 3000}]", "ports[0].name: 'code' is taken by the IDE's own link"),
    ("ports: [{name: web, port: 3000}, {name: web, port: 3001}]",
     "ports[1].name: 'web' is already the name of ports[0]; port names must be unique"),
    ("ports: [{name: a, port: 3000}, {name: b, port: 3000}]", "ports[1].port: 3000 is already ports[0]"),
    ("ports: [{port: 3000}]", "ports[0]: needs a name, e.g. name: web"),
    ("ports: [{name: web}]", "ports[0]: needs a port, e.g. port: 3000"),
    ("ports: [{name: web, port: 3000, permission: admin}]",
     "ports[0].permission: 'admin' is not one of read, write"),
    ("ports: [{name: web, port: 3000, public: true}]", "ports[0].public: is not a setting"),
    ("ports: [3000]", "ports[0]: expected a mapping such as {name: web, port: 3000}, found 3000"),
    ("ports: {web: 3000}", "ports: expected a list such as [{name: web, port: 3000}], found a mapping"),
    ("on_push: rebuild", "on_push: 'rebuild' is not one of sync, recreate, ignore"),
    ("on_push: Sync", "on_push: 'Sync' is not one of sync, recreate, ignore; did you mean sync?"),
    ("on_push:", "on_push: has no value; write one of sync, recreate, ignore"),
    ("ide: vscode", "ide: 'vscode' is not one of openvscode, none; did you mean openvscode?"),
    ("auto_create: maybe", "auto_create: 'maybe' is not true or false"),
    ("auto_creat: true", "auto_creat: is not a setting; did you mean auto_create?"),
    ("auto-create: true", "auto-create: is not a setting; did you mean auto_create?"),
    ("colour: blue", "colour: is not a setting; the settings here are auto_create, on_push"),
    ("devcontainer_path: /etc/devcontainer.json", "devcontainer_path: '/etc/devcontainer.json' starts with /"),
    ("devcontainer_path: .devcontainer/../../x.json", "devcontainer_path: '.devcontainer/../../x.json' holds .."),
    ("devcontainer_path: .devcontainer/", "devcontainer_path: '.devcontainer/' is a directory; name the"
                                         " devcontainer.json file itself"),
    ("devcontainer_path: .devcontainer/Dockerfile", "must name the devcontainer.json file itself"),
    ("devcontainer_path: '.devcontainer\\devcontainer.json'", "holds a backslash; separate directories with /"),
    ("devcontainer_path: 42", "devcontainer_path: 42 is not a path"),
    ("permissions: {up: read}", "permissions.up: 'read' is too low: up runs code in the environment, so it needs"
                                " at least write"),
    ("permissions: {agent run: triage}", "permissions.agent run: 'triage' is too low"),
    ("permissions: {approve: none}", "permissions.approve: 'none' is too low"),
    ("permissions: {recreate: read}", "permissions.recreate: 'read' is too low"),
    ("permissions: {reset: read}", "permissions.reset: 'read' is too low"),
    ("permissions: {stop: owner}", "permissions.stop: 'owner' is not one of none, read, triage, write, maintain,"
                                   " admin"),
    ("permissions: {destroy: admin}", "permissions.destroy: is not a command"),
    ("permissions: {agent_run: admin}", "permissions.agent_run: is not a command; did you mean agent run?"),
    ("permissions: [up]", "permissions: expected a mapping such as {stop: read}, found a list"),
    ("idle_stop: 2 hours", "idle_stop: '2 hours' is not a duration; write e.g. 30m, 2h, 7d, a number of seconds,"
                           " or never"),
    ("idle_stop: 10", "idle_stop: 10 is 10s; it must be between 1m and 365d"),
    ("delete_after: 400d", "delete_after: '400d' is 400d; it must be between 1m and 365d"),
    ("delete_after:", "delete_after: has no value; write a duration such as 2h, or never"),
    ("resources: {requests: {memory: 4GB}}",
     "resources.requests.memory: '4GB' is not a Kubernetes quantity such as 512Mi or 4Gi"),
    ("resources: {requests: {memory: 512m}}", "resources.requests.memory: '512m' means 512 thousandths of a byte;"
                                              " did you mean 512Mi?"),
    ("resources: {requests: {cpu: 500M}}", "resources.requests.cpu: '500M' would be 500 million or more CPUs"),
    ("resources: {requests: {cpu: -1}}", "resources.requests.cpu: -1 is not a Kubernetes quantity"),
    ("resources: {limits: {cpu: 0}}", "resources.limits.cpu: 0 must be more than zero"),
    ("resources: {limits: {gpu: 1}}", "resources.limits.gpu: is not a setting; the settings here are cpu, memory"),
    ("resources: {request: {cpu: 1}}", "resources.request: is not a setting; did you mean requests?"),
    ("resources: {requests: {memory: 8Gi}, limits: {memory: 4Gi}}",
     "resources.requests.memory: is more than resources.limits.memory"),
    ("resources: 2Gi", "resources: expected a mapping such as {requests: {cpu: 500m}, limits: {memory: 4Gi}}"),
    ("agent: {command: my-agent --fast}", "agent.command: 'my-agent --fast' is a string; write the command as a"
                                          " list of arguments"),
    ("agent: {command: []}", "agent.command: expected a non-empty list of arguments such as [my-agent, --verbose],"
                             " found an empty list"),
    ("agent: {command: [my-agent, '']}", "agent.command[1]: is empty"),
    ("agent: {command: [sleep, 10]}", "agent.command[1]: 10 is not a string; quote it"),
    ('agent: {command: ["a\\0b"]}', "agent.command[0]: holds a NUL character"),
    ("on_push: sync\nide: \x1f", "YAML syntax error at line 2, column 6: the character U+001F is not allowed"),
    ("agent: {cmd: [x]}", "agent.cmd: is not a setting; did you mean command?"),
    ("- on_push: sync", "top level: the file must be a mapping of settings such as on_push: sync, not a list"),
    ("just some words", "top level: the file must be a mapping of settings such as on_push: sync, not 'just some"),
]


@pytest.mark.parametrize("text, expected", ERRORS, ids=[e[1][:40] for e in ERRORS])
def test_each_mistake_gets_a_message_naming_where_it_is(text, expected):
    problems = problems_of(text)
    assert any(p.startswith(expected) or expected in p for p in problems), problems


def test_every_problem_is_reported_at_once():
    problems = problems_of("""\
        on_push: rebuild
        ide: vscode
        ports: [{name: web, port: 70000}]
        permissions: {up: read}
    """)
    assert [p.split(":")[0] for p in problems] == ["on_push", "ide", "ports[0].port", "permissions.up"]


def test_problems_are_one_line_each_and_short_even_for_huge_values():
    problems = problems_of("on_push: '" + "x" * 5000 + "\\n# heading'\nports: [{name: web, port: 3000, x: y}]")
    assert all("\n" not in p and len(p) < 300 for p in problems)


# --- YAML 1.1 quirks ---------------------------------------------------------------------


def test_an_on_key_is_explained_as_yaml_reading_it_as_true():
    (problem,) = problems_of("on: push")
    assert problem.startswith("true: is not a setting (YAML 1.1 reads an unquoted on, yes or true as the boolean")
    assert problem.endswith("did you mean on_push?")


def test_on_push_off_is_explained_and_ignore_suggested():
    (problem,) = problems_of("on_push: off")
    assert problem == ("on_push: false is not one of sync, recreate, ignore (YAML 1.1 reads an unquoted off, no or"
                       " false as the boolean false; quote it to mean the word); did you mean ignore?")


def test_a_port_named_no_is_explained():
    (problem,) = problems_of("ports: [{name: no, port: 3000}]")
    assert problem.startswith("ports[0].name: false is not a name (YAML 1.1 reads an unquoted off, no or false")


def test_an_agent_argument_yes_is_explained():
    (problem,) = problems_of("agent: {command: [apt-get, install, -y, yes]}")
    assert problem.startswith("agent.command[3]: true is not a string (YAML 1.1 reads an unquoted on, yes or true")


def test_a_base_60_number_is_reported_with_its_line():
    problems = problems_of("auto_create: true\nidle_stop: 1:30\n")
    assert problems == ["line 2, column 12: '1:30' is a base-60 number in YAML 1.1 (it reads as 90); quote it,"
                        " or for a duration write e.g. 1h30m"]


def test_an_octal_number_is_reported():
    (problem,) = problems_of("ports: [{name: web, port: 0700}]")
    assert "'0700' is an octal number in YAML 1.1 (it reads as 448); leave out the leading zero" in problem


def test_a_key_given_twice_is_reported_instead_of_the_last_one_winning():
    (problem,) = problems_of("on_push: ignore\nide: none\non_push: sync\n")
    assert problem == ("line 3, column 1: the key 'on_push' appears a second time in the same mapping (first on"
                       " line 1); keep one of them")


def test_yaml_syntax_errors_say_line_and_column():
    (problem,) = problems_of("on_push: sync\nports:\n  - name: web\n   port: 3000\n")
    assert problem.startswith("YAML syntax error at line 4, column ")


def test_a_tab_indent_is_a_syntax_error_with_position():
    (problem,) = problems_of("ports:\n\t- name: web\n")
    assert problem.startswith("YAML syntax error at line 2, column 1")


def test_two_documents_are_refused():
    (problem,) = problems_of("on_push: sync\n---\nide: none\n")
    assert problem.startswith("YAML syntax error") and "single document" in problem


@pytest.mark.parametrize("text", [
    "x: 2024-13-01",  # matches PyYAML's timestamp pattern, then datetime refuses it
    "[" * 5000,
    "!!python/object:os.system {}",
    "a: !!binary '%%%'",
    "? [a]\n: b",
    "!!int",  # PyYAML: IndexError
    "!!timestamp",  # PyYAML: AttributeError
    "x: !!float ''",
])
def test_hostile_or_odd_yaml_becomes_a_problem_not_a_crash(text):
    assert problems_of(text)


def test_an_alias_bomb_is_described_not_expanded():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n"
    for n in "bcdefghij":
        prev = chr(ord(n) - 1)
        bomb += f"{n}: &{n} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
    bomb += "on_push: *j\n"
    problems = problems_of(bomb)
    assert "on_push: a list is not one of sync, recreate, ignore" in problems


def test_files_over_the_limit_are_refused_unread():
    (problem,) = problems_of("# " + "x" * MAX_BYTES)
    assert problem.startswith("the file is 65,538 bytes long; the limit is 65,536 bytes")


@given(st.text(max_size=400))
@hypothesis_settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_parse_settings_raises_nothing_but_settings_error_for_any_text(text):
    try:
        parse_settings(text)
    except SettingsError as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False),
                     st.text(max_size=20), st.sampled_from(["30m", "never", "sync", "write", "4Gi", "500m", "web"]))
_keys = st.one_of(st.sampled_from(["auto_create", "on_push", "devcontainer_path", "ide", "ports", "permissions",
                                   "idle_stop", "delete_after", "resources", "agent", "requests", "limits", "cpu",
                                   "memory", "command", "name", "port", "permission", *VERBS]),
                  st.text(max_size=10))
_documents = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(_keys, inner, max_size=5), max_leaves=20)


@given(st.dictionaries(_keys, _documents, max_size=8))
@hypothesis_settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_parse_settings_raises_nothing_but_settings_error_for_any_yaml_shaped_like_settings(document):
    try:
        settings = parse_settings(yaml.safe_dump(document))
    except SettingsError as exc:
        assert exc.problems
    else:
        assert isinstance(settings, RepoSettings)


# --- the comment -------------------------------------------------------------------------


def test_rendered_problems_are_escaped_and_point_to_the_docs():
    text = render_problems(["on_push: '@octocat <b>#1</b>' is not one of sync, recreate, ignore"],
                           base_sha="0123456789abcdef0123456789abcdef01234567")
    assert "@octocat" not in text and "<b>" not in text and "#1" not in text
    assert "`.github/devenv.yml` has a problem" in text
    assert "base branch at `0123456`" in text
    assert DOCS_URL in text


def test_rendered_problems_are_capped():
    text = render_problems([f"ports[{i}].port: 0 is not a TCP port (1-65535)" for i in range(100)])
    assert text.count("\n- ") == 31 and "…and 70 more" in text


# --- reading from GitHub -----------------------------------------------------------------

OWNER, REPO = "Codertocat", "Hello-World"
BASE = "b" * 40
HEAD = "c" * 40


async def no_sleep(seconds: float) -> None:
    pass


@pytest.fixture
async def gh(settings, repo):
    async with aiohttp.ClientSession() as session:
        client = GitHubClient(settings, AppAuth(settings.app.app_id, settings.app.private_key), session, Metrics(),
                              sleep=no_sleep)
        yield client.installation(INSTALLATION_ID)


def contents_calls(github):
    return github.calls_to("GET", r"/contents/\.github/devenv\.yml$")


async def test_the_file_is_read_at_the_base_sha_and_not_the_head(gh, github):
    github.set_file(OWNER, REPO, SETTINGS_PATH, "on_push: ignore\n", ref=BASE)
    github.set_file(OWNER, REPO, SETTINGS_PATH, "on_push: recreate\npermissions: {up: admin}\n", ref=HEAD)
    settings, problems = await RepoSettingsLoader().load(gh, OWNER, REPO, BASE)
    assert (settings.on_push, settings.required_permission("up"), problems) == ("ignore", "write", [])
    assert [c.query.get("ref") for c in contents_calls(github)] == [BASE]
    github.assert_valid()


async def test_one_base_sha_is_read_once(gh, github):
    github.set_file(OWNER, REPO, SETTINGS_PATH, "ide: none\n", ref=BASE)
    loader = RepoSettingsLoader()
    first = await loader.load(gh, OWNER, REPO, BASE)
    second = await loader.load(gh, OWNER.lower(), REPO.upper(), BASE.upper())
    assert first == second and first[0].ide == "none"
    assert len(contents_calls(github)) == 1


async def test_loads_of_one_base_sha_at_the_same_time_make_one_request(gh, github):
    github.set_file(OWNER, REPO, SETTINGS_PATH, "ide: none\n", ref=BASE)
    loader = RepoSettingsLoader()
    results = await asyncio.gather(*(loader.load(gh, OWNER, REPO, BASE) for _ in range(5)))
    assert all(r[0].ide == "none" for r in results)
    assert len(contents_calls(github)) == 1


async def test_a_new_base_sha_is_read_again(gh, github):
    github.set_file(OWNER, REPO, SETTINGS_PATH, "ide: none\n", ref=BASE)
    loader = RepoSettingsLoader()
    await loader.load(gh, OWNER, REPO, BASE)
    settings, _ = await loader.load(gh, OWNER, REPO, HEAD)  # the base branch moved on, without the file
    assert settings == RepoSettings() and len(contents_calls(github)) == 2


async def test_no_file_means_the_defaults_and_no_problems(gh, github):
    loader = RepoSettingsLoader()
    assert await loader.load(gh, OWNER, REPO, BASE) == (RepoSettings(), [])
    assert await loader.load(gh, OWNER, REPO, BASE) == (RepoSettings(), [])
    assert len(contents_calls(github)) == 1  # a missing file is cached too


async def test_a_broken_file_means_the_defaults_and_its_problems(gh, github):
    github.set_file(OWNER, REPO, SETTINGS_PATH, "auto_create: false\non_push: rebuild\n", ref=BASE)
    loader = RepoSettingsLoader()
    settings, problems = await loader.load(gh, OWNER, REPO, BASE)
    assert settings == RepoSettings()
    assert problems == ["on_push: 'rebuild' is not one of sync, recreate, ignore"]
    problems.clear()  # the caller's copy; the cache keeps its own
    assert (await loader.load(gh, OWNER, REPO, BASE))[1] == ["on_push: 'rebuild' is not one of sync, recreate, ignore"]


async def test_a_file_over_the_limit_is_refused(gh, github):
    github.set_file(OWNER, REPO, SETTINGS_PATH, "#" * (MAX_BYTES + 1), ref=BASE)
    settings, problems = await RepoSettingsLoader().load(gh, OWNER, REPO, BASE)
    assert settings == RepoSettings()
    assert problems == [".github/devenv.yml is 65,537 bytes long; the limit is 65,536 bytes"]


async def test_a_file_that_is_not_utf8_is_refused(gh, github):
    github.set_file(OWNER, REPO, SETTINGS_PATH, b"ide: none # \xff\n", ref=BASE)
    _, problems = await RepoSettingsLoader().load(gh, OWNER, REPO, BASE)
    assert problems == [".github/devenv.yml is not UTF-8 text (byte 0xff at offset 12); save it as UTF-8"]


async def test_a_utf8_byte_order_mark_is_fine(gh, github):
    github.set_file(OWNER, REPO, SETTINGS_PATH, "\ufeffide: none\n".encode(), ref=BASE)
    settings, problems = await RepoSettingsLoader().load(gh, OWNER, REPO, BASE)
    assert (settings.ide, problems) == ("none", [])


async def test_server_errors_propagate_and_are_not_cached(gh, github, settings):
    github.set_file(OWNER, REPO, SETTINGS_PATH, "ide: none\n", ref=BASE)
    github.inject(method="GET", path=r"/contents/", status=500, times=settings.max_retries + 1)
    loader = RepoSettingsLoader()
    with pytest.raises(Exception):
        await loader.load(gh, OWNER, REPO, BASE)
    settings_, _ = await loader.load(gh, OWNER, REPO, BASE)
    assert settings_.ide == "none"


async def test_a_branch_name_is_refused_as_a_base_sha(gh):
    with pytest.raises(ValueError, match="commit SHA"):
        await RepoSettingsLoader().load(gh, OWNER, REPO, "main")
