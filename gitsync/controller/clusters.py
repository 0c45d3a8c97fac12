"""Destination clusters: the one gitsync runs in, and remote ones registered by Secret.

A remote cluster is a Secret in the controller's namespace labelled
``gitsync.dev/secret-type: cluster`` whose ``name`` key (or the Secret's name) is what
``spec.destination.name`` refers to, and whose ``kubeconfig`` key holds a kubeconfig. A kubeconfig
with an ``exec`` credential plugin would run an arbitrary program from cluster data, so it is
refused unless the operator opts in (``--allow-exec-credentials``).
"""

from __future__ import annotations

import base64
import threading
from typing import Any

import yaml

from gitsync.appset.generate import LOCAL_CLUSTER, LOCAL_SERVER, ClusterInfo
from gitsync.errors import TerminalError
from gitsync.kube import ApiError, KubeClient

SECRET_TYPE_LABEL = "gitsync.dev/secret-type"  # noqa: S105 - a label name
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
"""``kubectl apply`` copies the whole Secret, data included, into this annotation: never a
parameter."""


class ClusterError(TerminalError):
    """The destination cluster is not registered or its kubeconfig is refused."""


def _decode(secret: dict[str, Any], key: str) -> str | None:
    raw = (secret.get("data") or {}).get(key)
    if raw is None:
        return (secret.get("stringData") or {}).get(key)
    try:
        return base64.b64decode(raw).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def _servers_and_contexts(doc: dict[str, Any]) -> tuple[dict[Any, Any], dict[Any, Any]]:
    """A kubeconfig's cluster name -> server URL and context name -> cluster name, read from
    the document alone (never loaded with the Kubernetes client, which could run an exec
    plugin); each caller picks the server by its own rule."""
    clusters = {
        c.get("name"): (c.get("cluster") or {}).get("server")
        for c in doc.get("clusters") or []
        if isinstance(c, dict)
    }
    contexts = {
        c.get("name"): (c.get("context") or {}).get("cluster")
        for c in doc.get("contexts") or []
        if isinstance(c, dict)
    }
    return clusters, contexts


def _server_of(text: str | None) -> str:
    """The API server URL of a kubeconfig's current context (else its first cluster); "" when
    it cannot be read. Only the URL: nothing else of the kubeconfig leaves this function."""
    try:
        doc = yaml.safe_load(text or "")
    except yaml.YAMLError:
        return ""
    if not isinstance(doc, dict):
        return ""
    clusters, contexts = _servers_and_contexts(doc)
    server = clusters.get(contexts.get(doc.get("current-context")))
    if not isinstance(server, str):
        server = next((s for s in clusters.values() if isinstance(s, str)), "")
    return server


def check_kubeconfig(doc: Any, *, allow_exec: bool) -> dict[str, Any]:
    if not isinstance(doc, dict) or not isinstance(doc.get("clusters"), list):
        raise ClusterError("not a kubeconfig (no clusters)")
    for user in doc.get("users") or []:
        spec = (user or {}).get("user") or {}
        if "exec" in spec and not allow_exec:
            raise ClusterError(
                f"user {user.get('name')!r} uses an exec credential plugin; refused "
                "(start gitsync with --allow-exec-credentials to allow it)"
            )
        if "auth-provider" in spec and not allow_exec:
            raise ClusterError(f"user {user.get('name')!r} uses an auth-provider plugin; refused")
    return doc


