"""Where the bot's own Kubernetes client finds its credentials.

The bot talks to the API server itself only for links (Services, Ingresses: bot.cluster);
DevPod gets the same ``KUBECONFIG`` through :class:`bot.settings.devpod.DevPodSettings`. The
client uses the pod's service account when there is one, else the kubeconfig file
(``KUBECONFIG``, else ``~/.kube/config``) and ``DEVENV_KUBE_CONTEXT``. With links on, start-up
checks that one of those exists, so a missing credential is reported with the other
problems instead of on the first request.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bot.settings import variables as var
from bot.settings.reader import Reader

#: The token Kubernetes mounts into every pod with a service account (the in-cluster loader reads it).
SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


@dataclasses.dataclass(frozen=True)
class KubeSettings:
    """The kubeconfig file and context; both None: in-cluster, else ``~/.kube/config``."""

    kubeconfig: Path | None = None
    context: str | None = None


def read_kube(r: Reader) -> KubeSettings:
    return KubeSettings(kubeconfig=r.get(var.KUBECONFIG), context=r.get(var.KUBE_CONTEXT))


def check_credentials(r: Reader, kube: KubeSettings) -> None:
    """Report to ``r`` when the bot could not reach Kubernetes: no service account, no kubeconfig file."""
    token = SERVICE_ACCOUNT_TOKEN
    if token.is_file():
        return  # in a pod: the client uses the service account first
    if kube.kubeconfig is not None:
        if not kube.kubeconfig.expanduser().is_file():
            r.problem(f"KUBECONFIG={str(kube.kubeconfig)!r} is not a file: DEVENV_PREVIEW_DOMAIN is set, so "
                      "devenv-bot must reach Kubernetes to expose links; point KUBECONFIG at a kubeconfig file")
        return
    if not Path("~/.kube/config").expanduser().is_file():
        r.problem("DEVENV_PREVIEW_DOMAIN is set, so devenv-bot must reach Kubernetes to expose links, but it found "
                  f"no credentials (no service account token at {token}, no KUBECONFIG, no ~/.kube/config): run it "
                  "in the cluster or set KUBECONFIG to a kubeconfig file")
