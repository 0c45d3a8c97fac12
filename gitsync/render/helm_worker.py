"""Child-process entry point that renders one Helm chart: ``python -m gitsync.render.helm_worker``.

Helm runs in-process through ``helm_python`` (the real Helm v4 engine over ctypes), and a ctypes
call cannot be interrupted: a template that loops for an hour would hold a controller thread for an
hour. So the parent (``gitsync.render.helm``) starts this module as a child with a deadline and an
output cap and kills it if either is passed. Protocol: one JSON request on stdin
(``chart_dir``, ``values``, ``release_name``, ``namespace``, ``kube_version``, ``api_versions``,
``max_bytes``), one JSON reply on stdout: ``{"templates": {path: text}, "crds": [{"filename",
"data"}]}`` or ``{"error": text, "limit": bool}``. Nothing here touches the network or a
cluster; rendering is offline.

``.Capabilities``: helm-python-sdk 0.2.2, its newest release, does not expose a kube version or API
versions in ``Chart.render``, but the render function of its C ABI (``helm_render``, which
``Chart.render`` itself calls) takes them as render options, ``kube_version`` and
``api_versions``, the same values as ``helm template --kube-version/--api-versions``. The library
decodes those options strictly (an unknown key is an ``HelmInvalidArgError``), so a release that
dropped them would fail every render that passes them - every render the controller makes -
loudly, instead of silently rendering with default capabilities. Every render goes through that
one call.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import helm_python
from helm_python import _native


def render_options(request: dict[str, Any]) -> dict[str, Any]:
    """The C ABI's render options: what ``Chart.render`` passes, plus the capabilities."""
    options: dict[str, Any] = {"name": request["release_name"], "is_install": True}
    if request["namespace"]:
        options["namespace"] = request["namespace"]
    if request.get("kube_version"):
        options["kube_version"] = request["kube_version"]
    if request.get("api_versions"):
        options["api_versions"] = list(request["api_versions"])
    return options


def _render(chart: helm_python.Chart, request: dict[str, Any]) -> dict[str, str]:
    rendered = _native.call_string(
        "helm_render",
        chart._raw(),
        json.dumps(request["values"]),
        json.dumps(render_options(request)),
    )
    templates: dict[str, str] = json.loads(rendered)
    return templates


def render_chart(request: dict[str, Any]) -> dict[str, Any]:
    try:
        with helm_python.Chart.load(request["chart_dir"]) as chart:
            templates = _render(chart, request)
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
