"""ApplicationSet generators and the Applications they make, without a cluster: each generator's
parameters (Argo CD's names, flat and Go-template shapes), matrix and merge, the tenant rule, the
limits, and the spec errors naming unsupported Argo CD fields."""

from __future__ import annotations

import json
import os
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from gitsync.application import SpecError
from gitsync.appset.generate import (
    MAX_SHOWN_PARAMETERS,
    MAX_SHOWN_TOTAL,
    MAX_SHOWN_VALUE,
    MORE_KEY,
    SET_LABEL,
    ClusterInfo,
    Generation,
    GenerationError,
    GenerationLimits,
    Glob,
    SetIdentity,
    generate_applications,
    shown_parameters,
)
from gitsync.appset.spec import ApplicationsSync, parse_application_set
from gitsync.appset.template import TemplateError
from gitsync.errors import TransientError
from gitsync.sync.deletion import RESOURCES_FINALIZER, RESOURCES_FINALIZERS

OWNER = SetIdentity("team-a", "fleet", "uid-1")


class Inputs:
    """GeneratorInputs over directories of this test (the controller's is the source cache)."""

    def __init__(
        self, repos: dict[str, Path] | None = None, clusters: list[ClusterInfo] | None = None
    ):
        self.repos = repos or {}
        self.cluster_list = clusters or []
        self.checkouts: list[tuple[str, str]] = []

    def checkout(self, repo_url: str, revision: str) -> Path:
        self.checkouts.append((repo_url, revision))
        if repo_url not in self.repos:
            raise TransientError(f"{repo_url}: unreachable")
        return self.repos[repo_url]

    def clusters(self) -> list[ClusterInfo]:
        return self.cluster_list


def appset(
    generators: list[Any], template: dict[str, Any] | None = None, **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "gitsync.dev/v1alpha1",
        "kind": "ApplicationSet",
        "metadata": {"name": "fleet", "namespace": "team-a"},
        "spec": {
            "generators": generators,
            "template": template
            or {
                "metadata": {"name": "{{ .name }}"},
                "spec": {
                    "source": {"repoURL": "https://git.example.com/r.git", "path": "apps"},
                    "destination": {"namespace": "team-a"},
                },
            },
            "goTemplate": True,
            **spec,
        },
    }


def run(
    doc: dict[str, Any], inputs: Inputs | None = None, limits: GenerationLimits | None = None
) -> dict[str, dict[str, Any]]:
    return run_generation(doc, inputs, limits).applications


def run_generation(
    doc: dict[str, Any], inputs: Inputs | None = None, limits: GenerationLimits | None = None
) -> Generation:
    return generate_applications(
        parse_application_set(doc),
        OWNER,
        inputs or Inputs(),
        limits or GenerationLimits(),
        resources_finalizers=frozenset(RESOURCES_FINALIZERS),
        default_finalizer=RESOURCES_FINALIZER,
    )


def tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


# -- list ------------------------------------------------------------------------------------


def test_list_generator_makes_one_application_per_element_owned_and_labelled() -> None:
    apps = run(appset([{"list": {"elements": [{"name": "a"}, {"name": "b"}]}}]))
    assert sorted(apps) == ["a", "b"]
    meta = apps["a"]["metadata"]
    assert meta["namespace"] == "team-a"
    assert meta["labels"] == {SET_LABEL: "fleet"}
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "gitsync.dev/v1alpha1",
            "kind": "ApplicationSet",
            "name": "fleet",
            "uid": "uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert meta["finalizers"] == [RESOURCES_FINALIZER]


def test_preserve_resources_on_deletion_drops_the_resources_finalizer() -> None:
    template = {
        "metadata": {
            "name": "{{ .name }}",
            "finalizers": ["resources-finalizer.argocd.argoproj.io", "x/keep"],
        },
        "spec": {"source": {"repoURL": "https://g/r.git"}, "destination": {"namespace": "team-a"}},
    }
    doc = appset(
        [{"list": {"elements": [{"name": "a"}]}}],
        template,
        syncPolicy={"preserveResourcesOnDeletion": True},
    )
    assert run(doc)["a"]["metadata"]["finalizers"] == ["x/keep"]


