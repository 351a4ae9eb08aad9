"""Comparing the objects the bot wants with the live ones: when to write, and what to send.

Design (idempotency). Each object carries the annotation ``<prefix>/applied``, a hash of the
manifest the bot built (:func:`bot.cluster.manifests.stamp`). An object is rewritten only when
that hash differs or a field the bot sets was changed by someone else; the API server's own
defaults (a Service's ``clusterIP`` ...) never cause a write. Writes are ``PUT`` with the live
``resourceVersion`` (optimistic concurrency; the applier re-reads on a 409 and tries again),
keeping labels and annotations the bot does not own.

Everything here is pure: dicts in, a decision or a dict out.
"""

from __future__ import annotations

import copy
from typing import Any

from bot.cluster.manifests import applied_key
from bot.cluster.routers import NGINX, TRAEFIK
from bot.cluster.workspace import MANAGED_BY

__all__ = ["deletion_order", "differs", "is_owned_key", "replacement", "subset"]


def subset(want: Any, have: Any) -> bool:
    """Is everything in ``want`` also in ``have`` (server defaults in ``have`` are ignored)?"""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(k in have and subset(v, have[k]) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and len(want) == len(have) and all(map(subset, want, have))
    return want == have


def is_owned_key(label_prefix: str, key: str) -> bool:
    """Is this label or annotation key one the bot sets (and so may overwrite)?"""
    return key.startswith((NGINX, TRAEFIK, label_prefix + "/")) or key == MANAGED_BY[0]


def differs(label_prefix: str, want: dict[str, Any], live: dict[str, Any]) -> bool:
    """Must ``live`` be rewritten to become ``want``?"""
    key = applied_key(label_prefix)
    meta, live_meta = want["metadata"], live.get("metadata") or {}
    live_ann = live_meta.get("annotations") or {}
    owned_live = {k: v for k, v in live_ann.items() if is_owned_key(label_prefix, k)}
    return (live_ann.get(key) != meta["annotations"][key]
            or owned_live != meta.get("annotations", {})
            or not subset(meta.get("labels", {}), live_meta.get("labels") or {})
            or not subset(want.get("spec"), live.get("spec")))


def replacement(label_prefix: str, want: dict[str, Any], live: dict[str, Any]) -> dict[str, Any]:
    """The body of the ``PUT`` that turns ``live`` into ``want``, keeping what others own."""
    body = copy.deepcopy(want)
    live_meta, meta = live.get("metadata") or {}, body["metadata"]
    meta["resourceVersion"] = live_meta["resourceVersion"]
    for field in ("labels", "annotations"):  # keep what others put there
        foreign = {k: v for k, v in (live_meta.get(field) or {}).items() if not is_owned_key(label_prefix, k)}
        meta[field] = {**foreign, **meta.get(field, {})}
    if want["kind"] == "Service":  # allocated, immutable
        for f in ("clusterIP", "clusterIPs"):
            if f in (live.get("spec") or {}):
                body["spec"][f] = live["spec"][f]
    return body


def deletion_order(kind: str, name: str) -> tuple[int, str]:
    """Sort key for deleting objects: routes go before what they point at."""
    order = {"Ingress": 0, "Middleware": 1, "Service": 2}
    return order.get(kind, 3), name
