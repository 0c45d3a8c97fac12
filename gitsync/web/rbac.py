"""Who may do what to which project: roles, the RBAC policy file and the one authorizer.

A **project** is an Application's namespace (as in the destination policy, ``gitsync.policy``),
so a decision never needs the Application itself: ``allows(principal, action, "team-b")`` is the
same whether ``team-b/x`` exists or not, and a refusal can reveal nothing about what is there.

Roles nest: ``viewer`` (get) < ``operator`` (+ sync, refresh, rollout: promote / abort / pause /
resume) < ``admin`` (+ rollback, logs, diff-secrets). The ``admin`` *action* (token management)
needs the admin role granted globally; a project admin cannot mint tokens for other projects.

A principal's roles come from two places, and the highest role that applies wins:

* its own **grants** - what its credential carries: the admin password and the static token files
  grant a global role (today's behaviour when there is no policy), a scoped API token grants its
  role on its project glob;
* the **policy** (``--rbac-policy FILE``, or the chart's ConfigMap) binding subjects -
  ``user:alice@example.com``, ``group:team-a``, ``token:ci-a`` - to a role on project globs or
  globally::

      bindings:
        - subjects: [group:team-a, token:ci-a]
          role: operator
          projects: [team-a, "team-a-*"]
        - subjects: [group:platform]
          role: admin
          global: true

This module is pure (no Flask, no Kubernetes): parsing refuses unknown keys and bad values with
the line and the field, so ``gitsync serve`` stops at startup instead of guessing.
"""

from __future__ import annotations

import enum
import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import yaml

MAX_POLICY_BYTES = 1024 * 1024
MAX_BINDINGS = 10_000
# a namespace glob: the characters of a namespace name plus the fnmatch wildcards
PROJECT_GLOB = re.compile(r"^[a-z0-9*?\[\]!.-]{1,253}$")
SUBJECT = re.compile(r"^(user|group|token):[^\s]{1,320}$")


class Role(enum.StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Role.VIEWER: 1, Role.OPERATOR: 2, Role.ADMIN: 3}


class Action(enum.StrEnum):
    """What a request asks to do; wire names (policy files, audit lines, error messages)."""

    GET = "get"
    SYNC = "sync"
    REFRESH = "refresh"
    ROLLOUT = "rollout"  # promote, abort, retry, pause, resume (a Rollout or automated sync)
    ROLLBACK = "rollback"
    LOGS = "logs"
    DIFF_SECRETS = "diff-secrets"  # the diff of an Application that manages Secrets
    ADMIN = "admin"  # token management; only with the admin role granted globally


ROLE_ACTIONS: Mapping[Role, frozenset[Action]] = {
    Role.VIEWER: frozenset({Action.GET}),
    Role.OPERATOR: frozenset({Action.GET, Action.SYNC, Action.REFRESH, Action.ROLLOUT}),
    Role.ADMIN: frozenset(
        {
            Action.GET,
            Action.SYNC,
            Action.REFRESH,
            Action.ROLLOUT,
            Action.ROLLBACK,
            Action.LOGS,
            Action.DIFF_SECRETS,
            Action.ADMIN,
        }
    ),
}

# what each Application action of the UI and API (gitsync.web.actions.ACTIONS) needs
APP_ACTIONS: Mapping[str, Action] = {
    "sync": Action.SYNC,
    "refresh": Action.REFRESH,
    "rollback": Action.ROLLBACK,
    "pause": Action.ROLLOUT,
    "resume": Action.ROLLOUT,
}


class PolicyError(ValueError):
    """An RBAC policy that ``gitsync serve`` refuses to start with (names the line and field)."""


@dataclass(frozen=True)
class Grant:
    """``role`` on the projects matching any of ``projects``; ``projects`` None means global."""

    role: Role
    projects: tuple[str, ...] | None = None

    def covers(self, project: str | None) -> bool:
        if self.projects is None:
            return True
        if project is None:  # a global question (token management) needs a global grant
            return False
        return any(fnmatch.fnmatchcase(project, glob) for glob in self.projects)


