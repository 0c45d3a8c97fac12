"""Child-process entry point that renders one Helm chart: ``python -m gitsync.render.helm_worker``.

Helm runs in-process through ``helm_python`` (the real Helm v4 engine over ctypes), and a ctypes
call cannot be interrupted: a template that loops for an hour would hold a controller thread for an
hour. So the parent (``gitsync.render.helm``) starts this module as a child with a deadline and an
output cap and kills it if either is passed. Protocol: one JSON request on stdin
(``chart_dir``, ``values``, ``release_name``, ``namespace``, ``max_bytes``), one JSON reply on
stdout: ``{"templates": {path: text}, "crds": [{"filename", "data"}]}`` or ``{"error": text,
"limit": bool}``. Nothing here touches the network or a cluster; rendering is offline.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import helm_python


def render_chart(request: dict[str, Any]) -> dict[str, Any]:
    try:
        with helm_python.Chart.load(request["chart_dir"]) as chart:
            templates = chart.render(
                request["values"],
                name=request["release_name"],
                namespace=request["namespace"] or None,
                is_install=True,
            )
            crds = [{"filename": c["filename"], "data": c["data"]} for c in chart.crds]
    except helm_python.HelmError as exc:
        return {"error": f"{type(exc).__name__}: {exc}", "limit": False}
    size = sum(len(t.encode()) for t in templates.values()) + sum(
        len(c["data"].encode()) for c in crds
    )
    if size > request["max_bytes"]:
        return {
            "error": f"rendered chart is {size} bytes, over the limit of {request['max_bytes']}",
            "limit": True,
        }
    return {"templates": templates, "crds": crds}


def main() -> int:
    request = json.loads(sys.stdin.buffer.read())
    reply = render_chart(request)
    sys.stdout.write(json.dumps(reply))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
