"""What "ready" means for this bot: the readiness checks, and the Cloudflare check at start-up.

* ``devpod``: DevPod runs, is the pinned version, and its provider is prepared;
* ``github``: the App's credentials work (``GET /app`` with the App's JWT);
* ``kubernetes`` (links on): the API server answers with the bot's credentials.

Each returns one sentence saying what is wrong and what to set, shown by ``/readyz``
(:mod:`bot.core.readiness` retries them until they pass).
"""

from __future__ import annotations

import logging

from gidgethub import BadRequest

from bot.cluster.cloudflare import CloudflareTunnelRoutes
from bot.cluster.cloudflare_api import CloudflareError
from bot.cluster.exposure import Exposure
from bot.core.readiness import Readiness
from bot.environments.manager import EnvironmentManager
from bot.github.client import GitHubClient, GitHubUnavailable
from bot.settings.config import Settings

log = logging.getLogger(__name__)


def add_checks(readiness: Readiness, settings: Settings, *, github: GitHubClient,
               environments: EnvironmentManager | None, exposure: Exposure | None) -> None:
    if settings.app is None:
        return  # setup mode: /readyz says so without checks
    readiness.add("github", lambda: github_problem(github))
    if environments is not None:
        readiness.add("devpod", environments.devpod_problem)
    if exposure is not None:
        readiness.add("kubernetes", lambda: kubernetes_problem(exposure))


async def github_problem(github: GitHubClient) -> str | None:
    try:
        await github.app().getitem("/app")
    except BadRequest as exc:
        status = exc.status_code
        if status == 401:
            return "GitHub refused the App's credentials (401): check APP_ID and PRIVATE_KEY (a new key may be needed)"
        return f"GitHub answered {int(status)} to GET /app: check APP_ID, PRIVATE_KEY and GHE_HOST"
    except GitHubUnavailable as exc:
        return f"GitHub could not be reached ({exc}): check the network and GHE_HOST"
    return None


async def kubernetes_problem(exposure: Exposure) -> str | None:
    problem = await exposure.reachable()
    return None if problem is None else f"the Kubernetes API did not answer ({problem}): check KUBECONFIG or the ServiceAccount"


async def check_tunnel(tunnel: CloudflareTunnelRoutes, settings: Settings) -> None:
    """Check the Cloudflare token and ids once: a wrong one stops the start with a clear error;
    Cloudflare not answering (after the retries) is only logged, the check repeats at every build."""
    try:
        await tunnel.check()
    except CloudflareError as exc:
        if exc.status is not None and exc.status < 500:
            raise RuntimeError(
                f"DEVENV_CLOUDFLARE_TUNNEL_ID is set, but the Cloudflare API refused the bot: {exc}. Check "
                "DEVENV_CLOUDFLARE_API_TOKEN (Account: Cloudflare Tunnel Edit, Zone: DNS Edit), "
                "DEVENV_CLOUDFLARE_ACCOUNT_ID and DEVENV_CLOUDFLARE_TUNNEL_ID (docs/cloudflare.md)") from None
        log.warning("could not check the Cloudflare tunnel at start-up (%s); previews are tried again at "
                    "every build", exc)
    if settings.cloudflare is not None and not settings.cloudflare.auth_proxy:
        log.warning("DEVENV_CLOUDFLARE_AUTH_PROXY is unset: the IDE cannot be published through the tunnel, so "
                    "no environment gets browser links (docs/cloudflare.md)")


__all__ = ["add_checks", "check_tunnel", "github_problem", "kubernetes_problem"]
