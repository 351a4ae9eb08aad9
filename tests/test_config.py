"""Configuration is read once, with Probot's names, and bad values fail fast with a fix."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.settings import config, kube, readme, values, variables

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SETTINGS = ROOT / "bot" / "settings"


@pytest.fixture(scope="module")
def pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption()).decode()


def base(pem: str, **extra: str) -> dict[str, str]:
    env = {"APP_ID": "123", "PRIVATE_KEY": pem, "WEBHOOK_SECRET": "s3cret-value-long-enough"}
    env.update(extra)
    return env


def test_defaults_follow_probot(pem):
    s = config.load(base(pem))
    assert (s.webhook_path, s.port, s.api_url, s.github_url) == (
        "/api/github/webhooks", 3000, "https://api.github.com", "https://github.com")
    assert s.app.app_id == "123" and not s.setup_mode


def test_a_newline_escaped_private_key_is_accepted(pem):
    s = config.load(base(pem.replace("\n", "\\n")))
    assert s.app.private_key.startswith("-----BEGIN") and "\n" in s.app.private_key


def test_a_private_key_path_is_read(pem, tmp_path):
    path = tmp_path / "app.pem"
    path.write_text(pem)
    env = base(pem)
    del env["PRIVATE_KEY"]
    env["PRIVATE_KEY_PATH"] = str(path)
    assert config.load(env).app.private_key.strip() == pem.strip()


def test_a_key_that_does_not_parse_is_caught_at_start_up(pem):
    with pytest.raises(config.ConfigError) as err:
        config.load(base("-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----"))
    assert "PRIVATE_KEY does not hold a PEM private key" in str(err.value)


def test_a_missing_secret_is_named_with_how_to_fix_it(pem):
    env = base(pem)
    del env["WEBHOOK_SECRET"]
    with pytest.raises(config.ConfigError) as err:
        config.load(env)
    assert "WEBHOOK_SECRET" in str(err.value) and "never accepts unsigned" in str(err.value)


def test_every_problem_is_reported_at_once(pem):
    with pytest.raises(config.ConfigError) as err:
        config.load(base(pem, PORT="eighty", LOG_FORMAT="xml", GHE_PROTOCOL="ftp"))
    assert len(err.value.problems) == 3
    message = str(err.value)
    assert "PORT='eighty'" in message and "LOG_FORMAT='xml'" in message and "GHE_PROTOCOL='ftp'" in message


def test_no_app_settings_at_all_means_setup_mode():
    s = config.load({})
    assert s.setup_mode and s.app is None


def test_github_enterprise_server_uses_api_v3(pem):
    s = config.load(base(pem, GHE_HOST="github.example.com"))
    assert s.api_url == "https://github.example.com/api/v3"
    assert s.github_url == "https://github.example.com"
    s = config.load(base(pem, GHE_HOST="127.0.0.1:8080", GHE_PROTOCOL="http"))
    assert s.api_url == "http://127.0.0.1:8080/api/v3"


def test_a_ghe_host_with_a_scheme_is_refused(pem):
    with pytest.raises(config.ConfigError, match="bare host name"):
        config.load(base(pem, GHE_HOST="https://github.example.com"))


def test_the_secrets_do_not_show_in_the_settings_repr(pem):
    s = config.load(base(pem))
    assert "s3cret-value-long-enough" not in repr(s) and "PRIVATE KEY" not in repr(s)


def test_dotenv_file_is_read_and_the_environment_wins(pem, tmp_path, monkeypatch):
    env_file = tmp_path / ".env"
    escaped = pem.replace("\n", "\\n")
    env_file.write_text(f'APP_ID=999\nWEBHOOK_SECRET=from-file\nPRIVATE_KEY="{escaped}"\nPORT=4000\n')
    monkeypatch.chdir(tmp_path)
    for name in ("APP_ID", "PRIVATE_KEY", "PRIVATE_KEY_PATH", "WEBHOOK_SECRET", "PORT", "DEVENV_ENV_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PORT", "5000")
    s = config.load()
    assert s.app.app_id == "999" and s.app.webhook_secret == "from-file"
    assert s.port == 5000


# --------------------------------------------------------------------------- one pass, every problem


def test_turning_on_previews_lists_every_missing_companion_at_once(pem, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config
    monkeypatch.setattr(kube, "SERVICE_ACCOUNT_TOKEN", tmp_path / "no-token")  # not in a pod
    with pytest.raises(config.ConfigError) as err:
        config.load(base(pem, DEVENV_PREVIEW_DOMAIN="preview.example.com"))
    message = str(err.value)
    for needed in ("DEVENV_PUBLIC_URL is needed", "GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET", "DEVENV_AUTH_URL must be set",
                   "DEVENV_AUTH_SIGNIN must be set", "DEVENV_BOT_SERVICE must be set", "no KUBECONFIG"):
        assert needed in message
    assert len(err.value.problems) == 6


def test_a_kubeconfig_that_is_not_there_is_reported_with_links_on(pem, tmp_path, monkeypatch):
    monkeypatch.setattr(kube, "SERVICE_ACCOUNT_TOKEN", tmp_path / "no-token")
    env = base(pem, DEVENV_PREVIEW_DOMAIN="preview.example.com", DEVENV_PUBLIC_URL="https://devenv.example.com",
               GITHUB_CLIENT_ID="Iv1.abc", GITHUB_CLIENT_SECRET="client-secret", DEVENV_AUTH_URL="http://bot:3000/auth",
               DEVENV_BOT_SERVICE="devenv-bot:3000", KUBECONFIG=str(tmp_path / "missing"))
    with pytest.raises(config.ConfigError, match="KUBECONFIG=.* is not a file"):
        config.load(env)
    (tmp_path / "missing").write_text("apiVersion: v1\nkind: Config\n")
    s = config.load(env)
    assert s.kube.kubeconfig == tmp_path / "missing" and s.exposure.domain == "preview.example.com"


def test_bad_values_of_every_section_are_reported_together(pem):
    env = base(pem, PORT="eighty", DEVENV_UP_TIMEOUT="soon", DEVENV_AGENT_MAX_PROMPT_BYTES="0",
               DEVENV_CLOUDFLARE_TUNNEL_ID="not-a-uuid", DEVENV_NAMESPACE="Not_A_Namespace")
    with pytest.raises(config.ConfigError) as err:
        config.load(env)
    text = str(err.value)
    for name in ("PORT", "DEVENV_UP_TIMEOUT", "DEVENV_AGENT_MAX_PROMPT_BYTES", "DEVENV_CLOUDFLARE_TUNNEL_ID",
                 "DEVENV_NAMESPACE", "DEVENV_CLOUDFLARE_ACCOUNT_ID", "DEVENV_PREVIEW_DOMAIN"):
        assert name in text


def test_a_variable_two_sections_share_is_reported_once(pem, tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    env = base(pem, DEVENV_PREVIEW_DOMAIN="preview.example.com", DEVENV_PUBLIC_URL="https://devenv.example.com",
               GITHUB_CLIENT_ID="Iv1.abc", GITHUB_CLIENT_SECRET="client-secret", DEVENV_AUTH_URL="http://bot:3000/auth",
               DEVENV_BOT_SERVICE="devenv-bot:3000", KUBECONFIG=str(kubeconfig), DEVENV_IDE_PERMISSION="everyone")
    with pytest.raises(config.ConfigError) as err:
        config.load(env)
    assert err.value.problems == ["DEVENV_IDE_PERMISSION='everyone' must be one of read, triage, write, maintain, admin"]


def test_features_that_are_off_do_not_read_their_variables(pem):
    s = config.load(base(pem, DEVENV_ROUTER="haproxy", DEVENV_CLOUDFLARE_ZONE_ID="not-hex"))
    assert s.exposure is None and s.access is None and s.cloudflare is None


def test_a_secret_is_never_repeated_in_a_problem(pem):
    env = base(pem, DEVENV_CLOUDFLARE_TUNNEL_ID="6ff42ae2-765d-4adf-8112-31c55c1551ef",
               DEVENV_CLOUDFLARE_ACCOUNT_ID="0" * 32, DEVENV_CLOUDFLARE_ZONE_ID="1" * 32,
               DEVENV_CLOUDFLARE_API_TOKEN="token with-spaces-inside")
    with pytest.raises(config.ConfigError) as err:
        config.load(env)
    assert "DEVENV_CLOUDFLARE_API_TOKEN must be an API token without spaces" in str(err.value)
    assert "with-spaces-inside" not in str(err.value)


def test_typed_fields_replace_reading_the_environment_at_run_time(pem, tmp_path):
    s = config.load(base(pem, DEVENV_AGENT_PROGRESS_INTERVAL="0", DEVENV_KUBE_CONTEXT="staging",
                         KUBECONFIG=str(tmp_path / "kubeconfig")))
    assert s.agent.progress_interval == 0 and s.kube.context == "staging" and s.kube.kubeconfig == tmp_path / "kubeconfig"
    assert config.load(base(pem)).agent.progress_interval == 5
    assert not hasattr(s, "environ")


def test_the_setup_pages_settings_are_typed_and_checked_at_start_up():
    s = config.load({"DEVENV_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1", "DEVENV_CREDENTIALS_SECRET": "devenv/creds"})
    assert [str(n) for n in s.trusted_proxies] == ["10.0.0.0/8", "127.0.0.1/32"] and s.credentials_secret == "devenv/creds"
    assert config.load({}).trusted_proxies == () and config.load({}).credentials_secret is None
    with pytest.raises(config.ConfigError) as err:
        config.load({"DEVENV_TRUSTED_PROXIES": "10.0.0.0/8, proxy", "DEVENV_CREDENTIALS_SECRET": "Not A Name"})
    assert "bad entries: proxy" in str(err.value) and "DEVENV_CREDENTIALS_SECRET" in str(err.value)


# --------------------------------------------------------------------------- value types


@pytest.mark.parametrize("text, seconds", [
    ("90", 90), ("1.5", 1.5), ("1e3", 1000), ("90s", 90), ("30m", 1800), ("30 m", 1800), (" 8h ", 28800),
    ("1.5h", 5400), ("2d", 172800), ("1w", 604800), ("1h30m", 5400), ("0", 0), ("0s", 0), ("0.0", 0), ("30M", 1800),
])
def test_durations_accept_seconds_and_units(text, seconds):
    assert values.seconds(text) == seconds


@pytest.mark.parametrize("text", ["soon", "10 minutes", "nan", "m", "1x", "-"])
def test_durations_refuse_anything_else(text):
    with pytest.raises(ValueError):
        values.seconds(text)


@pytest.mark.parametrize("kind, text", [
    (values.Duration(), "-5"), (values.Duration(positive=True), "0"), (values.Duration(positive=True), "0m"),
    (values.Integer(1), "0"), (values.Integer(0), "1.5"), (values.Port(), "70000"), (values.Number(), "nan"),
    (values.PERMISSION, "none"), (values.Flag(), "maybe"), (values.FilePath(absolute=True), "relative"),
    (values.DnsName("a DNS label", dots=False), "a.b"), (values.DnsName("a name"), "a" * 64),
    (values.NamePort("the Service"), "devenv-bot"), (values.NamePort("the Service"), "devenv-bot:99999"),
    (values.Url("https://x.example"), "ftp://x.example"), (values.Url("", plain=True), "http://bot/a;b"),
    (values.Url("", origin=True), "http://bot:3000/path"), (values.GoDuration(), "10 minutes"),
])
def test_each_value_type_names_the_variable_when_it_refuses(kind, text):
    with pytest.raises(ValueError, match="SOME_VARIABLE"):
        kind.parse("SOME_VARIABLE", text)


def test_durations_once_refused_by_one_parser_or_another_are_accepted_everywhere(pem):
    s = config.load(base(pem, DEVENV_SHUTDOWN_GRACE="1m", DEVENV_SESSION_TTL="8h", DEVENV_AGENT_PROGRESS_INTERVAL="2s",
                         DEVENV_UP_TIMEOUT="1e3"))
    assert (s.shutdown_grace, s.agent.progress_interval, s.devpod.up_timeout) == (60, 2, 1000)


# --------------------------------------------------------------------------- the table and the README


def test_every_default_is_a_value_of_its_own_type():
    for var in variables.BY_NAME.values():
        if var.default is not None:
            var.kind.parse(var.name, var.default)


def readme_rows() -> dict[str, str]:
    """``{variable: default}`` from the README's configuration table."""
    rows = {}
    for line in readme.rendered_part(README.read_text()).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) == 3 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells[1]
    return rows


