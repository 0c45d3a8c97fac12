"""Destination policy: where an Application's objects may go, decided before anything is sent.

A repository is untrusted input: whoever can push to it chooses what the render produces, and the
controller applies it with its own (usually broad) service account. The policy bounds that per
*project* - the namespace an Application lives in (``metadata.namespace``), since that is what the
cluster's RBAC already lets a team own:

* **namespaces** - globs of the namespaces its namespaced objects may land in. A project with no
  ``namespaces`` entry may use only its own namespace - never the ``spec.destination.namespace``
  its Application names, which the tenant chooses. ``defaults`` adds namespaces for every project.
  An Application a repository renders is an object like any other: it may only be created in a
  namespace the parent may use, and is then checked as a member of *its own* namespace's project.
* **sourceRepos** - URL globs (Argo CD's AppProject field) the project's Applications may fetch
  from. No entry, in the project or the defaults: any repository - the namespace fence above
  still bounds what a repository can do.
* **clusterResources** - the cluster-scoped group/kinds it may create. None by default, except the
  ``Namespace`` object of a namespace it may use (what ``CreateNamespace`` needs).
* **deniedKinds** - group/kinds refused everywhere (namespaced or not).
* **deniedRoleRefs** - a RoleBinding or ClusterRoleBinding whose ``roleRef.name`` matches is
  refused; by default ``cluster-admin``.
* **syncWindows** - Argo CD's AppProject sync windows: when its Applications may sync
  (``gitsync.sync_windows``).

``defaults`` apply to every project and a project's entry adds to them. ``Policy()`` is the
built-in default ``gitsync serve`` uses without ``--policy``; ``Policy.allow_all()`` is the old
allow-everything behaviour an operator must ask for (``--policy-allow-all``). The file is the
operator's, so it is trusted; it is still parsed strictly, and errors name the field
(``projects.team-a.namespaces[0]: ...``). Pure: no I/O - ``check`` and ``check_source`` return the
reason an object or a repository is refused, or None.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from gitsync.application import SpecError, SpecFields
from gitsync.kinds import API_VERSION
from gitsync.kinds import DESTINATION_POLICY as KIND
from gitsync.model import ResourceKey
from gitsync.sync_windows import SyncWindow, WindowError, parse_sync_windows

DEFAULT_DENIED_ROLE_REFS = ("cluster-admin",)
RBAC_GROUP = "rbac.authorization.k8s.io"
BINDING_KINDS = frozenset({"RoleBinding", "ClusterRoleBinding"})

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_GLOB = re.compile(r"^[a-z0-9*?\[\]\-.!]{1,253}$")
MAX_URL_GLOB = 2048
_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>.*)$")


class PolicyError(SpecError):
    """The policy file is invalid; ``field`` is the dotted path of the offending field."""

    def __init__(self, field_path: str, problem: str):
        super().__init__(field_path, problem)
        if not field_path:
            self.args = (problem,)


@dataclass(frozen=True)
class GroupKind:
    """A group/kind pattern; both parts are globs, the core group is ``""``."""

    group: str
    kind: str

    def matches(self, group: str, kind: str) -> bool:
        return fnmatch.fnmatchcase(group, self.group) and fnmatch.fnmatchcase(kind, self.kind)

    def __str__(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind


@dataclass(frozen=True)
class ProjectRules:
    """The rules of one project (or the ``defaults``). ``namespaces`` None: not set."""

    namespaces: tuple[str, ...] | None = None
    cluster_resources: tuple[GroupKind, ...] = ()
    denied_kinds: tuple[GroupKind, ...] = ()
    denied_role_refs: tuple[str, ...] = ()
    source_repos: tuple[str, ...] | None = None
    sync_windows: tuple[SyncWindow, ...] = ()


def _group_kind_label(group: str, kind: str) -> str:
    return f"{kind}.{group}" if group else kind


@dataclass(frozen=True)
class Policy:
    """``Policy()`` is the built-in default: every project gets its own namespace only, no
    cluster-scoped kinds but its own Namespace, no binding to cluster-admin, any repository."""

    defaults: ProjectRules = ProjectRules(denied_role_refs=DEFAULT_DENIED_ROLE_REFS)
    projects: Mapping[str, ProjectRules] = field(default_factory=dict)

    @classmethod
    def allow_all(cls) -> Policy:
        """Every namespace, every cluster-scoped kind, every binding: the behaviour before the
        built-in default existed. Creating an Application is then as good as cluster-admin."""
        return cls(
            ProjectRules(namespaces=("*",), cluster_resources=(GroupKind("*", "*"),)),
            {},
        )

    @classmethod
    def from_yaml(cls, text: str | bytes) -> Policy:
        """Parse a policy file; raises ``PolicyError`` naming the first bad field."""
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise PolicyError("", f"not valid YAML: {exc}") from None
        return cls.from_dict(doc)

    @classmethod
    def from_dict(cls, doc: object) -> Policy:
        top = _Fields(doc, "")
        api_version, kind = top.raw("apiVersion"), top.raw("kind")
        if api_version is not None and api_version != API_VERSION:
            raise PolicyError("apiVersion", f"expected {API_VERSION}, got {api_version!r}")
        if kind is not None and kind != KIND:
            raise PolicyError("kind", f"expected {KIND}, got {kind!r}")
        defaults = _parse_rules(top.raw("defaults"), "defaults", is_defaults=True)
        projects: dict[str, ProjectRules] = {}
        raw_projects = top.raw("projects")
        if raw_projects is None:
            raw_projects = {}
        if not isinstance(raw_projects, Mapping):
            raise PolicyError("projects", f"expected an object, got {type(raw_projects).__name__}")
        for name, rules in raw_projects.items():
            path = f"projects.{name}"
            if not isinstance(name, str) or not _DNS_LABEL.match(name):
                raise PolicyError(path, "a project is a namespace name (a lowercase DNS label)")
            projects[name] = _parse_rules(rules, path, is_defaults=False)
        top.done()
        return cls(defaults, projects)

    # -- the decision ----------------------------------------------------------------------------

    def allowed_namespaces(self, app_namespace: str) -> tuple[str, ...]:
        """The namespace globs an Application in ``app_namespace`` may deploy into: its project's
        ``namespaces``, or else its own namespace alone - never its self-chosen destination."""
        project = self.projects.get(app_namespace)
        if project is not None and project.namespaces is not None:
            own: tuple[str, ...] = project.namespaces
        else:
            own = (app_namespace,) if app_namespace else ()
        return own + (self.defaults.namespaces or ())

    def allows(self, app_namespace: str, key: ResourceKey) -> bool:
        """Whether an Application in ``app_namespace`` may deploy the object ``key`` - and so
        whether its live state is any of the app's business (the resource tree reads only
        that); a namespaced ``key`` with no name stands for its namespace."""
        api_version = f"{key.group}/v1" if key.group else "v1"
        obj = {
            "apiVersion": api_version,
            "kind": key.kind,
            "metadata": {"namespace": key.namespace, "name": key.name},
        }
        return self.check(app_namespace, obj, namespaced=bool(key.namespace)) is None

    def allowed_sources(self, app_namespace: str) -> tuple[str, ...] | None:
        """The repository URL globs of ``app_namespace``'s project; None: any repository."""
        project = self.projects.get(app_namespace, ProjectRules())
        if project.source_repos is None and self.defaults.source_repos is None:
            return None
        return (project.source_repos or ()) + (self.defaults.source_repos or ())

    def sync_windows(self, app_namespace: str) -> tuple[SyncWindow, ...]:
        """The windows of ``app_namespace``'s project and the defaults (each still matched
        against the app by its globs)."""
        project = self.projects.get(app_namespace, ProjectRules())
        return project.sync_windows + self.defaults.sync_windows

    def check_source(self, app_namespace: str, repo_url: str) -> str | None:
        """Why an Application in ``app_namespace`` may not fetch ``repo_url``, or None. The
        reason shows the URL without its userinfo, so it never carries a credential."""
        allowed = self.allowed_sources(app_namespace)
        if allowed is None:
            return None
        url = normalize_repo_url(repo_url)
        who = f"Applications in namespace {app_namespace!r}"
        if _has_dot_segment(url):
            return f"{url} has '.' or '..' path segments, which sourceRepos cannot vouch for"
        if any(fnmatch.fnmatchcase(url, normalize_repo_url(g)) for g in allowed):
            return None
        return f"{url} is not in the sourceRepos of {who} (allowed: {', '.join(allowed) or 'none'})"

    def check(
        self,
        app_namespace: str,
        obj: Mapping[str, Any],
        *,
        namespaced: bool | None = None,
    ) -> str | None:
        """Why ``obj`` may not be applied for an Application in ``app_namespace``, or None.

        ``obj`` is the prepared object (namespace resolved); ``namespaced`` says whether its kind
        is namespaced, and when None a ``metadata.namespace`` is taken to mean it is. An
        Application among the objects is judged like any other namespaced object: where it may be
        created is the parent's project's question; what it may then do is its own project's.
        """
        project = self.projects.get(app_namespace, ProjectRules())
        api_version = str(obj.get("apiVersion", ""))
        group = api_version.rpartition("/")[0] if "/" in api_version else ""
        kind = str(obj.get("kind", ""))
        meta = obj.get("metadata")
        meta = meta if isinstance(meta, Mapping) else {}
        namespace = str(meta.get("namespace") or "")
        name = str(meta.get("name") or "")
        label = _group_kind_label(group, kind)
        if namespaced is None:
            namespaced = bool(namespace)
        who = f"Applications in namespace {app_namespace!r}"

        for rule in project.denied_kinds + self.defaults.denied_kinds:
            if rule.matches(group, kind):
                return f"kind {label} is denied for {who} (rule {rule})"

        if group == RBAC_GROUP and kind in BINDING_KINDS:
            role_ref = obj.get("roleRef")
            role = str(role_ref.get("name", "")) if isinstance(role_ref, Mapping) else ""
            for pattern in project.denied_role_refs + self.defaults.denied_role_refs:
                if fnmatch.fnmatchcase(role, pattern):
                    return f"{kind} {name!r} binds the denied role {role!r}"

        allowed = self.allowed_namespaces(app_namespace)
        if namespaced:
            if not any(fnmatch.fnmatchcase(namespace, g) for g in allowed):
                return (
                    f"namespace {namespace!r} is not allowed for {who} "
                    f"(allowed: {', '.join(allowed) or 'none'}; the operator may add it to "
                    f"projects.{app_namespace or '<namespace>'}.namespaces of the --policy file)"
                )
            return None

        cluster = project.cluster_resources + self.defaults.cluster_resources
        if any(rule.matches(group, kind) for rule in cluster):
            return None
        if (
            group == ""
            and kind == "Namespace"
            and any(fnmatch.fnmatchcase(name, g) for g in allowed)
        ):
            return None
        return (
            f"cluster-scoped {label} is not allowed for {who} "
            f"(allowed cluster-scoped kinds: {', '.join(str(r) for r in cluster) or 'none'}, "
            "and the Namespace of an allowed namespace)"
        )


