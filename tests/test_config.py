"""Configuration is read once, with Probot's names, and bad values fail fast with a fix."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.settings import config


@pytest.fixture(scope="module")
def pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption()).decode()


def base(pem: str, **extra: str) -> dict[str, str]:
    env = {"APP_ID": "123", "PRIVATE_KEY": pem, "WEBHOOK_SECRET": "s3cret-value"}
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
    assert "s3cret-value" not in repr(s) and "PRIVATE KEY" not in repr(s)


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
