"""The ApplicationSet CRD agrees with the parser and the status the controller writes.

The API server prunes fields a structural schema does not declare: an Argo CD field gitsync does
not implement must *reach* the parser (so it becomes an error naming it), hence the
``x-kubernetes-preserve-unknown-fields`` the test checks; and every status field the controller
writes must be declared, or it would vanish on write.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gitsync.appset import spec as appset_spec
from gitsync.appset.generate import MAX_SHOWN_PARAMETERS, MAX_SHOWN_VALUE, shown_parameters
from gitsync.appset.rolling import AppState, decide, report
from gitsync.appset.spec import parse_strategy
from gitsync.appset.status import Resource, Stage, set_status

ROOT = Path(__file__).resolve().parents[2]
CRD = yaml.safe_load((ROOT / "charts/gitsync/crds/applicationsets.gitsync.dev.yaml").read_text())
(VERSION,) = CRD["spec"]["versions"]
SCHEMA = VERSION["schema"]["openAPIV3Schema"]


def test_names_and_printer_columns() -> None:
    assert CRD["metadata"]["name"] == "applicationsets.gitsync.dev"
    assert CRD["spec"]["names"]["kind"] == "ApplicationSet"
    assert VERSION["subresources"] == {"status": {}}
    assert [c["name"] for c in VERSION["additionalPrinterColumns"]] == [
        "Apps",
        "Up-To-Date",
        "Error",
        "Age",
    ]


def test_every_spec_field_the_parser_reads_is_declared_and_unknown_ones_reach_it() -> None:
    spec = SCHEMA["properties"]["spec"]
    assert set(spec["properties"]) == appset_spec._SPEC_FIELDS
    assert spec["x-kubernetes-preserve-unknown-fields"] is True
    generator = spec["properties"]["generators"]["items"]
    assert set(generator["properties"]) == appset_spec._GENERATORS
    assert generator["x-kubernetes-preserve-unknown-fields"] is True
    git = generator["properties"]["git"]["properties"]
    assert set(git) == {"repoURL", "revision", "directories", "files", "requeueAfterSeconds"}
    template = spec["properties"]["template"]["properties"]
    assert template["spec"]["x-kubernetes-preserve-unknown-fields"] is True
    policy = spec["properties"]["syncPolicy"]["properties"]
    assert policy["applicationsSync"]["enum"] == [p.value for p in appset_spec.ApplicationsSync]


def _covered(value: Any, schema: dict[str, Any], where: str) -> None:
    if isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        assert schema["type"] == "object" and len(value) <= schema["maxProperties"], where
        for key, item in value.items():
            _covered(item, schema["additionalProperties"], f"{where}.{key}")
    elif isinstance(value, dict):
        props = schema.get("properties") or {}
        for key, item in value.items():
            assert key in props, f"{where}.{key} is not in the CRD's status schema"
            _covered(item, props[key], f"{where}.{key}")
    elif isinstance(value, str) and "maxLength" in schema:
        assert schema["type"] == "string" and len(value) <= schema["maxLength"], where
    elif isinstance(value, list):
        for item in value:
            _covered(item, schema["items"], f"{where}[]")


def test_the_status_the_controller_writes_is_declared() -> None:
    status = set_status(
        stage=Stage.DONE,
        error="",
        resources=[
            Resource(
                "a",
                "ns",
                "Synced",
                "Healthy",
                message="held",
                parameters=shown_parameters({f"k{i:02}": "v" * 1000 for i in range(40)}),
            )
        ],
        previous={},
        now="t",
        observed_generation=2,
        application_count=1,
    )
    assert len(status["resources"][0]["parameters"]) == 33
    resource = SCHEMA["properties"]["status"]["properties"]["resources"]["items"]
    assert resource["properties"]["parameters"] == {  # what shown_parameters keeps to
        "type": "object",
        "maxProperties": MAX_SHOWN_PARAMETERS + 1,
        "additionalProperties": {"type": "string", "maxLength": MAX_SHOWN_VALUE},
    }
    _covered(status, SCHEMA["properties"]["status"], "status")


def test_the_rolling_sync_status_is_declared() -> None:
    steps = [
        {"matchExpressions": [{"key": "env", "operator": "In", "values": [env]}]}
        for env in ("staging", "prod")
    ]
    strategy = parse_strategy({"type": "RollingSync", "rollingSync": {"steps": steps}})
    old, new = "a" * 40, "b" * 40
    apps = [
        AppState("staging", {"env": "staging"}, new, new, "Synced", "Degraded"),
        AppState("prod", {"env": "prod"}, old, old, "Synced", "Healthy"),
        AppState("qa", {"env": "qa"}, old, old, "Synced", "Healthy"),
    ]
    rolling = report(decide(strategy, apps, new, proven=old), new)
    status = set_status(
        stage=Stage.DONE,
        error="",
        resources=[],
        previous={},
        now="t",
        observed_generation=2,
        application_count=3,
        rolling=rolling,
    )
    assert status["rollingSync"]["stoppedBy"] == ["staging"]
    assert status["rollingSync"]["unmatched"] == ["qa"]
    _covered(status, SCHEMA["properties"]["status"], "status")