def test_fasttemplate_list_elements_are_flattened() -> None:
    template = {
        "metadata": {"name": "{{name}}-{{values.env}}"},
        "spec": {
            "source": {"repoURL": "https://g/r.git", "path": "{{values.env}}"},
            "destination": {"namespace": "team-a"},
        },
    }
    doc = appset(
        [{"list": {"elements": [{"name": "web", "values": {"env": "prod"}}]}}],
        template,
        goTemplate=False,
    )
    app = run(doc)["web-prod"]
    assert app["spec"]["source"]["path"] == "prod"


# -- the parameters each app was rendered from ---------------------------------------------------


def test_each_app_records_its_parameters_flat_and_as_text() -> None:
    elements = [
        {"name": "web", "values": {"env": "prod", "replicas": 3, "canary": True}, "zones": ["a"]},
        {"name": "api", "values": {"env": "dev", "ratio": 0.5, "owner": None}},
    ]
    for go_template in (True, False):
        name = "{{ .name }}" if go_template else "{{name}}"
        template = {
            "metadata": {"name": name},
            "spec": {"source": {"repoURL": "https://g/r.git", "path": "apps"}},
        }
        generated = generate_applications(
            parse_application_set(
                appset([{"list": {"elements": elements}}], template, goTemplate=go_template)
            ),
            OWNER,
            Inputs(),
            GenerationLimits(),
            resources_finalizers=frozenset(RESOURCES_FINALIZERS),
            default_finalizer=RESOURCES_FINALIZER,
        )
        assert generated.parameters == {
            "web": {
                "name": "web",
                "values.canary": "true",
                "values.env": "prod",
                "values.replicas": "3",
                "zones[0]": "a",
            },
            "api": {
                "name": "api",
                "values.env": "dev",
                "values.owner": "null",
                "values.ratio": "0.5",
            },
        }


def test_shown_parameters_are_bounded_in_keys_and_value_length() -> None:
    params = {f"k{i:03}": str(i) for i in range(100)}
    params["k000"] = "x" * 10_000
    params["k001"] = [[{"deep": "y" * 1000}]]  # a list flatten leaves whole: compact JSON
    shown = shown_parameters(params)
    keys = [f"k{i:03}" for i in range(MAX_SHOWN_PARAMETERS)]
    keys[1] = "k001[0]"
    assert list(shown) == [*keys, MORE_KEY]
    assert shown[MORE_KEY] == "68 more"
    assert shown["k000"] == "x" * (MAX_SHOWN_VALUE - 1) + "…"
    nested = shown["k001[0]"]
    assert nested.startswith('[{"deep":"yyy') and len(nested) == MAX_SHOWN_VALUE
    assert shown["k031"] == "31"
    assert max(len(v) for v in shown.values()) <= MAX_SHOWN_VALUE
    assert shown_parameters({"a": {"b": "c"}}) == {"a.b": "c"}


def test_the_shown_parameters_of_all_apps_together_are_bounded() -> None:
    blobs = {f"k{k:02}": "b" * 1000 for k in range(20)}  # about 5.4 kB shown per app
    elements = [{"name": f"app-{i:03}", **blobs} for i in range(80)]
    generated = run_generation(appset([{"list": {"elements": elements}}]))
    assert len(generated.applications) == 80
    total = len(json.dumps(generated.parameters))
    assert MAX_SHOWN_TOTAL < total < MAX_SHOWN_TOTAL + 6000 + 80 * 100
    assert generated.parameters["app-000"]["name"] == "app-000"
    last = {MORE_KEY: "21 left out: over 262144 bytes for the set"}
    assert generated.parameters["app-079"] == last


# -- git -------------------------------------------------------------------------------------


def git_dirs(url: str, *directories: dict[str, Any]) -> dict[str, Any]:
    return {"git": {"repoURL": url, "revision": "main", "directories": list(directories)}}


def dir_template() -> dict[str, Any]:
    return {
        "metadata": {
            "name": "{{ .path.basenameNormalized }}",
            "labels": {"group": "{{ index .path.segments 0 }}"},
        },
        "spec": {
            "source": {"repoURL": "https://git.example.com/mono.git", "path": "{{ .path.path }}"},
            "destination": {"namespace": "team-a"},
        },
    }


