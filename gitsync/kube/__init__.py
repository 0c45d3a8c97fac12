"""The one Kubernetes adapter: the only place that imports the ``kubernetes`` package.

Everything above it works with plain dicts and ``ResourceKey``; this package turns them into HTTP
requests against the API server and turns API errors into gitsync errors (see ``gitsync.errors``).

Owns: every request to a Kubernetes API server, the watch cache, leader election. The only importer
of ``kubernetes`` and ``urllib3`` (``kube.client``). May import: model, kinds, errors, logs (import-
linter: ``kubernetes-client``).
"""

from gitsync.kube.client import (
    ApiConflictError,
    ApiError,
    ApiRejectedError,
    ApiThrottledError,
    ApiUnavailableError,
    KubeClient,
    RequestLog,
    ServerCapabilities,
)

__all__ = [
    "ApiConflictError",
    "ApiError",
    "ApiRejectedError",
    "ApiThrottledError",
    "ApiUnavailableError",
    "KubeClient",
    "RequestLog",
    "ServerCapabilities",
]
