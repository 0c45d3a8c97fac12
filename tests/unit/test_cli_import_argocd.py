"""``gitsync import argocd`` as a person runs it: a separate process, real files, a directory,
stdin; the exit codes (0 everything carried, 1 not, 2 error), where the output goes, the report
on stderr in text and JSON, and the inputs' limits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsync.application import parse_application
from gitsync.cli import IMPORT_MAX_FILE_BYTES, build_parser
from gitsync.policy import Policy
from tests.support.cli import run_gitsync

FIXTURES = Path(__file__).parents[1] / "fixtures" / "argocd"
LOCAL = "https://kubernetes.default.svc"


def argo_app(name: str = "guestbook", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": "argocd"},
        "spec": {
            "project": "team-a",
            "source": {"repoURL": "https://git.example.com/apps.git", "path": name},
            "destination": {"server": LOCAL, "namespace": name},
            **spec,
        },
    }


PROJECT = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "AppProject",
    "metadata": {"name": "team-a", "namespace": "argocd"},
    "spec": {
        "sourceRepos": ["https://git.example.com/*"],
        "destinations": [{"server": LOCAL, "namespace": "guestbook"}],
    },
}


def write(path: Path, *docs: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(docs))
    return path


def test_a_directory_of_apps_and_a_project_is_written_one_file_each(tmp_path: Path) -> None:
    write(tmp_path / "in/apps/guestbook.yaml", argo_app())
    write(tmp_path / "in/apps/nested/web.yml", argo_app("web"))
    write(tmp_path / "in/projects/team-a.yaml", PROJECT)
    (tmp_path / "in/README.md").write_text("not read")
    out = tmp_path / "out"
    run = run_gitsync(
        "import", "argocd", str(tmp_path / "in"), "-o", str(out), "--namespace", "team-a"
    )
    assert run.code == 0, run
    assert sorted(p.name for p in out.iterdir()) == [
        "application-team-a-guestbook.yaml",
        "application-team-a-web.yaml",
        "policy.yaml",
    ]
    app = parse_application(yaml.safe_load((out / "application-team-a-web.yaml").read_text()))
    assert (app.namespace, app.destination.namespace, app.source.path) == ("team-a", "web", "web")
    policy = Policy.from_yaml((out / "policy.yaml").read_text())
    assert policy.projects["team-a"].source_repos == ("https://git.example.com/*",)
    assert "AppProject argocd/team-a" in run.stderr and "projects.team-a" in run.stderr
    assert "wrote 2 Applications and the policy of 1 projects" in run.stderr
    assert run.stdout == ""


def test_something_not_carried_exits_1_and_writes_nothing_unless_allowed(tmp_path: Path) -> None:
    source = write(tmp_path / "app.yaml", argo_app(info=[{"name": "a", "value": "b"}]))
    out = tmp_path / "all.yaml"
    refused = run_gitsync("import", "argocd", str(source), "--output", str(out))
    assert refused.code == 1, refused
    assert "not carried  spec.info" in refused.stderr and "nothing was written" in refused.stderr
    assert not out.exists()

    allowed = run_gitsync("import", "argocd", str(source), "--output", str(out), "--allow-partial")
    assert allowed.code == 0, allowed
    (app,) = list(yaml.safe_load_all(out.read_text()))
    assert "info" not in app["spec"] and parse_application(app).name == "guestbook"


def test_an_application_set_keeps_the_exit_non_zero_even_with_allow_partial(
    tmp_path: Path,
) -> None:
    appset = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ApplicationSet",
        "metadata": {"name": "fleet", "namespace": "argocd"},
        "spec": {"generators": [], "template": {}},
    }
    source = write(tmp_path / "both.yaml", argo_app(), appset)
    run = run_gitsync("import", "argocd", str(source), "--allow-partial")
    assert run.code == 1, run
    assert "NOT WRITTEN  spec.generators: no generator gitsync supports" in run.stderr
    (app,) = list(yaml.safe_load_all(run.stdout))  # the Application is still written
    assert app["metadata"]["name"] == "guestbook"


def test_stdin_in_and_stdout_out_with_the_json_report() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gitsync", "import", "argocd", "-", "--report-format", "json"],
        input=yaml.safe_dump(argo_app()),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stderr)
    assert report["complete"] is True and report["writtenTo"] == "stdout"
    (doc,) = report["documents"]
    assert doc["source"] == "-" and doc["output"] == "Application argocd/guestbook"
    paths = {f["path"]: f["outcome"] for f in doc["fields"]}
    assert paths["spec.destination.server"] == "translated"
    assert paths["spec.source.repoURL"] == "carried"
    (app,) = list(yaml.safe_load_all(proc.stdout))
    assert app["apiVersion"] == "gitsync.dev/v1alpha1"


def test_the_json_report_of_a_refused_import_says_nothing_was_written(tmp_path: Path) -> None:
    source = write(tmp_path / "app.yaml", argo_app(revisionHistoryLimit=3))
    run = run_gitsync("import", "argocd", str(source), "--report-format", "json")
    assert run.code == 1 and run.stdout == ""
    report = json.loads(run.stderr)
    assert report["complete"] is False and report["writtenTo"] is None
    assert report["counts"]["not carried"] == 1


def test_cluster_flag_maps_the_server_url_to_the_registered_name(tmp_path: Path) -> None:
    source = write(
        tmp_path / "app.yaml",
        argo_app(destination={"server": "https://10.1.2.3:6443", "namespace": "web"}),
    )
    unmapped = run_gitsync("import", "argocd", str(source))
    assert unmapped.code == 1 and "--cluster NAME=https://10.1.2.3:6443" in unmapped.stderr
    mapped = run_gitsync(
        "import", "argocd", str(source), "--cluster", "prod=https://10.1.2.3:6443/"
    )
    assert mapped.code == 0, mapped
    (app,) = list(yaml.safe_load_all(mapped.stdout))
    assert app["spec"]["destination"] == {"name": "prod", "namespace": "web"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--cluster", "prod"], "expected NAME=URL"),
        (["--cluster", "Prod=https://x"], "expected NAME=URL"),
        (["--namespace", "Not_A_Namespace"], "expected a namespace name"),
        (["--report-format", "xml"], "invalid choice"),
        (["-o", "d", "--output", "f"], "not allowed with"),
    ],
)
def test_bad_flags_are_refused_naming_the_flag(argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["import", "argocd", "app.yaml", *argv])
    assert exc.value.code == 2


def test_bad_flag_messages_name_the_flag(tmp_path: Path) -> None:
    run = run_gitsync("import", "argocd", "x.yaml", "--cluster", "prod")
    assert run.code == 2 and "--cluster" in run.stderr and "expected NAME=URL" in run.stderr


def test_one_url_given_two_names_is_an_error(tmp_path: Path) -> None:
    source = write(tmp_path / "app.yaml", argo_app())
    run = run_gitsync(
        "import", "argocd", str(source),
        "--cluster", "a=https://10.0.0.1", "--cluster", "b=https://10.0.0.1",
    )  # fmt: skip
    assert run.code == 2 and "--cluster: https://10.0.0.1 is given as a and b" in run.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"a: &a [1]\nb: [*a, *a, *a]\n" + b"c: [" + b"*a, " * 200_000 + b"*a]\n", "alias"),
        (b"x" * (IMPORT_MAX_FILE_BYTES + 1), f"larger than {IMPORT_MAX_FILE_BYTES} bytes"),
        (b"a: [\n", "app.yaml"),
        (b"- 1\n- 2\n", "expected a mapping"),
    ],
)
def test_inputs_are_bounded_and_bad_yaml_is_an_error_naming_the_file(
    tmp_path: Path, content: bytes, message: str
) -> None:
    source = tmp_path / "app.yaml"
    source.write_bytes(content)
    run = run_gitsync("import", "argocd", str(source))
    assert run.code == 2, run
    assert message in run.stderr and "Traceback" not in run.stderr


@pytest.mark.parametrize("target", ["outside", "/dev/zero"])
def test_a_link_in_a_directory_is_read_only_inside_it(tmp_path: Path, target: str) -> None:
    outside = write(tmp_path / "outside.yaml", argo_app("outside"))
    write(tmp_path / "repo/app.yaml", argo_app())
    (tmp_path / "repo/linked.yaml").symlink_to(outside if target == "outside" else target)
    run = run_gitsync("import", "argocd", str(tmp_path / "repo"))
    assert run.code == 2, run
    assert "linked.yaml: links out of" in run.stderr and run.stdout == ""


def test_a_missing_input_is_an_error_naming_it(tmp_path: Path) -> None:
    run = run_gitsync("import", "argocd", str(tmp_path / "nope.yaml"))
    assert run.code == 2 and "nope.yaml: no such file or directory" in run.stderr


def test_the_every_field_fixture_reports_through_the_cli(tmp_path: Path) -> None:
    run = run_gitsync(
        "import", "argocd", str(FIXTURES / "application-every-field.yaml"), "--allow-partial",
        "--output", str(tmp_path / "out.yaml"),
    )  # fmt: skip
    assert run.code == 1, run  # the plugin app cannot be written
    assert "NOT WRITTEN  spec.source.plugin" in run.stderr
    assert len(list(yaml.safe_load_all((tmp_path / "out.yaml").read_text()))) == 4


def argo_set(*generators: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ApplicationSet",
        "metadata": {"name": "services", "namespace": "argocd"},
        "spec": {
            "generators": list(generators),
            "template": {
                "metadata": {"name": "{{path.basename}}"},
                "spec": {
                    "project": "default",
                    "source": {"repoURL": "https://git.example.com/apps.git", "path": "{{path}}"},
                    "destination": {"server": LOCAL, "namespace": "{{path.basename}}"},
                },
            },
        },
    }


GIT_DIRS = {"git": {"repoURL": "https://git.example.com/apps.git", "directories": [{"path": "*"}]}}


def test_an_application_set_is_written_beside_the_applications(tmp_path: Path) -> None:
    from gitsync.appset.spec import parse_application_set

    source = write(tmp_path / "both.yaml", argo_app(), argo_set(GIT_DIRS))
    out = tmp_path / "out"
    run = run_gitsync("import", "argocd", str(source), "-o", str(out), "--namespace", "team-a")
    assert run.code == 0, run
    assert "-> ApplicationSet team-a/services" in run.stderr
    assert "wrote 1 Applications, 1 ApplicationSets" in run.stderr
    written = yaml.safe_load((out / "applicationset-team-a-services.yaml").read_text())
    assert (out / "application-team-a-guestbook.yaml").exists()
    assert parse_application_set(written).generators
    assert written["spec"]["template"]["metadata"]["name"] == "{{path.basename}}"


def test_an_unsupported_generator_exits_1_unless_allow_partial(tmp_path: Path) -> None:
    pull_request = {"pullRequest": {"github": {"owner": "o", "repo": "r"}}}
    source = write(tmp_path / "set.yaml", argo_set(GIT_DIRS, pull_request))
    refused = run_gitsync("import", "argocd", str(source))
    assert refused.code == 1, refused
    assert "not carried  spec.generators[1]: gitsync refuses" in refused.stderr
    assert refused.stdout == ""
    allowed = run_gitsync("import", "argocd", str(source), "--allow-partial")
    assert allowed.code == 0, allowed
    (written,) = list(yaml.safe_load_all(allowed.stdout))
    assert written["spec"]["generators"] == [GIT_DIRS]