def _parse_rules(value: object, path: str, *, is_defaults: bool) -> ProjectRules:
    f = _Fields(value, path)
    namespaces: tuple[str, ...] | None = None
    if f.raw("namespaces") is not None:
        namespaces = tuple(
            _glob(item, f"{f.path('namespaces')}[{i}]")
            for i, item in enumerate(f.items("namespaces"))
        )
    cluster = _group_kinds(f, "clusterResources")
    denied = _group_kinds(f, "deniedKinds")
    source_repos: tuple[str, ...] | None = None
    if f.raw("sourceRepos") is not None:
        source_repos = tuple(
            _url_glob(item, f"{f.path('sourceRepos')}[{i}]")
            for i, item in enumerate(f.items("sourceRepos"))
        )
    if f.raw("deniedRoleRefs") is None:
        role_refs: tuple[str, ...] = DEFAULT_DENIED_ROLE_REFS if is_defaults else ()
    else:
        role_refs = tuple(
            _text(item, f"{f.path('deniedRoleRefs')}[{i}]")
            for i, item in enumerate(f.items("deniedRoleRefs"))
        )
    try:
        windows = parse_sync_windows(f.raw("syncWindows"), f.path("syncWindows"), scoped=True)
    except WindowError as exc:
        raise PolicyError(exc.field, exc.problem) from None
    f.done()
    return ProjectRules(namespaces, cluster, denied, role_refs, source_repos, windows)


