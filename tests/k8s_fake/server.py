"""A small Kubernetes API server for tests: namespaced Services, Ingresses, Traefik Middlewares, Leases ...

It runs aiohttp on 127.0.0.1 (random port) in a background thread with its own event
loop, because the official ``kubernetes`` client is synchronous: the code under test calls
it from worker threads (``asyncio.to_thread``) and the test's own loop must stay free.

What it serves, under ``/api/v1`` and ``/apis/<group>/<version>``::

    POST   .../namespaces/<ns>/<plural>          create; 409 AlreadyExists
    GET    .../namespaces/<ns>/<plural>          list; ?labelSelector=a=b,c!=d,e,!f
    GET    .../namespaces/<ns>/<plural>/<name>   get; 404 NotFound
    PUT    .../namespaces/<ns>/<plural>/<name>   replace; metadata.resourceVersion required,
                                                 409 Conflict when it is not the current one
    PATCH  .../namespaces/<ns>/<plural>/<name>   merge-patch (RFC 7386); strategic-merge is
                                                 treated as merge-patch; json-patch → 415
    DELETE .../namespaces/<ns>/<plural>/<name>   200 with a v1 Status
    GET    /version

Errors are ``v1 Status`` objects with the real ``reason`` strings (``NotFound``,
``AlreadyExists``, ``Conflict``, ``Invalid``, ``BadRequest``, ``Forbidden``). Every object written is
validated first (``validation.py``); an invalid one is answered 422 *and* appended to
:attr:`FakeKube.errors`, which the fixture turns into a test failure. All requests are
in :attr:`FakeKube.calls`.

RBAC, opt-in (``FakeKube(rbac=policy)``, ``rbac.py``): every request to a resource path, any
resource, subresource or scope (not only the three kinds above), is authorised first against the
rules rendered from ``deploy/``. A request they do not allow is answered 403 ``Forbidden`` with
the API server's message and is also appended to :attr:`FakeKube.errors` (and
:attr:`FakeKube.forbidden`); allowed ones are collected in :attr:`FakeKube.exercised` as
(group, resource, verb). Without a policy every request is allowed, as before.

Realism where the code under test could otherwise get it wrong:

* stored objects get ``uid``, ``resourceVersion`` (one cluster-wide counter, as etcd),
  ``creationTimestamp``, ``generation`` and a ``status``;
* list items carry no ``kind``/``apiVersion`` (as in a real list response);
* Services are defaulted like the API server does (``clusterIP``, ``type``,
  ``sessionAffinity``, port ``protocol``/``targetPort`` ...), a replace that omits
  ``clusterIP`` keeps the allocated one and one that changes it is rejected as immutable;
* a write that changes nothing does not bump ``resourceVersion``.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import dataclasses
import datetime
import itertools
import json
import threading
import uuid
from pathlib import Path
from typing import Any

from aiohttp import web

from . import validation
from .rbac import Policy, Request

#: (group, version, plural) → kind. The group of the core API is "".
RESOURCES: dict[tuple[str, str, str], str] = {
    ("", "v1", "services"): "Service",
    ("networking.k8s.io", "v1", "ingresses"): "Ingress",
    ("traefik.io", "v1alpha1", "middlewares"): "Middleware",
    ("", "v1", "secrets"): "Secret",  # where the setup flow stores the App's credentials in a pod
    ("", "v1", "pods"): "Pod",  # DevPod's workspace pods (put by tests); the bot lists them for /devenv logs
    # the environments' records with DEVENV_STATE_BACKEND=kubernetes, validated against deploy/'s CRD
    ("devenv-bot.dev", "v1alpha1", "devenvironments"): "DevEnvironment",
    ("coordination.k8s.io", "v1", "leases"): "Lease",  # replicas: one operation per workspace, the leader
    ("", "v1", "configmaps"): "ConfigMap",  # replicas' create-once markers (deliveries, sign-in codes)
}


@dataclasses.dataclass(frozen=True)
class Call:
    method: str
    path: str
    query: dict[str, str]
    content_type: str | None
    body: Any
    status: int


@dataclasses.dataclass
class Fault:
    method: str
    path_suffix: str
    status: int
    reason: str
    times: int


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details or {}


def status_object(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Success" if code < 400 else "Failure", "message": message, "code": code,
    }
    if reason:
        body["reason"] = reason
    if details:
        body["details"] = details
    return body


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def parse_selector(selector: str) -> list[tuple[str, str, str | None]]:
    """``a=b,c==d,e!=f,g,!h`` → [(op, key, value)]; set-based selectors are a 400."""
    terms: list[tuple[str, str, str | None]] = []
    for raw in filter(None, (t.strip() for t in selector.split(","))):
        if " in " in raw or " notin " in raw or "(" in raw:
            raise ApiError(400, "BadRequest", f"set-based selector not supported by the fake: {raw!r}")
        if "!=" in raw:
            k, v = raw.split("!=", 1)
            terms.append(("!=", k.strip(), v.strip()))
        elif "=" in raw:
            k, v = raw.split("==", 1) if "==" in raw else raw.split("=", 1)
            terms.append(("=", k.strip(), v.strip()))
        elif raw.startswith("!"):
            terms.append(("!", raw[1:].strip(), None))
        else:
            terms.append(("exists", raw, None))
    return terms


def selector_matches(terms: list[tuple[str, str, str | None]], labels: dict[str, str]) -> bool:
    for op, key, value in terms:
        if op == "=" and labels.get(key) != value:
            return False
        if op == "!=" and labels.get(key) == value:
            return False
        if op == "exists" and key not in labels:
            return False
        if op == "!" and key in labels:
            return False
    return True


class FakeKube:
    """The fake API server. ``url`` is the base URL for ``kubernetes.client.Configuration(host=...)``."""

    def __init__(self, token: str | None = None, *, rbac: Policy | None = None):
        #: When set, every request must carry ``Authorization: Bearer <token>`` (else 401).
        self.token = token
        #: When set, every resource request must be allowed by it (else 403 and an error).
        self.rbac = rbac
        #: Requests the RBAC policy refused, as "METHOD path: message".
        self.forbidden: list[str] = []
        #: (group, resource, verb) of every request the RBAC policy allowed.
        self.exercised: set[tuple[str, str, str]] = set()
        self.calls: list[Call] = []
        #: Requests the fake rejected as malformed or invalid (422/400/415): each fails the test.
        self.errors: list[str] = []
        self._store: dict[tuple[str, str, str], dict[str, Any]] = {}  # (plural, ns, name) → object
        self._faults: list[Fault] = []
        #: (namespace, pod, container) → the container's log, served by GET .../pods/<pod>/log.
        self.pod_logs: dict[tuple[str, str, str], str] = {}
        self._hangs: list[Fault] = []  # requests to hold without an answer (status unused)
        #: "METHOD path" of each request held by :meth:`hang` so far.
        self.hanging: list[str] = []
        self._release: asyncio.Event | None = None
        self._rv = itertools.count(1000)
        self._ips = itertools.count(10)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeKube:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._start_site())
            except BaseException as e:  # pragma: no cover - start-up failure is reported below
                failure.append(e)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())  # type: ignore[union-attr]
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="k8s-fake", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    async def _start_site(self) -> None:
        self._release = asyncio.Event()
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_get("/version", self._version)
        app.router.add_route("*", "/api/{version}/namespaces/{ns}/{plural}", self._serve)
        app.router.add_route("*", "/api/{version}/namespaces/{ns}/{plural}/{name}", self._serve)
        app.router.add_route("*", "/apis/{group}/{version}/namespaces/{ns}/{plural}", self._serve)
        app.router.add_route("*", "/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}", self._serve)
        app.router.add_get("/api/v1/namespaces/{ns}/pods/{name}/log", self._pod_log)
        # Everything else under the resource APIs (subresources such as pods/exec, cluster-scoped
        # resources): authorised like the rest, then 404, as a server without those resources.
        app.router.add_route("*", "/api/{tail:.*}", self._elsewhere)
        app.router.add_route("*", "/apis/{tail:.*}", self._elsewhere)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    def close(self) -> None:
        if self._loop is not None and self._thread is not None:
            self.release()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = self._thread = None

    def __enter__(self) -> FakeKube:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ test helpers

    def write_kubeconfig(self, path: Path, namespace: str) -> Path:
        """A kubeconfig file pointing the official client (the bot's) at this fake."""
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "bot", "user": {"token": self.token or "not-checked"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "bot", "namespace": namespace}}],
        }))
        return path

    def objects(self, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Deep copies of the stored objects of one resource (``"services"``, ``"ingresses"`` ...)."""
        with self._lock:
            return [copy.deepcopy(o) for (p, ns, _), o in sorted(self._store.items())
                    if p == plural and (namespace is None or ns == namespace)]

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            obj = self._store.get((plural, namespace, name))
            return copy.deepcopy(obj) if obj else None

    def put_object(self, plural: str, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Store ``obj`` directly (as if someone else had created it), validated like a POST."""
        with self._lock:
            return self._create(plural, namespace, copy.deepcopy(obj))

    def writes(self) -> list[Call]:
        """Calls that changed (or tried to change) something."""
        return [c for c in self.calls if c.method in ("POST", "PUT", "PATCH", "DELETE")]

    def inject(self, method: str, path_suffix: str, status: int, reason: str = "", times: int = 1) -> None:
        """Answer the next ``times`` requests whose path ends with ``path_suffix`` with ``status``."""
        with self._lock:
            self._faults.append(Fault(method.upper(), path_suffix, status, reason, times))

    def hang(self, method: str, path_suffix: str, times: int = 1) -> None:
        """Hold the next ``times`` requests whose path ends with ``path_suffix`` without an answer until
        :meth:`release` (or :meth:`close`): an API server that stopped answering."""
        with self._lock:
            self._hangs.append(Fault(method.upper(), path_suffix, 0, "", times))

    def release(self) -> None:
        """Let every held request go on (answered as usual)."""
        if self._loop is not None and self._release is not None:
            self._loop.call_soon_threadsafe(self._release.set)

    def _held(self, method: str, path: str) -> bool:
        with self._lock:
            for f in self._hangs:
                if f.times > 0 and f.method == method and path.endswith(f.path_suffix):
                    f.times -= 1
                    self.hanging.append(f"{method} {path}")
                    return True
        return False

    def assert_valid(self) -> None:
        assert not self.errors, "the Kubernetes fake rejected requests:\n" + "\n".join(self.errors)

    # ------------------------------------------------------------------ HTTP

    async def _version(self, request: web.Request) -> web.Response:
        major, minor = validation.KUBERNETES_VERSION.split(".")
        return web.json_response({"major": major, "minor": minor, "gitVersion": f"v{major}.{minor}.0",
                                  "platform": "linux/amd64"})

    async def _serve(self, request: web.Request) -> web.Response:
        info = request.match_info
        key = (info.get("group", ""), info["version"], info["plural"])
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip() or None
        raw = await request.read()
        if self._held(request.method, request.path) and self._release is not None:
            await self._release.wait()
        body: Any = None
        code, payload = 500, {}
        try:
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError as e:
                    raise ApiError(400, "BadRequest", f"request body is not JSON: {e}") from None
            if self.token is not None and request.headers.get("Authorization") != f"Bearer {self.token}":
                raise ApiError(401, "Unauthorized", "Unauthorized")
            self._authorize(request)
            if key not in RESOURCES:
                raise ApiError(404, "NotFound", f"the server could not find the requested resource ({key})")
            with self._lock:
                self._fault(request.method, request.path)
                code, payload = self._dispatch(request.method, key, info["ns"], info.get("name"),
                                               dict(request.query), ctype, body)
        except ApiError as e:
            code, payload = e.code, status_object(e.code, e.reason, e.message, e.details)
            if e.code in (400, 415, 422):
                self.errors.append(f"{request.method} {request.path_qs}: {e.code} {e.message}")
        with self._lock:
            self.calls.append(Call(request.method, request.path, dict(request.query), ctype, body, code))
        return web.json_response(payload, status=code)

    def set_pod_log(self, namespace: str, pod: str, text: str, container: str = "devpod") -> None:
        """What ``GET pods/<pod>/log`` answers for ``container`` (the pod must be put too)."""
        with self._lock:
            self.pod_logs[(namespace, pod, container)] = text

    async def _pod_log(self, request: web.Request) -> web.Response:
        """The pods/log subresource as the API server serves it: text/plain, ``container`` (needed when
        the pod has more than one), ``tailLines`` and ``limitBytes`` (both positive integers)."""
        ns, name, query = request.match_info["ns"], request.match_info["name"], request.query
        try:
            if self.token is not None and request.headers.get("Authorization") != f"Bearer {self.token}":
                raise ApiError(401, "Unauthorized", "Unauthorized")
            self._authorize(request)
            with self._lock:
                pod = self._store.get(("pods", ns, name))
                if pod is None:
                    raise ApiError(404, "NotFound", f'pods "{name}" not found', {"name": name, "kind": "pods"})
                containers = [c["name"] for c in pod["spec"]["containers"]]
                container = query.get("container") or (containers[0] if len(containers) == 1 else None)
                if container not in containers:
                    raise ApiError(400, "BadRequest", f"container {container!r} is not valid for pod {name}")
                text = self.pod_logs.get((ns, name, container), "")
            for key in ("tailLines", "limitBytes"):
                if key in query and not (query[key].isdigit() and int(query[key]) > 0):
                    raise ApiError(400, "BadRequest", f"{key}: must be a positive integer")
            if "tailLines" in query:
                text = "".join(text.splitlines(keepends=True)[-int(query["tailLines"]):])
            data = text.encode()
            if "limitBytes" in query:
                data = data[: int(query["limitBytes"])]
            code, response = 200, web.Response(body=data, content_type="text/plain", charset="utf-8")
        except ApiError as e:
            code = e.code
            response = web.json_response(status_object(e.code, e.reason, e.message, e.details), status=e.code)
            if e.code in (400, 415, 422):
                self.errors.append(f"GET {request.path_qs}: {e.code} {e.message}")
        with self._lock:
            self.calls.append(Call("GET", request.path, dict(query), None, None, code))
        return response

    async def _elsewhere(self, request: web.Request) -> web.Response:
        try:
            if self.token is not None and request.headers.get("Authorization") != f"Bearer {self.token}":
                raise ApiError(401, "Unauthorized", "Unauthorized")
            self._authorize(request)
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        except ApiError as e:
            code, payload = e.code, status_object(e.code, e.reason, e.message, e.details)
        with self._lock:
            self.calls.append(Call(request.method, request.path, dict(request.query),
                                   request.headers.get("Content-Type"), None, code))
        return web.json_response(payload, status=code)

    def _authorize(self, request: web.Request) -> None:
        """403 Forbidden (recorded as an error) unless the RBAC policy, if any, allows the request."""
        if self.rbac is None:
            return
        attrs = Request.from_http(request.method, request.path, request.query)
        if attrs is None:
            return
        with self._lock:
            if self.rbac.allows(attrs):
                self.exercised.add(attrs.key)
                return
            message = attrs.forbidden_message(self.rbac.user)
            self.forbidden.append(f"{request.method} {request.path_qs}: {message}")
            self.errors.append(f"{request.method} {request.path_qs}: 403 {message}")
        raise ApiError(403, "Forbidden", message, attrs.forbidden_details())

    def _fault(self, method: str, path: str) -> None:
        for f in self._faults:
            if f.times > 0 and f.method == method and path.endswith(f.path_suffix):
                f.times -= 1
                raise ApiError(f.status, f.reason, f"injected {f.status}")

    def _dispatch(self, method: str, key: tuple[str, str, str], ns: str, name: str | None,
                  query: dict[str, str], ctype: str | None, body: Any) -> tuple[int, Any]:
        plural = key[2]
        if name is None:
            if method == "GET":
                return 200, self._list(key, ns, query.get("labelSelector", ""))
            if method == "POST":
                self._check_body(key, ns, body)
                return 201, self._create(plural, ns, body)
            raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on a collection")
        current = self._store.get((plural, ns, name))
        if current is None:
            raise ApiError(404, "NotFound", f'{plural} "{name}" not found',
                           {"name": name, "kind": plural, "group": key[0]})
        if method == "GET":
            return 200, copy.deepcopy(current)
        if method == "DELETE":
            del self._store[(plural, ns, name)]
            return 200, status_object(200, "", "", {"name": name, "kind": plural, "group": key[0],
                                                     "uid": current["metadata"]["uid"]})
        if method == "PUT":
            self._check_body(key, ns, body, name)
            rv = (body.get("metadata") or {}).get("resourceVersion")
            if not rv:
                raise ApiError(422, "Invalid", "metadata.resourceVersion: must be specified for an update")
            return 200, self._update(plural, current, body)
        if method == "PATCH":
            if ctype not in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                raise ApiError(415, "UnsupportedMediaType", f"the fake does not support patch type {ctype!r}")
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "a merge patch must be a JSON object")
            merged = merge_patch({k: v for k, v in current.items() if k != "status"}, body)
            self._check_body(key, ns, merged, name)
            return 200, self._update(plural, current, merged)
        raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on an object")

    # ------------------------------------------------------------------ storage

    def _check_body(self, key: tuple[str, str, str], ns: str, body: Any, name: str | None = None) -> None:
        group, version, plural = key
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "body must be a JSON object")
        api_version = f"{group}/{version}" if group else version
        if body.get("apiVersion") != api_version or body.get("kind") != RESOURCES[key]:
            raise ApiError(400, "BadRequest",
                           f"expected {api_version} {RESOURCES[key]}, got {body.get('apiVersion')} {body.get('kind')}")
        meta = body.get("metadata") or {}
        if meta.get("namespace") not in (None, ns):
            raise ApiError(400, "BadRequest", "the namespace of the object does not match the request")
        if name is not None and meta.get("name") != name:
            raise ApiError(400, "BadRequest", "the name of the object does not match the request")

    def _validated(self, obj: dict[str, Any]) -> None:
        found = validation.problems(obj)
        if found:
            name = (obj.get("metadata") or {}).get("name")
            raise ApiError(422, "Invalid", f"{obj.get('kind')} {name!r} is invalid: " + "; ".join(found))

    def _default(self, plural: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        if plural == "secrets":
            # The API server folds the write-only stringData into base64 data and never returns it.
            data = obj.setdefault("data", {})
            for key, value in (obj.pop("stringData", None) or {}).items():
                data[key] = base64.b64encode(value.encode()).decode()
            obj.setdefault("type", "Opaque")
            return
        if plural != "services":
            return
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("ipFamilies", ["IPv4"])
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
        old_ip = (old or {}).get("spec", {}).get("clusterIP")
        if old_ip:
            if spec.get("clusterIP", old_ip) != old_ip:
                raise ApiError(422, "Invalid", "spec.clusterIP: field is immutable")
            spec["clusterIP"], spec["clusterIPs"] = old_ip, [old_ip]
        elif spec.get("clusterIP") != "None":
            ip = spec.get("clusterIP") or f"10.96.0.{next(self._ips) % 250 + 2}"
            spec["clusterIP"], spec["clusterIPs"] = ip, [ip]

    def _create(self, plural: str, ns: str, body: dict[str, Any]) -> dict[str, Any]:
        meta = body.setdefault("metadata", {})
        name = meta.get("name")
        if not name:
            raise ApiError(422, "Invalid", "metadata.name: Required value")
        if (plural, ns, name) in self._store:
            raise ApiError(409, "AlreadyExists", f'{plural} "{name}" already exists',
                           {"name": name, "kind": plural})
        if meta.get("resourceVersion"):
            raise ApiError(422, "Invalid", "metadata.resourceVersion: must be empty on create")
        body.pop("status", None)
        self._default(plural, body, None)
        self._validated(body)
        meta.update(namespace=ns, uid=str(uuid.uuid4()), resourceVersion=str(next(self._rv)), generation=1,
                    creationTimestamp=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        if plural in ("services", "ingresses"):
            body["status"] = {"loadBalancer": {}}
        self._store[(plural, ns, name)] = body
        return copy.deepcopy(body)

    def _update(self, plural: str, current: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        body = copy.deepcopy(body)
        cur_meta, meta = current["metadata"], body.setdefault("metadata", {})
        if meta.get("resourceVersion") not in (None, cur_meta["resourceVersion"]):
            raise ApiError(409, "Conflict",
                           f'Operation cannot be fulfilled on {plural} "{cur_meta["name"]}": the object has '
                           "been modified; please apply your changes to the latest version and try again",
                           {"name": cur_meta["name"], "kind": plural})
        if meta.get("uid") not in (None, cur_meta["uid"]):
            raise ApiError(409, "Conflict", "Precondition failed: UID in precondition does not match")
        body.pop("status", None)
        self._default(plural, body, current)
        for field in ("namespace", "uid", "creationTimestamp", "generation", "resourceVersion"):
            meta[field] = cur_meta[field]
        self._validated(body)
        if "status" in current:
            body["status"] = current["status"]
        if body == current:
            return copy.deepcopy(current)  # a no-op write does not bump resourceVersion
        if body.get("spec") != current.get("spec"):
            meta["generation"] = cur_meta["generation"] + 1
        meta["resourceVersion"] = str(next(self._rv))
        self._store[(plural, cur_meta["namespace"], cur_meta["name"])] = body
        return copy.deepcopy(body)

    def _list(self, key: tuple[str, str, str], ns: str, selector: str) -> dict[str, Any]:
        terms = parse_selector(selector)
        items = []
        for (plural, o_ns, _), obj in sorted(self._store.items()):
            if plural == key[2] and o_ns == ns and selector_matches(terms, obj["metadata"].get("labels") or {}):
                item = copy.deepcopy(obj)
                item.pop("kind", None)
                item.pop("apiVersion", None)
                items.append(item)
        group, version, _ = key
        return {"kind": f"{RESOURCES[key]}List", "apiVersion": f"{group}/{version}" if group else version,
                "metadata": {"resourceVersion": str(next(self._rv))}, "items": items}
