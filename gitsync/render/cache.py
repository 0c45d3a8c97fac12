"""Memoising renders per (commit, path, render parameters).

A commit SHA names an immutable tree, so the same path rendered with the same parameters at the
same commit always gives the same manifests - the controller's periodic reconcile should not pay
for kustomize or Helm again when nothing was pushed. The key deliberately leaves out
``repo_root``: two checkouts (worktrees) of one commit share entries. Errors are not cached: a
timeout on a busy node may succeed next time, and a real error is cheap to reproduce.

The cache is an LRU bounded by entry count and by the total number of manifests it holds, safe to
share between reconcile threads, and renders a missing key once even when several threads ask for
it at the same moment (the others wait for that render). The entry bound is generous (4,096) on
purpose: one controller refreshes every app in turn, and an LRU smaller than the number of apps
would miss on every single refresh; memory is bounded by the manifest count instead.

Callers get their own copies, so a caller mutating an object (the sync layer setting a namespace)
cannot change what the next caller sees. An entry keeps its objects encoded - one bytes blob per
entry - and a hit decodes it into fresh dicts and lists. orjson decodes a 1,000-manifest app about
3 times faster than a Python walk copying the objects (``manifest.copy_object``; ``copy.deepcopy``
was slower still), and a blob takes a fraction of the memory of the live objects, so the cache
holds more apps in the same RSS. JSON cannot carry everything YAML can (a timestamp, an integer
beyond 64 bits, a ``.nan``, a non-string key, a ``!!set``), so an entry is stored as JSON only when
decoding it gives back exactly what was rendered, checked once when it is stored; anything else is
pickled (slower, exact). Both blobs are made here from the renderer's own output and never leave
the process, so decoding trusts nothing from outside.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

import orjson

from gitsync.model import ResourceKey
from gitsync.render.manifest import RenderedManifest
from gitsync.render.options import RenderRequest
from gitsync.render.renderer import render

CacheKey = tuple[str, str, str]
Renderer = Callable[[RenderRequest], list[RenderedManifest]]


def _encode(objs: list[dict[str, Any]]) -> tuple[bool, bytes]:
    """``(is_json, blob)``: JSON when it decodes back to exactly ``objs``, else a pickle."""
    try:
        blob = orjson.dumps(objs, option=orjson.OPT_PASSTHROUGH_DATETIME)
    except TypeError:  # orjson.JSONEncodeError: a date, a big int, a set, a non-string key...
        pass
    else:
        if orjson.loads(blob) == objs:  # ``nan`` would come back as ``None``, a tuple as a list
            return True, blob
    return False, pickle.dumps(objs, pickle.HIGHEST_PROTOCOL)


@dataclasses.dataclass(frozen=True)
class _Entry:
    """One render result: each manifest's identity in the clear, all objects in one blob."""

    heads: tuple[tuple[ResourceKey, str, str | None], ...]  # key, source, hook
    is_json: bool
    blob: bytes  # the list of objects, in order

    @classmethod
    def of(cls, manifests: list[RenderedManifest]) -> _Entry:
        is_json, blob = _encode([m.obj for m in manifests])
        return cls(tuple((m.key, m.source, m.hook) for m in manifests), is_json, blob)

    def manifests(self) -> list[RenderedManifest]:
        """Fresh objects every call: the caller may change them."""
        decode = orjson.loads if self.is_json else pickle.loads  # our own blob: see the top
        objs = decode(self.blob)
        return [
            RenderedManifest(key, obj, source, hook)
            for (key, source, hook), obj in zip(self.heads, objs, strict=True)
        ]

    def __len__(self) -> int:
        return len(self.heads)


def _plain(value: object) -> object:
    """Dataclasses, mappings and sequences as JSON-ready values, for a stable hash."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def parameters_hash(req: RenderRequest) -> str:
    """A stable hash of everything in the request except the checkout locations (``repo_root``
    and the ref sources' ``helm.ref_roots``) and the path: the commit key the caller passes
    names what those checkouts hold (for refs, ``Engine.render`` adds their revisions)."""
    if req.helm is not None and req.helm.ref_roots:
        req = dataclasses.replace(req, helm=dataclasses.replace(req.helm, ref_roots={}))
    params = {
        f.name: _plain(getattr(req, f.name))
        for f in dataclasses.fields(req)
        if f.name not in ("repo_root", "path")
    }
    try:  # orjson: every refresh of every app computes this key
        text = orjson.dumps(
            params, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=repr
        )
    except TypeError:  # orjson.JSONEncodeError: e.g. an int too big for 64 bits
        text = json.dumps(params, sort_keys=True, default=repr).encode()
    return hashlib.sha256(text).hexdigest()


class RenderCache:
    """LRU of render results keyed by ``(commit_sha, path, parameters_hash)``."""

    def __init__(
        self,
        max_entries: int = 4096,
        *,
        max_manifests: int = 200_000,
        renderer: Renderer = render,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self.max_manifests = max_manifests
        self._render = renderer
        self._lock = threading.Lock()
        self._entries: OrderedDict[CacheKey, _Entry] = OrderedDict()
        self._manifests = 0  # held in _entries, for max_manifests
        self._inflight: dict[CacheKey, Future[_Entry]] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    @staticmethod
    def key(commit_sha: str, req: RenderRequest) -> CacheKey:
        return (commit_sha, req.path, parameters_hash(req))

    def get_or_render(self, commit_sha: str, req: RenderRequest) -> list[RenderedManifest]:
        """The manifests for ``req`` at ``commit_sha``, rendering only on a miss."""
        key = self.key(commit_sha, req)
        with self._lock:
            cached = self._entries.get(key)
            pending = None if cached is not None else self._inflight.get(key)
            if cached is not None:
                self._entries.move_to_end(key)
                self.hits += 1
            elif pending is not None:
                self.hits += 1  # served by the render already in flight
            else:
                self.misses += 1
                owner: Future[_Entry] = Future()
                self._inflight[key] = owner
        if cached is not None:  # entries are immutable: unpickle outside the lock
            return cached.manifests()
        if pending is not None:  # another thread is rendering this key
            return pending.result().manifests()
        try:
            result = self._render(req)
            stored = _Entry.of(result)  # the caller keeps ``result``: the blob is a copy
        except BaseException as exc:
            with self._lock:
                del self._inflight[key]
            owner.set_exception(exc)
            raise
        with self._lock:
            del self._inflight[key]
            previous = self._entries.pop(key, None)
            self._manifests -= len(previous or ())
            self._entries[key] = stored
            self._manifests += len(stored)
            while len(self._entries) > 1 and (
                len(self._entries) > self.max_entries or self._manifests > self.max_manifests
            ):
                self._manifests -= len(self._entries.popitem(last=False)[1])
        owner.set_result(stored)
        return result

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._manifests = 0
