"""The ApplicationSet template language: Argo CD's spellings, nothing executable, bounded output."""

from __future__ import annotations

import time
import tracemalloc
from typing import Any

import pytest

from gitsync.appset.template import (
    FUNCTIONS,
    TemplateError,
    TemplateOptions,
    normalize,
    render_string,
    render_value,
)

GO = TemplateOptions(go_template=True)
FLAT = TemplateOptions(go_template=False)
PARAMS: dict[str, Any] = {
    "path": {
        "path": "services/Api_Gateway",
        "basename": "Api_Gateway",
        "segments": ["services", "Api_Gateway"],
    },
    "name": "prod-eu",
    "replicas": 3,
    "enabled": True,
    "empty": "",
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ .path.basename }}", "Api_Gateway"),
        ("{{.name}}-{{ .path.basename | normalize }}", "prod-eu-api-gateway"),
        ("{{ normalize .path.basename }}", "api-gateway"),
        ("{{ .path.basename | lower }}", "api_gateway"),
        ("{{ upper .name }}", "PROD-EU"),
        ("{{ index .path.segments 0 }}", "services"),
        ("{{ index .path.segments -1 }}", "Api_Gateway"),
        ('{{ .missing | default "fallback" }}', "fallback"),
        ('{{ default "fallback" .empty }}', "fallback"),
        ('{{ .name | default "x" }}', "prod-eu"),
        ("{{ .name | quote }}", '"prod-eu"'),
        ("{{ .name | squote }}", "'prod-eu'"),
        ("{{ trunc 4 .name }}", "prod"),
        ('{{ .name | trimPrefix "prod-" }}', "eu"),
        ('{{ .name | trimSuffix "-eu" }}', "prod"),
        ('{{ replace "-" "." .name }}', "prod.eu"),
        ('{{ join "/" .path.segments }}', "services/Api_Gateway"),
        ("{{ .replicas }} {{ .enabled }}", "3 true"),
        ("{{ .replicas | toString }}", "3"),
        ("a {{- /* a comment */ -}} b", "ab"),
        ("x {{- .name }}", "x" + "prod-eu"),
        ("{{ (.path.basename | lower) | upper }}", "API_GATEWAY"),
        ("no actions at all", "no actions at all"),
    ],
)
def test_go_template_spellings(template: str, expected: str) -> None:
    assert render_string(template, PARAMS, GO) == expected


def test_a_missing_key_prints_no_value_or_fails_with_missingkey_error() -> None:
    assert render_string("{{ .nope }}", PARAMS, GO) == "<no value>"
    strict = TemplateOptions(go_template=True, missing_key_error=True)
    with pytest.raises(TemplateError, match=r"no parameter \.nope \(missingkey=error\)"):
        render_string("{{ .nope }}", PARAMS, strict, where="spec.template.metadata.name")


@pytest.mark.parametrize(
    ("template", "named"),
    [
        ('{{ include "x" . }}', "function 'include'"),
        ('{{ template "x" . }}', "'template' is not supported"),
        ('{{ define "x" }}y{{ end }}', "'define' is not supported"),
        ("{{ range .path.segments }}x{{ end }}", "'range' is not supported"),
        ("{{ if .enabled }}x{{ end }}", "'if' is not supported"),
        ("{{ with .path }}x{{ end }}", "'with' is not supported"),
        ('{{ env "HOME" }}', "function 'env'"),
        ('{{ exec "id" }}', "function 'exec'"),
        ('{{ readFile "/etc/passwd" }}', "function 'readFile'"),
        ("{{ $x := .name }}", "variables"),
        ("{{ .name", "unclosed action"),
        ("{{ }}", "empty action"),
        ("{{ .name | .name }}", "only a function can follow"),
    ],
)
def test_anything_beyond_the_small_language_is_an_error_naming_it(
    template: str, named: str
) -> None:
    with pytest.raises(TemplateError, match=r"spec\.template\.spec\.x") as caught:
        render_string(template, PARAMS, GO, where="spec.template.spec.x")
    assert named in str(caught.value)


def test_the_error_lists_the_supported_functions() -> None:
    with pytest.raises(TemplateError) as caught:
        render_string("{{ sha256sum .name }}", PARAMS, GO)
    assert all(name in str(caught.value) for name in FUNCTIONS)


def test_a_parameter_holding_template_syntax_is_never_expanded_again() -> None:
    """A recursive include through parameters: the value is inserted as text, once."""
    hostile = {"name": "{{ .name }}{{ .name }}", "x": '{{ include "loop" . }}'}
    assert render_string("{{ .name }}/{{ .x }}", hostile, GO) == (
        '{{ .name }}{{ .name }}/{{ include "loop" . }}'
    )
    flat = {"name": "{{name}}{{name}}"}
    assert render_string("{{name}}", flat, FLAT) == "{{name}}{{name}}"


def test_fasttemplate_replaces_flat_keys_and_keeps_unknown_tags() -> None:
    flat = {"path": "services/a", "path.basename": "a", "path[0]": "services", "name": "x"}
    assert render_string("{{path.basename}}-{{ name }}-{{path[0]}}", flat, FLAT) == "a-x-services"
    assert render_string("{{unknown}} {{ .name }}", flat, FLAT) == "{{unknown}} {{ .name }}"


def test_ten_thousand_fold_output_stops_at_the_string_limit_early() -> None:
    """A 6 KiB parameter printed 10,000 times would be 60 MiB; rendering stops at 64 KiB
    without building it (peak memory measured)."""
    params = {"big": "x" * 6000}
    template = "{{ .big }}" * 10_000
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(TemplateError, match="exceeds 65536 bytes"):
            render_string(template, params, GO)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20
    assert time.monotonic() - started < 5


def test_render_value_renders_keys_and_strings_and_keeps_other_types() -> None:
    template = {
        "metadata": {"name": "{{ .name }}", "labels": {"{{ .name }}": "yes"}},
        "spec": {"replicas": 2, "flag": False, "list": ["{{ .path.basename }}", 7]},
    }
    assert render_value(template, PARAMS, GO, where="spec.template") == {
        "metadata": {"name": "prod-eu", "labels": {"prod-eu": "yes"}},
        "spec": {"replicas": 2, "flag": False, "list": ["Api_Gateway", 7]},
    }


def test_render_value_refuses_a_template_nested_too_deep() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(100):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(TemplateError, match="nested deeper than 64"):
        render_value(deep, PARAMS, GO, where="spec.template")


def test_a_list_cannot_be_printed_into_a_string() -> None:
    with pytest.raises(TemplateError, match="use index or join"):
        render_string("{{ .path.segments }}", PARAMS, GO)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("Api_Gateway", "api-gateway"), ("Ünïcode Name", "unicode-name"), ("a.b-c", "a.b-c")],
)
def test_normalize_makes_object_names(value: str, expected: str) -> None:
    assert normalize(value) == expected
