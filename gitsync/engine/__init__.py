"""The engine: one Application through fetch -> render -> compare -> sync -> health.

Used directly by the CLI (``gitsync diff|sync|health -f app.yaml``) and driven per Application by
the controller. See ``pipeline`` for the stages and their errors.
"""

from gitsync.engine.pipeline import (
    AppState,
    Engine,
    FetchError,
    SourceNotPermittedError,
    StageError,
)

__all__ = ["AppState", "Engine", "FetchError", "SourceNotPermittedError", "StageError"]
