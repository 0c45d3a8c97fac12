"""An Argo CD ``ApplicationSet`` as a gitsync ``ApplicationSet``.

gitsync's ApplicationSet spells its fields as Argo CD does, so the set's fields are carried as
written and gitsync's own parser (``gitsync.appset.spec``) is the judge, as for Applications:
each generator it refuses (``scmProvider``, ``pullRequest``, a post-``selector`` ...) is taken
out whole and reported with the parser's words, and each refused spec field
(``templatePatch``, ``ignoreApplicationDifferences`` ...) likewise; a RollingSync ``strategy``
is carried. A set left with no generator is not written.

``spec.template`` is an Argo CD Application whose strings hold ``{{...}}`` parameters, so it goes
through the importer's Application translation (``translate_application``) with each
parameterised string standing in as a unique, parser-friendly sentinel, put back afterwards: the
template's plain fields are judged exactly like an Application's, while a parameter is never
judged by a value it does not have yet. Fields whose translation needs the value cannot be mapped
at import time:

* ``destination.server: '{{server}}'`` under a ``clusters`` generator becomes
  ``destination.name: '{{name}}'``: gitsync's clusters generator yields the registered cluster's
  ``name`` beside its ``server``, and gitsync addresses clusters by name, so the rendered app
  targets the same cluster Argo CD's would. Any other parameterised server is not carried.
* a parameterised ``project`` is not carried: gitsync's project is the namespace of the set.

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gitsync.application import SERVER_SET_METADATA, SpecError
from gitsync.appset.spec import parse_application_set, parse_generator
from gitsync.argocd.application import (
    ARGO_API_VERSION,
    DEFAULT_NAMESPACE,
    SERVER_STATE,
    ImportOptions,
    translate_application,
)
from gitsync.argocd.report import (
    DocumentReport,
    FieldDecisions,
    FieldReport,
    Outcome,
    Path,
    format_path,
    parse_path,
)
from gitsync.kinds import API_VERSION

APPLICATION_SET = "ApplicationSet"
_SERVER_PARAM = re.compile(r"^\{\{-?\s*\.?server\s*-?\}\}$")
_SENTINEL = "tmplparam{}x"
"""A stand-in for a parameterised string: a DNS label, a relative path and a revision at once."""
_SENTINEL_URL = "https://tmplparam{}x.invalid/repo.git"
_URL_KEYS = frozenset({"repoURL"})
_SPEC_TOP = ("spec", "template")


@dataclass
class TranslatedApplicationSet:
    report: DocumentReport
    document: dict[str, Any] | None
    """The gitsync ApplicationSet, or None when it could not be written."""


def _has_clusters_generator(generators: object) -> bool:
    stack: list[object] = [generators]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            if "clusters" in item:
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class _Sentinels:
    """Parameterised strings swapped for sentinels and back."""

    def __init__(self) -> None:
        self.originals: dict[str, str] = {}

    def hide(self, value: Any, key: str = "") -> Any:
        if isinstance(value, Mapping):
            return {k: self.hide(v, str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.hide(v, key) for v in value]
        if isinstance(value, str) and "{{" in value:
            spelling = _SENTINEL_URL if key in _URL_KEYS else _SENTINEL
            sentinel = spelling.format(len(self.originals))
            self.originals[sentinel] = value
            return sentinel
        return value

    def restore(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: self.restore(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.restore(v) for v in value]
        if isinstance(value, str):
            return self.originals.get(value, value)
        return value

    def restore_text(self, text: str) -> str:
        for sentinel, original in self.originals.items():
            text = text.replace(sentinel, original)
        return text


def translate_application_set(
    doc: Mapping[str, Any], source: str, options: ImportOptions
) -> TranslatedApplicationSet:
    """``doc`` (an Argo CD ApplicationSet) as a gitsync ApplicationSet, with the report of
    every field; ``options.namespace`` places the set (and so its apps) as it does
    Applications."""
    d = FieldDecisions()
    blockers: list[str] = []
    d.translate(("apiVersion",), ("apiVersion",), f"{ARGO_API_VERSION} -> {API_VERSION}")
    d.carry(("kind",))
    meta = _metadata(doc.get("metadata"), options, d)
    namespace = str(meta.get("namespace") or DEFAULT_NAMESPACE)
    out: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": APPLICATION_SET,
        "metadata": meta,
    }
    raw = doc.get("spec")
    spec_in: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    spec: dict[str, Any] = {}
    out["spec"] = spec
    for key, value in spec_in.items():
        path: Path = ("spec", str(key))
        if key == "generators" and isinstance(value, list):
            spec["generators"] = _generators(value, d)
            if not spec["generators"]:
                blockers.append("spec.generators: no generator gitsync supports is left")
        elif key == "template" and isinstance(value, Mapping):
            template = _template(value, spec_in.get("generators"), namespace, options, d)
            if template is None:
                blockers.append("spec.template: the Application template cannot be written")
            else:
                spec["template"] = template
        else:
            spec[str(key)] = value
            d.carry(path)
    if "status" in doc:
        d.ignore(("status",), "Argo CD's observed state of the set, not desired state")
    d.cover(doc)
    blockers.extend(_judge(out, d))
    name = str(meta.get("name") or "")
    original = doc.get("metadata")
    report = DocumentReport(
        source,
        APPLICATION_SET,
        name,
        str(original.get("namespace") or "") if isinstance(original, Mapping) else "",
        fields=d.reports(),
    )
    if blockers:
        report.written = False
        report.problem = "; ".join(blockers)
        return TranslatedApplicationSet(report, None)
    report.output = f"{APPLICATION_SET} {namespace}/{name}"
    return TranslatedApplicationSet(report, out)


def _metadata(raw: object, options: ImportOptions, d: FieldDecisions) -> dict[str, Any]:
    meta: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    out: dict[str, Any] = {}
    for key, value in meta.items():
        path: Path = ("metadata", str(key))
        if key == "namespace":
            target = options.namespace or value
            out["namespace"] = target
            if target != value:
                d.translate(path, path, f"{value} -> {target} (--namespace)", essential=True)
            else:
                d.carry(path, essential=True)
        elif key == "finalizers":
            d.drop(path, "a finalizer no gitsync controller removes")
        elif key == "annotations" and isinstance(value, Mapping):
            if kept := _annotations(value, d):
                out["annotations"] = kept
        elif key in SERVER_SET_METADATA or key in ("uid", "generation"):
            d.ignore(path, SERVER_STATE)
        else:
            out[str(key)] = value
            d.carry(path, essential=key == "name")
    if options.namespace and "namespace" not in meta:
        out["namespace"] = options.namespace
    return out


def _annotations(annotations: Mapping[str, Any], d: FieldDecisions) -> dict[str, Any]:
    """Argo CD's own annotations on a set (``argocd.argoproj.io/refresh`` ...) are for its
    controller; gitsync reads none of them on an ApplicationSet."""
    kept = {}
    for name, item in annotations.items():
        path: Path = ("metadata", "annotations", str(name))
        if "argoproj.io/" in str(name):
            d.drop(path, "an Argo CD annotation gitsync does not read")
        else:
            kept[str(name)] = item
            d.carry(path)
    return kept


def _generators(generators: list[Any], d: FieldDecisions) -> list[Any]:
    """Each generator gitsync's parser accepts, carried as written; the others dropped whole."""
    kept: list[Any] = []
    for i, generator in enumerate(generators):
        path: Path = ("spec", "generators", i)
        try:
            parse_generator(generator, format_path(path))
        except SpecError as exc:
            d.drop(path, f"gitsync refuses {exc.field}: {exc.problem}")
            continue
        if len(kept) == i:
            d.carry(path, essential=True)
        else:
            d.translate(path, ("spec", "generators", len(kept)), "moved up: one was dropped")
        kept.append(generator)
    d.carry(("spec", "generators"), essential=True)
    return kept


