"""Prometheus metrics, one registry per running app (so tests can start several)."""

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

    def render(self) -> bytes:
        return generate_latest(self.registry)
