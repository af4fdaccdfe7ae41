"""OpenLineage RunEvents (spec 2-0-2) for a refresh, so Marquez/DataHub users can import them.

A refresh is one OpenLineage run: a START event when it begins, then COMPLETE (with
inputs, outputs and column lineage) or FAIL, all with the same runId. The START and
COMPLETE events are written into the version and are signed subjects of its statement: the
files on disk are the record. ``emit`` sends a copy through openlineage-python's synchronous
HTTP transport (its async transport has lost events) to the endpoint declared in pgov.toml;
a failed send is logged and audited by the caller, and never undoes a published version.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import structlog
from pydantic import BaseModel, ConfigDict

from engine.errors import BadInputError

log = structlog.get_logger(__name__)

SPEC = "https://openlineage.io/spec/2-0-2/OpenLineage.json"
RUN_EVENT_SCHEMA = f"{SPEC}#/$defs/RunEvent"
SCHEMA_FACET = (
    "https://openlineage.io/spec/facets/1-1-1/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet"
)
COLUMN_LINEAGE_FACET = (
    "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json"
    "#/$defs/ColumnLineageDatasetFacet"
)
VERSION_FACET = (
    "https://openlineage.io/spec/facets/1-0-0/DatasetVersionDatasetFacet.json"
    "#/$defs/DatasetVersionDatasetFacet"
)
EVENT_TYPES = ("START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER")
TRANSFORMATION_TYPES = ("DIRECT", "INDIRECT")
# Subtypes from the column-lineage spec: DIRECT ones change values, INDIRECT ones select rows.
SUBTYPES = {
    "DIRECT": ("IDENTITY", "TRANSFORMATION", "AGGREGATION"),
    "INDIRECT": ("JOIN", "GROUP_BY", "FILTER", "SORT", "WINDOW", "CONDITIONAL"),
}


class Transformation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["DIRECT", "INDIRECT"]
    subtype: str | None = None
    description: str = ""
    masking: bool = False

    def checked(self) -> Transformation:
        if self.subtype is not None and self.subtype not in SUBTYPES[self.type]:
            raise BadInputError(
                f"openlineage: subtype {self.subtype!r} is not a {self.type} transformation "
                f"(expected one of {', '.join(SUBTYPES[self.type])})"
            )
        return self


class InputField(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    namespace: str
    name: str
    field: str
    transformations: list[Transformation] = []


class DatasetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    namespace: str
    name: str
    fields: list[dict[str, Any]] = []


def _facet(schema_url: str, producer: str, **body: Any) -> dict[str, Any]:
    return {"_producer": producer, "_schemaURL": schema_url, **body}


def _schema_facet(fields: Sequence[Mapping[str, Any]], producer: str) -> dict[str, Any]:
    out = []
    for f in fields:
        if "name" not in f:
            raise BadInputError("openlineage: a schema field has no name")
        out.append({k: f[k] for k in ("name", "type", "description") if f.get(k) is not None})
    return _facet(SCHEMA_FACET, producer, fields=out)


def _time(event_time: datetime) -> str:
    if event_time.tzinfo is None:
        raise BadInputError("openlineage: eventTime must carry a time zone")
    return event_time.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def run_event(
    event_type: str,
    run_id: str,
    job_namespace: str,
    job_name: str,
    inputs: Sequence[Mapping[str, Any]],
    outputs: Sequence[Mapping[str, Any]],
    column_lineage: Mapping[str, Sequence[Mapping[str, Any]]],
    persona_version: str,
    producer: str,
    event_time: datetime,
) -> dict[str, Any]:
    """A RunEvent; ``column_lineage`` maps output field -> input fields with transformations.

    Column lineage and the persona version facet are attached to every output dataset
    (a refresh publishes one version directory, so there is normally exactly one).
    """
    if event_type not in EVENT_TYPES:
        raise BadInputError(f"openlineage: eventType {event_type!r} not in {EVENT_TYPES}")
    try:
        rid = str(uuid.UUID(run_id))
    except ValueError:
        raise BadInputError(f"openlineage: runId {run_id!r} is not a UUID") from None
    lineage_fields: dict[str, Any] = {}
    for out_field, sources in sorted(column_lineage.items()):
        items = []
        for src in sources:
            inp = InputField.model_validate(src)
            items.append(
                {
                    "namespace": inp.namespace,
                    "name": inp.name,
                    "field": inp.field,
                    "transformations": [
                        t.checked().model_dump(exclude_none=True) for t in inp.transformations
                    ],
                }
            )
        lineage_fields[out_field] = {"inputFields": items}
    ins = []
    for d in inputs:
        ds = DatasetSpec.model_validate(d)
        facets: dict[str, Any] = {}
        if ds.fields:
            facets["schema"] = _schema_facet(ds.fields, producer)
        ins.append({"namespace": ds.namespace, "name": ds.name, "facets": facets})
    outs = []
    for d in outputs:
        ds = DatasetSpec.model_validate(d)
        facets = {"version": _facet(VERSION_FACET, producer, datasetVersion=persona_version)}
        if ds.fields:
            facets["schema"] = _schema_facet(ds.fields, producer)
        if lineage_fields:
            facets["columnLineage"] = _facet(COLUMN_LINEAGE_FACET, producer, fields=lineage_fields)
        outs.append({"namespace": ds.namespace, "name": ds.name, "facets": facets})
    return {
        "eventType": event_type,
        "eventTime": _time(event_time),
        "run": {"runId": rid, "facets": {}},
        "job": {"namespace": job_namespace, "name": job_name, "facets": {}},
        "inputs": ins,
        "outputs": outs,
        "producer": producer,
        "schemaURL": RUN_EVENT_SCHEMA,
    }


def validate_run_event(event: Mapping[str, Any]) -> None:
    """The required keys of the 2-0-2 RunEvent and the facets we emit; raises BadInputError."""

    def need(obj: Any, keys: Sequence[str], where: str) -> None:
        if not isinstance(obj, Mapping):
            raise BadInputError(f"openlineage: {where} is not an object")
        missing = [k for k in keys if k not in obj]
        if missing:
            raise BadInputError(f"openlineage: {where} lacks {missing}")

    need(event, ["eventTime", "producer", "schemaURL", "run", "job"], "RunEvent")
    if event.get("eventType", "OTHER") not in EVENT_TYPES:
        raise BadInputError("openlineage: eventType not allowed")
    need(event["run"], ["runId"], "run")
    uuid.UUID(event["run"]["runId"])
    need(event["job"], ["namespace", "name"], "job")
    for side in ("inputs", "outputs"):
        for i, ds in enumerate(event.get(side, [])):
            need(ds, ["namespace", "name"], f"{side}[{i}]")
            for fname, facet in ds.get("facets", {}).items():
                need(facet, ["_producer", "_schemaURL"], f"{side}[{i}].facets.{fname}")
            cl = ds.get("facets", {}).get("columnLineage")
            if cl is not None:
                need(cl, ["fields"], f"{side}[{i}].columnLineage")
                for out, spec in cl["fields"].items():
                    need(spec, ["inputFields"], f"columnLineage.fields.{out}")
                    for inp in spec["inputFields"]:
                        need(inp, ["namespace", "name", "field"], f"{out}.inputFields")
                        for t in inp.get("transformations", []):
                            need(t, ["type"], f"{out}.transformations")
                            if t["type"] not in TRANSFORMATION_TYPES:
                                raise BadInputError(f"openlineage: {out}: bad transformation")
            ver = ds.get("facets", {}).get("version")
            if ver is not None:
                need(ver, ["datasetVersion"], f"{side}[{i}].facets.version")


ERROR_FACET = (
    "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet"
)


def lifecycle_event(
    event_type: str,
    run_id: str,
    job_namespace: str,
    job_name: str,
    producer: str,
    event_time: datetime,
    error_message: str | None = None,
) -> dict[str, Any]:
    """A START or FAIL RunEvent (no datasets: the inputs are known only once the policy has
    decided, and a failed run published nothing). FAIL carries an errorMessage run facet
    holding reason codes and locations only, never values."""
    if event_type not in ("START", "FAIL", "ABORT"):
        raise BadInputError(f"openlineage: {event_type!r} is not a lifecycle event type")
    try:
        rid = str(uuid.UUID(run_id))
    except ValueError:
        raise BadInputError(f"openlineage: runId {run_id!r} is not a UUID") from None
    run_facets: dict[str, Any] = {}
    if error_message is not None:
        run_facets["errorMessage"] = _facet(
            ERROR_FACET, producer, message=error_message, programmingLanguage="python"
        )
    return {
        "eventType": event_type,
        "eventTime": _time(event_time),
        "run": {"runId": rid, "facets": run_facets},
        "job": {"namespace": job_namespace, "name": job_name, "facets": {}},
        "inputs": [],
        "outputs": [],
        "producer": producer,
        "schemaURL": RUN_EVENT_SCHEMA,
    }


def emit(
    event: Mapping[str, Any], url: str, endpoint: str = "api/v1/lineage", timeout: float = 5.0
) -> None:
    """Send a copy through openlineage-python's HTTP transport (synchronous, a few retries);
    raises BadInputError on any failure."""
    from openlineage.client.transport.http import HttpConfig, HttpTransport

    if not url.startswith(("http://", "https://")):
        raise BadInputError(f"openlineage: refusing non-HTTP URL {url!r}")
    config = HttpConfig(
        url=url,
        endpoint=endpoint,
        timeout=timeout,
        retry={
            "total": 2,
            "connect": 2,
            "read": 2,
            "backoff_factor": 0.2,
            "status_forcelist": [500, 502, 503, 504],
            "allowed_methods": ["POST"],
        },
    )
    transport = HttpTransport(config)
    try:
        transport.emit(dict(event))  # type: ignore[arg-type]
    except Exception as exc:
        log.warning("openlineage_emit_failed", endpoint=endpoint, error=type(exc).__name__)
        raise BadInputError(
            f"openlineage: sending {event.get('eventType')} to {url} failed: {type(exc).__name__}"
        ) from None
    finally:
        transport.close()
    log.info("openlineage_emitted", event_type=event.get("eventType"))


def post(event: Mapping[str, Any], url: str, timeout: float = 5.0) -> int:
    """POST a copy of the event (e.g. Marquez ``/api/v1/lineage``); returns the HTTP status.

    Raises BadInputError on any failure; callers treat it as "copy not delivered", never as
    a reason to undo the version.
    """
    if not url.startswith(("http://", "https://")):
        raise BadInputError(f"openlineage: refusing non-HTTP URL {url!r}")
    data = json.dumps(event, sort_keys=True).encode("utf-8")
    req = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status = int(resp.status)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        log.warning("openlineage_post_failed", url=url, error=type(exc).__name__)
        raise BadInputError(f"openlineage: POST to {url} failed: {exc}") from None
    if not 200 <= status < 300:
        raise BadInputError(f"openlineage: POST to {url} answered HTTP {status}")
    log.info("openlineage_posted", url=url, status=status)
    return status