def _template(
    template: Mapping[str, Any],
    generators: object,
    namespace: str,
    options: ImportOptions,
    d: FieldDecisions,
) -> dict[str, Any] | None:
    """The template through the Application translation; its report rooted at spec.template."""
    sentinels = _Sentinels()
    app_spec = template.get("spec")
    app_spec = dict(app_spec) if isinstance(app_spec, Mapping) else app_spec
    server_note = ""
    blocked = False
    if isinstance(app_spec, dict):
        dest = app_spec.get("destination")
        server = dest.get("server") if isinstance(dest, Mapping) else None
        if isinstance(dest, Mapping) and isinstance(server, str) and "{{" in server:
            dest_path: Path = (*_SPEC_TOP, "spec", "destination", "server")
            rest = {k: v for k, v in dest.items() if k != "server"}
            if _SERVER_PARAM.match(server) and _has_clusters_generator(generators):
                name = server.replace("server", "name")
                app_spec["destination"] = {**rest, "name": name}
                server_note = f"{server} -> destination.name: {name}"
                d.translate(dest_path, (*dest_path[:-1], "name"), server_note + _SERVER_WHY)
            else:
                app_spec["destination"] = rest
                d.drop(dest_path, _PARAM_SERVER_REASON)
                blocked = True
        project = app_spec.get("project")
        if isinstance(project, str) and "{{" in project:
            del app_spec["project"]
            d.drop((*_SPEC_TOP, "spec", "project"), _PARAM_PROJECT_REASON)
    app_doc = {
        "apiVersion": ARGO_API_VERSION,
        "kind": "Application",
        "metadata": sentinels.hide(template.get("metadata")),
        "spec": sentinels.hide(app_spec),
    }
    placed = ImportOptions(clusters=options.clusters, namespace=namespace)
    app = translate_application(app_doc, "", placed)
    for report in app.report.fields:
        if report.path[0] in ("apiVersion", "kind"):
            continue
        if server_note and report.path == ("spec", "destination", "name"):
            continue  # it was the server parameter, decided above
        _place(d, report, sentinels)
    if app.document is None:
        d.drop(_SPEC_TOP, sentinels.restore_text(app.report.problem))
        return None
    if blocked:
        return None
    d.carry(_SPEC_TOP, essential=True)
    return {
        "metadata": sentinels.restore(app.document["metadata"]),
        "spec": sentinels.restore(app.document["spec"]),
    }