def test_git_directories_include_and_exclude(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "services/api/a.yaml": "x: 1",
            "services/Web_UI/a.yaml": "x: 1",
            "services/legacy/a.yaml": "x: 1",
            "services/api/nested/b.yaml": "x: 1",
            "docs/readme.md": "",
        },
    )
    inputs = Inputs({"https://git.example.com/mono.git": root})
    doc = appset(
        [
            git_dirs(
                "https://git.example.com/mono.git",
                {"path": "services/*"},
                {"path": "services/legacy", "exclude": True},
            )
        ],
        dir_template(),
    )
    apps = run(doc, inputs)
    assert sorted(apps) == ["api", "web-ui"]
    assert apps["web-ui"]["spec"]["source"]["path"] == "services/Web_UI"
    assert apps["api"]["metadata"]["labels"]["group"] == "services"
    assert inputs.checkouts == [("https://git.example.com/mono.git", "main")]


def test_git_directory_params_in_fasttemplate_are_argo_s_flat_names(tmp_path: Path) -> None:
    root = tree(tmp_path, {"apps/one/x.yaml": ""})
    template = {
        "metadata": {"name": "{{path.basename}}"},
        "spec": {
            "source": {"repoURL": "https://g/r.git", "path": "{{path}}"},
            "destination": {"namespace": "{{path[0]}}-{{path.basenameNormalized}}"},
        },
    }
    doc = appset([git_dirs("https://g/r.git", {"path": "apps/*"})], template, goTemplate=False)
    app = run(doc, Inputs({"https://g/r.git": root}))["one"]
    assert app["spec"]["source"]["path"] == "apps/one"
    assert app["spec"]["destination"]["namespace"] == "apps-one"


def test_git_directories_do_not_follow_symlinks(tmp_path: Path) -> None:
    root = tree(tmp_path / "repo", {"apps/real/x.yaml": ""})
    outside = tree(tmp_path / "outside", {"secret/x": ""})
    os.symlink(outside, root / "apps" / "link")
    doc = appset([git_dirs("https://g/r.git", {"path": "apps/*"})], dir_template())
    assert sorted(run(doc, Inputs({"https://g/r.git": root}))) == ["real"]


def test_git_files_generator_flattens_each_file_and_adds_path_params(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "clusters/eu/config.json": json.dumps({"cluster": {"name": "eu", "env": "prod"}}),
            "clusters/us/config.json": json.dumps(
                [
                    {"cluster": {"name": "us1", "env": "dev"}},
                    {"cluster": {"name": "us2", "env": "dev"}},
                ]
            ),
            "clusters/us/other.yaml": "ignored: true",
        },
    )
    template = {
        "metadata": {"name": "{{cluster.name}}-{{path.basename}}"},
        "spec": {
            "source": {"repoURL": "https://g/r.git", "path": "{{path}}/{{path.filename}}"},
            "destination": {"namespace": "{{cluster.env}}"},
        },
    }
    doc = appset(
        [{"git": {"repoURL": "https://g/r.git", "files": [{"path": "clusters/**/config.json"}]}}],
        template,
        goTemplate=False,
    )
    apps = run(doc, Inputs({"https://g/r.git": root}))
    assert sorted(apps) == ["eu-eu", "us1-us", "us2-us"]
    assert apps["eu-eu"]["spec"]["source"]["path"] == "clusters/eu/config.json"
    assert apps["us2-us"]["spec"]["destination"]["namespace"] == "dev"


def test_a_parameter_file_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    root = tree(tmp_path / "repo", {"a/keep.yaml": "name: a"})
    (tmp_path / "token").write_text("name: stolen-token-value")
    os.symlink(tmp_path / "token", root / "a" / "config.yaml")
    doc = appset([{"git": {"repoURL": "https://g/r.git", "files": [{"path": "a/config.yaml"}]}}])
    with pytest.raises(GenerationError, match="regular files") as caught:
        run(doc, Inputs({"https://g/r.git": root}))
    assert "stolen" not in str(caught.value)


