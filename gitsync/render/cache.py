"""Memoising renders per (commit, path, render parameters).

A commit SHA names an immutable tree, so the same path rendered with the same parameters at the
same commit always gives the same manifests - the controller's periodic reconcile should not pay
for kustomize or Helm again when nothing was pushed. The key deliberately leaves out
``repo_root``: two checkouts (worktrees) of one commit share entries. Errors are not cached: a
timeout on a busy node may succeed next time, and a real error is cheap to reproduce.

The cache is an LRU bounded by entry count, safe to share between reconcile threads, and renders a
missing key once even when several threads ask for it at the same moment (the others wait for that
render). Callers get deep copies, so a caller mutating an object (the sync layer setting a
namespace) cannot change what the next caller sees.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future

from gitsync.render.manifest import RenderedManifest
from gitsync.render.options import RenderRequest
from gitsync.render.renderer import render

CacheKey = tuple[str, str, str]
Renderer = Callable[[RenderRequest], list[RenderedManifest]]


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
    """A stable hash of everything in the request except the checkout location and the path."""
    params = {
        f.name: _plain(getattr(req, f.name))
        for f in dataclasses.fields(req)
        if f.name not in ("repo_root", "path")
    }
    text = json.dumps(params, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


class RenderCache:
    """LRU of render results keyed by ``(commit_sha, path, parameters_hash)``."""

    def __init__(self, max_entries: int = 256, *, renderer: Renderer = render) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._render = renderer
        self._lock = threading.Lock()
        self._entries: OrderedDict[CacheKey, list[RenderedManifest]] = OrderedDict()
        self._inflight: dict[CacheKey, Future[list[RenderedManifest]]] = {}
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
            if cached is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return copy.deepcopy(cached)
            pending = self._inflight.get(key)
            if pending is not None:
                self.hits += 1  # served by the render already in flight
            else:
                self.misses += 1
                owner: Future[list[RenderedManifest]] = Future()
                self._inflight[key] = owner
        if pending is not None:  # another thread is rendering this key
            return copy.deepcopy(pending.result())
        try:
            result = self._render(req)
        except BaseException as exc:
            with self._lock:
                del self._inflight[key]
            owner.set_exception(exc)
            raise
        stored = copy.deepcopy(result)
        with self._lock:
            del self._inflight[key]
            self._entries[key] = stored
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        owner.set_result(stored)
        return result

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