class Identity(Protocol):
    """What the authorizer reads of a principal (``gitsync.web.auth.Principal``)."""

    @property
    def subjects(self) -> tuple[str, ...]: ...

    @property
    def grants(self) -> tuple[Grant, ...]: ...


@dataclass(frozen=True)
class Binding:
    subjects: frozenset[str]
    grant: Grant


@dataclass(frozen=True)
class Policy:
    bindings: tuple[Binding, ...] = ()

    def grants_for(self, subjects: Iterable[str]) -> tuple[Grant, ...]:
        wanted = set(subjects)
        return tuple(b.grant for b in self.bindings if b.subjects & wanted)


class Authorizer:
    """The one place every page, API route and action asks (see the module docstring)."""

    def __init__(self, policy: Policy | None = None):
        self.policy = policy or Policy()

    def role(self, principal: Identity, project: str | None) -> Role | None:
        """The highest role ``principal`` has on ``project`` (None: a global question)."""
        grants = (*principal.grants, *self.policy.grants_for(principal.subjects))
        roles = [g.role for g in grants if g.covers(project)]
        return max(roles, key=lambda r: r.rank) if roles else None

    def allows(
        self, principal: Identity, action: Action, target: str | tuple[str, str] | None
    ) -> bool:
        """Whether ``principal`` may do ``action`` in ``target``: a project (an Application's
        namespace) or an Application's key; ``None`` asks globally."""
        project = target[0] if isinstance(target, tuple) else target
        role = self.role(principal, project)
        if role is None or action not in ROLE_ACTIONS[role]:
            return False
        if action == Action.ADMIN:
            return self.role(principal, None) == Role.ADMIN
        return True

    def visible(self, principal: Identity, app_key: tuple[str, str]) -> bool:
        return self.allows(principal, Action.GET, app_key[0])

    def has_any_grant(self, principal: Identity) -> bool:
        """Whether ``principal`` holds any role anywhere (a signed-in user without one is told
        so instead of being shown empty lists without a word)."""
        return bool(principal.grants or self.policy.grants_for(principal.subjects))

    def may_act_somewhere(self, principal: Identity) -> bool:
        """Whether any grant or binding lets ``principal`` do more than read (a coarse first
        check before the per-project one)."""
        grants = (*principal.grants, *self.policy.grants_for(principal.subjects))
        return any(g.role.rank >= Role.OPERATOR.rank for g in grants)


# -- parsing -----------------------------------------------------------------------------------

_TOP_KEYS = {"bindings"}
_BINDING_KEYS = {"subjects", "role", "projects", "global"}


def _where(node: yaml.Node) -> str:
    return f"line {node.start_mark.line + 1}"


def _mapping(node: yaml.Node, what: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        raise PolicyError(f"{_where(node)}: {what} must be a mapping")
    out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode):
            raise PolicyError(f"{_where(key)}: {what}: keys must be strings")
        if key.value in out:
            raise PolicyError(f"{_where(key)}: {what}: {key.value!r} is given twice")
        out[key.value] = (key, value)
    return out


def _refuse_unknown(
    fields: dict[str, tuple[yaml.Node, yaml.Node]], known: set[str], what: str
) -> None:
    for name, (key, _) in fields.items():
        if name not in known:
            raise PolicyError(
                f"{_where(key)}: {what}: unknown key {name!r} (known: {', '.join(sorted(known))})"
            )


def _strings(node: yaml.Node, what: str) -> list[tuple[yaml.Node, str]]:
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        raise PolicyError(f"{_where(node)}: {what} must be a non-empty list of strings")
    out: list[tuple[yaml.Node, str]] = []
    for item in node.value:
        if not isinstance(item, yaml.ScalarNode) or item.tag != "tag:yaml.org,2002:str":
            raise PolicyError(f"{_where(item)}: {what}: every entry must be a string")
        out.append((item, item.value))
    return out


