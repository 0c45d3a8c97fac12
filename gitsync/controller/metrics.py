"""Prometheus metrics for the controller (prometheus-client), in a registry of their own.

A registry per controller instead of the process-global default keeps tests independent and lets
two controllers live in one process. Label values never carry credentials: repository labels are
normalized URLs (``gitsync.source.normalize_url`` drops userinfo).
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from gitsync.model import AppKey


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.app_info = Gauge(
            "gitsync_app_info",
            "One series per Application with its current sync and health status",
            ["namespace", "name", "sync_status", "health_status"],
            registry=self.registry,
        )
        self.app_sync_total = Counter(
            "gitsync_app_sync_total",
            "Sync operations by final phase",
            ["namespace", "name", "phase"],
            registry=self.registry,
        )
        self.reconcile_duration = Histogram(
            "gitsync_reconcile_duration_seconds",
            "Time spent reconciling one Application",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry,
        )
        self.git_request_total = Counter(
            "gitsync_git_request_total",
            "Git requests by normalized repository and type (ls-remote, fetch)",
            ["repo", "request_type"],
            registry=self.registry,
        )
        self.git_request_duration = Histogram(
            "gitsync_git_request_duration_seconds",
            "Git request duration",
            ["request_type"],
            registry=self.registry,
        )
        self.kube_request_total = Counter(
            "gitsync_kube_request_total",
            "Kubernetes API requests by verb and HTTP status code",
            ["verb", "code"],
            registry=self.registry,
        )
        self.webhook_requests_total = Counter(
            "gitsync_webhook_requests_total",
            "Webhook deliveries by provider and result",
            ["provider", "result"],
            registry=self.registry,
        )
        self.notifications_total = Counter(
            "gitsync_notifications_total",
            "Notification deliveries by provider (namespace/name) and result "
            "(delivered, retrying, failed, dropped)",
            ["provider", "result"],
            registry=self.registry,
        )
        self._lock = threading.Lock()
        self._app_labels: dict[AppKey, tuple[str, str]] = {}

    def set_app(self, namespace: str, name: str, sync_status: str, health_status: str) -> None:
        with self._lock:
            old = self._app_labels.get((namespace, name))
            if old == (sync_status, health_status):
                return
            if old is not None:
                self.app_info.remove(namespace, name, *old)
            self._app_labels[(namespace, name)] = (sync_status, health_status)
        self.app_info.labels(namespace, name, sync_status, health_status).set(1)

    def forget_app(self, namespace: str, name: str) -> None:
        with self._lock:
            old = self._app_labels.pop((namespace, name), None)
        if old is not None:
            self.app_info.remove(namespace, name, *old)

    def git_request(self, repo: str, request_type: str, seconds: float) -> None:
        self.git_request_total.labels(repo, request_type).inc()
        self.git_request_duration.labels(request_type).observe(seconds)

    def kube_request(self, verb: str, code: int) -> None:
        self.kube_request_total.labels(verb, str(code)).inc()

    def webhook(self, provider: str, result: str) -> None:
        self.webhook_requests_total.labels(provider, result).inc()

    def notification(self, provider: str, result: str) -> None:
        self.notifications_total.labels(provider, result).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
