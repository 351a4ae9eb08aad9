"""app.yml asks for exactly the events the handlers listen to."""

from __future__ import annotations

import yaml

from bot.core.dispatch import Dispatcher
from bot.core.metrics import Metrics
from bot.setup.manifest import APP_YML
from handlers import ROUTERS

# GitHub sends these to every app without a subscription; they cannot be listed in default_events.
ALWAYS_DELIVERED = {"installation", "installation_repositories", "github_app_authorization"}


def test_app_yml_subscribes_to_exactly_the_handled_events():
    manifest = yaml.safe_load(APP_YML.read_text())
    handled = Dispatcher(ROUTERS, Metrics()).events() - ALWAYS_DELIVERED
    assert set(manifest["default_events"]) == handled


def test_app_yml_permissions_cover_what_the_code_uses():
    manifest = yaml.safe_load(APP_YML.read_text())
    perms = manifest["default_permissions"]
    assert perms["checks"] == "write"
    assert perms["issues"] == "write"
    assert perms["pull_requests"] == "write"
    assert perms["contents"] == "write"  # the agent's push token (contents:write, one repository)
    assert perms["metadata"] == "read"
