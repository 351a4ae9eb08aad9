"""Validation of requests and responses against GitHub's own OpenAPI description.

The description (``api.github.com.json``, 13 MB, from ``@octokit/openapi``) is read
from ``../shared/github`` beside the repository, never copied into it, and loaded
once per process (several emulators share it).

Quirks handled here, all measured on this copy of the description:

* openapi-core validates the whole description itself unless told not to; that
  takes ~19 s, so ``Config(spec_validator_cls=None)`` turns it off (loading is then
  lazy: ~0.2 s for ``json.load``).
* 71 enums say ``nullable: true`` but do not list ``null`` (a queued check run's
  ``conclusion`` for instance); JSON Schema's ``enum`` keyword then rejects a correct
  ``null``, so ``null`` is appended to those enums in memory.
* ``servers`` is ``https://api.github.com``; the emulator serves the GitHub
  Enterprise Server layout, so the in-memory copy gets ``/api/v3`` as its only
  (relative) server and requests are matched by path.
* The path finder of openapi-core tries every one of the ~800 path templates with a
  regular expression; the emulator already knows which template a request matched,
  so it validates against a copy of the description whose ``paths`` hold only the
  emulated templates (``components`` are shared, so ``$ref`` resolution is intact).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.validation.request.validators import V30RequestValidator
from openapi_core.validation.response.validators import V30ResponseValidator
from werkzeug.datastructures import Headers, ImmutableMultiDict

SHARED_GITHUB = Path(__file__).resolve().parents[2].parent / "shared" / "github"
"""``../shared/github`` beside the repository root: GitHub's published reference data."""

API_DESCRIPTION = SHARED_GITHUB / "api.github.com.json"
SERVER_PREFIX = "/api/v3"



@functools.cache
def load_description() -> dict[str, Any]:
    """The whole description as a dict, patched (nullable enums, servers); cached."""
    with API_DESCRIPTION.open("rb") as f:
        spec = json.load(f)
    _accept_null_in_nullable_enums(spec)
    spec["servers"] = [{"url": SERVER_PREFIX}]
    return spec


