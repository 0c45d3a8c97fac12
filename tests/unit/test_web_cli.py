"""`gitsync serve`'s access flags: what they turn into, and refusing to start with bad ones
(before anything talks to a cluster)."""

from __future__ import annotations

import argparse
import secrets
from pathlib import Path

import bcrypt
import pytest

from gitsync.cli import _cmd_serve, _web_auth, build_parser
from gitsync.web.auth import Authenticator, Role


def serve_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["serve", *argv])


def test_flags_become_credentials(tmp_path: Path) -> None:
    password, api, read_only = "pw-" + secrets.token_hex(4), "a" * 24, "r" * 24
    (tmp_path / "pw").write_text(password + "\n")
    (tmp_path / "api").write_text(f"# rotated monthly\n{api}\n\n{'b' * 24}\n")
    (tmp_path / "ro").write_text(read_only)
    settings = _web_auth(
        serve_args(
            f"--admin-password-file={tmp_path / 'pw'}",
            f"--api-token-file={tmp_path / 'api'}",
            f"--read-only-token-file={tmp_path / 'ro'}",
            "--anonymous-read",
            "--behind-tls",
        )
    )
    assert settings.anonymous_read and settings.secure_cookie
    auth = Authenticator(settings)
    assert auth.check_login(password) == Role.ADMIN
    assert auth.check_login(password + "\n") is None
    assert auth.check_bearer(api) == Role.ADMIN and auth.check_bearer("b" * 24) == Role.ADMIN
    assert auth.check_bearer(read_only) == Role.VIEWER
    assert auth.check_login(read_only) == Role.VIEWER
    assert auth.check_bearer("# rotated monthly") is None


def test_bcrypt_hash_from_the_flag_a_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashed = bcrypt.hashpw(b"s3cret-pw", bcrypt.gensalt(rounds=4)).decode()
    (tmp_path / "hash").write_text(hashed + "\n")
    for args in (
        [f"--admin-password-bcrypt={hashed}"],
        [f"--admin-password-bcrypt={tmp_path / 'hash'}"],
    ):
        settings = _web_auth(serve_args(*args))
        assert Authenticator(settings).check_login("s3cret-pw") == Role.ADMIN
    monkeypatch.setenv("GITSYNC_ADMIN_PASSWORD_BCRYPT", hashed)
    settings = _web_auth(serve_args())
    assert Authenticator(settings).check_login("s3cret-pw") == Role.ADMIN


def test_defaults_open_nothing() -> None:
    settings = _web_auth(serve_args())
    assert not settings.login_enabled and not settings.anonymous_read
    assert not settings.api_tokens_sha256


@pytest.mark.parametrize(
    ("files", "flag", "message"),
    [
        ({}, "--admin-password-file={d}/missing", "cannot read the admin password file"),
        ({"pw": "\n"}, "--admin-password-file={d}/pw", "is empty"),
        ({"t": "short\n"}, "--api-token-file={d}/t", "at least 16 characters"),
        ({"t": "# only a comment\n"}, "--read-only-token-file={d}/t", "holds no token"),
        ({"h": "$2b$12$tooshort"}, "--admin-password-bcrypt={d}/h", "bcrypt hash"),
    ],
)
def test_serve_refuses_bad_credentials_before_starting(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    files: dict[str, str],
    flag: str,
    message: str,
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    # _cmd_serve, not main(): main() configures process-wide logging onto pytest's capture
    code = _cmd_serve(serve_args(flag.format(d=tmp_path), "--kubeconfig=/nonexistent/kubeconfig"))
    assert code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--oidc-client-id=gitsync"], "--oidc-client-id given without --oidc-issuer"),
        (["--oidc-admin-group=ops"], "--oidc-admin-group given without --oidc-issuer"),
        (["--oidc-issuer=https://idp.example"], "--oidc-issuer needs --oidc-client-id"),
        (
            ["--oidc-issuer=https://idp.example", "--oidc-client-id=g"],
            "--oidc-issuer needs --oidc-client-secret-file",
        ),
        (
            [
                "--oidc-issuer=http://idp.example",
                "--oidc-client-id=g",
                "--oidc-client-secret-file={d}/s",
            ],
            "plain http:// is allowed for a loopback address only",
        ),
        (
            [
                "--oidc-issuer=https://idp.example",
                "--oidc-client-id=g",
                "--oidc-client-secret-file={d}/s",
            ],
            "--oidc-issuer needs --external-url",
        ),
        (
            [
                "--oidc-issuer=https://idp.example",
                "--oidc-client-id=g",
                "--oidc-client-secret-file={d}/s",
                "--external-url=https://gitsync.example",
                "--oidc-scopes=email groups",
            ],
            "--oidc-scopes must include openid",
        ),
        (["--session-key-file={d}/short"], "shorter than 32 characters"),
    ],
)
def test_serve_refuses_bad_sso_flags_naming_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    (tmp_path / "s").write_text("client-secret\n")
    (tmp_path / "short").write_text("too-short\n")
    args = serve_args(*(a.format(d=tmp_path) for a in argv), "--kubeconfig=/nonexistent/kubeconfig")
    assert _cmd_serve(args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "client-secret" not in err.replace("client-secret-file", "")