def test_the_readme_documents_every_variable_with_the_default_the_code_uses():
    in_code = {name: readme.default_cell(var) for name, var in variables.BY_NAME.items()}
    in_readme = readme_rows()
    assert sorted(set(in_code) - set(in_readme)) == [], "variables the README does not document"
    assert sorted(set(in_readme) - set(in_code)) == [], "variables the README documents but the code does not read"
    assert {n: d for n, d in in_readme.items() if in_code[n] != d} == {}, "defaults that differ"


def test_the_readme_table_is_the_rendering_of_the_table_in_code():
    assert readme.rendered_part(README.read_text()) == readme.render(), "run: python -m bot.settings.readme"


def test_previously_undocumented_variables_are_in_the_table():
    for name in ("DEVENV_SSH_TIMEOUT", "DEVENV_PROVIDER_TIMEOUT", "DEVENV_DEVPOD_CONTEXT", "DEVENV_SSH_CONFIG_DIR",
                 "DEVENV_DEVPOD_USER_HOME", "DEVENV_ENV_FILE"):
        assert variables.BY_NAME[name].doc


# --------------------------------------------------------------------------- layering


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_settings_import_no_feature():
    for path in sorted(SETTINGS.glob("*.py")):
        if path.name == "repo.py":  # repository settings, a layer above (issue 9 moves it)
            continue
        own = {m for m in imported_modules(path) if m == "bot" or m.startswith(("bot.", "handlers"))}
        assert {m for m in own if not m.startswith("bot.settings")} == set(), path.name


