"""RBAC for the Kubernetes fake: a request is allowed only if the bot's rendered Roles allow it.

Opt-in: ``FakeKube(rbac=Policy.from_manifests(objects, service_account=("devenv-bot", "devenv-bot")))``.
Without it the fake authorises everything, as before. ``objects`` are the rendered manifests of
``deploy/`` (``kubectl kustomize``, see tests/test_deploy.py): the Roles, ClusterRoles and the
bindings whose subjects name the ServiceAccount (directly, or through the groups every
ServiceAccount is in) are what the identity may do.

Requests are turned into the attributes the API server's authoriser sees
(k8s.io/apiserver/pkg/endpoints/request ``RequestInfoFactory``):

* verb from the HTTP method and whether a name is given: GET → ``get`` / ``list`` (``watch`` with
  ``?watch=true``), POST → ``create``, PUT → ``update``, PATCH → ``patch``, DELETE → ``delete`` /
  ``deletecollection``;
* API group, resource plural, subresource (``pods/exec``), namespace (none for cluster-scoped
  resources and for namespaces themselves) and name.

Rule matching follows the RBAC authoriser (k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac):
``*`` in groups, resources and verbs; ``<resource>/*`` for every subresource; ``resourceNames``
restrict requests that carry a name (never ``list`` or ``create``). A Role is usable in its own
namespace, a ClusterRole everywhere through a ClusterRoleBinding and in one namespace through a
RoleBinding. Aggregated ClusterRoles are not supported (the bot's manifests have none).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["Grant", "Policy", "Request", "Rule", "service_account_user"]

#: The verbs RBAC knows for resource requests (``*`` expands to these).
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")


def service_account_user(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


@dataclasses.dataclass(frozen=True)
class Request:
    """The authorisation attributes of one resource request."""

    verb: str
    group: str
    resource: str  # plural, with "/<subresource>" when there is one: "pods/exec"
    namespace: str | None  # None: cluster scope
    name: str | None

    @classmethod
    def from_http(cls, method: str, path: str, query: Mapping[str, str] | None = None) -> Request | None:
        """``GET /api/v1/namespaces/ns/services`` → ``Request("list", "", "services", "ns", None)``.

        None for non-resource paths (``/version``, ``/api``, discovery), which every
        authenticated user may read (the ``system:discovery`` ClusterRole).
        """
        parts = [p for p in path.split("/") if p]
        if not parts or parts[0] not in ("api", "apis"):
            return None
        if parts[0] == "api":
            group, rest = "", parts[2:]  # /api/v1/...
        else:
            if len(parts) < 3:
                return None
            group, rest = parts[1], parts[3:]  # /apis/<group>/<version>/...
        if not rest:
            return None
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        plural, name, sub = rest[0], (rest[1] if len(rest) > 1 else None), (rest[2] if len(rest) > 2 else None)
        resource = f"{plural}/{sub}" if sub else plural
        watch = (query or {}).get("watch", "").lower() in ("true", "1")
        method = method.upper()
        if method in ("GET", "HEAD"):
            verb = "watch" if watch else ("get" if name else "list")
        elif method == "POST":
            verb = "create"
        elif method == "PUT":
            verb = "update"
        elif method == "PATCH":
            verb = "patch"
        elif method == "DELETE":
            verb = "delete" if name else "deletecollection"
        else:
            verb = method.lower()
        return cls(verb, group, resource, namespace, name)

    @property
    def key(self) -> tuple[str, str, str]:
        """(group, resource, verb): what a rule grants, without where."""
        return (self.group, self.resource, self.verb)

    def forbidden_message(self, user: str) -> str:
        """The API server's wording (k8s.io/apiserver/pkg/endpoints/handlers/responsewriters.forbiddenMessage)."""
        plural = self.resource.split("/")[0]
        what = f'{plural} "{self.name}"' if self.name else plural
        where = f'in the namespace "{self.namespace}"' if self.namespace else "at the cluster scope"
        return (f'{what} is forbidden: User "{user}" cannot {self.verb} resource "{self.resource}" '
                f'in API group "{self.group}" {where}')

    def forbidden_details(self) -> dict[str, str]:
        details = {"kind": self.resource.split("/")[0]}
        if self.name:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        return details


