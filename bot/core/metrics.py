"""Prometheus metrics, one registry per running app (so tests can start several).

Names and labels are fixed here; labels only ever take values from small fixed sets (event names
from the routers, operation kinds, outcomes, states), never free text from a request.
docs/operations.md lists them with example alert rules.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.deliveries = Counter(
            "devenv_webhook_deliveries", "Webhook deliveries by event, action and outcome",
            ["event", "action", "outcome"], registry=self.registry)
        self.handler_seconds = Histogram(
            "devenv_handler_seconds", "Time spent in each webhook handler",
            ["event", "handler", "outcome"], registry=self.registry,
            buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600, 1800))
        self.api_calls = Counter(
            "devenv_github_api_calls", "GitHub API calls by method and HTTP status",
            ["method", "status"], registry=self.registry)
        self.rate_limit_remaining = Gauge(
            "devenv_github_rate_limit_remaining", "Remaining GitHub API rate limit, per installation",
            ["installation"], registry=self.registry)
        self.background_tasks = Gauge(
            "devenv_background_tasks", "Background tasks running now", registry=self.registry)
        self.write_wait_seconds = Histogram(
            "devenv_github_write_wait_seconds",
            "Time a content-creating GitHub request waited for its installation's pacing (lock and token bucket)",
            registry=self.registry, buckets=(0.001, 0.01, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300))
        self.rate_limit_hits = Counter(
            "devenv_github_rate_limit_hits", "GitHub answers that asked the bot to slow down, by kind",
            ["kind"], registry=self.registry)  # primary (quota used up) or secondary (too fast)
        self.environments = Gauge(
            "devenv_environments", "Environments the bot knows, by state", ["state"], registry=self.registry)
        self.devpod_operations = Counter(
            "devenv_devpod_operations", "DevPod operations finished, by kind and outcome",
            ["kind", "outcome"], registry=self.registry)
        self.devpod_seconds = Histogram(
            "devenv_devpod_operation_seconds", "How long DevPod operations ran, by kind", ["kind"],
            registry=self.registry, buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600))
        self.queue_depth = Gauge(
            "devenv_queue_depth", "Operations waiting for a DevPod slot", registry=self.registry)
        self.queue_wait_seconds = Histogram(
            "devenv_queue_wait_seconds", "Time operations waited for a DevPod slot", registry=self.registry,
            buckets=(0.01, 0.1, 1, 5, 15, 60, 300, 900, 1800))
        self.agent_runs = Counter(
            "devenv_agent_runs", "Agent runs finished, by outcome", ["outcome"], registry=self.registry)
        self.lease_lost = Counter(
            "devenv_lease_lost", "Leases this replica lost while it held them (a renewal failed), by kind",
            ["kind"], registry=self.registry)  # workspace, slot, mutex (bot.replicas.coordination)
        self.link_checks = Counter(
            "devenv_link_checks", "Access checks of browser links, by decision", ["decision"],
            registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
