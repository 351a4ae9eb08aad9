"""Where the App's credentials go once GitHub hands them over, and how the bot picks them up.

Locally (the default) they are written to the ``.env`` file (mode 0600) and the bot restarts itself
in-process with them. In a pod, the working directory is read-only and lost on restart, so with
``DEVENV_CREDENTIALS_SECRET`` set they go into that Kubernetes Secret (the Deployment in ``deploy/``
loads it with ``envFrom``) and the process exits so that the kubelet starts it again with them.
When the ServiceAccount may not write the Secret, nothing is lost: the page shows the operator the
exact ``kubectl create secret`` command (the values are never logged).
"""

from __future__ import annotations

import asyncio
import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from bot.cluster.kube import POD_NAMESPACE_FILE, pod_namespace
from bot.core.files import write_atomic

#: Keys of the Secret / .env file, as the settings read them.
KEYS = ("APP_ID", "PRIVATE_KEY", "WEBHOOK_SECRET", "GITHUB_CLIENT_ID", "GITHUB_CLIENT_SECRET")


class CannotStore(Exception):
    """The credentials could not be stored; ``command`` says how the operator stores them by hand."""

    def __init__(self, reason: str, command: str) -> None:
        super().__init__(reason)
        self.reason, self.command = reason, command


class CredentialStore(Protocol):
    #: True: reload the settings in this process; False: exit and let the supervisor restart it.
    restart_in_process: bool

    def describe(self) -> str: ...

    async def store(self, values: dict[str, str]) -> None: ...


def write_env(path: Path, values: dict[str, str]) -> None:
    """Set ``values`` in the dotenv file at ``path``, keeping its other lines; mode 0600."""
    lines = path.read_text().splitlines() if path.exists() else []
    keep = [ln for ln in lines if ln.split("=", 1)[0].strip() not in values]
    for key, value in values.items():
        keep.append(f"{key}={json.dumps(value)}" if ("\n" in value or " " in value) else f"{key}={value}")
    write_atomic(path, "\n".join(keep) + "\n")


class DotEnvFile:
    restart_in_process = True

    def __init__(self, path: Path) -> None:
        self.path = path

    def describe(self) -> str:
        return str(self.path)

    async def store(self, values: dict[str, str]) -> None:
        write_env(self.path, {**values, "PRIVATE_KEY": values["PRIVATE_KEY"].replace("\n", "\\n")})


def kubectl_command(namespace: str, name: str, values: dict[str, str]) -> str:
    """The command an operator runs to create the Secret; the key goes through a file, not argv."""
    literals = " ".join(f"--from-literal={k}={shlex.quote(values[k])}" for k in KEYS if k != "PRIVATE_KEY" and values.get(k))
    return (f"kubectl -n {shlex.quote(namespace)} create secret generic {shlex.quote(name)} {literals} "
            "--from-file=PRIVATE_KEY=devenv-bot.private-key.pem")


def secret_location(spec: str, *, pod_namespace_file: Path = POD_NAMESPACE_FILE,
                    context_namespace: str | None = None) -> tuple[str, str]:
    """``namespace/name`` or ``name`` (the pod's own namespace, else the kubeconfig context's, else default)."""
    if "/" in spec:
        namespace, name = spec.split("/", 1)
        return namespace, name
    return pod_namespace(pod_namespace_file) or context_namespace or "default", spec


class KubernetesSecret:
    restart_in_process = False

    def __init__(self, namespace: str, name: str, api_client: Callable[[], Any]) -> None:
        self.namespace, self.name, self.api_client = namespace, name, api_client

    def describe(self) -> str:
        return f"the Kubernetes Secret {self.namespace}/{self.name}"

    async def store(self, values: dict[str, str]) -> None:
        try:
            await asyncio.to_thread(self._write, values)
        except Exception as exc:  # no credentials, forbidden, unreachable: the operator stores them by hand
            status = getattr(exc, "status", None)
            why = f"the Kubernetes API answered {status}" if status else exc.__class__.__name__
            raise CannotStore(f"devenv-bot could not write {self.describe()} ({why})",
                              kubectl_command(self.namespace, self.name, values)) from None

    def _write(self, values: dict[str, str]) -> None:
        api = client.CoreV1Api(self.api_client())
        body = client.V1Secret(
            api_version="v1", kind="Secret",
            metadata=client.V1ObjectMeta(name=self.name, labels={"app.kubernetes.io/name": "devenv-bot"}),
            type="Opaque", string_data={k: values[k] for k in KEYS if values.get(k)})
        try:
            api.create_namespaced_secret(self.namespace, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            # Registered again: replace the Secret at the version read, never a blind overwrite.
            current = api.read_namespaced_secret(self.name, self.namespace)
            meta = client.V1ObjectMeta(name=self.name, labels={"app.kubernetes.io/name": "devenv-bot"},
                                       resource_version=current.metadata.resource_version if current.metadata else None)
            body.metadata = meta
            api.replace_namespaced_secret(self.name, self.namespace, body)
