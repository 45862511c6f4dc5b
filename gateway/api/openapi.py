"""The OpenAPI 3.1 document, built from the route table and the request models."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from gateway import __version__
from gateway.api.models import PHONE_PATTERN
from gateway.api.routing import Route
from gateway.core.plates import PLATE_PATTERN
from gateway.core.statuses import JOB_STATUSES, NOTICE_STATUSES, SKIPPED_STATUSES
from gateway.core.templates import ACCIDENT_TYPES
from gateway.store.apikeys import ROLES

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                # What the code's message refers to: the bad fields, the allowed values ...
                "details": {"description": "structured detail of the error (any JSON)"},
            },
        }
    },
}


# Answers besides the success and 4XX that an operation documents.
_MORE_RESPONSES: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/readyz"): {
        "503": {
            "description": "Not ready: a dependency is down (the checks say which)",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["status", "checks"],
                        "properties": {
                            "status": {"type": "string", "enum": ["not_ready"]},
                            "checks": {
                                "type": "object",
                                "additionalProperties": {"type": "boolean"},
                            },
                        },
                    }
                }
            },
        }
    },
    ("POST", "/v1/admin/opt-outs"): {"200": {"description": "The number had opted out already"}},
    ("POST", "/v1/bindings"): {"200": {"description": "It replaced the plate's binding"}},
}


def _path_schema(path: str, name: str, template_names: list[str]) -> dict[str, Any]:
    """What a path parameter may be (the handler answers 404/422 for anything else)."""
    if name == "plate":
        return {
            "type": "string",
            "pattern": PLATE_PATTERN,
            "description": "a plate (separators, lower case and full width also accepted)",
        }
    if name == "phone":
        return {"type": "string", "pattern": PHONE_PATTERN, "description": "a Chinese mobile"}
    if name == "ref":
        return {"type": "string", "pattern": "^[1-9][0-9]{7}$", "description": "8 digits"}
    if name == "name" and template_names:
        return {"type": "string", "enum": template_names}
    prefix = "job_" if path.startswith("/v1/reminder-jobs/") else "ntc_"
    return {"type": "string", "pattern": f"^{prefix}[0-9a-z]{{1,40}}$", "maxLength": 64}


def _ref(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, Any]:
    name = model.__name__
    schemas[name] = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}


def _enum(values: tuple[str, ...] | list[str], description: str) -> dict[str, Any]:
    return {"type": "string", "enum": list(values), "description": description}


def build(routes: Iterable[Route], template_names: list[str] | None = None) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {
        "Error": _ERROR,
        "AccidentType": _enum(ACCIDENT_TYPES, "accident_type of POST /v1/accident-alerts"),
        "Channel": _enum(["sms", "email", "voice"], "how a notice goes out"),
        "NoticeStatus": _enum(NOTICE_STATUSES, "a notice's status (history, webhooks)"),
        "SkippedStatus": _enum(SKIPPED_STATUSES, "a job's recipient that was not sent to"),
        "JobStatus": _enum(JOB_STATUSES, "a reminder job's status"),
        "Role": _enum(ROLES, "an API key's role (x-roles of each operation; admin: all)"),
        "TemplateName": _enum(template_names or [], "GET /v1/templates describes each"),
    }
    for r in routes:
        ok: dict[str, Any] = {"description": "OK"}
        if r.response is not None:
            ok["content"] = _ref(r.response, schemas)
        op: dict[str, Any] = {
            "summary": r.summary,
            "responses": {
                str(r.ok_status): ok,
                "4XX": {
                    "description": "Client error",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                },
            },
        }
        if r.roles is not None:
            op["security"] = [{"bearer": []}]
            op["x-roles"] = list(r.roles) or ["any"]
        if r.body is not None:
            op["requestBody"] = {"required": True, "content": _ref(r.body, schemas)}
        if r.method == "POST" and r.ok_status in (201, 202):
            op["responses"]["200"] = {
                "description": "A retry with the same Idempotency-Key: the first answer"
            }
        if r.method == "POST" and r.path.startswith("/v1/") and "notices" not in r.path:
            op.setdefault("parameters", []).append(
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "maxLength": 128},
                }
            )
        for name in re.findall(r"\{(\w+)\}", r.path):
            op.setdefault("parameters", []).append(
                {
                    "name": name,
                    "in": "path",
                    "required": True,
                    "schema": _path_schema(r.path, name, template_names or []),
                }
            )
        op["responses"].update(_MORE_RESPONSES.get((r.method, r.path), {}))
        paths.setdefault(r.path, {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Notice gateway", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