def test_a_parameter_file_alias_bomb_is_refused(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    root = tree(tmp_path, {"bomb.yaml": "\n".join(lines)})
    doc = appset([{"git": {"repoURL": "https://g/r.git", "files": [{"path": "bomb.yaml"}]}}])
    with pytest.raises(GenerationError, match=r"bomb\.yaml"):
        run(doc, Inputs({"https://g/r.git": root}))


def test_a_parameter_file_over_the_size_limit_is_refused_from_its_size(tmp_path: Path) -> None:
    root = tree(tmp_path, {"big.yaml": "x: " + "y" * 2_000_000})
    doc = appset([{"git": {"repoURL": "https://g/r.git", "files": [{"path": "big.yaml"}]}}])
    with pytest.raises(GenerationError, match="exceeds the limit of 1048576"):
        run(doc, Inputs({"https://g/r.git": root}))


def test_an_unreachable_repository_raises_rather_than_generating_nothing() -> None:
    doc = appset([git_dirs("https://gone.example.com/r.git", {"path": "*"})], dir_template())
    with pytest.raises(TransientError, match="unreachable"):
        run(doc, Inputs())


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("apps/*", "apps/a", True),
        ("apps/*", "apps/a/b", False),
        ("apps/**", "apps/a/b", True),
        ("**/config.json", "config.json", True),
        ("**/config.json", "x/y/config.json", True),
        ("apps/[ab]", "apps/b", True),
        ("apps/[!ab]", "apps/b", False),
        ("apps/?", "apps/cd", False),
        ("a.b", "axb", False),
    ],
)
def test_glob_patterns(pattern: str, path: str, matches: bool) -> None:
    assert Glob.parse(pattern).matches(path) is matches


def test_a_pathological_glob_matches_in_linear_time() -> None:
    """A backtracking regex would take ages on this; the wildcard matcher does not."""
    started = time.monotonic()
    pattern = Glob.parse("/".join(["**"] + ["*a*a*a*a*a*a*a*a*a*a*a*a*b"] * 3))
    assert not pattern.matches("/".join(["a" * 250] * 40))
    assert time.monotonic() - started < 2


# -- clusters, matrix, merge -----------------------------------------------------------------

CLUSTERS = [
    ClusterInfo("in-cluster", "https://kubernetes.default.svc"),
    ClusterInfo(
        "prod-eu", "https://10.0.0.1:6443", {"env": "prod", "region": "eu"}, {"team": "core"}
    ),
    ClusterInfo("staging", "https://10.0.0.2:6443", {"env": "staging"}),
]


def cluster_template(name: str = "{{ .name }}-{{ .values.suffix }}") -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "annotations": {"server": "{{ .server }}", "team": "{{ .metadata.annotations.team }}"},
        },
        "spec": {
            "source": {"repoURL": "https://g/r.git"},
            "destination": {"name": "{{ .name }}", "namespace": "team-a"},
        },
    }


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ({}, ["in-cluster-x", "prod-eu-x", "staging-x"]),
        ({"matchLabels": {"env": "prod"}}, ["prod-eu-x"]),
        (
            {"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "staging"]}]},
            ["prod-eu-x", "staging-x"],
        ),
        (
            {"matchExpressions": [{"key": "region", "operator": "DoesNotExist"}]},
            ["in-cluster-x", "staging-x"],
        ),
        (
            {"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]},
            ["in-cluster-x", "staging-x"],
        ),
        ({"matchExpressions": [{"key": "env", "operator": "Exists"}]}, ["prod-eu-x", "staging-x"]),
    ],
)
def test_clusters_generator_selects_by_labels(
    selector: dict[str, Any], expected: list[str]
) -> None:
    doc = appset(
        [{"clusters": {"selector": selector, "values": {"suffix": "x"}}}], cluster_template()
    )
    assert sorted(run(doc, Inputs(clusters=CLUSTERS))) == expected


def test_cluster_parameters_are_name_server_labels_annotations_and_values() -> None:
    doc = appset(
        [
            {
                "clusters": {
                    "selector": {"matchLabels": {"env": "prod"}},
                    "values": {"suffix": "{{ .metadata.labels.region }}"},
                }
            }
        ],
        cluster_template(),
    )
    app = run(doc, Inputs(clusters=CLUSTERS))["prod-eu-eu"]
    assert app["metadata"]["annotations"] == {"server": "https://10.0.0.1:6443", "team": "core"}
    assert app["spec"]["destination"]["name"] == "prod-eu"


def test_matrix_of_clusters_and_list_makes_every_combination() -> None:
    template = cluster_template("{{ .service }}-{{ .name }}")
    doc = appset(
        [
            {
                "matrix": {
                    "generators": [
                        {
                            "clusters": {
                                "selector": {
                                    "matchExpressions": [{"key": "env", "operator": "Exists"}]
                                }
                            }
                        },
                        {"list": {"elements": [{"service": "api"}, {"service": "web"}]}},
                    ]
                }
            }
        ],
        template,
    )
    apps = run(doc, Inputs(clusters=CLUSTERS))
    assert sorted(apps) == ["api-prod-eu", "api-staging", "web-prod-eu", "web-staging"]
    assert apps["web-staging"]["spec"]["destination"]["name"] == "staging"


