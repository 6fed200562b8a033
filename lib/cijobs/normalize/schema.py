"""JSON Schema (draft 2020-12) of the normalized document, derived from the table.

``schema.json`` in this package is the committed output of ``build_schema()``
(regenerate with ``python -m cijobs.normalize.schema > lib/cijobs/normalize/schema.json``;
a test keeps the two identical). Every declared path gets its JSON type; unknown
members are allowed everywhere (``additionalProperties`` is left open) because the
normalizer passes new CI fields through.
"""

from __future__ import annotations

import functools
import json
import sys
from importlib import resources
from typing import Any, Optional

from .scalars import BOOL, FLOAT, INT, OBJECT, STRING, TIMESTAMP
from .table import Spec, Trie, compile_table, load_raw

DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "https://cijobs.invalid/schema/normalized-document.json"
TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?[+-]\d{2}:\d{2}$"

_SCALARS: dict[str, dict[str, Any]] = {
    STRING: {"type": "string"},
    INT: {"type": "integer"},
    FLOAT: {"type": "number"},
    BOOL: {"type": "boolean"},
    TIMESTAMP: {"anyOf": [{"type": "string", "pattern": TIMESTAMP_PATTERN}, {"type": "null"}]},
}

_DESCRIPTIONS = {
    "JobsDetail": "one entry per job (query/list response, TaskFinish callback); always an array",
    "NonExistJobIds": "queried ids CI reports as not existing; split on commas/whitespace, de-duplicated",
    "EventName": "callbacks only: TaskFinish or WorkflowFinish",
    "NextToken": "list responses only: pagination token, empty on the last page",
    "WorkflowExecution": "WorkflowFinish callbacks only",
    "JobsDetail.State": "Submitted | Running | Success | Failed | Pause | Cancel",
    "JobsDetail.Code": "Success, or the error code when State is Failed",
    "JobsDetail.Progress": "0..100, only while Submitted/Running/Success/Pause",
    "JobsDetail.StartTime": "ISO 8601; null until the job starts (CI sends '-')",
    "JobsDetail.EndTime": "ISO 8601; null until the job ends (CI sends '-')",
    "JobsDetail.Operation.JobLevel": "queue priority",
}


def _node(spec: Spec, path: str, operation_notes: dict[str, str]) -> dict[str, Any]:
    _, kind, children = spec
    if children is not None or kind == OBJECT:
        schema: dict[str, Any] = {"type": "object"}
        if children:
            schema["properties"] = _properties(children, path, operation_notes)
    elif kind is None:  # array of undeclared items (text or container): any value
        schema = {}
    else:
        schema = dict(_SCALARS[kind])
    note = _DESCRIPTIONS.get(path) or operation_notes.get(path)
    if note:
        schema["description"] = note
    if spec[0]:
        schema = {"type": "array", "items": schema}
    return schema


def _properties(trie: Trie, prefix: str, operation_notes: dict[str, str]) -> dict[str, Any]:
    return {
        name: _node(spec, f"{prefix}.{name}" if prefix else name, operation_notes)
        for name, spec in sorted(trie.items())
    }


def _operation_notes(data: dict[str, Any]) -> dict[str, str]:
    """``JobsDetail.Operation.<Block>`` -> which job Tags carry it (parameters/results)."""
    uses: dict[str, list[str]] = {}
    for name, info in data["jobTypes"].items():
        tag = info.get("tag", name)
        label = tag if tag == name else f"{tag} ({name})"
        for block in info["params"]:
            uses.setdefault(block, []).append(f"{label} parameters")
        for block in info["results"]:
            uses.setdefault(block, []).append(f"{label} result")
    return {f"JobsDetail.Operation.{b}": "; ".join(sorted(v)) for b, v in uses.items()}


def build_schema(data: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    data = data if data is not None else load_raw()
    trie = compile_table(data)
    props = _properties(trie, "", _operation_notes(data))
    job = props["JobsDetail"]["items"]
    job["required"] = ["JobId"]
    props["JobsDetail"]["items"] = {"$ref": "#/$defs/job"}
    props["NonExistJobIds"]["items"]["minLength"] = 1
    return {
        "$schema": DIALECT,
        "$id": SCHEMA_ID,
        "title": "cijobs normalized CI document",
        "description": "Output of cijobs.normalize.normalize_document(): query/list response or callback.",
        "type": "object",
        "required": ["JobsDetail", "NonExistJobIds"],
        "properties": props,
        "$defs": {"job": job},
    }


@functools.lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    """The committed ``schema.json`` (whole document; the job schema is ``$defs.job``)."""
    text = resources.files("cijobs.normalize").joinpath("schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":  # pragma: no cover
    sys.stdout.write(render(build_schema()))
