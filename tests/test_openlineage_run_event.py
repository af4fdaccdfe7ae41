"""RunEvents carry the 2-0-2 required keys, column lineage with transformation types, the
persona version facet; posting is a copy that fails loudly (no network: a local server)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import pytest

from engine.errors import BadInputError
from lineage.openlineage import RUN_EVENT_SCHEMA, post, run_event, validate_run_event

NS = "personagov://demo"
RUN_ID = "0b7e1f0e-9c3a-4d55-8f7e-2c4b5a6d7e8f"


def _event(**over: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "event_type": "COMPLETE",
        "run_id": RUN_ID,
        "job_namespace": NS,
        "job_name": "refresh.UK.marketing_segmentation",
        "inputs": [
            {
                "namespace": NS,
                "name": "crm",
                "fields": [{"name": "email", "type": "str", "description": "direct_identifier"}],
            }
        ],
        "outputs": [{"namespace": NS, "name": "versions/UK/marketing_segmentation/v0003"}],
        "column_lineage": {
            "email_token": [
                {
                    "namespace": NS,
                    "name": "crm",
                    "field": "email",
                    "transformations": [
                        {
                            "type": "DIRECT",
                            "subtype": "TRANSFORMATION",
                            "description": "pseudonymise domain=marketing",
                            "masking": True,
                        }
                    ],
                }
            ],
            "monetary_90d": [
                {
                    "namespace": NS,
                    "name": "transactions",
                    "field": "amount",
                    "transformations": [{"type": "DIRECT", "subtype": "AGGREGATION"}],
                }
            ],
        },
        "persona_version": "v0003",
        "producer": "https://github.com/personagov/personagov/tree/v0.1.0",
        "event_time": datetime(2026, 11, 1, 12, 0, tzinfo=UTC),
    }
    args.update(over)
    return run_event(**args)


# Required keys, as published in https://openlineage.io/spec/2-0-2/OpenLineage.json
# (BaseEvent: eventTime, producer, schemaURL; RunEvent: run, job; Run: runId; Job and
# Dataset: namespace, name; every facet: _producer, _schemaURL) and the column-lineage
# facet 1-2-0 (fields.*.inputFields[] with namespace, name, field; transformation: type).
REQUIRED_TOP = {"eventTime", "producer", "schemaURL", "run", "job"}


def test_event_has_the_required_keys_of_the_published_schema() -> None:
    ev = _event()
    assert ev.keys() >= REQUIRED_TOP
    assert ev["schemaURL"] == RUN_EVENT_SCHEMA
    assert ev["schemaURL"].startswith("https://openlineage.io/spec/2-0-2/OpenLineage.json")
    assert ev["eventType"] == "COMPLETE" and ev["eventTime"] == "2026-11-01T12:00:00.000Z"
    assert str(uuid.UUID(ev["run"]["runId"])) == RUN_ID
    assert ev["job"] == {"namespace": NS, "name": "refresh.UK.marketing_segmentation", "facets": {}}
    for ds in ev["inputs"] + ev["outputs"]:
        assert {"namespace", "name"} <= ds.keys()
        for facet in ds["facets"].values():
            assert {"_producer", "_schemaURL"} <= facet.keys()
    validate_run_event(ev)
    json.dumps(ev, allow_nan=False)


def test_schema_column_lineage_and_version_facets() -> None:
    ev = _event()
    schema = ev["inputs"][0]["facets"]["schema"]
    assert schema["fields"] == [
        {"name": "email", "type": "str", "description": "direct_identifier"}
    ]
    out = ev["outputs"][0]["facets"]
    assert out["version"]["datasetVersion"] == "v0003"
    assert "DatasetVersionDatasetFacet" in out["version"]["_schemaURL"]
    cl = out["columnLineage"]
    assert "ColumnLineageDatasetFacet" in cl["_schemaURL"]
    email = cl["fields"]["email_token"]["inputFields"][0]
    assert email["transformations"] == [
        {
            "type": "DIRECT",
            "subtype": "TRANSFORMATION",
            "description": "pseudonymise domain=marketing",
            "masking": True,
        }
    ]
    agg = cl["fields"]["monetary_90d"]["inputFields"][0]["transformations"][0]
    assert agg["subtype"] == "AGGREGATION" and agg["masking"] is False


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"event_type": "DONE"}, "eventType"),
        ({"run_id": "not-a-uuid"}, "UUID"),
        ({"event_time": datetime(2026, 1, 1)}, "time zone"),
        (
            {
                "column_lineage": {
                    "x": [
                        {
                            "namespace": NS,
                            "name": "crm",
                            "field": "a",
                            "transformations": [{"type": "INDIRECT", "subtype": "AGGREGATION"}],
                        }
                    ]
                }
            },
            "not a INDIRECT",
        ),
    ],
)
def test_invalid_events_are_refused(over: dict[str, Any], message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        _event(**over)


def test_validator_catches_a_missing_required_key() -> None:
    ev = _event()
    del ev["outputs"][0]["facets"]["columnLineage"]["fields"]["email_token"]["inputFields"][0][
        "field"
    ]
    with pytest.raises(BadInputError, match="lacks"):
        validate_run_event(ev)
    ev = _event()
    del ev["producer"]
    with pytest.raises(BadInputError, match="producer"):
        validate_run_event(ev)


class _Sink(BaseHTTPRequestHandler):
    received: ClassVar[list[bytes]] = []
    status = 201

    def do_POST(self) -> None:
        n = int(self.headers["Content-Length"])
        _Sink.received.append(self.rfile.read(n))
        self.send_response(_Sink.status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[str]:
    httpd = HTTPServer(("127.0.0.1", 0), _Sink)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/api/v1/lineage"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_post_sends_a_copy_and_fails_closed_on_errors(server: str) -> None:
    _Sink.received.clear()
    _Sink.status = 201
    ev = _event()
    assert post(ev, server, timeout=5) == 201
    assert json.loads(_Sink.received[0]) == ev
    _Sink.status = 500
    with pytest.raises(BadInputError, match=r"failed|HTTP 500"):
        post(ev, server, timeout=5)
    with pytest.raises(BadInputError, match="non-HTTP"):
        post(ev, "file:///etc/passwd")