class ClusterRegistry:
    """Resolves ``spec.destination.name`` to a KubeClient; caches clients by Secret version."""

    def __init__(self, local: KubeClient, namespace: str, *, allow_exec: bool = False):
        self.local = local
        self.namespace = namespace
        self.allow_exec = allow_exec
        self._lock = threading.Lock()
        self._clients: dict[str, tuple[str, KubeClient]] = {}

    def _secrets(self) -> list[dict[str, Any]]:
        try:
            found: list[dict[str, Any]] = self.local.list(
                "v1", "Secret", self.namespace, label_selector=f"{SECRET_TYPE_LABEL}=cluster"
            )["items"]
        except ApiError as exc:
            raise ClusterError(
                f"cannot read cluster Secrets in {self.namespace}: {exc.message}"
            ) from None
        return found

    def registered(self) -> list[ClusterInfo]:
        """The clusters an ApplicationSet's clusters generator sees: the local one
        (``in-cluster``, no labels) and each registered Secret's name, API server URL, labels
        and annotations - never its kubeconfig, nor ``kubectl apply``'s copy of it."""
        secrets = self._secrets()
        found = [ClusterInfo(LOCAL_CLUSTER, LOCAL_SERVER)]
        for secret in sorted(secrets, key=lambda s: str(s["metadata"]["name"])):
            meta = secret["metadata"]
            annotations = {
                str(k): str(v)
                for k, v in (meta.get("annotations") or {}).items()
                if k != LAST_APPLIED
            }
            found.append(
                ClusterInfo(
                    name=_decode(secret, "name") or meta["name"],
                    server=_server_of(_decode(secret, "kubeconfig")),
                    labels={str(k): str(v) for k, v in (meta.get("labels") or {}).items()},
                    annotations=annotations,
                )
            )
        return found

    def client(self, name: str) -> KubeClient:
        if not name or name == "in-cluster":
            return self.local
        secrets = self._secrets()
        for secret in secrets:
            registered = _decode(secret, "name") or secret["metadata"]["name"]
            if registered != name:
                continue
            version = secret["metadata"].get("resourceVersion", "")
            with self._lock:
                cached = self._clients.get(name)
            if cached and cached[0] == version:
                return cached[1]
            text = _decode(secret, "kubeconfig")
            if not text:
                raise ClusterError(f"cluster Secret for {name!r} has no kubeconfig key")
            try:
                doc = yaml.safe_load(text)
            except yaml.YAMLError:
                raise ClusterError(f"cluster Secret for {name!r}: kubeconfig is not YAML") from None
            # The local client's user agent, so every write names the controller replica.
            client = KubeClient.from_kubeconfig_dict(
                check_kubeconfig(doc, allow_exec=self.allow_exec), user_agent=self.local.user_agent
            )
            with self._lock:
                self._clients[name] = (version, client)
            return client
        raise ClusterError(f"destination cluster {name!r} is not registered in {self.namespace}")


def kubeconfig_server(doc: Any) -> str | None:
    """The API server URL a kubeconfig's current context (or its only cluster) points at, read
    from the document alone: loading it with the Kubernetes client could run an exec plugin."""
    if not isinstance(doc, dict):
        return None
    clusters, contexts = _servers_and_contexts(doc)
    current = doc.get("current-context")
    if current in contexts:
        server = clusters.get(contexts[current])
    elif len(clusters) == 1:
        server = next(iter(clusters.values()))
    else:
        return None
    return server.rstrip("/") if isinstance(server, str) and server else None


def registered_servers(kube: KubeClient, namespace: str) -> dict[str, str]:
    """API server URL -> the registered cluster's name, for every cluster Secret in
    ``namespace`` (``gitsync import argocd --kubeconfig``: Argo CD names a destination by URL,
    gitsync by name). Only the URLs are read out; the credentials never leave the Secret."""
    try:
        secrets = kube.list(
            "v1", "Secret", namespace, label_selector=f"{SECRET_TYPE_LABEL}=cluster"
        )["items"]
    except ApiError as exc:
        raise ClusterError(f"cannot read cluster Secrets in {namespace}: {exc.message}") from None
    servers: dict[str, str] = {}
    for secret in secrets:
        name = _decode(secret, "name") or secret["metadata"]["name"]
        text = _decode(secret, "kubeconfig") or ""
        try:
            server = kubeconfig_server(yaml.safe_load(text)) if len(text) < 1024 * 1024 else None
        except yaml.YAMLError:
            server = None
        if server:
            servers[server] = name
    return servers
