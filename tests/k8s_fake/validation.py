"""What the fake API server checks before it stores an object.

Two layers, like a real API server:

* **Schema.** Built-in kinds are checked with ``kubernetes-validate`` against the
  Kubernetes OpenAPI schema of :data:`KUBERNETES_VERSION` in *strict* mode (unknown fields
  are errors, so a misspelt ``ingressClassName`` fails the test instead of being dropped
  silently). CRDs are not in ``kubernetes-validate``; Traefik's ``Middleware`` is checked
  with :data:`MIDDLEWARE_SCHEMA`, a small JSON schema written from Traefik's v3 reference
  (doc.traefik.io/traefik/reference/routing-configuration/http/middlewares/forwardauth/).
  It covers the ``forwardAuth`` fields and lets other middleware types through as objects.
* **Semantics** the OpenAPI schema cannot express, from the API server's own validation
  (``k8s.io/apimachinery/pkg/util/validation``): object names (DNS-1035 label for Services,
  DNS-1123 subdomain otherwise), label keys and values, annotation keys, Ingress hosts,
  paths and path types, unique Service port names and numbers.

Each function returns a list of problems (empty: valid).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

#: The Kubernetes version the fake pretends to be (and validates against).
KUBERNETES_VERSION = "1.30"

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

MIDDLEWARE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "traefik.io/v1alpha1"},
        "kind": {"const": "Middleware"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "minProperties": 1,
            "maxProperties": 1,  # one middleware type per object
            "additionalProperties": {"type": "object"},
            "properties": {
                "forwardAuth": {
                    "type": "object",
                    "required": ["address"],
                    "additionalProperties": False,
                    "properties": {
                        "address": {"type": "string", "pattern": "^https?://[^\\s/]+(/\\S*)?$"},
                        "trustForwardHeader": {"type": "boolean"},
                        "authResponseHeaders": {"type": "array", "items": {"type": "string", "minLength": 1}},
                        "authResponseHeadersRegex": {"type": "string"},
                        "authRequestHeaders": {"type": "array", "items": {"type": "string", "minLength": 1}},
                        "addAuthCookiesToResponse": {"type": "array", "items": {"type": "string"}},
                        "forwardBody": {"type": "boolean"},
                        "maxBodySize": {"type": "integer"},
                        "preserveLocationHeader": {"type": "boolean"},
                        "preserveRequestMethod": {"type": "boolean"},
                        "headerField": {"type": "string"},
                        "tls": {"type": "object"},
                    },
                },
            },
        },
    },
}


#: Custom resources of the bot's own, checked against the CRD shipped in deploy/ (so what the tests
#: enforce is what the cluster gets): kind → the CRD's file.
OWN_CRDS = {"DevEnvironment": Path(__file__).resolve().parents[2] / "deploy" / "base" / "devenvironments.yaml"}


def structural(schema: Any) -> Any:
    """An openAPIV3Schema as JSON Schema, as strict as the API server is with a structural schema:
    ``nullable`` becomes a ``null`` type, and an object that names its properties takes no others
    (the API server would prune them silently: data lost) unless it has
    ``x-kubernetes-preserve-unknown-fields``."""
    if isinstance(schema, list):
        return [structural(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: structural(v) for k, v in schema.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if ("properties" in schema and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


@functools.cache
def crd_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of one of :data:`OWN_CRDS`, from its CustomResourceDefinition's served version."""
    [crd] = [d for d in yaml.safe_load_all(OWN_CRDS[kind].read_text())
             if d and d.get("kind") == "CustomResourceDefinition" and d["spec"]["names"]["kind"] == kind]
    [version] = [v for v in crd["spec"]["versions"] if v.get("served")]
    return structural(version["schema"]["openAPIV3Schema"])


def _schema_problems(obj: dict[str, Any]) -> list[str]:
    if obj.get("kind") in OWN_CRDS:
        validator = jsonschema.Draft202012Validator(crd_schema(obj["kind"]))
        return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
                for e in validator.iter_errors(obj)]
    if obj.get("kind") == "Middleware":
        validator = jsonschema.Draft202012Validator(MIDDLEWARE_SCHEMA)
        return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
                for e in validator.iter_errors(obj)]
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [f"{'.'.join(map(str, e.path)) or '<root>'}: {e.message}"]
    except kubernetes_validate.SchemaNotFoundError as e:
        return [e.message]
    return []


def _qualified_key_problem(key: str) -> str | None:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)):
        return f"key {key!r}: prefix must be a DNS-1123 subdomain"
    if not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
        return f"key {key!r}: name must be ≤ 63 characters of [-A-Za-z0-9_.], alphanumeric at both ends"
    return None