def parse_role(text: str, what: str = "role") -> Role:
    try:
        return Role(text)
    except ValueError:
        raise PolicyError(f"{what}: {text!r} is not a role (viewer, operator or admin)") from None


def check_project_glob(text: str, what: str = "project") -> str:
    if not PROJECT_GLOB.match(text):
        raise PolicyError(
            f"{what}: {text!r} is not a namespace or namespace glob (e.g. team-a, team-a-*)"
        )
    return text


def _binding(node: yaml.Node, index: int) -> Binding:
    what = f"bindings[{index}]"
    fields = _mapping(node, what)
    _refuse_unknown(fields, _BINDING_KEYS, what)
    for required in ("subjects", "role"):
        if required not in fields:
            raise PolicyError(f"{_where(node)}: {what}: {required} is required")
    subjects = []
    for item, text in _strings(fields["subjects"][1], f"{what}.subjects"):
        if not SUBJECT.match(text):
            raise PolicyError(
                f"{_where(item)}: {what}.subjects: {text!r} must be user:NAME, group:NAME "
                "or token:NAME"
            )
        subjects.append(text)
    role_node = fields["role"][1]
    if not isinstance(role_node, yaml.ScalarNode):
        raise PolicyError(f"{_where(role_node)}: {what}.role must be a string")
    try:
        role = parse_role(role_node.value, f"{what}.role")
    except PolicyError as exc:
        raise PolicyError(f"{_where(role_node)}: {exc}") from None
    is_global = False
    if "global" in fields:
        flag = fields["global"][1]
        if not isinstance(flag, yaml.ScalarNode) or flag.tag != "tag:yaml.org,2002:bool":
            raise PolicyError(f"{_where(flag)}: {what}.global must be true or false")
        is_global = flag.value.lower() == "true"
    if is_global == ("projects" in fields):
        raise PolicyError(f"{_where(node)}: {what}: give either projects or global: true")
    projects: tuple[str, ...] | None = None
    if not is_global:
        globs = []
        for item, text in _strings(fields["projects"][1], f"{what}.projects"):
            try:
                globs.append(check_project_glob(text, f"{what}.projects"))
            except PolicyError as exc:
                raise PolicyError(f"{_where(item)}: {exc}") from None
        projects = tuple(globs)
    return Binding(frozenset(subjects), Grant(role, projects))


def parse_policy(text: str, source: str = "policy") -> Policy:
    """A policy from YAML text; ``PolicyError`` naming ``source``, the line and the field."""
    if len(text.encode()) > MAX_POLICY_BYTES:
        raise PolicyError(f"{source}: larger than {MAX_POLICY_BYTES} bytes")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: not valid YAML: {exc}") from None
    if root is None:
        raise PolicyError(f"{source}: the policy is empty (give bindings: [...])")
    try:
        fields = _mapping(root, "the policy")
        _refuse_unknown(fields, _TOP_KEYS, "the policy")
        if "bindings" not in fields:
            raise PolicyError(f"{_where(root)}: the policy: bindings is required")
        items = fields["bindings"][1]
        if not isinstance(items, yaml.SequenceNode):
            raise PolicyError(f"{_where(items)}: bindings must be a list")
        if len(items.value) > MAX_BINDINGS:
            raise PolicyError(f"{_where(items)}: more than {MAX_BINDINGS} bindings")
        return Policy(tuple(_binding(item, i) for i, item in enumerate(items.value)))
    except PolicyError as exc:
        raise PolicyError(f"{source}: {exc}") from None


def load_policy(path: str | Path) -> Policy:
    try:
        data = Path(path).read_bytes()[: MAX_POLICY_BYTES + 1]
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"--rbac-policy: cannot read {path}: {exc}") from None
    return parse_policy(text, f"--rbac-policy {path}")
