"""Fetching the remote dependencies of a chart kept in Git, before it is rendered.

The render layer says which dependencies a chart needs that its ``charts/`` does not hold
(``gitsync.render.chart_dependencies.read_dependencies``); this fetches the ``https://``,
``http://`` and ``oci://`` ones through the same adapters, limits and ``ChartStore`` as a chart
source: the lock's exact version or the highest matching the declared range
(``choose_version``), unpacked once per digest. Each repository gets the credential of the
repository-credential entry whose URL prefix covers *that dependency's* URL, for the app's
namespace (``credential_for``): an entry for the app's own chart or Git repository is never
sent to a dependency on another host.

A dependency that cannot be fetched fails the render naming it and its repository (redacted),
as the adapter classified it: unreachable is transient (retried), missing or refused is
terminal. Either way the render stage fails, so nothing is applied or pruned.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gitsync.engine.chart_sources import ChartStore
from gitsync.render import RenderLimits
from gitsync.render.chart_dependencies import read_dependencies
from gitsync.render.confinement import Repo
from gitsync.render.options import FetchedDependency
from gitsync.source.charts import (
    ChartCredential,
    ChartSourceError,
    ChartSourceTerminalError,
    ChartSourceTransientError,
)
from gitsync.source.git import redact_url

DependencyCredentials = Callable[[str], ChartCredential]
"""The credential for a dependency's repository URL (the app's namespace already bound)."""
LISTING_MAX_AGE_SECONDS = 60.0
"""A dependency's version listing is shared this long between renders and apps: a chart's
periodic refresh costs no index request per dependency."""


def fetch_dependencies(
    store: ChartStore,
    repo_root: Path,
    chart_dir: Path,
    limits: RenderLimits,
    credential_for: DependencyCredentials,
) -> tuple[FetchedDependency, ...]:
    """The remote dependencies of the chart at ``chart_dir`` (in the checkout ``repo_root``)
    that are not vendored, fetched and unpacked; ``()`` when there are none."""
    fetched: list[FetchedDependency] = []
    for dependency in read_dependencies(Repo.at(repo_root), chart_dir, limits):
        if not dependency.is_remote:
            continue  # file:// and vendored ones are the renderer's
        shown = f"chart dependency {dependency.name!r} from {redact_url(dependency.repository)}"
        try:
            credential = credential_for(dependency.repository)
            version = store.resolve(
                dependency.repository,
                dependency.name,
                dependency.version or "*",
                credential,
                max_age=LISTING_MAX_AGE_SECONDS,
            )
            checkout = store.checkout(dependency.repository, version, credential)
        except ChartSourceTransientError as exc:
            raise ChartSourceTransientError(f"{shown}: {exc}") from exc
        except ChartSourceError as exc:
            raise ChartSourceTerminalError(f"{shown}: {exc}") from exc
        fetched.append(
            FetchedDependency(
                dependency.name,
                dependency.repository,
                version.version,
                checkout.digest,
                str(checkout.root / checkout.path),
            )
        )
    return tuple(fetched)
