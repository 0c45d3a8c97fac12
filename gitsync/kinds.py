"""The names gitsync's own API lives under: one group, one version, its kinds.

Every module that writes or recognises a gitsync object (an Application, an ApplicationSet, a
Rollout, the DestinationPolicy) takes the spelling from here, so serving a new version or adding
a kind is a one-place change and no module recognises "a Rollout" by its own string. A leaf: it
imports nothing from gitsync, so the pure cores (diff, health, the rollout decisions) may use it.
Annotations keep their full names where they are defined: they are wire names users type.
"""

from __future__ import annotations

GROUP = "gitsync.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

APPLICATION = "Application"
ROLLOUT = "Rollout"
APPLICATION_SET = "ApplicationSet"
DESTINATION_POLICY = "DestinationPolicy"
NOTIFICATION_PROVIDER = "NotificationProvider"
NOTIFICATION_RULE = "NotificationRule"


def is_application(group: object, kind: object) -> bool:
    """Whether (``group``, ``kind``) - a ``ResourceKey``'s or a status entry's - is an
    Application."""
    return group == GROUP and kind == APPLICATION


def is_rollout(group: object, kind: object) -> bool:
    """Whether (``group``, ``kind``) is a gitsync Rollout (not Argo's ``argoproj.io`` one)."""
    return group == GROUP and kind == ROLLOUT
