"""Whom an Application runs as (``gitsync.sync.identity``), without a control plane: the choice of
ServiceAccount, the impersonating client's headers, how long access reviews are remembered, and
serve's flags. The behaviour against RBAC is in tests/integration/test_impersonation.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog
from kubernetes.client import Configuration

from gitsync.application import Application, parse_application
from gitsync.cli import _cmd_serve, build_parser
from gitsync.controller.controller import ControllerConfig, impersonation_of
from gitsync.kube import ApiError, KubeClient
from gitsync.sync import Impersonation, NoServiceAccountError


def app(**spec: object) -> Application:
    return parse_application(
        {
            "apiVersion": "gitsync.dev/v1alpha1",
            "kind": "Application",
            "metadata": {"name": "web", "namespace": "team-a"},
            "spec": {"source": {"repoURL": "https://git.example.com/a.git"}, **spec},
        }
    )


def client() -> KubeClient:
    cfg = Configuration()
    cfg.host = "https://127.0.0.1:1"
    cfg.api_key = {"authorization": "controller-token"}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    return KubeClient(cfg)


class Reviewed(KubeClient):
    """A client whose access reviews are answered here (``answers``) and counted."""

    answers: list[bool | ApiError]
    asked: int = 0

    def may(self, verb: str, group: str, resource: str, namespace: str = "") -> bool:
        self.asked += 1
        answer = self.answers.pop(0)
        if isinstance(answer, ApiError):
            raise answer
        return answer


def reviewed(*answers: bool | ApiError) -> Reviewed:
    cfg = Configuration()
    cfg.host = "https://127.0.0.1:1"
    kube = Reviewed(cfg).impersonating("system:serviceaccount:team-a:deployer")
    assert isinstance(kube, Reviewed)
    kube.answers = list(answers)
    return kube


def test_the_spec_names_the_service_account_and_wins_over_the_default() -> None:
    assert Impersonation("fallback").service_account(app(serviceAccountName="deployer")) == (
        "deployer"
    )
    assert Impersonation("fallback").service_account(app()) == "fallback"


def test_no_service_account_is_a_terminal_error_naming_the_fix() -> None:
    with pytest.raises(NoServiceAccountError) as refused:
        Impersonation().service_account(app())
    message = str(refused.value)
    assert message.startswith("spec.serviceAccountName: ")
    assert "team-a/web" in message
    assert "--default-service-account" in message


def test_a_bad_service_account_name_is_a_spec_error() -> None:
    with pytest.raises(Exception, match=r"spec\.serviceAccountName: must be a lowercase DNS"):
        app(serviceAccountName="Deployer!")


def test_the_impersonating_client_sends_the_user_and_shares_the_rest() -> None:
    kube = client()
    tenant = Impersonation().client(kube, app(serviceAccountName="deployer"))
    headers = tenant._headers(None)
    assert headers["Impersonate-User"] == "system:serviceaccount:team-a:deployer"
    assert "Impersonate-Group" not in headers  # the API server adds the account's groups
    assert "Impersonate-User" not in kube._headers(None)  # the controller stays itself
    assert headers["Authorization"] == kube._headers(None)["Authorization"]
    assert tenant.requests is kube.requests
    assert tenant._pool is kube._pool
    assert tenant._discovery is kube._discovery


def test_reviews_are_remembered_for_the_ttl_per_user_kind_and_namespace() -> None:
    now = [100.0]
    identity = Impersonation(review_ttl=60.0, clock=lambda: now[0])
    kube = reviewed(True, False, True)
    assert identity.may_get(kube, "", "configmaps", "team-a")
    assert identity.may_get(kube, "", "configmaps", "team-a")
    assert kube.asked == 1  # the second read of the kind is free
    assert not identity.may_get(kube, "", "secrets", "team-a")
    now[0] += 61.0
    assert identity.may_get(kube, "", "secrets", "team-a")  # a new grant is seen after the TTL
    assert kube.asked == 3


def test_a_failed_review_counts_as_no_and_is_asked_again() -> None:
    identity = Impersonation()
    kube = reviewed(ApiError(503, "ServiceUnavailable", "down"), True)
    assert not identity.may_get(kube, "", "configmaps", "team-a")
    assert identity.may_get(kube, "", "configmaps", "team-a")
    assert kube.asked == 2


def test_serve_impersonates_by_default_and_takes_false_to_opt_out() -> None:
    parse = build_parser().parse_args
    assert parse(["serve"]).impersonate is True
    assert parse(["serve", "--impersonate=false"]).impersonate is False
    assert parse(["serve", "--default-service-account=deployer"]).default_service_account == (
        "deployer"
    )


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["--impersonate=no"], "--impersonate: expected true or false, got 'no'"),
        (["--default-service-account=Bad_Name"], "--default-service-account: expected a"),
    ],
)
def test_bad_impersonation_flags_name_the_flag(
    argv: list[str], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", *argv])
    assert error in capsys.readouterr().err


def test_a_default_service_account_without_impersonation_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = build_parser().parse_args(
        ["serve", "--impersonate=false", "--default-service-account=deployer"]
    )
    assert _cmd_serve(args) != 0
    assert "--default-service-account has no effect with --impersonate=false" in (
        capsys.readouterr().err
    )


def test_opting_out_is_logged_as_a_warning(tmp_path: Path) -> None:
    with structlog.testing.capture_logs() as logs:
        assert impersonation_of(ControllerConfig(cache_dir=tmp_path, impersonate=False)) is None
    assert [e["log_level"] for e in logs if "impersonation is off" in e["event"]] == ["warning"]
    with structlog.testing.capture_logs() as logs:
        on = impersonation_of(ControllerConfig(cache_dir=tmp_path, default_service_account="d"))
    assert on is not None and on.default_service_account == "d"
    assert not [e for e in logs if e["log_level"] == "warning"]
