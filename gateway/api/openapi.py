"""The OpenAPI 3.1 document, built from the route table and the request models."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from gateway import __version__
from gateway.api.routing import Route
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
                "details": {"type": "array", "items": {"type": "object"}},
            },
        }
    },
}


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
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            )
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
