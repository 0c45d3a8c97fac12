"""Replica arithmetic and template identity for rollouts without a traffic router. Pure.

Without a router the only traffic control is the number of ready pods behind the Service, so the
weight of a step becomes a replica count. Users of other tools complain that weights are wrong
with few replicas (20 % of 3 pods rounds to 0 and the "canary" gets no traffic; 90 % of 3 rounds
to 3 and stable is gone). The rule here, for ``N`` total replicas and weight ``w``:

* ``w == 0``: no canary; ``w == 100``: all ``N`` pods are canary (the promotion path).
* otherwise the canary gets the nearest whole number to ``N * w / 100``, **rounding half up**
  (2.5 -> 3, 0.5 -> 1), computed in integers so no float error can tip a tie;
* clamped to ``1 .. N-1``: never 0 canary pods at ``w > 0``, never all pods at ``w < 100``;
* stable gets the rest, ``N - canary``, so the total stays ``N``;
* ``N == 1`` cannot be split: at ``0 < w < 100`` it runs 1 canary **and** 1 stable pod (``N + 1``
  in total, a 50/50 split being the closest to any weight that keeps both sides serving);
* ``N == 0`` has nothing to split: ``(0, 0)``.

The weight reported in status is measured, never assumed: ``actual_weight`` counts **ready** pods
only, with the same rounding.

``template_hash`` identifies a pod template as *rendered from Git*. It is computed from the
manifest, never from the live object: the API server adds defaults (``imagePullPolicy``,
``terminationMessagePath``, ``dnsPolicy``, ...) that Git does not set, so hashing the live
template would see a change where there is none. Normalization makes equivalent renderings hash
alike: key order, ``null`` fields (absent), integral floats (``1.0`` is ``1``), the
``protocol: TCP`` the sync layer adds to container ports, and the labels the rollout itself adds to
canary pods.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

ROLE_LABEL = "rollouts.gitsync.dev/role"
HASH_LABEL = "rollouts.gitsync.dev/template-hash"
ROLLOUT_LABELS = (ROLE_LABEL, HASH_LABEL)
HASH_LENGTH = 16


def round_half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded to the nearest integer, ties up (non-negative input)."""
    return (2 * numerator + denominator) // (2 * denominator)


def canary_replicas(total: int, weight: int) -> tuple[int, int]:
    """``(canary, stable)`` replica counts for ``weight`` percent of ``total`` (see module doc)."""
    if total < 0:
        raise ValueError(f"total replicas must not be negative, got {total}")
    if not 0 <= weight <= 100:
        raise ValueError(f"weight must be from 0 to 100, got {weight}")
    if weight == 0 or total == 0:
        return 0, total
    if weight == 100:
        return total, 0
    if total == 1:
        return 1, 1
    canary = min(max(round_half_up(total * weight, 100), 1), total - 1)
    return canary, total - canary


def actual_weight(ready_canary: int, ready_stable: int) -> int:
    """The percentage of ready pods that run the canary (0 when no pod is ready)."""
    if ready_canary < 0 or ready_stable < 0:
        raise ValueError("ready pod counts must not be negative")
    ready = ready_canary + ready_stable
    if ready == 0:
        return 0
    return round_half_up(100 * ready_canary, ready)


def next_replicas(
    total: int,
    target: tuple[int, int],
    current: tuple[int, int],
    ready_canary: int,
) -> tuple[int, int]:
    """The next ``(canary, stable)`` replica counts on the way from ``current`` to ``target``.

    Moves one surge pod at a time so that a step never runs more than ``max(N + 1, target
    total)`` pods and never has fewer than ``N`` pods *ready* (counting the canary's ready pods):
    the canary grows only while there is room under the limit, and the stable side shrinks only
    by as many pods as the canary has ready beyond ``N``. Going down (a lower weight) is
    immediate: stable grows back first, in the same update the canary shrinks. Call it again
    with fresh observations until it returns ``target``.
    """
    target_canary, target_stable = target
    canary, stable = current
    limit = max(total + 1, target_canary + target_stable)
    stable = max(stable, target_stable)
    canary = min(canary, target_canary)
    if stable > target_stable:
        stable = max(target_stable, min(stable, total - min(ready_canary, canary)))
    if canary < target_canary:
        room = limit - (canary + stable)
        if room > 0:
            canary = min(target_canary, canary + room)
    return canary, stable


def _normalized(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _normalized(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_normalized(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def normalized_template(pod_template: dict[str, Any]) -> dict[str, Any]:
    """``pod_template`` in the form that is hashed (a new dict; the input is not changed)."""
    template: dict[str, Any] = _normalized(pod_template)
    meta = template.get("metadata")
    if isinstance(meta, dict):
        meta.pop("creationTimestamp", None)
        labels = meta.get("labels")
        if isinstance(labels, dict):
            for label in ROLLOUT_LABELS:
                labels.pop(label, None)
    spec = template.get("spec")
    if isinstance(spec, dict):
        for field in ("containers", "initContainers"):
            containers = spec.get(field)
            if not isinstance(containers, list):
                continue
            for container in containers:
                ports = container.get("ports") if isinstance(container, dict) else None
                if isinstance(ports, list):
                    for port in ports:
                        if isinstance(port, dict):
                            port.setdefault("protocol", "TCP")
    return template


def template_hash(pod_template: dict[str, Any]) -> str:
    """A short, label-safe hash of the normalized, *rendered* pod template (see module doc)."""
    text = json.dumps(
        normalized_template(pod_template), sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_LENGTH]
