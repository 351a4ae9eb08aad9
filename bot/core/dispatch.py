"""Composes the handler modules' routers and runs each callback on its own.

gidgethub's ``Router.dispatch`` awaits callbacks one after another, in no set
order, and the first exception stops the rest.  Here every callback runs in its
own try/except, so one failing handler neither stops the others nor crashes the
process, and its error is logged with the delivery id, repository and PR.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable
from typing import Any, Generic, TypeVar

from gidgethub import routing, sansio
from gidgethub.abc import GitHubAPI

from bot.core import logs
from bot.core.metrics import Metrics

log = logging.getLogger(__name__)

S = TypeVar("S", covariant=True)


@dataclasses.dataclass(frozen=True)
class Context(Generic[S]):
    """What a handler receives besides the event.

    ``gh`` acts as the installation that the delivery came from (``None`` for deliveries without
    one); ``bot`` is the running bot's services (:class:`bot.services.Bot`, which handlers name as
    ``Context[Bot]``; core does not know the features).
    """

    gh: GitHubAPI | None
    bot: S
    delivery_id: str


def event_scope(event: sansio.Event) -> tuple[str | None, int | None]:
    """The repository full name and PR/issue number an event is about, if any."""
    data = event.data if isinstance(event.data, dict) else {}
    repo = (data.get("repository") or {}).get("full_name")
    number = None
    for key in ("pull_request", "issue"):
        if isinstance(data.get(key), dict) and isinstance(data[key].get("number"), int):
            number = data[key]["number"]
            break
    if number is None and isinstance(data.get("check_run"), dict):
        pulls = data["check_run"].get("pull_requests") or []
        if pulls and isinstance(pulls[0], dict):
            number = pulls[0].get("number")
    return repo, number


class Router(routing.Router):
    """gidgethub's router, remembering which event types it listens to (gidgethub keeps that private).

    Handler modules create theirs with ``Router()``; the set feeds the metric labels and the test
    that keeps ``app.yml``'s events in step with the handlers.
    """

    def __init__(self, *other_routers: routing.Router) -> None:
        self.event_types: set[str] = set()  # first: gidgethub's __init__ may call add()
        super().__init__(*other_routers)
        for other in other_routers:
            self.event_types |= getattr(other, "event_types", set())

    def add(self, func: Any, event_type: str, **data_detail: Any) -> None:
        self.event_types.add(event_type)
        super().add(func, event_type, **data_detail)


class Dispatcher:
    def __init__(self, routers: Iterable[Router], metrics: Metrics) -> None:
        self.router = Router(*routers)
        self.metrics = metrics

    def events(self) -> set[str]:
        """Every event type some handler listens to (compared with app.yml by a test)."""
        return set(self.router.event_types)

    def handles(self, event: sansio.Event) -> bool:
        return bool(self.router.fetch(event))

    def callbacks(self, event: sansio.Event) -> list[Any]:
        """The callbacks that would run for ``event``, in the order :meth:`dispatch` runs them."""
        return sorted(self.router.fetch(event), key=lambda c: c.__qualname__)

    async def dispatch(self, event: sansio.Event, ctx: Context[Any]) -> int:
        """Run every matching callback; return how many failed."""
        failures = 0
        repo, number = event_scope(event)
        with logs.context(delivery=event.delivery_id, event=event.event, repo=repo, pr=number):
            for callback in self.callbacks(event):
                name = f"{callback.__module__}.{callback.__qualname__}"
                started = time.perf_counter()
                outcome = "ok"
                try:
                    await callback(event, ctx)
                except Exception:
                    failures += 1
                    outcome = "error"
                    log.exception("handler %s failed", name)
                finally:
                    self.metrics.handler_seconds.labels(event.event, name, outcome).observe(
                        time.perf_counter() - started)
        return failures
