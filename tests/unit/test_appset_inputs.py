"""What an ApplicationSet's git generator may fetch, and with which credentials: the set's own
namespace decides both, as it does for an Application there."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gitsync.controller.appsets import SourceRefusedError, _Inputs
from gitsync.policy import Policy
from gitsync.source import GitCredentials

POLICY = Policy.from_yaml(
    b"projects:\n  team-a:\n    sourceRepos: ['https://git.example.com/team-a/*']\n"
)


class Sources:
    def __init__(self) -> None:
        self.fetched: list[tuple[str, str, Any]] = []

    def checkout(self, url: str, revision: str, credentials: Any) -> Any:
        self.fetched.append((url, revision, credentials))
        return SimpleNamespace(path=Path("/checkout"), revision=SimpleNamespace(sha="a" * 40))


class Credentials:
    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    def for_repository(self, url: str, namespace: str) -> GitCredentials:
        self.asked.append((url, namespace))
        return GitCredentials(username=f"for-{namespace}", password="p")


def inputs(namespace: str) -> tuple[_Inputs, Sources, Credentials]:
    sources, credentials = Sources(), Credentials()
    owner = SimpleNamespace(policy=POLICY, sources=sources, credentials=credentials)
    return _Inputs(owner, namespace), sources, credentials  # type: ignore[arg-type]


def test_a_repository_outside_the_namespace_s_source_repos_is_never_contacted() -> None:
    generator_inputs, sources, credentials = inputs("team-a")
    with pytest.raises(SourceRefusedError, match="not in the sourceRepos"):
        generator_inputs.checkout("https://git.example.com/team-b/secrets.git", "main")
    assert sources.fetched == []
    assert credentials.asked == []


def test_a_repository_in_source_repos_is_fetched_with_the_set_s_namespace_s_credentials() -> None:
    generator_inputs, sources, credentials = inputs("team-a")
    assert generator_inputs.checkout("https://git.example.com/team-a/apps.git", "main") == Path(
        "/checkout"
    )
    assert credentials.asked == [("https://git.example.com/team-a/apps.git", "team-a")]
    assert sources.fetched[0][2].username == "for-team-a"