def _accept_null_in_nullable_enums(node: Any) -> None:
    """Give ``null`` to every ``enum`` of a ``nullable: true`` schema (71 of them)."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("nullable") is True and isinstance(item.get("enum"), list) and None not in item["enum"]:
                item["enum"].append(None)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def operation(path_template: str, method: str) -> dict[str, Any]:
    """The raw operation object of the description (for operationId, responses)."""
    return load_description()["paths"][path_template][method.lower()]


def operation_id(path_template: str, method: str) -> str:
    return operation(path_template, method)["operationId"]


def schema(name: str) -> dict[str, Any]:
    return load_description()["components"]["schemas"][name]


@functools.cache
def _openapi_for(templates: frozenset[str]) -> OpenAPI:
    full = load_description()
    trimmed = {key: value for key, value in full.items() if key not in ("paths", "x-webhooks")}
    trimmed["paths"] = {template: full["paths"][template] for template in sorted(templates)}
    return OpenAPI.from_dict(trimmed, config=Config(spec_validator_cls=None))


@dataclass
class _Request:
    """The request protocol of openapi-core, filled from an aiohttp request."""

    host_url: str
    path: str
    method: str
    parameters: RequestParameters
    body: bytes | None
    content_type: str


@dataclass
class _Response:
    """The response protocol of openapi-core."""

    status_code: int
    data: bytes | None
    headers: Headers
    content_type: str


def concrete_path(path_template: str, path_params: Mapping[str, str]) -> str:
    """``/repos/{owner}/{repo}`` with the values put back, each percent-encoded.

    Encoding every value (``/`` too) lets a ``{path}`` of the contents API hold
    slashes: openapi-core's path templates match ``[^/]*`` per parameter.
    """
    path = path_template
    for name, value in path_params.items():
        path = path.replace("{" + name + "}", quote(str(value), safe=""))
    return path


class Validator:
    """Request and response validation for a fixed set of emulated path templates."""

    def __init__(self, templates: Iterable[str]):
        self._openapi = _openapi_for(frozenset(templates))
        self._request_validator = V30RequestValidator(self._openapi.spec)
        self._response_validator = V30ResponseValidator(self._openapi.spec)
        self.seconds = 0.0  # time spent validating, for the curious (see the report)
        self.validations = 0

    def _request(
        self,
        method: str,
        path_template: str,
        path_params: Mapping[str, str],
        query: Iterable[tuple[str, str]],
        headers: Mapping[str, str],
        body: bytes | None,
        content_type: str,
    ) -> _Request:
        return _Request(
            host_url="http://emulator",
            path=SERVER_PREFIX + concrete_path(path_template, path_params),
            method=method.lower(),
            parameters=RequestParameters(
                query=ImmutableMultiDict(list(query)),
                header=Headers(dict(headers)),
                cookie=ImmutableMultiDict(),
            ),
            body=body or None,
            content_type=(content_type or "application/json").lower(),
        )

    def request_errors(self, method, path_template, path_params, query, headers, body, content_type) -> list[str]:
        """Every problem openapi-core finds in the request (empty when valid)."""
        started = time.perf_counter()
        request = self._request(method, path_template, path_params, query, headers, body, content_type)
        errors = [_describe(error) for error in self._request_validator.iter_errors(request)]
        self._spent(started)
        return errors

    def response_errors(self, method, path_template, path_params, status: int, body: bytes | None,
                        content_type: str = "application/json") -> list[str]:
        """Every problem openapi-core finds in a response the emulator serves."""
        request = self._request(method, path_template, path_params, (), {}, None, "application/json")
        response = _Response(status, body, Headers({"Content-Type": content_type}), content_type)
        started = time.perf_counter()
        errors = [_describe(error) for error in self._response_validator.iter_errors(request, response)]
        self._spent(started)
        return errors

    def _spent(self, started: float) -> None:
        self.seconds += time.perf_counter() - started
        self.validations += 1


def _describe(error: BaseException) -> str:
    """One readable line per schema problem (openapi-core nests them in causes)."""
    parts = [f"{type(error).__name__}: {str(error)[:300]}"]
    cause = error.__cause__
    while cause is not None:
        details = getattr(cause, "schema_errors", None)
        if details:
            for detail in details:
                where = "/".join(str(p) for p in detail.absolute_path) or "<root>"
                parts.append(f"  at {where}: {detail.message[:300]}")
        else:
            parts.append(f"  caused by {type(cause).__name__}: {str(cause)[:300]}")
        cause = cause.__cause__
    return "\n".join(parts)


def skeleton(node: dict[str, Any], *, _depth: int = 0) -> Any:
    """The smallest value valid against ``node``: required properties only.

    Builders overlay meaningful values on it; this keeps them short although
    GitHub's repository schema alone requires 80 properties.  ``nullable``
    values become ``None``; strings get a value matching their ``format``.
    """
    node = _resolve(node)
    if "allOf" in node:
        merged: dict[str, Any] = {}
        for part in node["allOf"]:
            value = skeleton(part, _depth=_depth + 1)
            if isinstance(value, dict):
                merged.update(value)
        return merged
    for key in ("oneOf", "anyOf"):
        if key in node:
            return skeleton(node[key][0], _depth=_depth + 1)
    if node.get("nullable") and _depth > 0:
        return None
    if "enum" in node:
        return node["enum"][0]
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        props = node.get("properties", {})
        return {
            name: skeleton(props.get(name, {"type": "string"}), _depth=_depth + 1)
            for name in node.get("required", [])
        }
    if kind == "array":
        return []
    if kind == "integer" or kind == "number":
        return node.get("minimum", 0)
    if kind == "boolean":
        return False
    fmt = node.get("format")
    return {
        "date-time": "2011-01-26T19:01:12Z",
        "uri": "https://example.invalid/",
        "email": "octocat@example.invalid",
        "date": "2011-01-26",
        "uuid": "00000000-0000-0000-0000-000000000000",
    }.get(fmt, "")


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        target: Any = load_description()
        for part in ref[2:].split("/"):
            target = target[part]
        node = target
    return node


@functools.cache
def _skeleton_of(name: str) -> str:
    return json.dumps(skeleton({"$ref": f"#/components/schemas/{name}"}))


def skeleton_of(name: str) -> Any:
    """A fresh copy of the skeleton of ``#/components/schemas/<name>``."""
    return json.loads(_skeleton_of(name))
