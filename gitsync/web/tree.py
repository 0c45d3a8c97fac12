"""The resource tree as the API and the app page serve it (``GET .../<ns>/<name>/tree``).

The controller builds the document from its watch cache (``ControllerView.application_tree``);
this module parses the query (``?orphans=true``) and maps the controller's errors to statuses.
The page renders the same document the API returns, so the list view, the graph and
``gitsync app get`` show the same nodes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gitsync.controller.interface import ControllerView
from gitsync.errors import GitsyncError
from gitsync.source import redact_url

AppKey = tuple[str, str]
MAX_ERROR = 300


@dataclass(frozen=True)
class TreeError(Exception):
    status: int
    message: str


def parse_orphans(args: Mapping[str, str]) -> bool:
    """``?orphans=true|false`` (also 1/0, yes/no); anything else is a ``ValueError``."""
    raw = str(args.get("orphans") or "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise ValueError("orphans must be true or false")


def application_tree(controller: ControllerView, key: AppKey, *, orphans: bool) -> dict[str, Any]:
    """The tree document of ``key``; ``TreeError`` 404 when there is no such Application, 502
    when its cluster cannot be read."""
    try:
        doc = controller.application_tree(key, orphans=orphans)
    except GitsyncError as exc:
        raise TreeError(502, f"cannot read the tree: {redact_url(str(exc))[:MAX_ERROR]}") from exc
    if doc is None:
        raise TreeError(404, f"no Application {key[0]}/{key[1]}")
    return {"namespace": key[0], "name": key[1], **doc}
