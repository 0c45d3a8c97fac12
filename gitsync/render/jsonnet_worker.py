"""Child process that evaluates Jsonnet files: ``python -m gitsync.render.jsonnet_worker``.

Jsonnet is a full programming language: ``local f(x) = f(x + 1); f(0)`` never ends, and the
evaluator is C++ behind one uninterruptible call. So it runs here, in a child that the parent
(``gitsync.render.jsonnet``) starts with a deadline, an output cap and a memory limit and kills
when one is passed - the way the Helm worker is run.

Every ``import``, ``importstr`` and ``importbin`` goes through ``_confined_import``: an absolute
path is refused, and the file found (next to the importing file, else in a ``libs`` directory) must
*resolve* inside the repository checkout, so neither ``../../etc/passwd`` nor a symlink pointing
out of the checkout is read. Imported bytes count against ``max_input_bytes``.

Protocol: one JSON request on stdin (``root``, ``files``, ``libs``, ``ext_vars``, ``ext_codes``,
``tla_vars``, ``tla_codes``, ``max_bytes``, ``max_input_bytes``), one JSON reply on stdout:
``{"outputs": [json text per file]}`` or ``{"error": text, "file": path, "limit": bool}``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

import _jsonnet  # type: ignore[import-untyped]  # the C extension ships no stubs


class ImportRefused(Exception):
    """An import the confinement rules do not allow; the message names the import."""


def _inside(root: str, real: str) -> bool:
    return os.path.commonpath([root, real]) == root


def confined_importer(
    root: str, libs: list[str], max_input_bytes: int
) -> Callable[[str, str], tuple[str, bytes]]:
    """The import callback: ``(importing dir, imported path) -> (found path, content)``."""
    budget = [max_input_bytes]

    def _confined_import(base: str, rel: str) -> tuple[str, bytes]:
        if os.path.isabs(rel):
            raise ImportRefused(f"import {rel!r}: absolute paths are not allowed")
        for directory in [base, *libs]:
            candidate = os.path.normpath(os.path.join(directory, rel))
            real = os.path.realpath(candidate)
            if not _inside(root, real):
                raise ImportRefused(f"import {rel!r} resolves outside the repository")
            if not os.path.isfile(real):
                continue
            size = os.stat(real).st_size
            budget[0] -= size
            if budget[0] < 0:
                raise ImportRefused(f"imports exceed the limit of {max_input_bytes} bytes")
            with open(real, "rb") as fh:
                return candidate, fh.read(size + 1)
        raise ImportRefused(f"import {rel!r}: file not found next to the importer or in libs")

    return _confined_import


def evaluate(request: dict[str, Any]) -> dict[str, Any]:
    root = request["root"]
    importer = confined_importer(root, request["libs"], request["max_input_bytes"])
    outputs: list[str] = []
    total = 0
    for path in request["files"]:
        try:
            text: str = _jsonnet.evaluate_file(
                path,
                ext_vars=request["ext_vars"],
                ext_codes=request["ext_codes"],
                tla_vars=request["tla_vars"],
                tla_codes=request["tla_codes"],
                import_callback=importer,
            )
        except RuntimeError as exc:
            message = str(exc).replace(root + os.sep, "")
            return {"error": message[:4000], "file": path, "limit": "limit of" in message}
        total += len(text.encode())
        if total > request["max_bytes"]:
            return {
                "error": f"Jsonnet output exceeds the limit of {request['max_bytes']} bytes",
                "file": path,
                "limit": True,
            }
        outputs.append(text)
    return {"outputs": outputs}


def main() -> int:
    reply = evaluate(json.loads(sys.stdin.buffer.read()))
    sys.stdout.write(json.dumps(reply))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
