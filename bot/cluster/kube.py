"""The Kubernetes API as the exposure code needs it: a configured client and a few REST verbs.

Design. The official ``kubernetes`` client is synchronous, so every call runs in
``asyncio.to_thread``. Objects are plain dicts (the manifests of :mod:`bot.cluster.manifests`)
sent through the client's generic ``call_api``, not its generated model classes, so a custom
resource such as Traefik's Middleware goes the same way as a Service.

Temporary API errors (5xx, 429, connection errors) are retried ``retries`` times with
exponential backoff; anything else raises ``kubernetes.client.exceptions.ApiException``.
The verbs that have an expected failure (:meth:`KubeApi.create` on 409, :meth:`KubeApi.replace`
on 404 or 409, :meth:`KubeApi.get` and :meth:`KubeApi.delete` on 404) answer it with a value
instead, so callers need no ``kubernetes`` import.

The ``kubernetes`` package is imported inside the functions that use it: importing it takes
most of a second, and a bot without preview links never needs it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from urllib3.exceptions import HTTPError

from bot.settings.kube import KubeSettings

log = logging.getLogger(__name__)

__all__ = ["Kind", "KubeApi", "kube_api_client"]


class Kind(NamedTuple):
    """A resource kind as the REST paths name it."""

    api_version: str
    kind: str
    plural: str


def kube_api_client(kube: KubeSettings) -> Any:
    """An ``ApiClient``: in-cluster service account if there is one, else ``KUBECONFIG``
    (``DEVENV_KUBE_CONTEXT`` picks the context). The in-cluster loader re-reads the
    projected token before it expires."""
    from kubernetes import client, config  # slow to import; see the module docstring

    cfg = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=cfg)
    except config.ConfigException:
        config.load_kube_config(config_file=str(kube.kubeconfig) if kube.kubeconfig is not None else None,
                                context=kube.context, client_configuration=cfg)
    return client.ApiClient(cfg)


def path(kind: Kind, namespace: str, name: str | None = None) -> str:
    base = f"/api/{kind.api_version}" if "/" not in kind.api_version else f"/apis/{kind.api_version}"
    return f"{base}/namespaces/{namespace}/{kind.plural}" + (f"/{name}" if name else "")


def _status(error: BaseException) -> int | None:
    """The HTTP status of an ``ApiException`` (None for any other error)."""
    from kubernetes.client.exceptions import ApiException  # loaded by then: the client made the call

    return (error.status or 0) if isinstance(error, ApiException) else None


class KubeApi:
    """REST verbs on one namespace's objects, over an ``ApiClient`` (closed by :meth:`close`)."""

    def __init__(self, api_client: Any, namespace: str, *, retries: int = 3, backoff: float = 0.5,
                 request_timeout: float = 30.0, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.client = api_client
        self.namespace = namespace
        self._retries, self._backoff, self._timeout, self._sleep = retries, backoff, request_timeout, sleep

    async def close(self) -> None:
        await asyncio.to_thread(self.client.close)

    def _call(self, method: str, path: str, query: list[tuple[str, str]] | None, body: Any) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException  # slow to import; see the module docstring

        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        method, url, headers, body, _ = self.client.param_serialize(
            method, path, query_params=query or [], header_params=headers, body=body, auth_settings=["BearerToken"])
        resp = self.client.call_api(method, url, headers, body, _request_timeout=self._timeout)
        resp.read()
        if not 200 <= resp.status < 300:
            raise ApiException.from_response(http_resp=resp, body=resp.data.decode("utf-8", "replace"), data=None)
        return json.loads(resp.data or b"{}")

    async def request(self, method: str, path: str, *, query: list[tuple[str, str]] | None = None,
                      body: Any = None) -> dict[str, Any]:
        """One API call, retried while the error is temporary; returns the decoded answer."""
        delay = self._backoff
        for attempt in range(self._retries + 1):
            try:
                return await asyncio.to_thread(self._call, method, path, query, body)
            except HTTPError as e:
                if attempt == self._retries:
                    raise
                log.warning("kubernetes %s %s: %s, retrying", method, path, e)
            except Exception as e:
                status = _status(e)
                if status is None or not (status == 429 or status >= 500) or attempt == self._retries:
                    raise
                log.warning("kubernetes %s %s: %s, retrying", method, path, status)
            await self._sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    async def _expecting(self, statuses: tuple[int, ...], method: str, path: str, body: Any = None) -> bool:
        """True when the call succeeded, False when it failed with one of ``statuses``."""
        try:
            await self.request(method, path, body=body)
            return True
        except Exception as e:
            if _status(e) not in statuses:
                raise
            return False

    async def list(self, kind: Kind, selector: str) -> list[dict[str, Any]]:
        result = await self.request("GET", path(kind, self.namespace), query=[("labelSelector", selector)])
        items = result.get("items") or []
        for item in items:  # list items carry no kind/apiVersion
            item["apiVersion"], item["kind"] = kind.api_version, kind.kind
        return items

    async def read(self, kind: Kind, name: str) -> dict[str, Any]:
        """The object; a 404 raises like any other error."""
        return await self.request("GET", path(kind, self.namespace, name))

    async def get(self, kind: Kind, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist (404)."""
        try:
            return await self.read(kind, name)
        except Exception as e:
            if _status(e) != 404:
                raise
            return None

    async def create(self, kind: Kind, body: dict[str, Any]) -> bool:
        """POST; False when an object of that name already exists (409)."""
        return await self._expecting((409,), "POST", path(kind, self.namespace), body)

    async def replace(self, kind: Kind, name: str, body: dict[str, Any]) -> bool:
        """PUT with the body's ``resourceVersion``; False on a conflict (409) or when it is gone (404)."""
        return await self._expecting((404, 409), "PUT", path(kind, self.namespace, name), body)

    async def delete(self, kind: Kind, name: str) -> bool:
        """DELETE; False when it was already gone (404)."""
        return await self._expecting((404,), "DELETE", path(kind, self.namespace, name))
