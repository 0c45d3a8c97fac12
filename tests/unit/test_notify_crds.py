"""The NotificationProvider and NotificationRule CRDs agree with ``gitsync.notify.spec``: the
same kinds and group, the same spec fields (the API server prunes what a structural schema does
not declare, so a field missing there would vanish on ``kubectl apply``), the same provider types
and event names, and printer columns for ``kubectl get``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gitsync import kinds
from gitsync.notify.events import EventName
from gitsync.notify.spec import PROVIDER_FIELDS, RULE_FIELDS, ProviderType

CRDS = Path(__file__).resolve().parents[2] / "charts/gitsync/crds"


def crd(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((CRDS / f"{name}.gitsync.dev.yaml").read_text())
    assert isinstance(doc, dict)
    return doc


def version(doc: dict[str, Any]) -> dict[str, Any]:
    (v,) = doc["spec"]["versions"]
    assert (v["name"], v["served"], v["storage"]) == (kinds.VERSION, True, True)
    return dict(v)


@pytest.mark.parametrize(
    ("name", "kind", "fields"),
    [
        ("notificationproviders", kinds.NOTIFICATION_PROVIDER, PROVIDER_FIELDS),
        ("notificationrules", kinds.NOTIFICATION_RULE, RULE_FIELDS),
    ],
)
def test_the_crd_declares_the_kind_and_exactly_the_parsed_fields(
    name: str, kind: str, fields: set[str]
) -> None:
    doc = crd(name)
    assert doc["spec"]["group"] == kinds.GROUP
    assert doc["spec"]["names"]["kind"] == kind
    assert doc["spec"]["scope"] == "Namespaced"
    v = version(doc)
    spec = v["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert set(spec["properties"]) == fields
    assert [c["name"] for c in v["additionalPrinterColumns"]][-1] == "Age"


def test_provider_types_and_event_names_are_the_codes() -> None:
    provider = version(crd("notificationproviders"))["schema"]["openAPIV3Schema"]
    assert provider["properties"]["spec"]["properties"]["type"]["enum"] == [
        t.value for t in ProviderType
    ]
    rule = version(crd("notificationrules"))["schema"]["openAPIV3Schema"]
    events = rule["properties"]["spec"]["properties"]["events"]["items"]["enum"]
    assert events == [e.value for e in EventName]


def test_the_secret_ref_has_no_namespace_field() -> None:
    """A provider's Secret is in the provider's namespace: there is no field to say otherwise."""
    provider = version(crd("notificationproviders"))["schema"]["openAPIV3Schema"]
    ref = provider["properties"]["spec"]["properties"]["secretRef"]
    assert set(ref["properties"]) == {"name"}