def _group_kinds(f: _Fields, name: str) -> tuple[GroupKind, ...]:
    out = []
    for i, item in enumerate(f.items(name)):
        g = _Fields(item, f"{f.path(name)}[{i}]")
        group = g.raw("group")
        if group is None:
            group = ""
        if not isinstance(group, str):
            raise PolicyError(g.path("group"), f"expected a string, got {type(group).__name__}")
        kind = _text(g.raw("kind"), g.path("kind"))
        g.done()
        out.append(GroupKind(group, kind))
    return tuple(out)


def _text(value: object, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise PolicyError(path, f"expected a non-empty string, got {value!r}")
    return value


def _glob(value: object, path: str) -> str:
    text = _text(value, path)
    if not _GLOB.match(text):
        raise PolicyError(path, f"not a namespace name or glob (a-z, 0-9, '-', '*', '?'): {text!r}")
    return text


def _url_glob(value: object, path: str) -> str:
    text = _text(value, path)
    if len(text) > MAX_URL_GLOB or any(c.isspace() or not c.isprintable() for c in text):
        raise PolicyError(
            path,
            f"not a repository URL glob (at most {MAX_URL_GLOB} printable characters, no spaces)",
        )
    return text


def normalize_repo_url(url: str) -> str:
    """The form ``sourceRepos`` globs are matched against: no userinfo (a credential is not a
    location), scheme and host in lower case, no trailing ``/`` or ``.git``. The path keeps its
    case: on most Git servers ``Team-A`` and ``team-a`` are different owners."""
    if "://" in url:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2].lower()
        text = f"{parts.scheme.lower()}://{host}{parts.path}"
    elif scp := _SCP_LIKE.match(url):
        text = f"{scp['host'].lower()}:{scp['path']}"
    else:
        text = url
    text = text.rstrip("/")
    return text.removesuffix(".git").rstrip("/")


def _has_dot_segment(url: str) -> bool:
    """``org/../other``: curl and servers resolve these, so a glob on the text would be fooled."""
    path = url.split("://", 1)[-1]
    return any(seg in (".", "..") for seg in re.split(r"[/:\\]", unquote(path)))


class _Fields(SpecFields):
    """The spec field reader, raising ``PolicyError``."""

    error = PolicyError
