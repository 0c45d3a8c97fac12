"""An Argo CD ``AppProject`` as a project entry of gitsync's destination policy.

In gitsync the project of an Application is its namespace (``gitsync.policy``): the rules of
``projects.<namespace>`` in the operator's ``--policy`` file bound every Application in that
namespace. So an AppProject becomes the entry of the namespace its Applications are imported
into (``gitsync.argocd.translate`` decides which). What Argo CD's project says and the policy can
say is carried (``sourceRepos``, the namespaces of ``destinations``, the cluster-resource
allow-list, ``syncWindows``); a deny-list entry naming one kind exactly becomes ``deniedKinds``.
What the policy cannot say - roles and their tokens, signature keys, an allow-list of namespaced
kinds - is not carried, with the reason: a project that silently lost a restriction would let an
app do more than its team was promised.

As with Applications, gitsync's own parser (``Policy.from_dict``) judges the result: a field it
refuses is taken out and reported. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gitsync.argocd.application import LOCAL_SERVER, MAX_REFUSED_FIELDS, SERVER_STATE
from gitsync.argocd.report import DocumentReport, FieldDecisions, Path, parse_path
from gitsync.policy import Policy, PolicyError

NOT_CARRIED: Mapping[str, str] = {
    "description": "the policy file has no description",
    "roles": "gitsync has no project roles or project tokens: who may change an Application is "
    "Kubernetes RBAC on its namespace, and the web UI has its own tokens",
    "signatureKeys": "gitsync does not verify commit signatures",
    "orphanedResources": "gitsync does not report orphaned resources",
    "namespaceResourceWhitelist": "the policy has no allow-list of namespaced kinds (every kind "
    "not in deniedKinds is allowed in an allowed namespace); list the others in deniedKinds",
    "sourceNamespaces": "in gitsync an Application's namespace is its project: Applications in "
    "other namespaces belong to those namespaces' projects",
    "permitOnlyProjectScopedClusters": "gitsync has no project-scoped clusters",
    "destinationServiceAccounts": "gitsync impersonates spec.serviceAccountName (or serve's "
    "--default-service-account) in the Application's namespace",
}
"""AppProject fields the policy cannot express, and why."""
_DENY_LISTS = {"clusterResourceBlacklist", "namespaceResourceBlacklist"}
_LOCAL_NAMES = ("", "*", "in-cluster")


@dataclass
class TranslatedProject:
    report: DocumentReport
    name: str
    rules: dict[str, Any] | None
    """The ``projects.<namespace>`` entry, or None when it could not be written."""


class _ProjectTranslator:
    def __init__(self) -> None:
        self.d = FieldDecisions()
        self.rules: dict[str, Any] = {}
        self.blockers: list[str] = []

    def spec(self, spec: Mapping[str, Any]) -> None:
        for key, value in spec.items():
            path: Path = ("spec", str(key))
            if key in NOT_CARRIED:
                self.d.drop(path, NOT_CARRIED[key])
            elif key == "sourceRepos" and isinstance(value, list):
                self.source_repos(path, value)
            elif key == "destinations" and isinstance(value, list):
                self.destinations(path, value)
            elif key == "clusterResourceWhitelist":
                self.rules["clusterResources"] = value
                self.d.translate(path, ("clusterResources",), "the cluster-scoped kinds allowed")
            elif key in _DENY_LISTS and isinstance(value, list):
                self.deny_list(path, value)
            elif key == "syncWindows":
                self.rules["syncWindows"] = value
                self.d.translate(path, ("syncWindows",), "same fields, same rules")
            else:
                self.d.drop(path, "gitsync's policy has no such field")

    def source_repos(self, path: Path, repos: list[Any]) -> None:
        kept: list[Any] = []
        for i, repo in enumerate(repos):
            if isinstance(repo, str) and repo.startswith("!"):
                self.d.drop((*path, i), "sourceRepos has no negated entries in gitsync's policy")
                continue
            self.d.translate((*path, i), ("sourceRepos", len(kept)), "a repository URL glob")
            kept.append(repo)
        self.rules["sourceRepos"] = kept

    def destinations(self, path: Path, destinations: list[Any]) -> None:
        namespaces: list[Any] = []
        for i, dest in enumerate(destinations):
            p: Path = (*path, i)
            if not isinstance(dest, Mapping):
                self.d.drop(p, "expected an object")
                continue
            for key, value in dest.items():
                q: Path = (*p, str(key))
                if key == "namespace" and isinstance(value, str) and value.startswith("!"):
                    self.d.drop(q, "the policy's namespaces have no negated entries")
                elif key == "namespace":
                    if value not in namespaces:
                        namespaces.append(value)
                    self.d.translate(
                        q, ("namespaces", namespaces.index(value)), "an allowed namespace glob"
                    )
                elif key in ("server", "name") and str(value).rstrip("/") in (
                    *_LOCAL_NAMES,
                    LOCAL_SERVER,
                ):
                    self.d.translate(
                        q, None, f"{value} -> left out: the namespaces apply on every cluster"
                    )
                elif key in ("server", "name"):
                    self.d.drop(
                        q,
                        "the policy does not tie namespaces to a cluster: they are allowed on "
                        "every cluster an Application names",
                    )
                else:
                    self.d.drop(q, "gitsync's policy has no such field")
        self.rules["namespaces"] = namespaces

    def deny_list(self, path: Path, entries: list[Any]) -> None:
        """A kind denied by name denies the same thing namespaced or cluster-scoped (a kind is
        one or the other), so it becomes ``deniedKinds``; a wildcard would deny the other
        scope's kinds too, so it is not carried."""
        denied: list[Any] = self.rules.setdefault("deniedKinds", [])
        for i, entry in enumerate(entries):
            p: Path = (*path, i)
            group = entry.get("group", "") if isinstance(entry, Mapping) else None
            kind = entry.get("kind") if isinstance(entry, Mapping) else None
            if not isinstance(group, str) or not isinstance(kind, str) or not kind:
                self.d.drop(p, "expected {group, kind}")
            elif any(c in group + kind for c in "*?["):
                self.d.drop(
                    p,
                    "deniedKinds applies to namespaced and cluster-scoped kinds alike, so a "
                    "wildcard here would deny more than Argo CD does; list the kinds by name",
                )
            else:
                self.d.translate(p, ("deniedKinds", len(denied)), "denied by name")
                denied.append({"group": group, "kind": kind})

    def validate(self, name: str) -> None:
        for _ in range(MAX_REFUSED_FIELDS):
            try:
                Policy.from_dict({"projects": {name: self.rules}})
                return
            except PolicyError as exc:
                where = parse_path(exc.field)[2:]  # projects.<name>.FIELD
                owner = self.d.owner_of(where)
                if owner is None or owner.target is None or not where:
                    self.blockers.append(f"gitsync refuses it: {exc}")
                    return
                top = owner.target[0]
                self.rules.pop(str(top), None)
                for report in self.d.reports():
                    if report.target is not None and report.target[:1] == (top,):
                        self.d.drop(report.path, f"gitsync refuses {top}: {exc.problem}")
        self.blockers.append(f"more than {MAX_REFUSED_FIELDS} fields gitsync refuses")