def test_matrix_size_is_checked_before_the_product_is_built() -> None:
    """100 x 100 list elements: 10,000 parameter sets over the limit, refused without
    building them (peak memory stays small)."""
    hundred = [{"a": str(i)} for i in range(100)]
    doc = appset(
        [
            {
                "matrix": {
                    "generators": [
                        {"list": {"elements": hundred}},
                        {"list": {"elements": [{"b": str(i)} for i in range(100)]}},
                    ]
                }
            }
        ]
    )
    tracemalloc.start()
    try:
        with pytest.raises(
            GenerationError, match=r"100 x 100\) yields 10000 parameter sets; the limit is 5000"
        ):
            run(doc)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


def test_flat_matrix_refuses_two_generators_setting_one_key_differently() -> None:
    doc = appset(
        [
            {
                "matrix": {
                    "generators": [
                        {"list": {"elements": [{"name": "a"}]}},
                        {"list": {"elements": [{"name": "b"}]}},
                    ]
                }
            }
        ],
        goTemplate=False,
        template={
            "metadata": {"name": "{{name}}"},
            "spec": {
                "source": {"repoURL": "https://g/r.git"},
                "destination": {"namespace": "team-a"},
            },
        },
    )
    with pytest.raises(GenerationError, match="both generators set 'name'"):
        run(doc)


def test_merge_overrides_the_base_by_merge_keys() -> None:
    template = {
        "metadata": {"name": "{{ .name }}"},
        "spec": {
            "source": {"repoURL": "https://g/r.git", "targetRevision": "{{ .rev }}"},
            "destination": {"namespace": "team-a"},
        },
    }
    doc = appset(
        [
            {
                "merge": {
                    "mergeKeys": ["name"],
                    "generators": [
                        {
                            "list": {
                                "elements": [
                                    {"name": "a", "rev": "main"},
                                    {"name": "b", "rev": "main"},
                                ]
                            }
                        },
                        {
                            "list": {
                                "elements": [
                                    {"name": "b", "rev": "v2"},
                                    {"name": "zz", "rev": "v9"},
                                ]
                            }
                        },
                    ],
                }
            }
        ],
        template,
    )
    apps = run(doc)
    assert sorted(apps) == ["a", "b"]
    assert apps["b"]["spec"]["source"]["targetRevision"] == "v2"


# -- the tenant rule, names and limits --------------------------------------------------------


def test_a_template_naming_another_namespace_is_an_error() -> None:
    template = {
        "metadata": {"name": "{{ .name }}", "namespace": "{{ .ns }}"},
        "spec": {"source": {"repoURL": "https://g/r.git"}, "destination": {"namespace": "team-a"}},
    }
    doc = appset(
        [{"list": {"elements": [{"name": "a", "ns": "team-a"}, {"name": "b", "ns": "gitsync"}]}}],
        template,
    )
    with pytest.raises(
        SpecError,
        match=r"spec.template.metadata.namespace: application 'b' would go to namespace 'gitsync'",
    ):
        run(doc)


def test_each_generated_application_is_checked_as_an_application() -> None:
    template = {
        "metadata": {"name": "{{ .name }}"},
        "spec": {
            "source": {"repoURL": "https://g/r.git", "path": "{{ .p }}"},
            "destination": {"namespace": "team-a"},
        },
    }
    doc = appset([{"list": {"elements": [{"name": "a", "p": "../../etc"}]}}], template)
    with pytest.raises(SpecError, match=r"spec.template.spec.source.path: application 'a'.*'\.\.'"):
        run(doc)


def test_two_parameter_sets_with_one_name_are_an_error() -> None:
    doc = appset([{"list": {"elements": [{"name": "a"}, {"name": "a"}]}}])
    with pytest.raises(GenerationError, match="same application name 'a'"):
        run(doc)


def test_total_output_is_bounded() -> None:
    elements = [{"name": f"app-{i}", "big": "x" * 60_000} for i in range(20)]
    template = {
        "metadata": {"name": "{{ .name }}", "annotations": {"blob": "{{ .big }}"}},
        "spec": {"source": {"repoURL": "https://g/r.git"}, "destination": {"namespace": "team-a"}},
    }
    with pytest.raises(GenerationError, match="exceed 1000000 bytes"):
        run(
            appset([{"list": {"elements": elements}}], template),
            limits=GenerationLimits(max_total_bytes=1_000_000),
        )


