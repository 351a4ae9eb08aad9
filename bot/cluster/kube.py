"""The Kubernetes API as the exposure code needs it: a configured client and a few REST verbs.

Design. The official ``kubernetes`` client is synchronous, so every call runs in a thread of its
own (:func:`in_daemon_thread`). Those threads are daemons, not the event loop's default executor:
a call blocked in a slow API server would otherwise keep the process alive after "stopped cleanly"
(``asyncio.run`` joins the default executor, the interpreter joins its worker threads), and the
kubelet would SIGKILL it at the end of its grace. Each call's ``_request_timeout`` is at most
``request_timeout`` and, once shutdown has begun (:data:`bot.core.tasks.SHUTDOWN`), at most the
grace that is left; a call still blocked at exit is abandoned, and ``devenv-bot serve`` says which
(:func:`in_flight`). Objects are plain dicts (the manifests of :mod:`bot.cluster.manifests`)
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
import contextlib
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from urllib3.exceptions import HTTPError

from bot.core.tasks import SHUTDOWN
from bot.settings.kube import KubeSettings

log = logging.getLogger(__name__)

#: The namespace of the pod the bot runs in (its service account's), when it runs in one.
POD_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def pod_namespace(pod_namespace_file: Path = POD_NAMESPACE_FILE) -> str | None:
    """The namespace of the pod the bot runs in, or None outside a pod."""
    try:
        return pod_namespace_file.read_text().strip() or None
    except OSError:
        return None


def kubeconfig_namespace(kube: KubeSettings) -> str | None:
    """The namespace of the kubeconfig context the bot's client uses (``DEVENV_KUBE_CONTEXT``, else the
    current one), if it names one."""
    from kubernetes import config

    try:
        contexts, active = config.list_kube_config_contexts(
            config_file=str(kube.kubeconfig) if kube.kubeconfig is not None else None)
    except (config.ConfigException, OSError, TypeError):
        return None
    chosen = next((c for c in contexts if c.get("name") == kube.context), None) if kube.context else active
    return (chosen or {}).get("context", {}).get("namespace") or None


def own_namespace(kube: KubeSettings, pod_namespace_file: Path = POD_NAMESPACE_FILE) -> str:
    """The bot's own namespace, where replicas keep their shared state: the pod's, else the kubeconfig
    context's, else ``default``."""
    return pod_namespace(pod_namespace_file) or kubeconfig_namespace(kube) or "default"

__all__ = ["POD_KIND", "Kind", "KubeApi", "in_daemon_thread", "in_flight", "kube_api_client"]

T = TypeVar("T")

#: Below this many seconds of grace left, a call is not started at all.
LEAST_TIMEOUT = 0.1

_in_flight: dict[int, tuple[str, float]] = {}  # thread id -> (what it calls, since when: monotonic)
_in_flight_lock = threading.Lock()


def in_flight() -> list[tuple[str, float]]:
    """The Kubernetes calls still running: (what, seconds so far), longest first."""
    now = time.monotonic()
    with _in_flight_lock:
        calls = [(what, now - since) for what, since in _in_flight.values()]
    return sorted(calls, key=lambda c: -c[1])


async def in_daemon_thread(what: str, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a new daemon thread (see the module docstring); ``what`` names it in
    :func:`in_flight` while it runs. Cancelling the await abandons the thread, which ends when
    its call does (its timeout bounds that)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if not future.done():
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

    def run() -> None:
        with _in_flight_lock:
            _in_flight[threading.get_ident()] = (what, time.monotonic())
        result, error = None, None
        try:
            result = fn(*args)
        except BaseException as exc:  # handed to the awaiting coroutine
            error = exc
        finally:
            with _in_flight_lock:
                _in_flight.pop(threading.get_ident(), None)
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name=f"kube {what}"[:60], daemon=True).start()
    return await future


class Kind(NamedTuple):
    """A resource kind as the REST paths name it."""

    api_version: str
    kind: str
    plural: str


#: Workspace pods: DevPod creates them, the bot only lists them and reads their logs (``/devenv logs``).
POD_KIND = Kind("v1", "Pod", "pods")


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
        left = SHUTDOWN.remaining()
        try:
            await asyncio.wait_for(in_daemon_thread("close the client", self.client.close),
                                   self._timeout if left is None else max(LEAST_TIMEOUT, left))
        except TimeoutError:
            log.warning("the Kubernetes client did not close in time; leaving it")

    def timeout(self) -> float:
        """The next call's timeout: ``request_timeout``, or less when shutdown leaves less time.
        Raises ``TimeoutError`` when none is left (the call is not made)."""
        left = SHUTDOWN.remaining()
        if left is None:
            return self._timeout
        if left < LEAST_TIMEOUT:
            raise TimeoutError("the bot is shutting down: no time left for a Kubernetes call")
        return min(self._timeout, left)

    def _call(self, method: str, path: str, query: list[tuple[str, str]] | None, body: Any,
              timeout: float, text: bool = False) -> Any:
        from kubernetes.client.exceptions import ApiException  # slow to import; see the module docstring

        headers = {"Accept": "text/plain" if text else "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        method, url, headers, body, _ = self.client.param_serialize(
            method, path, query_params=query or [], header_params=headers, body=body, auth_settings=["BearerToken"])
        resp = self.client.call_api(method, url, headers, body, _request_timeout=timeout)
        resp.read()
        if not 200 <= resp.status < 300:
            raise ApiException.from_response(http_resp=resp, body=resp.data.decode("utf-8", "replace"), data=None)
        return resp.data.decode("utf-8", "replace") if text else json.loads(resp.data or b"{}")

    async def request(self, method: str, path: str, *, query: list[tuple[str, str]] | None = None,
                      body: Any = None, text: bool = False) -> Any:
        """One API call, retried while the error is temporary; returns the decoded answer (``text``:
        the body as text, for the answers that are not JSON, such as a pod's log)."""
        delay = self._backoff
        for attempt in range(self._retries + 1):
            last = attempt == self._retries or SHUTDOWN.remaining() is not None  # no retries while stopping
            try:
                return await in_daemon_thread(f"{method} {path}", self._call, method, path, query, body,
                                              self.timeout(), text)
            except HTTPError as e:
                if last:
                    raise
                log.warning("kubernetes %s %s: %s, retrying", method, path, e)
            except Exception as e:
                status = _status(e)
                if status is None or not (status == 429 or status >= 500) or last:
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

    async def pod_log(self, name: str, *, container: str | None = None, tail_lines: int,
                      limit_bytes: int) -> str:
        """The end of a pod's container log (``GET pods/<name>/log``: RBAC ``pods/log`` get), at most
        ``tail_lines`` lines and ``limit_bytes`` bytes; a 404 raises like any other error."""
        query = [("tailLines", str(tail_lines)), ("limitBytes", str(limit_bytes))]
        if container:
            query.append(("container", container))
        return str(await self.request("GET", path(POD_KIND, self.namespace, name) + "/log", query=query, text=True))

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
