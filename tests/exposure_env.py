"""The exposure settings and names the cluster tests share (tests/test_exposure.py, tests/test_cluster_routers.py)."""

from __future__ import annotations

from bot.devpod import workspace_id
from bot.settings.exposure import ExposureSettings

NS = "devenv-ws"
WS = workspace_id("Codertocat", "Hello-World", 12)
OTHER = workspace_id("Codertocat", "Hello-World", 13)
LABELS = {"repo": "Codertocat.Hello-World", "pr": "12"}
AUTH_URL = "http://devenv-bot.devenv.svc.cluster.local:3000/auth/check"
SIGNIN = "https://devenv.example.com/auth/login"
ENV = {
    "DEVENV_PREVIEW_DOMAIN": "preview.example.com",
    "DEVENV_NAMESPACE": NS,
    "DEVENV_AUTH_URL": AUTH_URL,
    "DEVENV_AUTH_SIGNIN": SIGNIN,
    "DEVENV_BOT_SERVICE": "devenv-bot:3000",
}
NGINX = "nginx.ingress.kubernetes.io/"


def settings_for(**env: str) -> ExposureSettings:
    s = ExposureSettings.from_env({**ENV, **env})
    assert s is not None
    return s
