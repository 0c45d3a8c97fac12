"""An Argo CD ``Application`` as a gitsync ``Application``.

gitsync reads most of Argo CD's spelling already (``source``/``sources``, ``helm``, ``directory``,
``syncPolicy``, ``ignoreDifferences``), so most fields are *carried*: copied as written. The few
that differ are *translated* (``destination.server`` -> the registered cluster's ``name``,
``project`` -> the Application's namespace, Argo's resources finalizer -> gitsync's), and what
gitsync cannot honour is *not carried*, with the reason.

gitsync's own parser (``gitsync.application.parse_application``) is the judge of what it accepts:
the translated document is parsed, and each field it refuses is taken out and reported with the
parser's words, until it parses. So a field gitsync learns to read (Kustomize overrides, say) is
carried from then on without a change here, and no field is reported as carried that gitsync would
then refuse. A refused field the document cannot do without (its repository, its destination) is
*essential*: the Application is then not written at all, rather than written to mean something
else. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from gitsync import sync_options
from gitsync.application import SERVER_SET_METADATA, SpecError, parse_application
from gitsync.argocd.report import (
    DocumentReport,
    FieldDecisions,
    Path,
    format_path,
    generic_path,
    parse_path,
)
from gitsync.kinds import API_VERSION, APPLICATION

ARGO_API_VERSION = "argoproj.io/v1alpha1"
LOCAL_SERVER = "https://kubernetes.default.svc"
"""Argo CD's name for the cluster it runs in; gitsync's is no ``destination.name`` at all."""
DEFAULT_NAMESPACE = "gitsync"
"""Where ``parse_application`` puts an Application that names no namespace."""
MAX_REFUSED_FIELDS = 500
"""Parse attempts per document: each takes one refused field out (a document of many refused
fields is still bounded)."""

_ARGO_FINALIZER = "resources-finalizer.argocd.argoproj.io"
RESOURCES_FINALIZERS = {
    _ARGO_FINALIZER: "gitsync.dev/resources-finalizer",
    f"{_ARGO_FINALIZER}/foreground": "gitsync.dev/resources-finalizer",
    f"{_ARGO_FINALIZER}/background": "gitsync.dev/resources-finalizer-background",
}
"""Argo CD's resources finalizers -> gitsync's with the same propagation
(``gitsync.sync.deletion.RESOURCES_FINALIZERS``; a unit test keeps the two in step)."""
ARGO_MANAGED_FINALIZERS = (
    "post-delete-finalizer.argocd.argoproj.io",
    "post-delete-finalizer.argocd.argoproj.io/cleanup",
)
"""Added by Argo CD itself to an app with PostDelete hooks: state, not intent."""

RESOURCE_ANNOTATIONS = (
    "argocd.argoproj.io/sync-wave",
    "argocd.argoproj.io/sync-options",
    "argocd.argoproj.io/compare-options",
    "argocd.argoproj.io/hook",
    "argocd.argoproj.io/hook-delete-policy",
    "argocd.argoproj.io/tracking-id",
)
"""Argo CD's resource annotations gitsync honours (``gitsync.render.hooks``,
``gitsync.sync_options``, ``gitsync.sync.tracking``): on an Application they matter when it is a
resource of a parent app (app of apps), and they are carried as written."""
SKIP_RECONCILE = "argocd.argoproj.io/skip-reconcile"
IGNORED_ANNOTATIONS = {
    "kubectl.kubernetes.io/last-applied-configuration": "kubectl's copy of an earlier apply of "
    "the Argo CD object, not desired state",
    "notified.notifications.argoproj.io": "Argo CD's notification controller's record of what it "
    "sent",
    "argocd.argoproj.io/refresh": "a one-time refresh request Argo CD removes once served "
    "(gitsync's: `gitsync refresh NAMESPACE/NAME`)",
}
LEFT_OUT_ANNOTATIONS = {
    "argocd.argoproj.io/manifest-generate-paths": "gitsync refreshes every app a push may "
    "touch and orders them by spec.source.path and valueFiles itself",
}
NOTIFICATION_PREFIX = "notifications.argoproj.io/"
NOTIFICATIONS_REASON = (
    "an Argo CD notifications subscription; gitsync does not send notifications yet"
)
SERVER_STATE = "set by the API server or a controller, not desired state"

HELM_NO_OPS: Mapping[tuple[str, object], str] = {
    ("passCredentials", False): "false is what gitsync always does",
    ("skipTests", True): "gitsync never applies Helm test hooks",
    ("skipSchemaValidation", False): "gitsync always validates values against the chart's schema",
}
"""``helm`` fields whose value is what gitsync does anyway: left out, nothing lost."""

PLUGIN_REASON = (
    "config management plugins are not supported: gitsync renders plain YAML, Kustomize, Helm "
    "and Jsonnet; render with one of those, or commit the plugin's output"
)
KNOWN_GAPS: Mapping[str, str] = {
    "spec.info": "gitsync shows no free-form info on an Application",
    "spec.revisionHistoryLimit": "gitsync keeps a fixed number of history entries",
    "spec.sourceHydrator": "gitsync has no source hydrator: commit the rendered manifests and "
    "point spec.source at them",
    "spec.syncPolicy.managedNamespaceMetadata": "gitsync's CreateNamespace creates a bare "
    "Namespace; put labels and annotations on a Namespace manifest in Git instead",
    "spec.syncPolicy.retry.refresh": "a retry always uses the revision of the sync it retries",
    "spec.ignoreDifferences[].jqPathExpressions": "gitsync ignores differences by jsonPointers "
    "and managedFieldsManagers only; rewrite the expressions as JSON pointers",
    "spec.source.name": "gitsync names sources by their position",
    "spec.sources[].name": "gitsync names sources by their position",
}
"""Why gitsync lacks an Argo CD field, for the fields its parser calls unknown."""
_ESSENTIAL_SOURCE_FIELDS = frozenset({"repoURL", "path", "chart", "targetRevision", "ref"})
# Applied to the message's last line only: on a whole message, the search retried ".*$" from
# every " got " to the end of its line, quadratic in a line of many " got "s followed by another.
_VALUE_SHOWN = re.compile(r"(,? got ).*$")


@dataclass(frozen=True)
class ImportOptions:
    """What the operator told the importer."""

    clusters: Mapping[str, str] = field(default_factory=dict)
    """Cluster API server URL -> gitsync's registered cluster name (``--cluster NAME=URL``);
    "" names the cluster gitsync runs in (``-f``: the one the command talks to)."""
    namespace: str | None = None
    """The namespace the Applications are written to (``--namespace``); None: keep theirs."""


@dataclass
class TranslatedApplication:
    report: DocumentReport
    document: dict[str, Any] | None
    """The gitsync Application, or None when it could not be written."""
    project: str
    namespace: str
    """The namespace of the gitsync Application: its project in the destination policy."""


class _ApplicationTranslator:
    def __init__(self, doc: Mapping[str, Any], options: ImportOptions):
        self.doc = doc
        self.options = options
        self.d = FieldDecisions()
        self.blockers: list[str] = []
        self.meta: dict[str, Any] = {}
        self.spec: dict[str, Any] = {}
        self.out: dict[str, Any] = {
            "apiVersion": API_VERSION,
            "kind": APPLICATION,
            "metadata": self.meta,
            "spec": self.spec,
        }

    def block(self, path: Path, reason: str) -> None:
        """``path`` cannot be carried and the Application means something else without it."""
        self.d.drop(path, reason)
        self.blockers.append(f"{format_path(path)}: {reason}")

    # -- metadata --------------------------------------------------------------------------------

    def metadata(self) -> None:
        raw = self.doc.get("metadata")
        meta: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        for key, value in meta.items():
            path: Path = ("metadata", str(key))
            if key == "name":
                self.meta["name"] = value
                self.d.carry(path, essential=True)
            elif key == "namespace":
                target = self.options.namespace or value
                self.meta["namespace"] = target
                if target != value:
                    self.d.translate(
                        path, path, f"{value} -> {target} (--namespace)", essential=True
                    )
                else:
                    self.d.carry(path, essential=True)
            elif key == "labels" and isinstance(value, Mapping):
                self.meta["labels"] = dict(value)
                self.d.carry(path)
            elif key == "annotations" and isinstance(value, Mapping):
                self.annotations(value)
                if not value:  # ``annotations: {}`` (common in ApplicationSet templates)
                    self.d.translate(path, None, "empty: left out, nothing lost")
            elif key == "finalizers" and isinstance(value, list):
                self.finalizers(value)
            elif key in SERVER_SET_METADATA or key in ("uid", "generation"):
                self.d.ignore(path, SERVER_STATE)
            else:
                self.meta[str(key)] = value
                self.d.carry(path)
        if self.options.namespace and "namespace" not in meta:
            self.meta["namespace"] = self.options.namespace

    def annotations(self, annotations: Mapping[str, Any]) -> None:
        kept: dict[str, Any] = {}
        for key, value in annotations.items():
            name = str(key)
            path: Path = ("metadata", "annotations", name)
            if name in RESOURCE_ANNOTATIONS:
                kept[name] = value
                self.d.carry(path, note="gitsync reads it when the app is a parent app's resource")
            elif name == SKIP_RECONCILE:
                suspend = str(value).lower() == "true"
                if suspend:
                    self.spec["suspend"] = True
                self.d.translate(
                    path,
                    ("spec", "suspend"),
                    f"{value!r} -> spec.suspend: {str(suspend).lower()}",
                )
            elif name in IGNORED_ANNOTATIONS:
                self.d.ignore(path, IGNORED_ANNOTATIONS[name])
            elif name in LEFT_OUT_ANNOTATIONS:
                self.d.translate(path, None, f"left out: {LEFT_OUT_ANNOTATIONS[name]}")
            elif name.startswith(NOTIFICATION_PREFIX):
                self.d.drop(path, NOTIFICATIONS_REASON)
            elif "argoproj.io/" in name:
                self.d.drop(path, "an Argo CD annotation gitsync does not read")
            else:
                kept[name] = value
                self.d.carry(path)
        if kept:
            self.meta["annotations"] = kept

    def finalizers(self, finalizers: list[Any]) -> None:
        kept: list[str] = []
        for i, name in enumerate(finalizers):
            path: Path = ("metadata", "finalizers", i)
            ours = RESOURCES_FINALIZERS.get(str(name))
            if ours is not None:
                self.d.translate(
                    path,
                    ("metadata", "finalizers", len(kept)),
                    f"{name} -> {ours}: the app's objects are deleted with it",
                )
                kept.append(ours)
            elif name in ARGO_MANAGED_FINALIZERS:
                self.d.ignore(
                    path,
                    "Argo CD adds it for PostDelete hooks; gitsync runs them when an app "
                    "with its resources finalizer is deleted",
                )
            else:
                # Carried, nobody would take it off and the Application could never be deleted.
                self.d.drop(path, "a finalizer no gitsync controller removes")
        if kept:
            self.meta["finalizers"] = list(dict.fromkeys(kept))

    # -- spec ------------------------------------------------------------------------------------

    def spec_fields(self) -> str:
        """Translate ``spec``; returns the Argo CD project the app belongs to."""
        raw = self.doc.get("spec")
        if not isinstance(raw, Mapping):
            self.block(("spec",), "expected an object")
            return ""
        project = ""
        for key, value in raw.items():
            path: Path = ("spec", str(key))
            if key == "project":
                project = str(value)
            elif key == "source" and isinstance(value, Mapping):
                self.spec["source"] = self.source(path, value)
            elif key == "sources" and isinstance(value, list):
                self.spec["sources"] = [
                    self.source((*path, i), item) if isinstance(item, Mapping) else item
                    for i, item in enumerate(value)
                ]
                self.d.carry(path, essential=True)
            elif key == "destination" and isinstance(value, Mapping):
                self.destination(value)
            elif key == "syncPolicy" and isinstance(value, Mapping):
                self.sync_policy(value)
            elif key == "ignoreDifferences" and isinstance(value, list):
                self.ignore_differences(value)
            else:
                self.spec[str(key)] = value
                self.d.carry(path, essential=key in ("source", "sources", "destination"))
        return project

    def source(self, path: Path, src: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in src.items():
            p: Path = (*path, str(key))
            if key == "plugin":
                self.block(p, PLUGIN_REASON)
            elif key in ("helm", "kustomize", "directory") and isinstance(value, Mapping):
                out[key] = self.renderer_options(p, key, value)
                self.d.carry(p)
            else:
                out[str(key)] = value
                self.d.carry(p, essential=key in _ESSENTIAL_SOURCE_FIELDS)
        return out

    def renderer_options(self, path: Path, kind: str, options: Mapping[str, Any]) -> dict[str, Any]:
        """``helm``, ``kustomize`` or ``directory``: each field carried on its own, so gitsync's
        parser can refuse one without taking the others with it."""
        out: dict[str, Any] = {}
        for key, value in options.items():
            p: Path = (*path, str(key))
            no_op = (
                HELM_NO_OPS.get((str(key), value))
                if kind == "helm" and isinstance(value, bool)
                else None
            )
            if no_op is not None:
                self.d.translate(p, None, f"{str(value).lower()} -> left out: {no_op}")
            elif kind == "directory" and key == "jsonnet" and isinstance(value, Mapping):
                out[key] = {}
                for name, item in value.items():
                    out[key][str(name)] = item
                    self.d.carry((*p, str(name)))
                self.d.carry(p)
            else:
                out[str(key)] = value
                self.d.carry(p)
        return out

    def destination(self, dest: Mapping[str, Any]) -> None:
        out: dict[str, Any] = {}
        self.spec["destination"] = out
        base: Path = ("spec", "destination")
        self.d.carry(base, essential=True)
        if dest.get("server") and dest.get("name"):
            self.block(base, "set only one of server, name (Argo CD refuses both too)")
            return
        for key, value in dest.items():
            path: Path = (*base, str(key))
            if key == "server":
                self.server(path, str(value), out)
            else:
                out[str(key)] = value
                self.d.carry(path, essential=True)

    def server(self, path: Path, server: str, out: dict[str, Any]) -> None:
        url = server.rstrip("/")
        shown = _without_userinfo(url)
        if url == LOCAL_SERVER:
            self.d.translate(
                path,
                ("spec", "destination"),
                f"{LOCAL_SERVER} -> the cluster gitsync runs in (no destination.name)",
                essential=True,
            )
        elif url in self.options.clusters:
            name = self.options.clusters[url]
            if name:
                out["name"] = name
            self.d.translate(
                path,
                ("spec", "destination", "name") if name else ("spec", "destination"),
                f"{shown} -> the registered cluster {name!r}"
                if name
                else f"{shown} -> the cluster this command talks to (no destination.name)",
                essential=True,
            )
        else:
            self.block(
                path,
                f"no registered cluster has the URL {shown}: give --cluster NAME={shown} "
                "(NAME: the cluster Secret's name) or --kubeconfig of the controller's cluster",
            )

    def sync_policy(self, policy: Mapping[str, Any]) -> None:
        out: dict[str, Any] = {}
        self.spec["syncPolicy"] = out
        base: Path = ("spec", "syncPolicy")
        self.d.carry(base)
        for key, value in policy.items():
            path: Path = (*base, str(key))
            if key == "automated" and isinstance(value, Mapping):
                self.automated(path, value, out)
            elif key == "syncOptions" and isinstance(value, list):
                out[key] = self.sync_options(path, value)
            elif key == "retry" and isinstance(value, Mapping):
                out[key] = self.nested(path, value, depth=2)
            else:
                out[str(key)] = value
                self.d.carry(path)

    def automated(self, path: Path, automated: Mapping[str, Any], out: dict[str, Any]) -> None:
        if automated.get("enabled") is False:
            self.d.translate(path, None, "enabled: false -> no automated sync (left out)")
            return
        kept: dict[str, Any] = {}
        for key, value in automated.items():
            p: Path = (*path, str(key))
            if key == "enabled":
                self.d.translate(p, None, "true -> left out: syncPolicy.automated enables it")
            else:
                kept[str(key)] = value
                self.d.carry(p)
        out["automated"] = kept
        self.d.carry(path)

    def sync_options(self, path: Path, options: list[Any]) -> list[str]:
        """Each option on its own: gitsync's table of Argo CD's options says which it refuses
        and why; the others are carried."""
        kept: list[str] = []
        self.d.carry(path)
        for i, text in enumerate(options):
            p: Path = (*path, i)
            try:
                sync_options.parse_option(text, format_path(p), sync_options.Level.APP)
            except sync_options.SyncOptionError as exc:
                self.d.drop(p, exc.problem)
                continue
            if len(kept) == i:
                self.d.carry(p)
            else:
                self.d.translate(p, (*path, len(kept)), "moved up: an earlier option was dropped")
            kept.append(str(text))
        return kept

    def ignore_differences(self, rules: list[Any]) -> None:
        base: Path = ("spec", "ignoreDifferences")
        self.d.carry(base)
        out: list[Any] = []
        for i, rule in enumerate(rules):
            if isinstance(rule, Mapping):
                out.append(self.nested((*base, i), rule, depth=1))
            else:
                out.append(rule)
                self.d.carry((*base, i))
        self.spec["ignoreDifferences"] = out

    def nested(self, path: Path, value: Mapping[str, Any], *, depth: int) -> dict[str, Any]:
        """``value`` carried field by field, ``depth`` levels down."""
        out: dict[str, Any] = {}
        self.d.carry(path)
        for key, item in value.items():
            p: Path = (*path, str(key))
            if depth > 1 and isinstance(item, Mapping):
                out[str(key)] = self.nested(p, item, depth=depth - 1)
            else:
                out[str(key)] = item
                self.d.carry(p)
        return out

    # -- the judge -------------------------------------------------------------------------------

    def validate(self) -> None:
        """Parse the result as gitsync would and take out each field it refuses; a refused
        essential field means the document is not written."""
        for _ in range(MAX_REFUSED_FIELDS):
            try:
                parse_application(self.out)
                return
            except SpecError as exc:
                where = parse_path(exc.field)
                owner = self.d.owner_of(where)
                if owner is None or owner.target is None or not _remove(self.out, owner.target):
                    self.blockers.append(f"gitsync refuses it: {_redact(str(exc))}")
                    return
                reason = _reason(where, exc, owner.target)
                self.d.drop_subtree(owner.path, reason)
                if owner.essential:  # not written; judging on so every field's outcome is true
                    self.blockers.append(f"{format_path(owner.path)}: {reason}")
        self.blockers.append(f"more than {MAX_REFUSED_FIELDS} fields gitsync refuses")


def translate_application(
    doc: Mapping[str, Any],
    source: str,
    options: ImportOptions,
    projects: Collection[str] = (),
) -> TranslatedApplication:
    """``doc`` (an Argo CD Application) as a gitsync Application, with the report of every
    field; ``projects``: the AppProjects imported alongside (their names)."""
    t = _ApplicationTranslator(doc, options)
    t.d.translate(("apiVersion",), ("apiVersion",), f"{ARGO_API_VERSION} -> {API_VERSION}")
    t.d.carry(("kind",))
    t.metadata()
    project = t.spec_fields()
    namespace = str(t.meta.get("namespace") or DEFAULT_NAMESPACE)
    spec = doc.get("spec")
    if isinstance(spec, Mapping) and "project" in spec:
        note = f"{project} -> the project of namespace {namespace} (projects.{namespace} of the "
        if project in projects:
            note += "--policy file, written from AppProject " + project + ")"
        else:
            note += (
                f"--policy file; no AppProject {project} was imported, so the policy's "
                "defaults apply: by default the app's own namespace only)"
            )
        t.d.translate(("spec", "project"), None, note)
    if "status" in doc:
        t.d.ignore(("status",), "Argo CD's observed state of the app, not desired state")
    if "operation" in doc:
        t.d.drop(
            ("operation",),
            "a one-time sync request to Argo CD; run `gitsync sync NAMESPACE/NAME` instead",
        )
    t.d.cover(doc)
    t.validate()
    meta = doc.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    report = DocumentReport(
        source,
        "Application",
        str(meta.get("name") or ""),
        str(meta.get("namespace") or ""),
        fields=t.d.reports(),
    )
    if t.blockers:
        report.written = False
        report.problem = "; ".join(t.blockers)
        return TranslatedApplication(report, None, project, namespace)
    report.output = f"{APPLICATION} {namespace}/{t.meta.get('name')}"
    return TranslatedApplication(report, t.out, project, namespace)


def _remove(doc: dict[str, Any], target: Path) -> bool:
    """Take the field at ``target`` out of ``doc``; False when it is not a mapping's key."""
    if not target or isinstance(target[-1], int):
        return False
    node: Any = doc
    for part in target[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    if not isinstance(node, dict) or target[-1] not in node:
        return False
    del node[target[-1]]
    return True


def _reason(where: Path, exc: SpecError, owner: Path) -> str:
    """Why gitsync refused the field at ``where`` (``owner``'s or one inside it), in the
    parser's words or from ``KNOWN_GAPS``; a value the parser quoted is not repeated (it may be
    a secret)."""
    if exc.problem == "unknown field":
        return KNOWN_GAPS.get(generic_path(where)) or "gitsync's Application has no such field"
    return "gitsync refuses it: " + _redact(exc.problem if where == owner else str(exc))


def _redact(message: str) -> str:
    """``message`` without the value a parser error ends with (``..., got 's3cr3t'``): from the
    first " got " of its last line (a final newline aside) to that line's end."""
    body, end = (message[:-1], "\n") if message.endswith("\n") else (message, "")
    last_line = body.rfind("\n") + 1
    return body[:last_line] + _VALUE_SHOWN.sub(r"\1(value not shown)", body[last_line:]) + end


def _without_userinfo(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    host, slash, path = rest.partition("/")
    return f"{scheme}://{host.rpartition('@')[2]}{slash}{path}"


__all__ = [
    "ARGO_API_VERSION",
    "ImportOptions",
    "TranslatedApplication",
    "translate_application",
]
