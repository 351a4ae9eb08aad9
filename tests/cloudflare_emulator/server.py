"""The emulator: an aiohttp server on 127.0.0.1 serving a slice of the Cloudflare API v4.

Under ``/client/v4`` (what ``DEVENV_CLOUDFLARE_API_URL`` points at)::

    GET    /accounts/<account>/cfd_tunnel/<tunnel>/configurations   the remote configuration
    PUT    /accounts/<account>/cfd_tunnel/<tunnel>/configurations   replace it ({"config": {...}})
    GET    /zones/<zone>/dns_records    ?name= &type= &content= &comment= &comment.startswith=
                                        &page= &per_page=   (paginated, ``result_info``)
    POST   /zones/<zone>/dns_records                        create
    PUT    /zones/<zone>/dns_records/<id>                   overwrite
    DELETE /zones/<zone>/dns_records/<id>                   delete, result ``{"id": ...}``

Every answer is Cloudflare's envelope ``{"success", "errors": [{"code", "message"}],
"messages", "result"}`` (FACTS §B "Response envelope"). Each request goes through
:meth:`CloudflareEmulator._serve`:

1. recorded in ``emu.calls``;
2. a fault scripted with :meth:`inject` answers instead, if one matches (a 500, a 429
   with ``retry-after``, or a ``success: false`` with the API's errors);
3. ``Authorization: Bearer <token>`` is checked: anything else is 403 with error 10000
   "Authentication error";
4. unknown account, tunnel, zone or record ids are 404;
5. bodies are validated: the ingress rules as cloudflared checks them (a ``service`` of a
   known scheme and no path, hostnames without port, wildcard only as a leading ``*.``,
   the last rule a catch-all with no hostname or path, and only the last one), DNS
   records (a name inside the zone, CNAME content a hostname, ``proxied`` a boolean,
   ``ttl`` 1 or 60-86400, ``comment`` ≤ 100 characters, no second record where a CNAME
   is). A rejected request is answered 400 and also appended to ``emu.rejections``,
   which the fixture turns into a test failure.

Error codes 10000 (authentication), 81053 (a record with that host exists), 81044
(record not found) and 9003/9020/9021 (invalid proxied/content/TTL) follow Cloudflare's
published codes as far as known; 1056 for an invalid tunnel configuration and 7003 for an
unknown object identifier are the emulator's choice (docs/cloudflare.md, "Assumptions").

Realism where the code under test could otherwise get it wrong: the stored configuration
gets a ``version`` that counts up and ``warp-routing`` added, stored rules without
``originRequest`` get an empty one (so a client comparing its rules verbatim would never
settle), and records get ids, ``proxiable``, ``meta`` and timestamps.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import re
import secrets
import uuid
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

API_PREFIX = "/client/v4"
SERVICE_SCHEMES = ("http", "https", "unix", "tcp", "ssh", "rdp", "unix+tls", "smb")
SPECIAL_SERVICES = ("hello_world", "bastion")
RULE_KEYS = {"hostname", "service", "path", "originRequest"}
ORIGIN_REQUEST_TYPES: dict[str, type | tuple[type, ...]] = {
    "access": dict, "caPool": str, "connectTimeout": int, "disableChunkedEncoding": bool, "http2Origin": bool,
    "httpHostHeader": str, "keepAliveConnections": int, "keepAliveTimeout": int, "noHappyEyeballs": bool,
    "noTLSVerify": bool, "originServerName": str, "matchSNItoHost": bool, "proxyType": str, "tcpKeepAlive": int,
    "tlsTimeout": int,
}
_HOSTNAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", re.I)
_CONFIG = re.compile(r"^/accounts/(?P<account>[^/]+)/cfd_tunnel/(?P<tunnel>[^/]+)/configurations$")
_RECORDS = re.compile(r"^/zones/(?P<zone>[^/]+)/dns_records(?:/(?P<record>[^/]+))?$")

AUTH_ERROR = {"code": 10000, "message": "Authentication error"}


class Rejected(Exception):
    def __init__(self, status: int, code: int, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclasses.dataclass
class Call:
    method: str
    path: str  # below /client/v4
    query: dict[str, str]
    body: Any
    status: int = 0
    authorization: str | None = None


@dataclasses.dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int
    errors: list[dict[str, Any]]
    retry_after: int | None
    times: int


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def envelope(result: Any = None, *, errors: list[dict[str, Any]] | None = None, success: bool | None = None,
             result_info: dict[str, Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"success": not errors if success is None else success, "errors": errors or [],
                           "messages": [], "result": result}
    if result_info is not None:
        doc["result_info"] = result_info
    return doc


class CloudflareEmulator:
    """One account with one remotely managed tunnel, and one zone."""

    def __init__(self, *, zone_name: str = "example.com"):
        self.account_id = secrets.token_hex(16)
        self.zone_id = secrets.token_hex(16)
        self.zone_name = zone_name
        self.tunnel_id = str(uuid.uuid4())
        self.api_token = secrets.token_urlsafe(30)
        self.tunnel_source = "cloudflare"  # "local" for a locally managed tunnel
        self.config_version = 0
        self.config: dict[str, Any] | None = None  # None: never configured
        self.records: dict[str, dict[str, Any]] = {}
        self.max_per_page = 5_000_000
        self.calls: list[Call] = []
        self.rejections: list[str] = []
        self.faults: list[Fault] = []
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> CloudflareEmulator:
        app = web.Application()
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._serve)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def api_url(self) -> str:
        if self.port is None:
            raise RuntimeError("start() the emulator first")
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    def env(self, **extra: str) -> dict[str, str]:
        """``DEVENV_CLOUDFLARE_*`` variables pointing at this emulator."""
        return {"DEVENV_CLOUDFLARE_TUNNEL_ID": self.tunnel_id, "DEVENV_CLOUDFLARE_ACCOUNT_ID": self.account_id,
                "DEVENV_CLOUDFLARE_ZONE_ID": self.zone_id, "DEVENV_CLOUDFLARE_API_TOKEN": self.api_token,
                "DEVENV_CLOUDFLARE_API_URL": self.api_url, **extra}

    def assert_valid(self) -> None:
        assert not self.rejections, "the Cloudflare emulator rejected requests:\n" + "\n".join(self.rejections)

    # -- test helpers -----------------------------------------------------------------------

    def inject(self, method: str, path: str, status: int, *, errors: list[dict[str, Any]] | None = None,
               retry_after: int | None = None, times: int = 1) -> None:
        """Answer the next ``times`` requests matching ``method`` and the regex ``path`` (searched
        in the path below /client/v4) with ``status`` and ``success: false``."""
        if errors is None:
            errors = [{"code": 10013, "message": "Rate limited"} if status == 429
                      else {"code": 10001, "message": "Internal server error"}]
        self.faults.append(Fault(method.upper(), re.compile(path), status, errors, retry_after, times))

    @property
    def ingress(self) -> list[dict[str, Any]]:
        return list((self.config or {}).get("ingress") or [])

    def hostnames(self) -> list[str | None]:
        return [r.get("hostname") for r in self.ingress]

    def add_record(self, name: str, content: str, *, type: str = "CNAME", proxied: bool = True,
                   comment: str | None = None) -> dict[str, Any]:
        return self._store_record(None, {"name": name, "type": type, "content": content, "proxied": proxied,
                                         "ttl": 1, "comment": comment})

    def record(self, name: str) -> dict[str, Any] | None:
        found = [r for r in self.records.values() if r["name"] == name]
        return found[0] if found else None

    def calls_of(self, method: str, path_part: str = "") -> list[Call]:
        return [c for c in self.calls if c.method == method and path_part in c.path]

    def writes(self) -> list[Call]:
        return [c for c in self.calls if c.method in ("POST", "PUT", "PATCH", "DELETE")]

    # -- dispatch ---------------------------------------------------------------------------

    async def _serve(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        raw = await request.read()
        try:
            body = await request.json() if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        call = Call(request.method, path, dict(request.query), body,
                    authorization=request.headers.get("Authorization"))
        self.calls.append(call)
        status, doc, headers = self._answer(request.method, path, dict(request.query), body, request)
        call.status = status
        return web.json_response(doc, status=status, headers=headers)

    def _answer(self, method: str, path: str, query: dict[str, str], body: Any,
                request: web.Request) -> tuple[int, dict[str, Any], dict[str, str]]:
        for fault in self.faults:
            if fault.times > 0 and fault.method == method and fault.path.search(path):
                fault.times -= 1
                headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                return fault.status, envelope(errors=fault.errors), headers
        if request.headers.get("Authorization") != f"Bearer {self.api_token}":
            return 403, envelope(errors=[AUTH_ERROR]), {}
        try:
            if m := _CONFIG.match(path):
                if m["account"] != self.account_id or m["tunnel"] != self.tunnel_id:
                    raise Rejected(404, 7003, f"Could not route to {path}, perhaps your object identifier is "
                                              f"invalid?")
                if method == "GET":
                    return 200, envelope(self._config_result()), {}
                if method == "PUT":
                    return 200, envelope(self._put_config(body)), {}
            elif m := _RECORDS.match(path):
                if m["zone"] != self.zone_id:
                    raise Rejected(404, 7003, f"Could not route to {path}, perhaps your object identifier is "
                                              f"invalid?")
                rid = m["record"]
                if rid is None and method == "GET":
                    return 200, *self._list_records(query)
                if rid is None and method == "POST":
                    return 200, envelope(self._store_record(None, body)), {}
                if rid is not None:
                    if rid not in self.records:
                        raise Rejected(404, 81044, "Record does not exist.")
                    if method == "PUT":
                        return 200, envelope(self._store_record(rid, body)), {}
                    if method == "DELETE":
                        del self.records[rid]
                        return 200, envelope({"id": rid}), {}
                    if method == "GET":
                        return 200, envelope(self.records[rid]), {}
            raise Rejected(404, 7000, "No route for that URI")
        except Rejected as e:
            if e.status == 400:
                self.rejections.append(f"{method} {path}: [{e.code}] {e.message}")
            return e.status, envelope(errors=[{"code": e.code, "message": e.message}]), {}

    # -- tunnel configuration ---------------------------------------------------------------

    def _config_result(self) -> dict[str, Any]:
        return {"account_id": self.account_id, "tunnel_id": self.tunnel_id, "version": self.config_version,
                "config": copy.deepcopy(self.config), "source": self.tunnel_source,
                "created_at": _now()}

    def _put_config(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("config"), dict):
            raise Rejected(400, 1056, "Bad request: the body must be {\"config\": {...}}")
        config = copy.deepcopy(body["config"])
        ingress = config.get("ingress")
        if not isinstance(ingress, list) or not ingress:
            raise Rejected(400, 1056, "Bad request: config.ingress must be a non-empty list of rules")
        for i, rule in enumerate(ingress, 1):
            self._check_rule(i, rule, last=i == len(ingress))
            rule.setdefault("originRequest", {})
        if "originRequest" in config:
            self._check_origin_request("config", config["originRequest"])
        config.setdefault("warp-routing", {"enabled": False})
        self.config = config
        self.config_version += 1
        return self._config_result()

    def _check_rule(self, i: int, rule: Any, *, last: bool) -> None:
        if not isinstance(rule, dict):
            raise Rejected(400, 1056, f"Rule #{i} must be an object")
        if unknown := set(rule) - RULE_KEYS:
            raise Rejected(400, 1056, f"Rule #{i} has unknown fields {sorted(unknown)}")
        service = rule.get("service")
        if not isinstance(service, str) or not service:
            raise Rejected(400, 1056, f"Rule #{i} needs a service")
        if service.startswith("http_status:"):
            if not re.fullmatch(r"http_status:[1-5][0-9][0-9]", service):
                raise Rejected(400, 1056, f"Rule #{i}: invalid HTTP status service {service!r}")
        elif service not in SPECIAL_SERVICES:
            parts = urlsplit(service)
            if parts.scheme not in SERVICE_SCHEMES or not (parts.hostname or parts.scheme.startswith("unix")):
                raise Rejected(400, 1056, f"Rule #{i}: {service!r} is an invalid address, please make sure it "
                                          f"has a scheme and a hostname")
            if parts.path not in ("", "/") and not parts.scheme.startswith("unix"):
                raise Rejected(400, 1056, f"Rule #{i}: {service} is an invalid address, ingress rules don't "
                                          f"support proxying to a different path on the origin service")
        host = rule.get("hostname")
        if host is not None:
            if not isinstance(host, str) or ":" in host:
                raise Rejected(400, 1056, f"Rule #{i}: hostname {host!r} must not contain a port")
            if "*" in host and not (host.startswith("*.") and "*" not in host[2:]):
                raise Rejected(400, 1056, f"Rule #{i}: hostname {host!r}: a wildcard is only allowed as the "
                                          f"leading label (*.example.com)")
            if host and not _HOSTNAME.match(host):
                raise Rejected(400, 1056, f"Rule #{i}: invalid hostname {host!r}")
        path = rule.get("path")
        if path is not None:
            if not isinstance(path, str):
                raise Rejected(400, 1056, f"Rule #{i}: path must be a string")
            try:
                re.compile(path)
            except re.error:
                raise Rejected(400, 1056, f"Rule #{i}: path {path!r} is not a valid regular expression") from None
        catch_all = not host and not path
        if last and not catch_all:
            raise Rejected(400, 1056, "The last ingress rule must match all URLs (i.e. it should not have a "
                                      "hostname or path filter)")
        if catch_all and not last:
            raise Rejected(400, 1056, f"Rule #{i} is matching all URLs, but it's not the last rule")
        if "originRequest" in rule:
            self._check_origin_request(f"Rule #{i}", rule["originRequest"])

    def _check_origin_request(self, where: str, value: Any) -> None:
        if not isinstance(value, dict):
            raise Rejected(400, 1056, f"{where}: originRequest must be an object")
        for key, v in value.items():
            want = ORIGIN_REQUEST_TYPES.get(key)
            if want is None:
                raise Rejected(400, 1056, f"{where}: unknown originRequest field {key!r}")
            if not isinstance(v, want) or (want is int and isinstance(v, bool)):
                raise Rejected(400, 1056, f"{where}: originRequest.{key} has the wrong type")

    # -- DNS records ------------------------------------------------------------------------

    def _list_records(self, query: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
        out = sorted(self.records.values(), key=lambda r: (r["name"], r["created_on"]))
        for key, value in query.items():
            if key in ("name", "name.exact", "type", "content", "content.exact"):
                field = key.split(".")[0]
                out = [r for r in out if str(r[field]).lower() == value.lower()]
            elif key in ("comment", "comment.exact"):
                out = [r for r in out if r.get("comment") == value]
            elif key == "comment.startswith":
                out = [r for r in out if (r.get("comment") or "").startswith(value)]
            elif key not in ("page", "per_page", "match", "order", "direction"):
                raise Rejected(400, 1004, f"DNS Validation Error: unknown filter {key!r}")
        try:
            page = int(query.get("page", "1"))
            per_page = int(query.get("per_page", "100"))
        except ValueError:
            raise Rejected(400, 1004, "page and per_page must be numbers") from None
        if page < 1 or not 5 <= per_page <= 5_000_000:
            raise Rejected(400, 1004, "page must be ≥ 1 and per_page 5-5000000")
        per_page = min(per_page, self.max_per_page)
        total = len(out)
        chunk = out[(page - 1) * per_page: page * per_page]
        info = {"page": page, "per_page": per_page, "count": len(chunk), "total_count": total,
                "total_pages": max(1, -(-total // per_page))}
        return envelope(copy.deepcopy(chunk), result_info=info), {}

    def _store_record(self, rid: str | None, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise Rejected(400, 1004, "DNS Validation Error: the body must be a JSON object")
        rtype, name, content = body.get("type"), body.get("name"), body.get("content")
        if rtype not in ("A", "AAAA", "CNAME", "TXT"):
            raise Rejected(400, 1004, f"DNS Validation Error: unsupported type {rtype!r}")
        if not isinstance(name, str) or not _HOSTNAME.match(name) or not (
                name == self.zone_name or name.endswith("." + self.zone_name)):
            raise Rejected(400, 1004, f"DNS Validation Error: name {name!r} is not in zone {self.zone_name}")
        if not isinstance(content, str) or not content:
            raise Rejected(400, 9020, "Invalid DNS record content")
        if rtype == "CNAME" and (not _HOSTNAME.match(content) or content.startswith("*")):
            raise Rejected(400, 9020, "Content for CNAME record is invalid.")
        proxied = body.get("proxied", False)
        if not isinstance(proxied, bool):
            raise Rejected(400, 9003, "Invalid 'proxied' value, must be a boolean")
        ttl = body.get("ttl", 1)
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not (ttl == 1 or 60 <= ttl <= 86400):
            raise Rejected(400, 9021, "Invalid TTL. Must be between 60 and 86400 seconds, or 1 for Automatic.")
        comment = body.get("comment")
        if comment is not None and (not isinstance(comment, str) or len(comment) > 100):
            raise Rejected(400, 9102, "DNS record comment must be a string of at most 100 characters")
        name = name.lower()
        for other in self.records.values():
            if other["id"] != rid and other["name"] == name and "CNAME" in (rtype, other["type"]) \
                    and rtype != "TXT" and other["type"] != "TXT":
                raise Rejected(400, 81053, "An A, AAAA, or CNAME record with that host already exists.")
        now = _now()
        old = self.records.get(rid or "")
        record = {"id": rid or secrets.token_hex(16), "zone_id": self.zone_id, "zone_name": self.zone_name,
                  "name": name, "type": rtype, "content": content.lower() if rtype == "CNAME" else content,
                  "proxiable": rtype in ("A", "AAAA", "CNAME"), "proxied": proxied, "ttl": ttl,
                  "comment": comment, "tags": [], "meta": {},
                  "created_on": old["created_on"] if old else now, "modified_on": now}
        self.records[record["id"]] = record
        return copy.deepcopy(record)
