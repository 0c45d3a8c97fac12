"""``gitsync app get``'s resource tree in text: one line per node, indented by depth.

The tree is the API's document (``GET /api/v1/applications/<ns>/<name>/tree``); this only prints
it, like ``argocd app resources --output tree``. Every value is one cell (``appclient._cell``
rules: no newline from the cluster can start a line of its own).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

INDENT = "  "


def _one_line(value: object) -> str:
    return " ".join(("" if value is None else str(value)).split())


def _node_line(node: Mapping[str, Any]) -> str:
    health = node.get("health") or {}
    parts = [f"{_one_line(node.get('kind'))}/{_one_line(node.get('name'))}"]
    if node.get("sync"):
        parts.append(_one_line(node["sync"]))
    parts.append(_one_line(health.get("status")) or "Unknown")
    if node.get("role"):
        parts.append(f"[{_one_line(node['role'])}]")
    pod = node.get("pod")
    if isinstance(pod, Mapping):
        restarts = pod.get("restarts", 0)
        parts.append(f"{_one_line(pod.get('phase'))} {_one_line(pod.get('ready'))} ready")
        parts.append(f"{restarts} restart{'' if restarts == 1 else 's'}")
        if pod.get("reason"):
            parts.append(_one_line(pod["reason"]))
    elif health.get("message"):
        parts.append(f"({_one_line(health['message'])[:200]})")
    if node.get("age"):
        parts.append(_one_line(node["age"]))
    return "  ".join(parts)


def _lines(nodes: Sequence[Mapping[str, Any]], depth: int) -> list[str]:
    out = []
    for node in nodes:
        out.append(INDENT * depth + _node_line(node))
        out += _lines(node.get("children") or (), depth + 1)
        if node.get("more"):
            out.append(INDENT * (depth + 1) + f"+{node['more']} more")
    return out


def format_tree(doc: Mapping[str, Any]) -> str:
    """The tree document as indented lines (orphans after the tree, when listed)."""
    lines = [f"Application/{_one_line(doc.get('name'))}"]
    lines += _lines(doc.get("nodes") or (), 1)
    orphans = doc.get("orphans")
    if isinstance(orphans, list):
        lines += ["", "Orphans:", *_lines(orphans, 1)]
    for warning in doc.get("warnings") or ():
        lines.append(f"note: {_one_line(warning)}")
    return "\n".join(lines) + "\n"