def test_a_template_error_names_the_field() -> None:
    template = {
        "metadata": {"name": '{{ include "x" . }}'},
        "spec": {"source": {"repoURL": "https://g/r.git"}, "destination": {"namespace": "team-a"}},
    }
    with pytest.raises(TemplateError, match=r"spec\.template\.metadata\.name: function 'include'"):
        run(appset([{"list": {"elements": [{"name": "a"}]}}], template))


# -- the spec --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"generators": [{"scmProvider": {}}]}, "spec.generators[0].scmProvider"),
        ({"generators": [{"pullRequest": {}}]}, "spec.generators[0].pullRequest"),
        ({"generators": [{"plugin": {}}]}, "spec.generators[0].plugin"),
        (
            {"generators": [{"list": {"elements": []}, "selector": {}}]},
            "spec.generators[0].selector",
        ),
        ({"templatePatch": "x"}, "spec.templatePatch"),
        ({"strategy": {}}, "spec.strategy.type"),
        (
            {"generators": [{"list": {"elements": [], "template": {}}}]},
            "spec.generators[0].list.template",
        ),
        (
            {
                "generators": [
                    {
                        "git": {
                            "repoURL": "https://g/r.git",
                            "directories": [{"path": "*"}],
                            "pathParamPrefix": "x",
                        }
                    }
                ]
            },
            "spec.generators[0].git.pathParamPrefix",
        ),
        (
            {"generators": [{"matrix": {"generators": [{"list": {"elements": []}}]}}]},
            "spec.generators[0].matrix.generators",
        ),
        ({"generators": [{"git": {"repoURL": "https://g/r.git"}}]}, "spec.generators[0].git"),
        (
            {
                "generators": [
                    {"git": {"repoURL": "https://g/r.git", "directories": [{"path": "../x"}]}}
                ]
            },
            "spec.generators[0].git.directories[0].path",
        ),
        (
            {
                "generators": [
                    {
                        "git": {
                            "repoURL": "https://g/r.git",
                            "files": [{"path": "x"}],
                            "requeueAfterSeconds": 0,
                        }
                    }
                ]
            },
            "spec.generators[0].git.requeueAfterSeconds",
        ),
        (
            {"syncPolicy": {"applicationsSync": "delete-everything"}},
            "spec.syncPolicy.applicationsSync",
        ),
        ({"goTemplateOptions": ["missingkey=invalid"]}, "spec.goTemplateOptions[0]"),
        (
            {"template": {"metadata": {"name": "x", "ownerReferences": []}, "spec": {}}},
            "spec.template.metadata.ownerReferences",
        ),
    ],
)
def test_unsupported_or_bad_fields_are_spec_errors_naming_them(
    change: dict[str, Any], field: str
) -> None:
    doc = appset([{"list": {"elements": []}}])
    doc["spec"].update(change)
    with pytest.raises(SpecError) as caught:
        parse_application_set(doc)
    assert caught.value.field == field


def test_policy_and_requeue_are_parsed() -> None:
    doc = appset(
        [
            {
                "git": {
                    "repoURL": "https://g/r.git",
                    "files": [{"path": "x.json"}],
                    "requeueAfterSeconds": 30,
                }
            }
        ],
        syncPolicy={"applicationsSync": "create-update"},
        goTemplateOptions=["missingkey=error"],
    )
    spec = parse_application_set(doc)
    assert spec.applications_sync is ApplicationsSync.CREATE_UPDATE
    assert spec.requeue_after == 30
    assert spec.missing_key_error
    assert parse_application_set(appset([{"list": {"elements": []}}])).requeue_after == 180


def test_a_list_element_nested_too_deep_is_refused_before_it_is_flattened() -> None:
    deep: dict[str, Any] = {"name": "a"}
    node = deep
    for _ in range(5000):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(SpecError, match="nested deeper than 32") as caught:
        parse_application_set(appset([{"list": {"elements": [deep]}}]))
    assert caught.value.field == "spec.generators[0].list.elements[0]"


def test_a_failing_generator_fails_the_whole_generation_not_just_its_part() -> None:
    """A list that works next to a git generator whose server is down: raises, never the
    list's applications alone (which would delete the git generator's)."""
    doc = appset(
        [
            {"list": {"elements": [{"name": "a"}]}},
            git_dirs("https://gone.example/r.git", {"path": "*"}),
        ]
    )
    with pytest.raises(TransientError):
        run(doc, Inputs())
