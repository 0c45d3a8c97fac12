"""The safe YAML loader: what Git content may and may not do to the controller."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitsync.render import LimitExceededError, RenderError, RenderLimits, load_yaml_documents

FIXTURES = Path(__file__).parents[1] / "fixtures" / "render"


def load_fixture(rel: str, limits: RenderLimits | None = None) -> list[dict[str, object]]:
    return load_yaml_documents((FIXTURES / rel).read_bytes(), source=rel, limits=limits)


def test_multi_document_stream_skips_empty_documents() -> None:
    docs = load_yaml_documents("a: 1\n---\n---\n# only a comment\n---\nb: 2\n", source="x.yaml")
    assert docs == [{"a": 1}, {"b": 2}]


def test_empty_text_has_no_documents() -> None:
    assert load_yaml_documents("", source="x.yaml") == []
    assert load_yaml_documents(b"  \n# nothing\n", source="x.yaml") == []


def test_ordinary_anchors_and_merge_keys_load() -> None:
    (doc,) = load_fixture("yaml/anchors.yaml")
    labels = {"app": "anchors", "tier": "web"}
    assert doc["spec"]["selector"]["matchLabels"] == labels  # type: ignore[index]
    assert doc["spec"]["template"]["metadata"]["labels"] == {**labels, "extra": "yes"}  # type: ignore[index]


def test_scalars_stay_json_shaped() -> None:
    (doc,) = load_fixture("yaml/scalars.yaml")
    assert doc["metadata"]["creationTimestamp"] == "2024-01-02T03:04:05Z"  # type: ignore[index]
    assert doc["data"] == {"date": "2024-01-02", "blob": "aGVsbG8=", "number": 42, "flag": True}


@pytest.mark.timeout(10)  # a hang guard; the bound asserted is memory, not wall-clock time
def test_nine_level_alias_bomb_fails_fast_naming_the_file() -> None:
    tracemalloc.start()
    try:
        with pytest.raises(LimitExceededError) as info:
            load_fixture("plain/alias-bomb/bomb.yaml")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "plain/alias-bomb/bomb.yaml:" in str(info.value)
    assert "alias" in str(info.value)
    assert info.value.source == "plain/alias-bomb/bomb.yaml"
    assert info.value.line is not None
    # expanded, the bomb is 10^9 nodes; refused before building, it costs almost nothing
    assert peak < 5 * 1024 * 1024, f"peak Python allocation {peak} bytes"


def test_alias_budget_is_configurable() -> None:
    text = "a: &a [1, 2, 3]\nb: [*a, *a]\n"
    assert load_yaml_documents(text, source="x.yaml")[0]["b"] == [[1, 2, 3], [1, 2, 3]]
    with pytest.raises(LimitExceededError):
        load_yaml_documents(text, source="x.yaml", limits=RenderLimits(max_alias_expansion=5))


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(RenderError, match=r"yaml/recursive-alias.yaml:6: recursive YAML alias"):
        load_fixture("yaml/recursive-alias.yaml")


def test_syntax_error_names_file_and_line() -> None:
    with pytest.raises(RenderError) as info:
        load_fixture("yaml/bad-indent.yaml")
    assert info.value.source == "yaml/bad-indent.yaml"
    assert info.value.line == 7
    assert str(info.value).startswith("yaml/bad-indent.yaml:7: invalid YAML")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", "document 1 is a list, expected a mapping"),
        ("a: 1\n---\njust a string\n", "document 2 is a string, expected a mapping"),
        ("a: !python/object:os.system x\n", "could not determine a constructor"),
        ("a: *nowhere\n", "undefined alias"),
        ("a: " + "1" * 5000 + "\n", "invalid YAML"),
        ("? [a, b]\n: 1\n", "unhashable key"),
        ("a: !!int\n", "invalid YAML"),
    ],
)
def test_invalid_documents_raise_render_error(text: str, message: str) -> None:
    with pytest.raises(RenderError, match=message):
        load_yaml_documents(text, source="x.yaml")


def test_nesting_depth_is_bounded() -> None:
    deep = "a: " + "[" * 50 + "]" * 50 + "\n"
    assert load_yaml_documents(deep, source="x.yaml")
    with pytest.raises(LimitExceededError, match=r"nesting deeper than 20"):
        load_yaml_documents(deep, source="x.yaml", limits=RenderLimits(max_depth=20))


def test_size_and_document_limits() -> None:
    with pytest.raises(LimitExceededError, match=r"exceeds the limit of 10 bytes"):
        load_yaml_documents("a: 1234567890\n", source="x.yaml", limits=RenderLimits(max_bytes=10))
    with pytest.raises(LimitExceededError, match=r"more than 2 documents"):
        load_yaml_documents(
            "a: 1\n---\nb: 2\n---\nc: 3\n", source="x.yaml", limits=RenderLimits(max_documents=2)
        )


YAMLISH = st.text(
    alphabet=st.sampled_from(list("ab:-[]{}&*!|>'\"#\n\t ,?%@`01.<=~\\")), max_size=300
)


@settings(
    max_examples=400,
    deadline=1000,  # ms per example; the loader must stay fast on garbage
    database=None,  # keep no example database in the shared working tree
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300), YAMLISH))
def test_fuzz_only_render_errors(text: str | bytes) -> None:
    try:
        docs = load_yaml_documents(text, source="fuzz.yaml")
    except RenderError as exc:
        assert str(exc).startswith("fuzz.yaml")
    else:
        assert all(isinstance(doc, dict) for doc in docs)