def test_no_feature_reads_the_environment_itself():
    for path in sorted([*ROOT.joinpath("bot").rglob("*.py"), *ROOT.joinpath("handlers").rglob("*.py")]):
        if SETTINGS in path.parents or path == ROOT / "bot" / "devpod" / "askpass.py":
            continue  # (askpass.py is git's askpass helper, a program of its own that reads git's environment)
        reads = [node.lineno for node in ast.walk(ast.parse(path.read_text()))
                 if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv")]
        assert reads == [], f"{path.relative_to(ROOT)} reads the environment at lines {reads}; add a variable to the table"


def test_a_short_webhook_secret_is_not_made_the_cookie_key_with_previews_on(pem, tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    env = base(pem, WEBHOOK_SECRET="short-secret", DEVENV_PREVIEW_DOMAIN="preview.example.com",
               DEVENV_PUBLIC_URL="https://devenv.example.com", GITHUB_CLIENT_ID="Iv1.abc",
               GITHUB_CLIENT_SECRET="client-secret", DEVENV_AUTH_URL="http://bot:3000/auth",
               DEVENV_BOT_SERVICE="devenv-bot:3000", KUBECONFIG=str(kubeconfig))
    with pytest.raises(config.ConfigError) as err:
        config.load(env)
    assert len(err.value.problems) == 1 and "DEVENV_SESSION_SECRET" in err.value.problems[0]
    assert "short-secret" not in str(err.value)
    own = config.load({**env, "DEVENV_SESSION_SECRET": "k" * 32})
    assert own.access is not None and own.access.secret == b"k" * 32
    assert config.load(base(pem, WEBHOOK_SECRET="short-secret")).access is None  # previews off: no cookies to sign
