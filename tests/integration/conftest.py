"""The test Git server, shared by every integration test of the session.

Tests that break the server on purpose (fault modes, stop/start) start their own instead, so this
one stays healthy for everybody else.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gitsync.testing.gitserver import GitServer


@pytest.fixture(scope="session")
def git_server() -> Iterator[GitServer]:
    with GitServer(username="gitsync-test", password="integration-secret-7f3a") as server:
        yield server
