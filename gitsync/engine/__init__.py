"""The engine: one Application through fetch -> render -> compare -> sync -> health.

Used directly by the CLI (``gitsync diff|sync|health -f app.yaml``) and driven per Application by
the controller. See ``pipeline`` for the stages and their errors.

Owns: the per-Application pipeline the CLI and the controller share. May import: rollout, sync,
webhook events, diff, health, render, source, kube, policy, application, model, kinds, errors, logs.
Never controller, web, cli (import-linter: ``layers``).
"""

from gitsync.engine.pipeline import (
    AppState,
    Engine,
    FetchError,
    RenderedRevision,
    SourceNotPermittedError,
    StageError,
)

__all__ = [
    "AppState",
    "Engine",
    "FetchError",
    "RenderedRevision",
    "SourceNotPermittedError",
    "StageError",
]
