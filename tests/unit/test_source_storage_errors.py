"""Git's stderr about our own disk becomes GitStorageError (transient) - and only that: ssh's
"Permission denied (publickey)" stays an authentication error, and the server's disk problems
(lines from the remote side) are not ours."""

from __future__ import annotations

import pytest

from gitsync.errors import TransientError
from gitsync.source import GitAuthError, GitCommandFailedError, GitStorageError
from gitsync.source.git import _classify, parse_remote, storage_problem

URL = "https://user:s3cret@host.example/org/repo.git"


@pytest.mark.parametrize(
    ("stderr", "problem"),
    [
        (
            "fatal: unable to write loose object file: No space left on device\n"
            "fatal: unpack-objects failed\n",
            "no space left on device",
        ),
        ("error: cannot open 'FETCH_HEAD': Read-only file system\n", "read-only file system"),
        ("error: cannot open 'FETCH_HEAD': Permission denied\n", "permission denied"),
        ("fatal: write error: Disk quota exceeded\n", "disk quota exceeded"),
        (
            "error: insufficient permission for adding an object to repository database ./objects",
            "insufficient permission",
        ),
        ("git@host.example: Permission denied (publickey).\n", None),
        ("Permission denied, please try again.\n", None),
        ("remote: fatal: No space left on device\nfatal: early EOF\n", None),
        ("fatal: remote error: upload-pack: write error: No space left on device\n", None),
        ("fatal: couldn't find remote ref refs/heads/nope\n", None),
    ],
)
def test_storage_problem(stderr: str, problem: str | None) -> None:
    assert storage_problem(stderr) == problem


def test_a_full_disk_while_fetching_is_a_transient_storage_error_without_secrets() -> None:
    error = _classify(
        "fatal: unable to write loose object file: No space left on device\n",
        parse_remote(URL),
        "fetch",
    )
    assert isinstance(error, GitStorageError)
    assert isinstance(error, TransientError)
    assert str(error) == (
        "no space left on device while fetching https://***@host.example/org/repo.git"
    )


def test_ssh_permission_denied_is_still_authentication() -> None:
    error = _classify("git@h: Permission denied (publickey).\n", parse_remote(URL), "fetch")
    assert isinstance(error, GitAuthError)


def test_a_server_out_of_space_is_not_our_storage() -> None:
    error = _classify("remote: error: No space left on device\n", parse_remote(URL), "fetch")
    assert isinstance(error, GitCommandFailedError)