@dataclasses.dataclass(frozen=True)
class Rule:
    api_groups: frozenset[str]
    resources: frozenset[str]
    verbs: frozenset[str]
    resource_names: frozenset[str] = frozenset()

    @classmethod
    def from_manifest(cls, rule: Mapping[str, Any]) -> Rule:
        if rule.get("nonResourceURLs"):
            raise ValueError("nonResourceURLs rules are not supported by the fake")
        return cls(frozenset(rule.get("apiGroups") or ()), frozenset(rule.get("resources") or ()),
                   frozenset(rule.get("verbs") or ()), frozenset(rule.get("resourceNames") or ()))

    def matches(self, req: Request) -> bool:
        if "*" not in self.verbs and req.verb not in self.verbs:
            return False
        if "*" not in self.api_groups and req.group not in self.api_groups:
            return False
        plural = req.resource.split("/")[0]
        if not ("*" in self.resources or req.resource in self.resources
                or ("/" in req.resource and f"{plural}/*" in self.resources)):
            return False
        if self.resource_names:
            return req.name is not None and req.verb not in ("list", "create") and req.name in self.resource_names
        return True

    def keys(self) -> set[tuple[str, str, str]]:
        """Every (group, resource, verb) this rule grants; ``*`` verbs expand, other wildcards stay."""
        verbs = VERBS if "*" in self.verbs else sorted(self.verbs)
        return {(g, r, v) for g in self.api_groups for r in self.resources for v in verbs}


@dataclasses.dataclass(frozen=True)
class Grant:
    """One rule usable in one namespace (None: everywhere), and the objects it comes from."""

    namespace: str | None
    rule: Rule
    source: str

    def allows(self, req: Request) -> bool:
        return (self.namespace is None or self.namespace == req.namespace) and self.rule.matches(req)


@dataclasses.dataclass(frozen=True)
class Policy:
    """What one user may do: the grants of the bindings that name it."""

    user: str
    grants: tuple[Grant, ...]

    @classmethod
    def from_manifests(cls, objects: Iterable[Mapping[str, Any]], *, service_account: tuple[str, str]) -> Policy:
        """The grants of ``service_account`` = (namespace, name) in rendered manifests."""
        sa_ns, sa_name = service_account
        user = service_account_user(sa_ns, sa_name)
        groups = {"system:serviceaccounts", f"system:serviceaccounts:{sa_ns}", "system:authenticated"}
        objects = list(objects)
        roles = {(o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objects if o.get("kind") == "Role"}
        cluster_roles = {o["metadata"]["name"]: o for o in objects if o.get("kind") == "ClusterRole"}

        def names_us(binding: Mapping[str, Any]) -> bool:
            for s in binding.get("subjects") or ():
                if s.get("kind") == "ServiceAccount" and s.get("name") == sa_name and \
                        s.get("namespace", binding["metadata"].get("namespace")) == sa_ns:
                    return True
                if s.get("kind") == "User" and s.get("name") == user:
                    return True
                if s.get("kind") == "Group" and s.get("name") in groups:
                    return True
            return False

        grants: list[Grant] = []
        for b in objects:
            if b.get("kind") not in ("RoleBinding", "ClusterRoleBinding") or not names_us(b):
                continue
            ref, b_ns = b["roleRef"], b["metadata"].get("namespace")
            scope = b_ns if b["kind"] == "RoleBinding" else None
            if ref["kind"] == "Role":
                role = roles.get((b_ns, ref["name"]))
            else:
                role = cluster_roles.get(ref["name"])
                if role is not None and role.get("aggregationRule"):
                    raise ValueError(f"aggregated ClusterRole {ref['name']} is not supported by the fake")
            if role is None:  # a binding to a role that does not exist grants nothing, as in a cluster
                continue
            source = f"{b['kind']} {b_ns + '/' if b_ns else ''}{b['metadata']['name']} → {ref['kind']} {ref['name']}"
            grants += [Grant(scope, Rule.from_manifest(r), source) for r in role.get("rules") or ()]
        return cls(user, tuple(grants))

    def rebased(self, namespaces: Mapping[str, str]) -> Policy:
        """The same grants with namespaces renamed (tests keep workspaces in a namespace of their own)."""
        return dataclasses.replace(self, grants=tuple(
            dataclasses.replace(g, namespace=namespaces.get(g.namespace, g.namespace) if g.namespace else None)
            for g in self.grants))

    def allows(self, req: Request) -> bool:
        return any(g.allows(req) for g in self.grants)

    def keys(self) -> set[tuple[str, str, str]]:
        """Every (group, resource, verb) granted anywhere."""
        return {k for g in self.grants for k in g.rule.keys()}  # noqa: SIM118 (Rule.keys(), not a dict)

    def sources(self, key: tuple[str, str, str]) -> list[str]:
        return sorted({g.source for g in self.grants if key in g.rule.keys()})  # noqa: SIM118
