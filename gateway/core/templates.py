"""The template catalogue (zh-CN): versioned texts with declared parameters and channels."""

from __future__ import annotations

import string
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any


class TemplateError(ValueError):
    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.details = details  # what would have been right: names, the expected header


@dataclass(frozen=True, slots=True)
class Template:
    name: str
    version: int
    channels: tuple[str, ...]
    params: tuple[str, ...]
    text: str
    subject: str = ""  # for email
    sample: dict[str, str] = field(default_factory=dict)  # typical values, for the docs

    def render(self, params: dict[str, Any]) -> str:
        missing = [p for p in self.params if p not in params]
        extra = [p for p in params if p not in self.params]
        expected = {"template": self.name, "params": list(self.params)}
        if missing:
            raise TemplateError(
                "missing_params", f"missing template parameters: {missing}", expected
            )
        if extra:
            raise TemplateError(
                "unknown_params", f"parameters not in the template: {extra}", expected
            )
        for k, v in params.items():
            if not isinstance(v, str | int | float) or isinstance(v, bool):
                raise TemplateError("invalid_params", f"parameter {k} must be text or a number")
        return self.text.format_map({k: str(v) for k, v in params.items()})


class Catalogue:
    def __init__(self, templates: dict[str, Template]) -> None:
        self.templates = templates

    @classmethod
    def load(cls) -> Catalogue:
        raw = tomllib.loads(
            resources.files("gateway.templates").joinpath("catalog.toml").read_text("utf-8")
        )
        out = {}
        for name, t in raw.items():
            fields = {f for _, f, _, _ in string.Formatter().parse(t["text"]) if f}
            if fields != set(t["params"]):
                raise ValueError(f"template {name}: text fields {fields} != params")
            if set(t.get("sample", {})) != fields:
                raise ValueError(f"template {name}: sample values must be the params")
            out[name] = Template(
                name,
                int(t["version"]),
                tuple(t["channels"]),
                tuple(t["params"]),
                t["text"],
                t.get("subject", ""),
                dict(t["sample"]),
            )
        return cls(out)

    def get(self, name: str) -> Template:
        try:
            return self.templates[name]
        except KeyError:
            names = sorted(self.templates)
            raise TemplateError(
                "unknown_template",
                f"unknown template {name!r}; one of {', '.join(names)} (GET /v1/templates)",
                {"allowed": names},
            ) from None


ACCIDENT_TYPES = (
    "minor_property_damage",
    "injury",
    "hit_and_run",
    "single_vehicle",
    "hazardous_goods",
)