_SERVER_WHY = (
    " (gitsync's clusters generator gives each registered cluster's name beside its server, and "
    "gitsync addresses clusters by name: the app targets the same cluster)"
)
_PARAM_SERVER_REASON = (
    "a parameterised server cannot be mapped to a registered cluster at import time (only "
    "'{{server}}' with a clusters generator can); use destination.name with the cluster's name"
)
_PARAM_PROJECT_REASON = (
    "a parameterised project cannot be mapped at import time: gitsync's project is the "
    "namespace of the set, where its apps are generated"
)


def _place(d: FieldDecisions, report: FieldReport, sentinels: _Sentinels) -> None:
    path: Path = (*_SPEC_TOP, *report.path)
    target: Path | None = (*_SPEC_TOP, *report.target) if report.target is not None else None
    note = sentinels.restore_text(report.note)
    if report.outcome == Outcome.CARRIED:
        d.carry(path, essential=report.essential, note=note)
    elif report.outcome == Outcome.TRANSLATED:
        d.translate(path, target, note, essential=report.essential)
    elif report.outcome == Outcome.NOT_CARRIED:
        d.drop(path, note)
    else:
        d.ignore(path, note)


def _judge(out: dict[str, Any], d: FieldDecisions) -> list[str]:
    """Parse the set as gitsync would; each refused field outside the generators and the
    template (judged on their own above, so a stand-in takes their place here) is taken out of
    ``out`` and reported in the parser's words."""
    spec = out["spec"]
    probe_spec = {**spec, "generators": [_PROBE_GENERATOR], "template": _PROBE_TEMPLATE}
    probe = {**out, "spec": probe_spec}
    for _ in range(64):
        try:
            parse_application_set(probe)
            return []
        except SpecError as exc:
            path = parse_path(exc.field)
            node: Any = probe
            for part in path[:-1]:
                node = node.get(part) if isinstance(node, dict) else None
            if len(path) < 2 or not isinstance(node, dict) or path[-1] not in node:
                return [f"gitsync refuses it: {exc}"]
            del node[path[-1]]
            if len(path) == 2:  # a spec field: out shares everything below it
                spec.pop(path[1], None)
            d.drop_subtree(path, f"gitsync refuses it: {exc.problem}")
    return ["too many fields gitsync refuses"]


_PROBE_GENERATOR: Mapping[str, Any] = {"list": {"elements": []}}
_PROBE_TEMPLATE: Mapping[str, Any] = {"metadata": {"name": "probe"}, "spec": {}}


__all__ = ["APPLICATION_SET", "TranslatedApplicationSet", "translate_application_set"]