def translate_project(doc: Mapping[str, Any], source: str) -> TranslatedProject:
    """``doc`` (an Argo CD AppProject) as the rules of one policy project, with the report.
    The entry's key (a namespace) is chosen by the caller."""
    t = _ProjectTranslator()
    t.d.translate(("apiVersion",), None, "the policy file's apiVersion is gitsync's")
    t.d.translate(("kind",), None, "AppProject -> an entry of the policy's projects")
    meta = doc.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    name = str(meta.get("name") or "")
    for key in meta:
        path: Path = ("metadata", str(key))
        if key == "name":
            t.d.translate(path, None, "-> the key of the namespace its Applications are in")
        elif key == "namespace":
            t.d.translate(path, None, "left out: Argo CD's own namespace, not the project's")
        elif key in ("labels", "annotations", "finalizers"):
            t.d.drop(path, "the policy file has no metadata")
        else:
            t.d.ignore(path, SERVER_STATE)
    spec = doc.get("spec")
    if isinstance(spec, Mapping):
        t.spec(spec)
    if "status" in doc:
        t.d.ignore(("status",), "Argo CD's observed state of the project")
    t.d.cover(doc)
    if name and not t.blockers:
        t.validate(name if _is_label(name) else "project")
    report = DocumentReport(source, "AppProject", name, str(meta.get("namespace") or ""))
    report.fields = t.d.reports()
    if not name:
        t.blockers.append("metadata.name: is required")
    if t.blockers:
        report.written = False
        report.problem = "; ".join(t.blockers)
        return TranslatedProject(report, name, None)
    return TranslatedProject(report, name, t.rules)


def _is_label(name: str) -> bool:
    try:
        Policy.from_dict({"projects": {name: {}}})
    except PolicyError:
        return False
    return True