def _metadata_problems(obj: dict[str, Any]) -> list[str]:
    meta = obj.get("metadata") or {}
    problems: list[str] = []
    name = meta.get("name", "")
    if obj.get("kind") == "Service":
        if len(name) > 63 or not _DNS1035_LABEL.match(name):
            problems.append(f"metadata.name {name!r}: a Service name must be a DNS-1035 label")
    elif len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        problems.append(f"metadata.name {name!r}: must be a DNS-1123 subdomain")
    for key, value in (meta.get("labels") or {}).items():
        if p := _qualified_key_problem(key):
            problems.append(f"metadata.labels: {p}")
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            problems.append(f"metadata.labels[{key}]: invalid label value {value!r}")
    for key in meta.get("annotations") or {}:
        if p := _qualified_key_problem(key):
            problems.append(f"metadata.annotations: {p}")
    return problems


def _host_problem(host: str) -> str | None:
    bare = host[2:] if host.startswith("*.") else host
    if len(host) > 253 or not _DNS1123_SUBDOMAIN.match(bare) or any(len(p) > 63 for p in bare.split(".")):
        return f"host {host!r} must be a DNS-1123 subdomain (each label ≤ 63 characters)"
    return None


def _ingress_problems(spec: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for i, rule in enumerate(spec.get("rules") or []):
        if "host" in rule and (p := _host_problem(rule["host"])):
            problems.append(f"spec.rules[{i}]: {p}")
        for j, path in enumerate((rule.get("http") or {}).get("paths") or []):
            where = f"spec.rules[{i}].http.paths[{j}]"
            if path.get("pathType") not in ("Exact", "Prefix", "ImplementationSpecific"):
                problems.append(f"{where}.pathType must be Exact, Prefix or ImplementationSpecific")
            if not str(path.get("path", "")).startswith("/"):
                problems.append(f"{where}.path must be an absolute path")
            svc = (path.get("backend") or {}).get("service") or {}
            if svc and not _DNS1035_LABEL.match(svc.get("name", "")):
                problems.append(f"{where}.backend.service.name must be a DNS-1035 label")
            port = svc.get("port") or {}
            if svc and (("name" in port) == ("number" in port)):
                problems.append(f"{where}.backend.service.port needs exactly one of name or number")
    for i, tls in enumerate(spec.get("tls") or []):
        for host in tls.get("hosts") or []:
            if p := _host_problem(host):
                problems.append(f"spec.tls[{i}]: {p}")
    return problems


def _service_problems(spec: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    ports = spec.get("ports") or []
    names = [p.get("name") for p in ports]
    if len(ports) > 1 and (None in names or len(set(names)) != len(names)):
        problems.append("spec.ports: with more than one port every port needs a unique name")
    for p in ports:
        if p.get("name") is not None and (len(p["name"]) > 63 or not _DNS1123_LABEL.match(p["name"])):
            problems.append(f"spec.ports: port name {p['name']!r} must be a DNS-1123 label")
        if not 1 <= int(p.get("port", 0)) <= 65535:
            problems.append(f"spec.ports: port {p.get('port')!r} out of range")
    keys = [(p.get("port"), p.get("protocol", "TCP")) for p in ports]
    if len(set(keys)) != len(keys):
        problems.append("spec.ports: duplicate port and protocol")
    for key, value in (spec.get("selector") or {}).items():
        if p := _qualified_key_problem(key):
            problems.append(f"spec.selector: {p}")
        if len(value) > 63 or not _LABEL_VALUE.match(value):
            problems.append(f"spec.selector[{key}]: invalid label value {value!r}")
    return problems


#: ``metav1.MicroTime`` as the API server parses it (``RFC3339Micro``: exactly six fractional digits).
_MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$")


def _lease_problems(spec: dict[str, Any]) -> list[str]:
    """coordination/validation ValidateLeaseSpec: durations and transitions not negative, times parsable."""
    problems: list[str] = []
    for field in ("acquireTime", "renewTime"):
        if field in spec and not _MICRO_TIME.match(str(spec[field])):
            problems.append(f"spec.{field}: {spec[field]!r} is not a MicroTime (2006-01-02T15:04:05.000000Z07:00)")
    if (spec.get("leaseDurationSeconds") or 1) <= 0:
        problems.append("spec.leaseDurationSeconds: must be greater than 0")
    if (spec.get("leaseTransitions") or 0) < 0:
        problems.append("spec.leaseTransitions: must be greater than or equal to 0")
    return problems


def problems(obj: dict[str, Any]) -> list[str]:
    """Everything wrong with ``obj``, as a real API server would reject it."""
    found = _schema_problems(obj)
    found += _metadata_problems(obj)
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    if kind == "Ingress":
        found += _ingress_problems(spec)
    elif kind == "Service":
        found += _service_problems(spec)
    elif kind == "Lease":
        found += _lease_problems(spec)
    return found
