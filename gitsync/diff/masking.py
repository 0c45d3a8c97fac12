"""Masking Secret values so diffs can be shown and logged without revealing them.

A diff of a Secret must still tell the user *whether* a value changed, so each value is replaced
by ``++++++++ (hmac-sha256:<8 hex>)``: the first 8 hex digits of an HMAC-SHA256 of the decoded
value under a random key generated once per process, in the context of the Application whose
diff shows it.

Why a keyed hash: Secret values are often short (a port, a PIN, a dictionary password); a plain
SHA-256 of them, even truncated, is brute-forced in seconds. The HMAC key is 256 random bits that
never leave process memory, so the mask reveals nothing to anyone who cannot already read the
process (which can read the Secrets anyway). Within one process the mask is stable, so the same
value in desired and live masks the same (and a UI refresh does not flicker); a changed value
masks differently. The hashed message also carries the resource key and the data key, so masks
cannot be compared across fields or Secrets to learn that two passwords are equal.

Why the Application is in the context (``scope``): every app's diff is computed in the same
process, and a tenant's Git may render a Secret under another tenant's namespace and name (the
destination policy refuses to sync it, but its render is still diffed: the history diff compares
two renders, no live read needed). Were the context only the resource key, the mask of a value
the tenant guessed, shown in its own app's diff, would equal the mask of the real value in the
victim app's diff whenever the victim's Secret is OutOfSync - a guess confirmed by anyone who may
read both apps. With the app's ``namespace/name`` hashed in, masks are comparable within one
app's diffs (desired against live, the history diff's two sides, one refresh and the next) and
never across apps. The parts of the context are hashed as a JSON array, so no choice of names
can make two different contexts hash the same message.

Why not ``<changed>``/``<unchanged>`` labels computed from the comparison: that needs both sides,
but ``mask_secret`` must also mask a single object (a live Secret shown on its own), and the labels
cannot be rendered inside a unified diff where each side is one YAML document.

Costs, stated plainly: masks change when the process restarts and differ between replicas, so
never persist or compare them across processes; 32 bits can collide (about 1 in 4 billion), which
would only make a changed value *look* unchanged in the rendered diff - the sync status is always
computed from the real values, never from masks.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any

from gitsync.diff.normalize import decode_base64, key_of

MASK_PREFIX = "++++++++"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
REDACTED = f"{MASK_PREFIX} (redacted)"

_PROCESS_KEY = secrets.token_bytes(32)
_SECRET_FIELDS = ("data", "stringData")


def is_secret(obj: dict[str, Any]) -> bool:
    """Whether ``obj`` is masked: any kind named ``Secret``, whatever its group (err on the side
    of hiding)."""
    return obj.get("kind") == "Secret"


def mask_secret(obj: dict[str, Any], *, scope: str) -> dict[str, Any]:
    """A copy of ``obj`` with every ``data``/``stringData`` value masked (Secrets only), for the
    diffs of the Application ``scope`` (its ``namespace/name``; see the module docstring).

    ``data`` values are hashed as decoded bytes, so the base64 ``data`` form and the plain
    ``stringData`` form of one value mask the same. The ``last-applied-configuration`` annotation,
    which holds the values in clear, is replaced by a fixed placeholder. Other kinds come back as a
    shallow copy. Never mutates ``obj``; unchanged sub-trees are shared with it.
    """
    out = dict(obj)
    if not is_secret(obj):
        return out
    resource = str(key_of(obj))
    for field_name in _SECRET_FIELDS:
        values = obj.get(field_name)
        if isinstance(values, dict):
            out[field_name] = {
                k: None
                if v is None
                else mask_value(v, context=(scope, resource, k), encoded=field_name == "data")
                for k, v in values.items()
            }
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        annotations = meta.get("annotations")
        if isinstance(annotations, dict) and LAST_APPLIED in annotations:
            out["metadata"] = {**meta, "annotations": {**annotations, LAST_APPLIED: REDACTED}}
    return out


def mask_value(value: Any, *, context: tuple[str, ...], encoded: bool) -> str:
    """The mask of one value in ``context`` (app, resource, data key); ``encoded`` says it is
    base64 (a ``data`` value) to hash decoded."""
    # JSON escapes control characters, so the first NUL ends the context unambiguously
    framed = json.dumps(context).encode("utf-8", "surrogatepass")
    digest = hmac.new(
        _PROCESS_KEY,
        framed + b"\x00" + _value_bytes(value, encoded),
        hashlib.sha256,
    ).hexdigest()
    return f"{MASK_PREFIX} (hmac-sha256:{digest[:8]})"


def _value_bytes(value: Any, encoded: bool) -> bytes:
    if isinstance(value, str):
        if encoded:
            decoded = decode_base64(value)
            if decoded is not None:
                return decoded
        return value.encode("utf-8", "surrogatepass")
    return json.dumps(value, sort_keys=True, default=str).encode()
